"""The values that flow through the engine: Tick in, Prediction and Outcome out.

Small frozen dataclasses with UTC datetimes. Everything downstream (learner, store, hub, API)
speaks these types.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timezone

UTC = timezone.utc


def utc(dt: datetime) -> datetime:
    """Return ``dt`` as an aware UTC datetime (naive values are taken to be UTC)."""
    if dt.tzinfo is None:
        return dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC)


def from_epoch(seconds: float) -> datetime:
    """An aware UTC datetime from UNIX seconds."""
    return datetime.fromtimestamp(seconds, tz=UTC)


def valid_price(value: object) -> bool:
    """True for a finite, strictly positive number: the only prices the learner accepts."""
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value > 0
    )


@dataclass(frozen=True, slots=True)
class Tick:
    """One price observation of one coin at the source's own timestamp (UTC)."""

    coin: str
    ts: datetime
    price: float
    market_cap: float | None = None
    volume_24h: float | None = None
    change_24h: float | None = None

    @property
    def epoch(self) -> float:
        return self.ts.timestamp()


QUANTILE_LEVELS: tuple[float, ...] = (0.05, 0.10, 0.25, 0.50, 0.75, 0.90, 0.95)
"""The levels of the published predictive quantiles (``Prediction.quantiles``), in this order."""


@dataclass(frozen=True, slots=True)
class Prediction:
    """A forecast of ``coin``'s price at ``target_at``, made at ``made_at``.

    ``forecast`` is the published median and ``[lower, upper]`` the interval at the configured
    level. The probabilistic part: ``quantiles`` are prices at :data:`QUANTILE_LEVELS` (empty
    when not computed), ``p_up`` the probability that the price at ``target_at`` is above
    ``price``, ``vol`` the forecast standard deviation of the log-return over the horizon (a
    fraction), ``p_move`` pairs ``(threshold, probability)``: the chance that the price moves
    further than ``±threshold`` (a fraction, e.g. 0.02 for 2 %). ``horizon`` is its label
    (``"1h"``) as configured.
    """

    coin: str
    made_at: datetime
    target_at: datetime
    price: float
    forecast: float
    lower: float
    upper: float
    model: str
    horizon: str = "1h"
    quantiles: tuple[float, ...] = ()
    p_up: float | None = None
    vol: float | None = None
    p_move: tuple[tuple[float, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to a prediction once its target time was reached."""

    prediction: Prediction
    actual: float

    @property
    def error(self) -> float:
        """Forecast minus realised price, in the quote currency."""
        return self.prediction.forecast - self.actual

    @property
    def covered(self) -> bool:
        """Whether the realised price fell inside the forecast interval."""
        return self.prediction.lower <= self.actual <= self.prediction.upper
