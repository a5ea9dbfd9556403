"""Proper scores of a probabilistic forecast, kept online over an exponential window.

:class:`ForecastScores` follows one forecaster (the published forecast, persistence, the
EWMA-Gaussian baseline, a candidate) and reports today's point metrics (MAE, RMSE, MAPE, R²,
hit rate, coverage, width) beside the proper scores of the distribution: the interval score
at the configured level, the mean pinball loss over the quantiles (a CRPS estimate), the Brier
score of ``P(rise)``, the Gaussian log-likelihood of the volatility forecast and the realised
frequency of each quantile. Every mean weighs the last ``window`` outcomes or so
(exponential decay ``1 - 1/window``), so memory stays constant whatever the window.

Interval score and pinball loss are in basis points of the price at forecast time (so coins
and price scales compare), as ``score_forecasts.py`` computes them.
"""

from __future__ import annotations

import math

from cryptotech.domain import QUANTILE_LEVELS

LOG_2PI = math.log(2.0 * math.pi)


def pinball(q: float, y: float, tau: float) -> float:
    """Pinball (quantile) loss of quantile ``q`` at level ``tau`` for the outcome ``y``.

    >>> pinball(1.0, 2.0, 0.9), pinball(3.0, 2.0, 0.9)
    (0.9, 0.09999999999999998)
    """
    return (tau - (1.0 if y < q else 0.0)) * (y - q)


def interval_score(lower: float, upper: float, y: float, alpha: float) -> float:
    """Gneiting and Raftery's interval score of ``[lower, upper]`` at level ``1 - alpha``.

    >>> interval_score(1.0, 2.0, 1.5, 0.1), interval_score(1.0, 2.0, 2.5, 0.1)
    (1.0, 11.0)
    """
    score = upper - lower
    if y < lower:
        score += 2.0 / alpha * (lower - y)
    elif y > upper:
        score += 2.0 / alpha * (y - upper)
    return score


_KEYS = ("ae", "se", "ape", "y", "y2", "cov", "width", "is", "pin", "brier", "loglik")


