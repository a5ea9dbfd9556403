"""What the page shows before the stream takes over: recent history, metrics, source state.

All payloads are the API's own (:class:`~cryptotech.api.present.Presenter`), so a point read
here looks exactly like the same point received on ``/stream``. The history is grouped by the
stream event that would have carried it (``tick``, ``previsao``), oldest first; a settled
forecast is sent once, as ``previsao`` with ``situacao = "realizada"``, and the page also draws
it as the ``resultado`` it was (half the bytes of sending it twice).

No gap between the history and the stream: the page opens ``/stream`` after
:func:`newest_event_id` as read when the page was served, and every history read here happens
later. Anything stored meanwhile arrives twice (here and on the stream); the browser appends a
point only when it is newer than the trace's last one, so it is drawn once.

Store reads are blocking: call the ``read_*`` functions in a worker thread. Engine state
(learners' metrics, the source's status) is read on the event loop, as the REST routes do.
"""

from __future__ import annotations

from typing import Any

from cryptotech.api.present import Presenter
from cryptotech.store import Store

#: The time windows the page offers: key -> (label, seconds of market time).
WINDOWS: dict[str, tuple[str, int]] = {
    "6h": ("6 h", 6 * 3600),
    "24h": ("24 h", 24 * 3600),
    "3d": ("3 dias", 3 * 24 * 3600),
}
DEFAULT_WINDOW = "24h"
#: At most this many ticks per coin are sent with a page (the window bounds it first).
MAX_TICKS = 5000


def window_seconds(key: str | None) -> int:
    """The window's length in seconds; an unknown key means the default window.

    >>> window_seconds("6h"), window_seconds("nope") == window_seconds(DEFAULT_WINDOW)
    (21600, True)
    """
    return WINDOWS.get(key or DEFAULT_WINDOW, WINDOWS[DEFAULT_WINDOW])[1]


def newest_event_id(store: Store | None) -> int:
    """The newest stored event id (0 without a store): where the page's stream starts."""
    return 0 if store is None else store.event_id_range()[1]


def price_decimals(price: float | None) -> int:
    """Decimals that make a price of this size readable.

    >>> price_decimals(104250.5), price_decimals(2.13), price_decimals(0.0000123)
    (2, 4, 8)
    """
    if price is None or price >= 10:
        return 2
    if price >= 0.1:
        return 4
    return 6 if price >= 0.001 else 8


def axis_format(price: float | None) -> str | None:
    """The price axis' tick format: whole numbers from 1.000 up (hover keeps the decimals),
    else Plotly's own choice.

    >>> axis_format(104250.5), axis_format(2.13)
    (',.0f', None)
    """
    return ",.0f" if price is not None and price >= 1000 else None


def _tick(presenter: Presenter, coin: str, ts: float, price: float) -> dict[str, Any]:
    return presenter.tick({"coin": coin, "ts": ts, "price": price}).model_dump(mode="json")


def read_coin_history(store: Store, presenter: Presenter, coin: str, last_t: float | None,
                      window_s: float, horizon: str | None = None,
                      horizon_s: float | None = None) -> dict[str, Any]:
    """One coin's ticks and its forecasts at ``horizon`` (``None``: the first configured, of
    ``horizon_s`` seconds) in the window ending at its newest tick (blocking).

    Forecasts are taken from one horizon before the window, so the forecast line and its
    band (drawn at their target times) start where the price line starts. The settled ones
    (``situacao = "realizada"``) feed the outcome charts too.
    """
    empty: dict[str, Any] = {"tick": [], "previsao": []}
    if last_t is None:
        return empty
    since = last_t - window_s
    ticks = [_tick(presenter, coin, ts, price)
             for ts, price in store.recent_ticks(coin, since, MAX_TICKS)]
    ahead = presenter.horizon_s if horizon_s is None else horizon_s
    forecasts = [presenter.prediction(row).model_dump(mode="json")
                 for row in store.predictions(coin, start=since - ahead, horizon=horizon)]
    return {"tick": ticks, "previsao": forecasts}


def settled(history: dict[str, Any]) -> bool:
    """Whether the history holds a settled forecast (the outcome charts have something)."""
    return any(p["situacao"] == "realizada" for p in history.get("previsao", []))


def read_comparison(store: Store, presenter: Presenter, last_t: dict[str, float | None],
                    window_s: float) -> dict[str, Any]:
    """The ticks of several coins from one common start: the newest tick of any of them
    minus the window (blocking)."""
    known = [t for t in last_t.values() if t is not None]
    if not known:
        return {"tick": []}
    since = max(known) - window_s
    return {"tick": [_tick(presenter, coin, ts, price)
                     for coin in last_t for ts, price in store.recent_ticks(coin, since,
                                                                           MAX_TICKS)]}


def coin_state(state: Any, coin: str, horizon: str | None = None
               ) -> tuple[dict[str, Any] | None, float | None]:
    """The coin's metrics at ``horizon`` (``None``: the first configured), shaped as the
    ``metricas`` event, and its newest tick time."""
    learner = state.engine.learners.get(coin)
    if learner is None:
        return None, None
    chosen = learner.horizon(horizon)
    metrics = state.presenter.metrics(coin, chosen.model_in_use, chosen.metrics())
    out = metrics.model_dump(mode="json")
    if horizon is not None:
        out["horizonte"] = horizon
    return out, learner.last_t


def source_state(state: Any) -> dict[str, Any]:
    """The ``status`` event's payload plus what the banner needs that it lacks: the kind of
    source, its credit budget and a replay's measured speed."""
    engine, hub = state.engine, state.hub
    brief = state.presenter.status_brief(engine, hub.subscribers, hub.last_id)
    out = brief.model_dump(mode="json")
    src = engine.source.status if engine.source is not None else None
    out["tipo"] = src.source if src is not None else None
    out["creditos_usados_mes"] = src.credits_used_month if src is not None else 0
    out["orcamento_creditos"] = src.credit_budget if src is not None else 0
    # a replay's measured speed, market seconds per second (sources that measure it)
    out["velocidade_real"] = getattr(src, "velocidade_real", None)
    return out
