"""The answer of ``/prever/{moeda}`` (per horizon), kept per coin until the coin's forecast or metrics change.

``/prever`` is the endpoint people poll. Its answer changes only when the engine publishes a
new forecast (``previsao``), settles one (``resultado``) or updates the metrics
(``metricas``) of that coin, and every such event passes through the hub, so the encoded body
is cached per coin and dropped by :meth:`ForecastCache.changed`, which the hub calls for each
published event. A version per coin makes sure a body computed while an event arrived is
never stored as current.

>>> from cryptotech.hub import Event
>>> cache = ForecastCache()
>>> v = cache.version("btc"); cache.put("btc", v, b"{}"); cache.get("btc")
b'{}'
>>> cache.changed(Event("previsao", {}, "btc")); cache.get("btc") is None
True
>>> cache.put("btc", v, b"old"); cache.get("btc") is None  # computed before the change
True
"""

from __future__ import annotations

from cryptotech.hub import Event

CHANGES = frozenset({"previsao", "resultado", "metricas"})


class ForecastCache:
    """Encoded ``/prever`` bodies per coin (event-loop thread only)."""

    def __init__(self) -> None:
        self._bodies: dict[str, dict[str, bytes]] = {}  # coin -> horizon -> body
        self._versions: dict[str, int] = {}

    def version(self, coin: str) -> int:
        return self._versions.get(coin, 0)

    def get(self, coin: str, horizon: str = "") -> bytes | None:
        return self._bodies.get(coin, {}).get(horizon)

    def put(self, coin: str, version: int, body: bytes, horizon: str = "") -> None:
        """Keep ``body`` (of one horizon) if nothing about ``coin`` changed since
        :meth:`version` was read."""
        if self._versions.get(coin, 0) == version:
            self._bodies.setdefault(coin, {})[horizon] = body

    def changed(self, event: Event) -> None:
        if event.kind in CHANGES and event.coin is not None:
            self._versions[event.coin] = self._versions.get(event.coin, 0) + 1
            self._bodies.pop(event.coin, None)
