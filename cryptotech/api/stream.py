"""``GET /stream``: Server-Sent Events with resume, a bounded queue per subscriber and a farewell.

Events: ``tick``, ``previsao``, ``resultado`` (stored: they carry an ``id:`` that only
grows), ``metricas`` and ``status`` (live only, no id), and the control events ``reset``,
``removido`` and ``adeus``. Payloads are the models of :mod:`cryptotech.api.schemas`.

Resume without gap or duplicate (``Last-Event-ID`` header, or ``?ultimo_id=`` for clients
that cannot set headers; the header wins because a browser's EventSource sends it when it
reconnects to the same URL):

1. subscribe to the hub FIRST, so every event published from now on is queued;
2. read the store after the client's id, in batches, up to what it holds, and send it;
3. then drain the live queue, skipping every stored event whose id was already sent.

The engine commits before it publishes, so an event is either in the store when step 2 reads
it or published after step 1 subscribed, and ids are sent in increasing order only. An id
older than the oldest complete history (pruned) or newer than anything stored gets a
``reset`` event carrying a snapshot (latest forecast and metrics per coin), then live events.

Each subscriber's queue is bounded (``api.subscriber_queue``); the hub never waits for one and
evicts a subscriber whose queue is full. Its stream then ends (after a ``removido`` event if
the client still reads) and the client resumes from its last id. Past
``api.max_subscribers`` a new connection gets 503. A send that blocks longer than
``api.send_timeout`` ends the stream. On shutdown every stream gets ``adeus`` and ends.

:class:`StreamHub` renders each event once (Portuguese JSON in SSE wire format) before it is
fanned out, so a thousand subscribers cost one encoding, not a thousand.
"""

import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import anyio
import anyio.lowlevel
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from sse_starlette.sse import EventSourceResponse, SendTimeoutError, ServerSentEvent

from cryptotech.api.errors import error_response, invalid, reject_repeated_query, short
from cryptotech.api.schemas import Erro
from cryptotech.hub import Event, Hub, Subscription

log = logging.getLogger("cryptotech.api.stream")

RETRY_MS = 3000  # the reconnection delay suggested to clients (``retry:``)
REPLAY_BATCH = 500  # stored events read per query when resuming
LIVE_BATCH = 64  # queued events written together when a subscriber is behind
SHUTDOWN_GRACE = 1.0  # seconds sse-starlette waits for our farewell before cancelling a stream
MAX_ID = 2**62


@dataclass(frozen=True, slots=True)
class RenderedEvent(Event):
    """An :class:`~cryptotech.hub.Event` with its bytes on the wire, encoded once."""

    wire: bytes = b""


def encode(kind: str, payload: dict[str, Any], event_id: int | None) -> bytes:
    """One SSE message: ``id:`` (stored events only), ``event:``, one ``data:`` JSON line."""
    data = json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return ServerSentEvent(data, event=kind, id=None if event_id is None else str(event_id)
                           ).encode()


class StreamHub(Hub):
    """The hub the API gives the engine: events are rendered for SSE once, then fanned out.

    ``render(kind, data, id)`` returns the JSON-ready payload of an event; ``listeners`` see
    every event as it is published (the ``/prever`` cache uses this to know what changed).
    """

    def __init__(self, render: Callable[[str, dict, int | None], dict[str, Any]],
                 max_subscribers: int = 1000, queue_size: int = 1000):
        super().__init__(max_subscribers, queue_size)
        self.render = render
        self.listeners: list[Callable[[Event], None]] = []

    def rendered(self, event: Event) -> RenderedEvent:
        if isinstance(event, RenderedEvent):
            return event
        payload = self.render(event.kind, event.data, event.id)
        return RenderedEvent(event.kind, payload, event.coin, event.id,
                             encode(event.kind, payload, event.id))

    def publish(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)
        super().publish(self.rendered(event))

    def close_all(self, farewell: Event | None = None) -> None:
        super().close_all(self.rendered(farewell) if farewell is not None else None)


def farewell() -> Event:
    return Event("adeus", {"mensagem": "servidor encerrando; reconecte em alguns segundos "
                           "(com Last-Event-ID, nada se perde)", "reconectar": True})


_REMOVED = encode("removido", {
    "mensagem": "conexão encerrada: o cliente não acompanhou o ritmo dos eventos; reconecte "
                "com Last-Event-ID para receber o que faltou", "reconectar": True}, None)


