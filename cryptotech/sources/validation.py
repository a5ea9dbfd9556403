"""The door every upstream value passes through before it becomes a :class:`Tick`.

One :class:`TickValidator` per source (the REST poller and the WebSocket source share it when
one falls back to the other). It rejects invalid prices and timestamps, drops repeated source
timestamps as duplicates, and refuses absurd jumps, counting every refusal in the source's
:class:`~cryptotech.sources.base.SourceStatus`. Nothing it refuses reaches the learner.
"""

from __future__ import annotations

import math

from cryptotech.domain import Tick, from_epoch, valid_price
from cryptotech.sources.base import SourceStatus

# Seconds since the epoch outside this range are not a CoinGecko timestamp (2009 .. 2100).
_MIN_TS = 1_230_000_000
_MAX_TS = 4_102_444_800


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _optional(value: object, *, non_negative: bool) -> float | None:
    """A finite number (non-negative if asked) as float, anything else as None."""
    if not _is_number(value) or not math.isfinite(value):  # type: ignore[arg-type]
        return None
    if non_negative and value < 0:  # type: ignore[operator]
        return None
    return float(value)  # type: ignore[arg-type]


def price_problem(value: object) -> str | None:
    """Why ``value`` is not an acceptable price, or None if it is.

    >>> [price_problem(v) for v in (1.5, float("nan"), float("inf"), 0, -2)]
    [None, 'nan', 'infinite', 'non_positive', 'non_positive']
    >>> [price_problem(v) for v in ("3", None, True)]
    ['non_numeric', 'missing_price', 'non_numeric']
    """
    if valid_price(value):
        return None
    if value is None:
        return "missing_price"
    if not _is_number(value):
        return "non_numeric"
    if math.isnan(value):  # type: ignore[arg-type]
        return "nan"
    if math.isinf(value):  # type: ignore[arg-type]
        return "infinite"
    return "non_positive"


class TickValidator:
    """Turns raw (coin, timestamp, price, ...) values into ticks, or counts why not.

    Parameters
    ----------
    status
        Where refusals are counted (``status.rejected``, ``status.duplicates``) and accepted
        ticks are noted (``status.last_tick_at``).
    max_jump
        Largest accepted relative move from the coin's last accepted price (0.5 = 50 %).
    reanchor_after
        A coin whose price really moved more than ``max_jump`` would be refused forever; after
        this many consecutive refused jumps that agree with each other (within ``max_jump``),
        the new level is accepted.

    Examples
    --------
    >>> status = SourceStatus()
    >>> v = TickValidator(status)
    >>> v.accept("btc", 1_750_000_000, 100_000.0).price
    100000.0
    >>> v.accept("btc", 1_750_000_000, 100_000.0) is None  # same source timestamp
    True
    >>> v.accept("btc", 1_750_000_060, 300_000.0) is None  # +200 %
    True
    >>> v.accept("btc", 1_750_000_120, float("nan")) is None
    True
    >>> status.duplicates, dict(status.rejected)
    (1, {'absurd_jump': 1, 'nan': 1})
    """

    def __init__(self, status: SourceStatus, max_jump: float = 0.5, reanchor_after: int = 5):
        if max_jump <= 0:
            raise ValueError("max_jump must be positive")
        self.status = status
        self.max_jump = max_jump
        self.reanchor_after = reanchor_after
        self._last: dict[str, tuple[float, float]] = {}  # coin -> (ts seconds, price)
        self._jumps: dict[str, tuple[float, int]] = {}  # coin -> (refused level, how many)

    def reject(self, reason: str, n: int = 1) -> None:
        """Count ``n`` refusals for ``reason`` (for callers that refuse whole messages)."""
        self.status.rejected[reason] += n

    def accept(
        self,
        coin: str,
        ts: object,
        price: object,
        *,
        market_cap: object = None,
        volume_24h: object = None,
        change_24h: object = None,
    ) -> Tick | None:
        """The tick for these raw values, or None (counted) if they must not be learned from.

        ``ts`` is UNIX seconds (int or float). Optional fields that are not finite numbers
        (or negative, for market cap and volume) become None without refusing the tick.
        """
        problem = price_problem(price)
        if problem is not None:
            self.reject(problem)
            return None
        if not (_is_number(ts) and _MIN_TS <= ts <= _MAX_TS):  # type: ignore[operator]
            self.reject("bad_timestamp")  # also NaN and infinities, which fail the range
            return None
        seconds, value = float(ts), float(price)  # type: ignore[arg-type]
        last = self._last.get(coin)
        if last is not None:
            if seconds == last[0]:
                self.status.duplicates += 1
                return None
            if seconds < last[0]:
                self.reject("out_of_order")
                return None
            if abs(value / last[1] - 1.0) > self.max_jump and not self._reanchor(coin, value):
                self.reject("absurd_jump")
                return None
        self._jumps.pop(coin, None)
        self._last[coin] = (seconds, value)
        tick = Tick(
            coin=coin,
            ts=from_epoch(seconds),
            price=value,
            market_cap=_optional(market_cap, non_negative=True),
            volume_24h=_optional(volume_24h, non_negative=True),
            change_24h=_optional(change_24h, non_negative=False),
        )
        self.status.last_tick_at[coin] = tick.ts
        return tick

    def _reanchor(self, coin: str, value: float) -> bool:
        """Note one more refused jump to ``value``; True once the new level has held."""
        level, count = self._jumps.get(coin, (value, 0))
        count = count + 1 if abs(value / level - 1.0) <= self.max_jump else 1
        self._jumps[coin] = (value, count)
        return count > self.reanchor_after
