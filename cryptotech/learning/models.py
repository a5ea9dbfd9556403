"""The candidate forecasters, the online interval and the online model selection.

Every candidate forecasts the *volatility-normalised* log-return ``z = y / sigma`` where
``y = ln p(t+H) / p(t)`` and ``sigma`` is the volatility expected over the horizon at ``t``.
Normalising puts every coin and every market regime on the same scale, so River's default
priors and split criteria fit, and a forecast can never be a wild multiple of the current
volatility (``z`` is clipped).
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque

from river import base, forest, linear_model, metrics, preprocessing, stats, tree, utils

PERSISTENCE = "persistence"
Z_CLIP = 3.0
LABEL_CLIP = 10.0


def make_candidate(name: str, seed: int, arf_trees: int = 10) -> base.Regressor:
    """A fresh River regressor for one candidate name of ``config.CANDIDATES``."""
    if name == "bayes_linear":
        model: base.Regressor = linear_model.BayesianLinearRegression()
    elif name == "hoeffding_tree":
        model = tree.HoeffdingAdaptiveTreeRegressor(grace_period=200, seed=seed)
    elif name == "arf":
        model = forest.ARFRegressor(n_models=arf_trees, seed=seed)
    else:
        raise ValueError(f"unknown candidate {name!r}")
    return preprocessing.StandardScaler() | model


def normal_quantile(p: float) -> float:
    """Inverse of the standard normal CDF.

    >>> round(normal_quantile(0.95), 4)
    1.6449
    """
    from statistics import NormalDist

    return NormalDist().inv_cdf(p)


class ConformalInterval:
    """A split-conformal interval on normalised residuals, kept calibrated online.

    Scores ``|z - z_hat|`` of the last ``window`` outcomes give the quantile; adaptive
    conformal inference (Gibbs and Candès, 2021) nudges the miscoverage level after each
    outcome so realised coverage tracks ``level`` even when the market changes. Multiplying
    by the volatility at prediction time makes the band narrow when the market is calm.

    Examples
    --------
    >>> ci = ConformalInterval(level=0.9, window=200)
    >>> for i in range(200):
    ...     ci.update(score=(i % 10) / 10, covered=(i % 10) != 9)
    >>> 0.8 <= ci.quantile() <= 1.0
    True
    """

    def __init__(self, level: float = 0.9, window: int = 1000, gamma: float = 0.005,
                 min_scores: int = 30):
        self.level = level
        self.window = window
        self.gamma = gamma
        self.min_scores = min_scores
        self.alpha_t = 1.0 - level
        self._recent: deque[float] = deque()
        self._sorted: list[float] = []

    def quantile(self) -> float:
        """The current multiplier of sigma (a normal quantile until enough scores exist)."""
        alpha = min(max(self.alpha_t, 0.001), 0.5)
        n = len(self._sorted)
        if n < self.min_scores:
            return normal_quantile(1.0 - alpha / 2.0)
        rank = math.ceil((n + 1) * (1.0 - alpha)) - 1
        return self._sorted[min(max(rank, 0), n - 1)]

    def update(self, score: float, covered: bool) -> None:
        """Take one realised score and whether the interval issued for it covered."""
        self.alpha_t += self.gamma * ((1.0 - self.level) - (0.0 if covered else 1.0))
        self._recent.append(score)
        insort(self._sorted, score)
        if len(self._recent) > self.window:
            old = self._recent.popleft()
            del self._sorted[bisect_left(self._sorted, old)]




class Selector:
    """Online choice of the forecast to publish, with persistence as the default.

    Keeps an exponentially weighted mean absolute error of each candidate's log-return
    forecast (``halflife`` outcomes). A candidate is published only once it has ``min_outcomes``
    outcomes and its weighted error is below persistence's; otherwise persistence is.
    """

    def __init__(self, names: list[str], halflife: float = 500, min_outcomes: int = 200):
        self.names = names
        self.halflife = halflife
        self.min_outcomes = min_outcomes
        self._decay = 0.5 ** (1.0 / halflife)
        self.error = {name: 0.0 for name in [PERSISTENCE, *names]}
        self.n = 0

    def update(self, y: float, forecasts: dict[str, float]) -> None:
        d = self._decay
        for name, y_hat in forecasts.items():
            self.error[name] = d * self.error[name] + (1 - d) * abs(y - y_hat)
        self.n += 1

    def choose(self) -> str:
        if self.n < self.min_outcomes:
            return PERSISTENCE
        best = min(self.names, key=lambda name: self.error[name], default=PERSISTENCE)
        return best if self.error.get(best, math.inf) < self.error[PERSISTENCE] else PERSISTENCE


class Scores:
    """Rolling accuracy of one forecaster over the last ``window`` outcomes, in price units."""

    def __init__(self, window: int):
        self.window = window
        self.n_hits = 0
        self.mae = utils.Rolling(metrics.MAE, window_size=window)
        self.rmse = utils.Rolling(metrics.RMSE, window_size=window)
        self.mape = utils.Rolling(metrics.MAPE, window_size=window)
        self.r2 = utils.Rolling(metrics.R2, window_size=window)
        self.hits = utils.Rolling(stats.Mean, window_size=window)
        self.coverage = utils.Rolling(stats.Mean, window_size=window)
        self.width_bps = utils.Rolling(stats.Mean, window_size=window)
        self.n_total = 0

    def update(self, price: float, forecast: float, lower: float, upper: float,
               actual: float) -> None:
        self.mae.update(actual, forecast)
        self.rmse.update(actual, forecast)
        self.mape.update(actual, forecast)
        self.r2.update(actual, forecast)
        if forecast != price and actual != price:
            self.hits.update(1.0 if (forecast > price) == (actual > price) else 0.0)
            self.n_hits += 1
        self.coverage.update(1.0 if lower <= actual <= upper else 0.0)
        self.width_bps.update((upper - lower) / price * 1e4)
        self.n_total += 1

    def as_dict(self, baseline_mae: float | None) -> dict[str, float | int | None]:
        mae = self.mae.get() if self.n_total else None
        return {
            "n": min(self.n_total, self.window),
            "mae": mae,
            "rmse": self.rmse.get() if self.n_total else None,
            "mape": self.mape.get() if self.n_total else None,
            "r2": self.r2.get() if self.n_total > 1 else None,
            "skill": (1.0 - mae / baseline_mae) if mae is not None and baseline_mae else None,
            "direction_hit_rate": self.hits.get() if self.n_hits else None,
            "coverage": self.coverage.get() if self.n_total else None,
            "mean_width_bps": self.width_bps.get() if self.n_total else None,
        }