class SseResponse(EventSourceResponse):
    """sse-starlette's response; unsubscribes on every exit, a send timeout ends it quietly."""

    def __init__(self, *args: Any, on_close: Callable[[], None], **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        async def send_then_yield(message) -> None:
            # Give the loop a turn after every write: when the client is gone, the server's
            # connection_lost callback runs before the next write, so the server drops the
            # rest quietly (instead of asyncio's "socket.send() raised exception." warning
            # for every write into the dead socket, dozens during a replay).
            await send(message)
            await anyio.lowlevel.checkpoint()

        try:
            await super().__call__(scope, receive, send_then_yield)
        except SendTimeoutError:
            log.info("stream: a send took longer than send_timeout; subscriber dropped")
        finally:
            self._on_close()


@dataclass
class _Stream:
    """What one ``/stream`` response works with."""

    hub: Hub
    store: Any
    presenter: Any
    engine: Any
    sub: Subscription
    coins: frozenset[str] | None
    last_id: int | None


async def _snapshot(ctx: _Stream, coins: list[str]) -> dict[str, Any]:
    state = {}
    for coin in coins:
        learner = ctx.engine.learners.get(coin)
        if learner is None:
            continue
        metrics = learner.horizon_metrics()
        row = await anyio.to_thread.run_sync(ctx.store.latest_prediction, coin)
        state[coin] = {
            "previsao": None if row is None else ctx.presenter.current(row, metrics).model_dump(
                mode="json"),
            "metricas": ctx.presenter.metrics(coin, learner.model_in_use, metrics).model_dump(
                mode="json", exclude={"explicacao"}),
        }
    return state


async def _replay(ctx: _Stream, cursor: int) -> AsyncIterator[tuple[bytes, int]]:
    """Stored events after ``cursor``, oldest first, in batches; stops early if the
    subscriber is evicted or closed (the live loop then says why)."""
    coins = set(ctx.coins) if ctx.coins else None
    while True:
        batch = await anyio.to_thread.run_sync(ctx.store.events_after, cursor, coins,
                                               REPLAY_BATCH)
        for ev in batch:  # every send yields to the loop (SseResponse)
            if ctx.sub.evicted or ctx.sub.closed.is_set():
                return
            yield encode(ev.kind, ctx.presenter.event(ev.kind, ev.data, ev.id), ev.id), ev.id
            cursor = ev.id
        if len(batch) < REPLAY_BATCH:
            return


async def _reset(ctx: _Stream, floor: int, newest: int, coins: list[str]) -> bytes:
    if ctx.last_id is not None and ctx.last_id < floor:
        why = (f"o id {ctx.last_id} é anterior ao histórico guardado (completo a partir de "
               f"{floor + 1})")
    else:
        why = f"o id {ctx.last_id} é posterior ao último evento deste servidor ({newest})"
    snapshot = await _snapshot(ctx, coins)
    return encode("reset", {"motivo": why, "ultimo_id": newest, "moedas": snapshot}, newest)


async def events(ctx: _Stream, all_coins: list[str]) -> AsyncIterator[bytes | ServerSentEvent]:
    """The body of one ``/stream`` response (see the module docstring for the algorithm)."""
    sub = ctx.sub
    try:
        yield ServerSentEvent(comment="CryptoTech: eventos ao vivo", retry=RETRY_MS)
        cursor = 0  # the newest stored id sent; the live queue skips up to it
        if ctx.last_id is not None:
            floor = await anyio.to_thread.run_sync(ctx.store.replay_floor)
            newest = max((await anyio.to_thread.run_sync(ctx.store.event_id_range))[1],
                         ctx.hub.last_id)
            if floor <= ctx.last_id <= newest:
                async for wire, sent_id in _replay(ctx, ctx.last_id):
                    yield wire
                    cursor = sent_id
                cursor = max(cursor, ctx.last_id)
            else:
                coins = sorted(ctx.coins) if ctx.coins else all_coins
                yield await _reset(ctx, floor, newest, coins)
                cursor = newest
        while True:
            if sub.evicted:
                yield _REMOVED
                return
            if sub.closed.is_set() and sub.queue.empty():
                return
            ev = await sub.queue.get()
            # what queued up meanwhile goes out in the same write (one send, many events)
            chunks, last = [], False
            while True:
                if ev.id is None or ev.id > cursor:  # else already sent from the store
                    chunks.append(ev.wire)
                    cursor = ev.id if ev.id is not None else cursor
                    last = ev.kind == "adeus"
                if last or len(chunks) >= LIVE_BATCH or sub.queue.empty():
                    break
                ev = sub.queue.get_nowait()
            if chunks:
                yield chunks[0] if len(chunks) == 1 else b"".join(chunks)
                sub.delivered += len(chunks)
            if last:
                return
    finally:
        ctx.hub.unsubscribe(sub)


def _parse_coins(text: str | None, known: list[str]) -> frozenset[str] | None:
    if text is None:
        return None
    wanted = [c.strip().lower() for c in text.split(",") if c.strip()]
    if not wanted:
        raise invalid("query", "moedas", "informe ao menos uma moeda (ex.: btc,eth)", text)
    unknown = [c for c in wanted if c not in known]
    if unknown:
        raise invalid("query", "moedas", f"moeda(s) desconhecida(s): {short(', '.join(unknown))}"
                      f"; disponíveis: {', '.join(known)}", text)
    return frozenset(wanted)


def _parse_last_id(header: str | None, query: int | None) -> int | None:
    if header is not None and header.strip():
        value = header.strip()
        if not (value.isascii() and value.isdigit()):
            raise invalid("header", "Last-Event-ID", "deve ser o id numérico de um evento", value)
        if len(value) > len(str(MAX_ID)) or int(value) > MAX_ID:
            raise invalid("header", "Last-Event-ID", "id fora do intervalo: deve ser de 0 a "
                          f"{MAX_ID} (o id de um evento recebido)", short(value))
        return int(value)
    return query


STREAM_DESCRIPTION = f"""Eventos ao vivo (Server-Sent Events). Cada mensagem tem `event:` e
uma linha `data:` com JSON:

* `tick` ([Preco]): um preço recebido e guardado;
* `previsao` ([Previsao], `situacao = pendente`): uma previsão nova, de um `horizonte` (uma por
  horizonte configurado), com quantis, chance de subir e volatilidade prevista;
* `resultado` ([Previsao], `situacao = realizada`): uma previsão conferida com o preço real;
* `metricas` ([MetricasMoeda]): métricas depois de cada resultado (sem id), do primeiro
  horizonte e, em `por_horizonte`, de cada um;
* `status` ([StatusResumo]): pulsação periódica (sem id);
* `alerta` ([Alerta]): uma regra de alerta disparou (veja `GET /alertas`);
* `reset` ([Reset]): o id pedido não está mais guardado: estado atual de cada moeda;
* `removido` / `adeus` ([Aviso]): conexão encerrada por lentidão / servidor encerrando.

`tick`, `previsao`, `resultado`, `alerta` e `reset` têm `id:` crescente. Ao reconectar com o cabeçalho
`Last-Event-ID` (o EventSource do navegador faz isso sozinho) ou `?ultimo_id=`, todo evento
perdido é reenviado uma única vez, em ordem, e depois seguem os eventos ao vivo. Sugestão de
reconexão: `retry: {RETRY_MS}` ms. Comentários `: ping` mantêm a conexão viva."""


def build_router(coins: list[str]) -> APIRouter:
    router = APIRouter(dependencies=[Depends(reject_repeated_query)])

    @router.get(
        "/stream",
        summary="Eventos ao vivo (SSE)",
        description=STREAM_DESCRIPTION,
        response_class=EventSourceResponse,
        responses={
            200: {"description": "Fluxo text/event-stream",
                  "content": {"text/event-stream": {"schema": {"type": "string"}}}},
            422: {"model": Erro, "description": "Parâmetro inválido"},
            503: {"model": Erro, "description": "Limite de assinantes atingido ou servidor "
                                                "encerrando"},
        },
        tags=["tempo real"],
    )
    async def stream(
        request: Request,
        moedas: Annotated[str | None, Query(
            description="Só estas moedas, separadas por vírgula (padrão: todas)",
            examples=["btc,eth"], max_length=1000)] = None,
        ultimo_id: Annotated[int | None, Query(
            ge=0, le=MAX_ID,
            description="Último id recebido, para quem não pode enviar Last-Event-ID")] = None,
        last_event_id: Annotated[str | None, Header(
            alias="Last-Event-ID", description="Último id recebido (enviado pelo "
            "EventSource ao reconectar)")] = None,
    ):
        app = request.app.state
        wanted = _parse_coins(moedas, coins)
        last_id = _parse_last_id(last_event_id, ultimo_id)
        if request.method == "HEAD":
            return Response(media_type="text/event-stream",
                            headers={"Cache-Control": "no-store"})
        hub: Hub = app.hub
        if app.closing.is_set():
            return error_response(503, "servidor encerrando; tente novamente em instantes",
                                  headers={"Retry-After": "5"})
        try:
            sub = hub.subscribe(wanted)
        except OverflowError:
            return error_response(
                503, f"limite de {hub.max_subscribers} assinantes simultâneos atingido; tente "
                     "novamente em instantes", headers={"Retry-After": "10"})
        ctx = _Stream(hub, app.store, app.presenter, app.engine, sub, wanted, last_id)
        api = app.settings.api
        return SseResponse(
            events(ctx, coins),
            on_close=lambda: hub.unsubscribe(sub),
            ping=api.ping_interval.total_seconds(),
            send_timeout=api.send_timeout.total_seconds(),
            shutdown_event=anyio.Event(),
            shutdown_grace_period=SHUTDOWN_GRACE,
        )

    router.add_api_route("/stream", stream, methods=["HEAD"], include_in_schema=False)
    return router

