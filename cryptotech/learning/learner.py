"""One coin's online learner: every horizon's forecast distribution, delayed labels, metrics.

The same :class:`CoinLearner` runs live and in a backtest. It holds one
:class:`HorizonLearner` per configured horizon (``[model] horizons``) and the state they
share (the tick volatility, the features of the optional point candidates).
``process(tick)`` does, in order:

1. drop the tick if it is invalid, a duplicate or older than the last one (counted);
2. for every horizon, label each pending prediction whose target time ``made_at + H`` the new
   tick has reached, interpolating the log price between the two ticks around it (no label if
   neither lies within ``label_tolerance``), and learn from it;
3. take the tick into the shared state and forecast every horizon: a distribution of the
   price at ``t + H`` (quantiles, interval, ``P(rise)``, volatility, chance of a large move).

Event time (the tick's own timestamp) drives everything, so the result depends only on the
ticks, the settings and the seed.
"""

from __future__ import annotations

import math
import pickle
import platform
from array import array
from collections import Counter, deque
from statistics import NormalDist

import river

from cryptotech.config import ModelSettings, horizon_label
from cryptotech.domain import QUANTILE_LEVELS, Outcome, Prediction, Tick, from_epoch, valid_price
from cryptotech.errors import CheckpointError
from cryptotech.learning.aggregation import BOA, MLPoly, pinball_gradient, squared_gradient
from cryptotech.learning.distribution import ScaleConformal, symmetric_offsets
from cryptotech.learning.features import TickFeatures
from cryptotech.learning.models import LABEL_CLIP, PERSISTENCE, make_candidate
from cryptotech.learning.scoring import ForecastScores, with_skills
from cryptotech.learning.volatility import HOUR, MarketClock, RecursiveLeastSquares, RiskMetrics

__all__ = ["EWMA", "HAR", "PERSISTENCE", "PUBLISHED", "CoinLearner", "HorizonLearner", "dumps",
           "horizon_label", "loads"]

PUBLISHED = "published"
EWMA = "ewma"
"""The baseline: RiskMetrics EWMA-Gaussian band around persistence, ``P(rise) = 0.5``."""
HAR = "har"
"""The volatility-aware distribution: seasonal HAR volatility, conformal quantiles."""

VOL_RATIO_CLIP = 100.0
"""The HAR volatility stays within this factor of the EWMA baseline's."""
MAX_LOG_MOVE = 5.0
"""No published quantile is further than ``exp(5)`` (x148) from the price, whatever happens."""

MIN_OUTCOMES = 200
"""Outcomes the median's aggregation learns from before a point candidate may move it."""

SCORES_PER_HORIZON = 24
"""At most this many labels per horizon span feed the volatility regression and the conformal
scores (the others overlap them almost entirely)."""

_NORMAL = NormalDist()
_HAR_FEATURES = ["ewma", "har_15m", "har_4h", "har_day", "har_week"]
_HAR_PRIOR = {"ewma": 1.0}


def move_probabilities(sigma: float, thresholds: list[float]) -> tuple[tuple[float, float], ...]:
    """Gaussian chance that the price moves beyond ``±x`` for each threshold ``x``.

    >>> [(x, round(p, 4)) for x, p in move_probabilities(0.01, [0.02])]  # ~2 sigma each way
    [(0.02, 0.0455)]
    """
    out = []
    for x in thresholds:
        p = 1.0 - _NORMAL.cdf(math.log1p(x) / sigma) + _NORMAL.cdf(math.log1p(-x) / sigma)
        out.append((x, p))
    return tuple(out)


class FloatQueue:
    """A FIFO of fixed-width rows of floats in one flat array (8 bytes a value).

    >>> q = FloatQueue(2)
    >>> q.append([1.0, 2.0]); q.append([3.0, 4.0])
    >>> len(q), q.first(0), q.popleft(), len(q)
    (2, 1.0, [1.0, 2.0], 1)
    """

    def __init__(self, width: int):
        self.width = width
        self._data = array("d")
        self._head = 0  # index of the first row's first value

    def __len__(self) -> int:
        return (len(self._data) - self._head) // self.width

    def append(self, row) -> None:
        self._data.extend(row)

    def first(self, field: int) -> float:
        return self._data[self._head + field]

    def last(self, field: int) -> float:
        return self._data[len(self._data) - self.width + field]

    def rows(self):
        """Every row, oldest first (copies)."""
        for start in range(self._head, len(self._data), self.width):
            yield self._data[start:start + self.width].tolist()

    def newest(self) -> list[float] | None:
        """The newest row (a copy), or None when empty."""
        if not len(self):
            return None
        return self._data[len(self._data) - self.width:].tolist()

    def popleft(self) -> list[float]:
        start = self._head
        row = self._data[start:start + self.width].tolist()
        self._head += self.width
        if self._head >= 4096 and self._head * 2 >= len(self._data):
            del self._data[:self._head]
            self._head = 0
        return row


