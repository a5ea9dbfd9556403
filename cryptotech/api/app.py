"""The app factory: one FastAPI app whose lifespan runs the engine.

``create_app(settings, source)`` builds the app: the REST routes (:mod:`.routes`), the SSE
stream (:mod:`.stream`), the Portuguese error handlers (:mod:`.errors`), the docs without
CDN, gzip and cache headers (:mod:`.delivery`) and, when
``api.cors_origins`` lists any, a CORS allow-list for GET/HEAD. Its lifespan opens the
store, builds the hub and the engine, starts the engine, publishes a ``status`` event every
``status_every`` seconds and watches for shutdown, both as tasks supervised by the engine
(``pulsacao``, ``encerramento`` in ``/status``). On shutdown every SSE stream gets an
``adeus`` event, the engine stops (final checkpoint) and the store closes; one log line says
the server is stopping, one that it stopped and how long it took.

Shutdown and open streams: uvicorn waits for open connections before it runs the lifespan's
shutdown, and an SSE stream never ends by itself. On SIGINT/SIGTERM sse-starlette (imported
by :mod:`.stream`) sets ``AppStatus.should_exit``; the lifespan's watcher sees it within
0.2 s and sends the farewell, which ends every stream, so uvicorn proceeds at once. A server
that is stopped without a signal (tests, embedding) calls :func:`begin_shutdown` first.

Other apps (the Dash dashboard at ``/painel/``) are added with ``extensions``: callables that
receive the FastAPI app and the settings after the API's routes are in place, e.g.
``create_app(settings, source, extensions=[mount_dashboard])``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from sse_starlette.sse import AppStatus

from cryptotech import __version__
from cryptotech.alerts.service import start_tasks as start_alert_tasks
from cryptotech.api import alerts as alerts_api
from cryptotech.api import delivery, errors, routes, stream
from cryptotech.api.cache import ForecastCache
from cryptotech.api.present import Presenter
from cryptotech.config import Settings
from cryptotech.engine import Engine
from cryptotech.hub import Event
from cryptotech.sources.base import PriceSource
from cryptotech.storage import open_store, store_target

log = logging.getLogger("cryptotech.api")

Extension = Callable[[FastAPI, Settings], None]

DESCRIPTION = """Previsões de preço de criptomoedas que aprendem a cada novo preço.

