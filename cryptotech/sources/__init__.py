"""Where ticks come from: CoinGecko REST (polled), CoinGecko WebSocket, or a replayed file.

Every source follows :class:`~cryptotech.sources.base.PriceSource` (``stream()``,
``backfill()``, ``status``). :func:`live_source` builds the one the settings ask for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cryptotech.sources.base import PriceSource, SourceStatus

if TYPE_CHECKING:
    from cryptotech.config import Settings

__all__ = ["PriceSource", "SourceStatus", "live_source"]


def live_source(settings: Settings, **options: Any) -> PriceSource:
    """The CoinGecko source of ``settings.source.kind`` (``"rest"`` or ``"websocket"``).

    ``options`` go to the source's constructor (e.g. ``rng``, ``credits_used_month``).
    """
    if settings.source.kind == "websocket":
        from cryptotech.sources.coingecko_ws import CoinGeckoStreamSource

        return CoinGeckoStreamSource(settings, **options)
    from cryptotech.sources.coingecko import CoinGeckoRestSource

    return CoinGeckoRestSource(settings, **options)