# the layout of a pending row (FloatQueue), after which come the per-level and per-candidate parts
_MADE, _LP, _PRICE, _FORECAST, _LOWER, _UPPER = range(6)
_Q0 = 6  # 7 quantiles
_P_UP, _VOL, _SIG_E, _SIG_H, _CUM, _LOG_SCALE, _F0 = 13, 14, 15, 16, 17, 18, 19
_MODEL = _F0 + len(_HAR_FEATURES)
_HEAD = _MODEL + 1  # then: har offsets, aggregate (per level), moves, candidates


class HorizonLearner:
    """Everything one coin has learned about one horizon ``seconds`` ahead.

    Experts: ``ewma`` (the baseline), ``har`` (seasonal HAR volatility with conformal
    quantiles) and the optional point candidates. The published spread at each quantile level
    is their BOA aggregate on pinball loss; the published median is persistence, or the BOA
    aggregate (absolute loss) of persistence and the candidates, fenced: never further than
    ``fence`` published standard deviations from the price, and persistence while the
    volatility spikes.
    """

    def __init__(self, coin: str, seconds: float, settings: ModelSettings):
        self.coin = coin
        self.seconds = seconds
        self.label = horizon_label(seconds)
        self.settings = settings
        self.tolerance = settings.label_tolerance.total_seconds()
        alpha = 1.0 - settings.interval_level
        # the levels of the spread: the published quantiles and the interval's ends
        self.levels = tuple(sorted(set(QUANTILE_LEVELS) | {alpha / 2.0, 1.0 - alpha / 2.0}))
        self._i_lower = self.levels.index(alpha / 2.0)
        self._i_upper = self.levels.index(1.0 - alpha / 2.0)
        self._i_quantiles = [self.levels.index(tau) for tau in QUANTILE_LEVELS]
        self._z = [_NORMAL.inv_cdf(tau) for tau in self.levels]
        self.models = {name: make_candidate(name, settings.seed, settings.arf_trees)
                       for name in settings.candidates}
        self.names = [PERSISTENCE, *self.models]
        self.rls = RecursiveLeastSquares(_HAR_FEATURES, prior=_HAR_PRIOR,
                                         prior_variance=settings.har_prior_variance,
                                         forget=1.0 - 1.0 / settings.har_memory)
        self.conformal = ScaleConformal(settings.conformal_window)
        self.spread = [MLPoly(2) for _ in self.levels]  # experts: ewma, har
        # persistence first, and favoured: a candidate has to earn its weight
        prior = [0.8, *([0.2 / len(self.models)] * len(self.models))] if self.models else [1.0]
        self.median = BOA(len(self.names), prior)
        self.p_up = BOA(len(self.names), prior)
        n_lv, n_c = len(self.levels), len(self.models)
        self._width = _HEAD + 2 * n_lv + len(settings.move_thresholds) + n_c
        self.pending = FloatQueue(self._width)
        self.pending_x: deque[dict] = deque()  # the candidates' features, if any
        every = [PUBLISHED, PERSISTENCE, EWMA, HAR, *self.models]
        self.scores = {name: ForecastScores(settings.metrics_window, settings.interval_level)
                       for name in every}
        self.counts: Counter = Counter()
        self.model_in_use = PERSISTENCE
        self.overlap = 1.0  # outcomes per horizon: ticks per horizon at the recent spacing
        self._last_learned = -math.inf

    # -- labels ------------------------------------------------------------------------------

    def settle(self, t0: float | None, lp0: float | None, t: float, log_price: float,
               cum_var: float) -> list[Outcome]:
        """Label and learn from every pending prediction whose target ``t`` has reached.
        ``cum_var`` is the sum of squared log-returns up to the tick before this one."""
        outcomes = []
        while len(self.pending) and self.pending.first(_MADE) + self.seconds <= t:
            row = self.pending.popleft()
            x = self.pending_x.popleft() if self.models else None
            target = row[_MADE] + self.seconds
            if t0 is None or lp0 is None or min(target - t0, t - target) > self.tolerance:
                self.counts["unlabelled_gap"] += 1
                continue
            w = (target - t0) / (t - t0)
            step = log_price - lp0
            label = lp0 + w * step
            realised = cum_var - row[_CUM] + w * step * step
            outcomes.append(self._learn(row, x, label, realised))
        return outcomes

    def _learn(self, row: list[float], x: dict | None, label_log_price: float,
               realised: float) -> Outcome:
        y = label_log_price - row[_LP]
        prediction = self._prediction(row)
        price, actual = prediction.price, math.exp(label_log_price)
        sig_e, sig_h = row[_SIG_E], row[_SIG_H]
        n_lv = len(self.levels)
        har_off = row[_HEAD:_HEAD + n_lv]
        agg = row[_HEAD + n_lv:_HEAD + 2 * n_lv]
        cand = row[self._width - len(self.models):]
        # the volatility regression and the conformal scores
        features = dict(zip(_HAR_FEATURES, row[_F0:_MODEL]))
        # labels overlap (one a tick, each spanning the horizon): at most SCORES_PER_HORIZON
        # of them per horizon are learned from, so windows and memories span the same time
        # whatever the horizon (24 h at 5-minute ticks: one label an hour)
        if row[_MADE] - self._last_learned >= self.seconds / SCORES_PER_HORIZON:
            self._last_learned = row[_MADE]
            self.rls.learn_one(features, math.log(max(realised, 1e-18)) - row[_LOG_SCALE])
            self.conformal.update(abs(y) / sig_h)
        # the aggregation of the spread, level by level, on pinball loss
        overlap = self.overlap
        for i, tau in enumerate(self.levels):
            experts = [self._z[i] * sig_e, har_off[i] * sig_h]
            self.spread[i].update(experts, agg[i], pinball_gradient(agg[i], y, tau), overlap)
        if self.models:
            issued = math.log(row[_FORECAST] / price)
            self.median.update([0.0, *cand], issued, pinball_gradient(issued, y, 0.5), overlap)
            probs = [0.5, *(_NORMAL.cdf(m / row[_VOL]) for m in cand)]
            up = 1.0 if y > 0 else 0.0
            self.p_up.update(probs, row[_P_UP], squared_gradient(row[_P_UP], up), overlap)
            z = max(-LABEL_CLIP, min(LABEL_CLIP, y / sig_e))
            for model in self.models.values():
                model.learn_one(x or {}, z)
        # scores
        half = self._z[self._i_upper] * sig_e
        self.scores[EWMA].update(price, price, price * math.exp(-half), price * math.exp(half),
                                 actual, tuple(price * math.exp(self._z[i] * sig_e)
                                               for i in self._i_quantiles), 0.5, sig_e)
        har_q = tuple(price * math.exp(har_off[i] * sig_h) for i in self._i_quantiles)
        self.scores[HAR].update(price, price, price * math.exp(har_off[self._i_lower] * sig_h),
                                price * math.exp(har_off[self._i_upper] * sig_h), actual, har_q,
                                0.5, None)
        self.scores[PERSISTENCE].update(price, price, None, None, actual)
        for name, m in zip(self.models, cand):
            self.scores[name].update(price, price * math.exp(m), None, None, actual)
        p = prediction
        self.scores[PUBLISHED].update(price, p.forecast, p.lower, p.upper, actual, p.quantiles,
                                      p.p_up, p.vol)
        return Outcome(prediction=p, actual=actual)

    @property
    def last_prediction(self) -> Prediction | None:
        """The newest forecast still waiting for its label (None before the first)."""
        row = self.pending.newest()
        return None if row is None else self._prediction(row)

    def _prediction(self, row: list[float]) -> Prediction:
        made = row[_MADE]
        n_lv = len(self.levels)
        moves = row[_HEAD + 2 * n_lv:_HEAD + 2 * n_lv + len(self.settings.move_thresholds)]
        return Prediction(
            coin=self.coin,
            made_at=from_epoch(made),
            target_at=from_epoch(made + self.seconds),
            price=row[_PRICE],
            forecast=row[_FORECAST],
            lower=row[_LOWER],
            upper=row[_UPPER],
            model=self.names[int(row[_MODEL])],
            horizon=self.label,
            quantiles=tuple(row[_Q0:_Q0 + len(QUANTILE_LEVELS)]),
            p_up=row[_P_UP],
            vol=row[_VOL],
            p_move=tuple(zip(self.settings.move_thresholds, moves)),
        )

    # -- forecasts ---------------------------------------------------------------------------

    def forecast(self, t: float, price: float, log_price: float, vol: RiskMetrics,
                 clock: MarketClock, x: dict | None) -> Prediction | None:
        sig_e = vol.horizon_std(self.seconds)
        self.overlap = max(1.0, vol.ticks_per(self.seconds))
        components = clock.components()
        if not sig_e > 0 or not components:
            self.counts["warming_up"] += 1
            return None
        # the HAR volatility: regression on the log components, times the seasonal profile
        h = self.seconds
        ahead = clock.mean_factor(t, h)
        now = clock.mean_factor(t - HOUR, HOUR)
        # deseasonalised: the EWMA by the profile of the hour behind, the HAR components are
        logs = [2.0 * math.log(sig_e) - math.log(now), *(math.log(c * h) for c in components)]
        features = dict(zip(_HAR_FEATURES, logs))
        log_scale = math.log(ahead)  # the profile of the horizon ahead, coefficient 1
        log_var = self.rls.predict_one(features) + log_scale
        # the regression may extrapolate wildly on a degenerate stream (a perfectly smooth
        # series, a stuck price): never further than VOL_RATIO_CLIP from the baseline
        bound = 2.0 * math.log(VOL_RATIO_CLIP)
        log_e = 2.0 * math.log(sig_e)
        if not math.isfinite(log_var):
            log_var = log_e
        log_var = min(max(log_var, log_e - bound), log_e + bound)
        sig_h = math.exp(0.5 * log_var)
        har_off = symmetric_offsets(self.levels, self.conformal.multiplier)
        # the spread: each level's aggregate of the experts, kept in order
        agg: list[float] = []
        for i, boa in enumerate(self.spread):
            value = boa.aggregate([self._z[i] * sig_e, har_off[i] * sig_h])
            agg.append(max(value, agg[-1]) if agg else value)
        # the volatility and the chance of large moves: the experts' mixed by their mean weight
        w_e, w_h = (sum(ws) / len(self.spread) for ws in zip(*(b.weights() for b in self.spread)))
        cal_h = sig_h * self.conformal.rms()
        vol_pub = math.sqrt(w_e * sig_e * sig_e + w_h * cal_h * cal_h)
        # the median: persistence unless candidates earn weight; fenced
        median, p_up, model, cand = 0.0, 0.5, 0, []
        if self.models and x is not None:
            bound = self.settings.fence * vol_pub
            calm = components[0] <= self.settings.spike_ratio * components[1]
            for m in self.models.values():
                z = m.predict_one(x)
                z = z if math.isfinite(z) else 0.0
                cand.append(max(-bound, min(bound, z * sig_e)) if calm else 0.0)
            if self.median.n >= MIN_OUTCOMES:  # before that, BOA's weights mean little
                median = self.median.aggregate([0.0, *cand])
                p_up = self.p_up.aggregate([0.5, *(_NORMAL.cdf(m / vol_pub) for m in cand)])
            weights = self.median.weights()
            top = max(range(len(weights)), key=weights.__getitem__)
            model = top if median != 0.0 else 0
        moves = []
        for thr in self.settings.move_thresholds:
            up, down = math.log1p(thr), -math.log1p(-thr)
            gauss = 1.0 - _NORMAL.cdf(up / sig_e) + _NORMAL.cdf(-down / sig_e)
            har = 0.5 * (self.conformal.fraction_above(up / sig_h)
                         + self.conformal.fraction_above(down / sig_h))
            moves.append(w_e * gauss + w_h * har)
        agg = [min(max(v, -MAX_LOG_MOVE), MAX_LOG_MOVE) for v in agg]
        quantiles = [price * math.exp(median + agg[i]) for i in self._i_quantiles]
        quantiles[QUANTILE_LEVELS.index(0.5)] = price * math.exp(median)
        forecast = price * math.exp(median)
        lower = min(price * math.exp(median + agg[self._i_lower]), forecast)
        upper = max(price * math.exp(median + agg[self._i_upper]), forecast)
        row = [t, log_price, price, forecast, lower, upper, *quantiles, p_up, vol_pub, sig_e,
               sig_h, clock.cum_var, log_scale, *logs, float(model), *har_off, *agg, *moves,
               *cand]
        if len(self.pending) >= self.settings.max_pending:
            self.pending.popleft()
            if self.models:
                self.pending_x.popleft()
            self.counts["pending_dropped"] += 1
        self.pending.append(row)
        if self.models:
            self.pending_x.append(x or {})
        self.model_in_use = self.names[model]
        return self._prediction(row)

    def waiting(self) -> list[Prediction]:
        """The predictions waiting for their label, oldest first."""
        return [self._prediction(row) for row in self.pending.rows()]

    def metrics(self) -> dict[str, dict]:
        """Scores of the published forecast and every expert, with skills."""
        raw = {name: s.as_dict() for name, s in self.scores.items()}
        return with_skills(raw, PERSISTENCE, EWMA)