Cada moeda tem modelos online (River) que preveem a distribuição do preço em vários horizontes
(`?horizonte=`, padrão o primeiro configurado): quantis, uma faixa provável, a chance de subir e
a volatilidade prevista. Tudo é comparado o tempo todo com a persistência ("o preço fica
igual") e com uma faixa EWMA-Gaussiana de referência. Todos os horários estão no fuso
configurado, em ISO-8601 com deslocamento.

* [Página inicial](/) · [Status](/status) · [Moedas](/moedas) · [ReDoc](/redoc)
* `GET /stream`: eventos ao vivo (Server-Sent Events).

A API é somente leitura (GET e HEAD). Erros vêm em JSON com `detalhe` em português."""


def create_app(settings: Settings, source: PriceSource | None = None, *,
               status_every: float = 5.0, extensions: Sequence[Extension] = ()) -> FastAPI:
    """The whole product as one ASGI app (engine in its lifespan)."""
    presenter = Presenter(settings)
    coins = list(settings.coins)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = open_store(store_target(settings),
                           default_horizon=settings.model.horizon_labels[0])
        hub = stream.StreamHub(presenter.event, settings.api.max_subscribers,
                               settings.api.subscriber_queue)
        forecasts = ForecastCache()
        hub.listeners.append(forecasts.changed)
        engine = Engine(settings, store, hub, source)
        state = app.state
        state.settings, state.store, state.hub, state.engine = settings, store, hub, engine
        state.presenter, state.forecasts = presenter, forecasts
        state.closing = asyncio.Event()
        state.stopping_at = None
        try:
            # watching from the start: a signal during a long recovery ends the recovery
            engine.supervise("encerramento", lambda: _watch_shutdown(app))
            await engine.start()
            engine.supervise("pulsacao", lambda: _publish_status(app, status_every))
            start_alert_tasks(state)  # alerts: outage check, a sender per channel (supervised)
            yield
        finally:
            _begin_stopping(app, "the server stops")
            began = state.stopping_at
            said = await engine.stop()
            store.close()
            log.info("stopped %.1f s after the stop began: streams closed, %s",
                     time.monotonic() - began, said)
            if threading.current_thread() is threading.main_thread():
                # `cryptotech run/demo`: the process exits next. Python would then scan every
                # object for cycles (hundreds of thousands: seconds on a busy machine); the
                # store is closed and nothing else holds resources, so skip that scan.
                gc.freeze()

    app = FastAPI(
        title="CryptoTech",
        summary="Previsões de criptomoedas em tempo real, em português",
        description=DESCRIPTION,
        version=__version__,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "previsões", "description": "Previsão atual, histórico e métricas"},
            {"name": "tempo real", "description": "Eventos ao vivo (SSE)"},
            {"name": "serviço", "description": "Status e moedas configuradas"},
        ],
        swagger_ui_parameters={"defaultModelsExpandDepth": 0, "tryItOutEnabled": True},
        docs_url=None, redoc_url=None,  # served from this server: delivery.install_docs
    )
    errors.install(app, coins)
    delivery.install_docs(app)
    delivery.install_delivery(app)
    if settings.api.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.api.cors_origins),
                           allow_methods=["GET", "HEAD"], allow_headers=["Last-Event-ID"],
                           allow_credentials=False)
    app.include_router(routes.build_router(settings, presenter))
    app.include_router(stream.build_router(coins))
    app.include_router(alerts_api.build_router(settings, presenter))  # /alertas
    _document_event_models(app)
    for extension in extensions:
        extension(app, settings)
    return app


def _document_event_models(app: FastAPI) -> None:
    """Add the SSE payload models to the OpenAPI components (``/stream`` names them)."""
    from pydantic.json_schema import models_json_schema

    from cryptotech.api import schemas

    models = (schemas.Preco, schemas.Previsao, schemas.MetricasMoeda, schemas.StatusResumo,
              schemas.Reset, schemas.Aviso, alerts_api.Alerta)
    default = app.openapi

    def openapi() -> dict[str, Any]:
        schema = app.openapi_schema
        if schema is None:
            schema = default()
            _, defs = models_json_schema([(m, "serialization") for m in models],
                                         ref_template="#/components/schemas/{model}")
            known = schema.setdefault("components", {}).setdefault("schemas", {})
            for name, model_schema in defs.get("$defs", {}).items():
                known.setdefault(name, model_schema)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def begin_shutdown(app: FastAPI) -> None:
    """Say farewell to every stream now (call on the server's event loop).

    Needed only when the server is stopped without SIGINT/SIGTERM (a test, an embedding);
    the signals are seen by the lifespan's watcher.
    """
    closing = getattr(app.state, "closing", None)
    if closing is not None:
        closing.set()


async def _watch_shutdown(app: FastAPI) -> None:
    """Farewell to every stream as soon as the server starts to stop (a signal, or
    :func:`begin_shutdown`), then wait to be cancelled with the other tasks."""
    state = app.state
    while not (AppStatus.should_exit or state.closing.is_set()):
        # not asyncio.wait_for(state.closing.wait(), 0.2): on Python 3.11 it swallows a
        # cancellation that lands as ``closing`` is set (CPython gh-86296), and the stop then
        # waits for this task forever
        await asyncio.sleep(0.1)
    _begin_stopping(app, "signal received" if AppStatus.should_exit else "asked to stop")
    await asyncio.Event().wait()


def _begin_stopping(app: FastAPI, why: str) -> None:
    """Once: log that the server stops, and say farewell to every stream (ends them, so
    uvicorn does not wait for them)."""
    state = app.state
    state.closing.set()
    state.engine.halt()
    if state.stopping_at is None:
        state.stopping_at = time.monotonic()
        log.info("stopping (%s): closing %d stream(s), then the final checkpoint", why,
                 state.hub.subscribers)
    state.hub.close_all(stream.farewell())


async def _publish_status(app: FastAPI, every: float) -> None:
    """A short ``status`` event every ``every`` seconds (steady rhythm); a failed one is
    logged and counted (task ``pulsacao``), the next one is tried on time."""
    loop = asyncio.get_running_loop()
    state = app.state
    next_at = loop.time()
    while True:
        next_at = max(next_at + every, loop.time())
        await asyncio.sleep(next_at - loop.time())
        if not state.hub.subscribers:
            continue
        try:
            brief = state.presenter.status_brief(state.engine, state.hub.subscribers,
                                                 state.hub.last_id)
            state.hub.publish(Event("status", brief.model_dump(mode="json")))
        except Exception as exc:
            state.engine.supervisor.failed("pulsacao", exc, "status event not published")
        else:
            state.engine.supervisor.succeeded("pulsacao")
