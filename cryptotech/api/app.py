"""The app factory: one FastAPI app whose lifespan runs the engine.

``create_app(settings, source)`` opens the store, builds the hub and the engine, starts the
engine when the server starts and stops it (final checkpoint) when the server stops.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request

from cryptotech import __version__
from cryptotech.config import Settings
from cryptotech.engine import Engine
from cryptotech.hub import Event, Hub
from cryptotech.sources.base import PriceSource
from cryptotech.store import Store


def create_app(settings: Settings, source: PriceSource | None = None) -> FastAPI:
    """The whole product as one ASGI app (engine in its lifespan)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = Store(settings.store.path)
        hub = Hub(settings.api.max_subscribers, settings.api.subscriber_queue)
        engine = Engine(settings, store, hub, source)
        app.state.settings, app.state.store = settings, store
        app.state.hub, app.state.engine = hub, engine
        await engine.start()
        try:
            yield
        finally:
            hub.close_all(Event("adeus", {"mensagem": "servidor encerrando"}))
            await engine.stop()
            store.close()

    app = FastAPI(title="CryptoTech", version=__version__, lifespan=lifespan)

    @app.get("/status")
    async def status(request: Request) -> dict:
        return request.app.state.engine.status()

    @app.get("/moedas")
    async def moedas(request: Request) -> dict:
        return {"moedas": list(request.app.state.settings.coins)}

    return app