class CoinLearner:
    """Everything one coin has learned, every horizon. Picklable: :func:`dumps`, :func:`loads`."""

    def __init__(self, coin: str, settings: ModelSettings):
        self.coin = coin
        self.settings = settings
        self.vol = RiskMetrics()
        self.clock = MarketClock()
        self.features = TickFeatures() if settings.candidates else None
        self.horizons = {
            horizon_label(td): HorizonLearner(coin, td.total_seconds(), settings)
            for td in settings.horizons
        }
        self.counts: Counter = Counter()
        self.last_t: float | None = None
        self.last_log_price: float | None = None
        self.ticks_seen = 0

    # -- the one entry point -------------------------------------------------------------

    def process(self, tick: Tick) -> tuple[list[Prediction], list[Outcome]]:
        """Take one tick; return the forecasts it led to (one per horizon, once warm) and the
        outcomes it settled."""
        if tick.coin != self.coin:
            raise ValueError(f"tick for {tick.coin!r} given to the learner of {self.coin!r}")
        if not valid_price(tick.price):
            self.counts["invalid_price"] += 1
            return [], []
        t = tick.epoch
        if self.last_t is not None and t <= self.last_t:
            self.counts["duplicate" if t == self.last_t else "out_of_order"] += 1
            return [], []
        log_price = math.log(tick.price)
        outcomes: list[Outcome] = []
        for h in self.horizons.values():
            outcomes += h.settle(self.last_t, self.last_log_price, t, log_price,
                                 self.clock.cum_var)
        x_in = {"t": t, "price": tick.price, "volume": tick.volume_24h}
        self.vol.learn_one(x_in)
        self.clock.learn_one(x_in)
        x = None
        if self.features is not None:
            self.features.learn_one(x_in)
            x = self.features.transform_one(x_in)
        self.last_t, self.last_log_price = t, log_price
        self.ticks_seen += 1
        predictions = []
        for h in self.horizons.values():
            p = h.forecast(t, tick.price, log_price, self.vol, self.clock, x)
            if p is not None:
                predictions.append(p)
        return predictions, outcomes

    # -- reporting ---------------------------------------------------------------------------

    def metrics(self) -> dict[str, dict[str, dict]]:
        """``{horizon label: {expert: {metric: value}}}``, horizons in configured order."""
        return {label: h.metrics() for label, h in self.horizons.items()}

    def horizon_metrics(self, horizon: str | None = None) -> dict[str, dict]:
        """``{expert: {metric: value}}`` of one horizon (``None``: the first configured)."""
        return self.horizon(horizon).metrics()

    def horizon(self, label: str | None = None) -> HorizonLearner:
        """The learner of one horizon by label (``None``: the first configured)."""
        if label is None:
            return next(iter(self.horizons.values()))
        return self.horizons[label]

    @property
    def pending_count(self) -> int:
        """Predictions waiting for their label, all horizons."""
        return sum(len(h.pending) for h in self.horizons.values())

    @property
    def model_in_use(self) -> str:
        """The model behind the first horizon's published median."""
        return self.horizon().model_in_use

    @property
    def all_counts(self) -> Counter:
        """What was dropped or not labelled, the coin's and every horizon's counts summed."""
        total = Counter(self.counts)
        for h in self.horizons.values():
            total.update(h.counts)
        return total