class ForecastScores:
    """Exponentially weighted scores of one forecaster over about ``window`` outcomes.

    Parameters
    ----------
    window
        The effective number of outcomes the means weigh (decay ``1 - 1/window``).
    level
        Nominal level of the interval (its interval score uses ``alpha = 1 - level``).

    Examples
    --------
    >>> s = ForecastScores(window=100, level=0.9)
    >>> s.update(price=100.0, forecast=100.0, lower=98.0, upper=102.0, actual=101.0,
    ...          quantiles=(97, 98, 99, 100, 101, 102, 103), p_up=0.5, vol=0.01)
    >>> m = s.as_dict()
    >>> m["mae"], m["coverage"], m["mean_width_bps"], m["brier"], m["quantile_coverage"]["q75"]
    (1.0, 1.0, 400.0, 0.25, 1.0)
    """

    def __init__(self, window: int, level: float = 0.9):
        self.window = window
        self.level = level
        self.decay = 1.0 - 1.0 / window
        self.n_total = 0
        self.weight = 0.0  # decayed count of outcomes
        self.sums = dict.fromkeys(_KEYS, 0.0)
        self.hit_weight = 0.0
        self.hits = 0.0
        self.n_hits = 0
        self.band_weight = 0.0  # outcomes scored with an interval
        self.q_weight = 0.0
        self.q_below = [0.0] * len(QUANTILE_LEVELS)
        self.p_weight = 0.0
        self.v_weight = 0.0

    def update(self, price: float, forecast: float, lower: float | None, upper: float | None,
               actual: float, quantiles: tuple[float, ...] = (), p_up: float | None = None,
               vol: float | None = None) -> None:
        d = self.decay
        s = self.sums
        for key in s:
            s[key] *= d
        self.weight = self.weight * d + 1.0
        err = forecast - actual
        s["ae"] += abs(err)
        s["se"] += err * err
        s["ape"] += abs(err) / abs(actual) * 100.0
        s["y"] += actual
        s["y2"] += actual * actual
        self.n_total += 1
        self.hit_weight *= d
        self.hits *= d
        if forecast != price and actual != price:
            self.hit_weight += 1.0
            self.hits += 1.0 if (forecast > price) == (actual > price) else 0.0
            self.n_hits += 1
        self.band_weight *= d
        if lower is not None and upper is not None:
            self.band_weight += 1.0
            s["cov"] += 1.0 if lower <= actual <= upper else 0.0
            s["width"] += (upper - lower) / price * 1e4
            s["is"] += interval_score(lower, upper, actual, 1.0 - self.level) / price * 1e4
        self.q_weight *= d
        self.q_below = [b * d for b in self.q_below]
        if quantiles:
            self.q_weight += 1.0
            total = 0.0
            for i, (q, tau) in enumerate(zip(quantiles, QUANTILE_LEVELS)):
                total += pinball(q, actual, tau)
                if actual <= q:
                    self.q_below[i] += 1.0
            s["pin"] += total / len(quantiles) / price * 1e4
        self.p_weight *= d
        if p_up is not None:
            self.p_weight += 1.0
            s["brier"] += (p_up - (1.0 if actual > price else 0.0)) ** 2
        self.v_weight *= d
        if vol is not None and vol > 0:
            self.v_weight += 1.0
            y = math.log(actual / price)
            s["loglik"] += -0.5 * (LOG_2PI + 2.0 * math.log(vol) + (y / vol) ** 2)

    def as_dict(self) -> dict[str, float | int | dict[str, float] | None]:
        """Every metric (``None`` where it is not defined yet); skills are added by the caller."""
        s, w = self.sums, self.weight
        has = self.n_total > 0

        def mean(key: str, weight: float) -> float | None:
            return s[key] / weight if weight > 1e-12 else None

        r2 = None
        if self.n_total > 1:
            var = s["y2"] / w - (s["y"] / w) ** 2
            r2 = 1.0 - (s["se"] / w) / var if var > 0 else None
        return {
            "n": min(self.n_total, self.window),
            "mae": s["ae"] / w if has else None,
            "rmse": math.sqrt(s["se"] / w) if has else None,
            "mape": s["ape"] / w if has else None,
            "r2": r2,
            "direction_hit_rate": self.hits / self.hit_weight if self.n_hits else None,
            "coverage": mean("cov", self.band_weight),
            "mean_width_bps": mean("width", self.band_weight),
            "interval_score": mean("is", self.band_weight),
            "pinball": mean("pin", self.q_weight),
            "brier": mean("brier", self.p_weight),
            "vol_loglik": mean("loglik", self.v_weight),
            "quantile_coverage": (
                {f"q{round(tau * 100):02d}": b / self.q_weight
                 for tau, b in zip(QUANTILE_LEVELS, self.q_below)}
                if self.q_weight > 1e-12 else None),
        }


def skill(score: float | None, baseline: float | None) -> float | None:
    """``1 - score / baseline`` (``None`` when either is unknown or the baseline is 0).

    >>> skill(0.9, 1.0)
    0.09999999999999998
    """
    if score is None or not baseline:
        return None
    return 1.0 - score / baseline


def with_skills(metrics: dict[str, dict], persistence: str, baseline: str) -> dict[str, dict]:
    """Add ``skill`` (MAE vs persistence) and the proper-score skills vs ``baseline``."""
    base_p = metrics.get(persistence, {})
    base_b = metrics.get(baseline, {})
    for m in metrics.values():
        m["skill"] = skill(m["mae"], base_p.get("mae"))
        m["interval_score_skill"] = skill(m["interval_score"], base_b.get("interval_score"))
        m["pinball_skill"] = skill(m["pinball"], base_b.get("pinball"))
        m["brier_skill"] = skill(m["brier"], base_b.get("brier"))
    return metrics