CHECKPOINT_FORMAT = 3
"""2: several horizons per learner (PROB-INTERFACE); 3: seasonal HAR, conformal, BOA. Older
formats are refused, and the engine rebuilds the learner from the stored ticks."""


def dumps(learner: CoinLearner) -> bytes:
    """Pickle a learner with the versions needed to trust it when it is read back."""
    meta = {
        "format": CHECKPOINT_FORMAT,
        "river": river.__version__,
        "python": platform.python_version(),
    }
    return pickle.dumps((meta, learner), protocol=pickle.HIGHEST_PROTOCOL)


def loads(blob: bytes) -> CoinLearner:
    """Unpickle a learner; :class:`CheckpointError` if corrupt, of another checkpoint format or
    from another River version."""
    try:
        meta, learner = pickle.loads(blob)
    except Exception as exc:  # pickle raises many types on corrupt input
        raise CheckpointError(f"checkpoint unreadable: {type(exc).__name__}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"checkpoint of format {found!r}, this CryptoTech reads format "
                              f"{CHECKPOINT_FORMAT}")
    if meta.get("river") != river.__version__:
        raise CheckpointError(
            f"checkpoint made with River {meta.get('river')}, this is River {river.__version__}"
        )
    if not isinstance(learner, CoinLearner):
        raise CheckpointError("checkpoint does not hold a learner")
    return learner
