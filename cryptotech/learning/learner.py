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
from collections import Counter, deque
from dataclasses import dataclass
from statistics import NormalDist

import river

from cryptotech.config import ModelSettings, horizon_label
from cryptotech.domain import QUANTILE_LEVELS, Outcome, Prediction, Tick, from_epoch, valid_price
from cryptotech.errors import CheckpointError
from cryptotech.learning.features import TickFeatures
from cryptotech.learning.models import LABEL_CLIP, PERSISTENCE, Z_CLIP, make_candidate
from cryptotech.learning.scoring import ForecastScores, with_skills
from cryptotech.learning.volatility import RiskMetrics

__all__ = ["EWMA", "PERSISTENCE", "PUBLISHED", "CoinLearner", "HorizonLearner", "dumps",
           "horizon_label", "loads"]

PUBLISHED = "published"
EWMA = "ewma"
"""The baseline: RiskMetrics EWMA-Gaussian band around persistence, ``P(rise) = 0.5``."""

_NORMAL = NormalDist()
_Z_LEVELS = tuple(_NORMAL.inv_cdf(tau) for tau in QUANTILE_LEVELS)


@dataclass(slots=True)
class Pending:
    """A prediction waiting for the price at its target time."""

    made_at: float
    target: float
    log_price: float
    sigma: float  # the EWMA baseline's std of the horizon log-return at made_at
    x: dict | None  # the candidates' features (None without candidates)
    z_hat: dict  # candidate -> its normalised forecast
    prediction: Prediction


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


class HorizonLearner:
    """Everything one coin has learned about one horizon ``seconds`` ahead."""

    def __init__(self, coin: str, seconds: float, settings: ModelSettings):
        self.coin = coin
        self.seconds = seconds
        self.label = horizon_label(seconds)
        self.settings = settings
        self.tolerance = settings.label_tolerance.total_seconds()
        self.z_interval = _NORMAL.inv_cdf(0.5 + settings.interval_level / 2.0)
        self.models = {name: make_candidate(name, settings.seed, settings.arf_trees)
                       for name in settings.candidates}
        every = [PUBLISHED, PERSISTENCE, EWMA, *self.models]
        self.scores = {name: ForecastScores(settings.metrics_window, settings.interval_level)
                       for name in every}
        self.pending: deque[Pending] = deque()
        self.counts: Counter = Counter()
        self.last_prediction: Prediction | None = None

    # -- labels ------------------------------------------------------------------------------

    def settle(self, t0: float | None, lp0: float | None, t: float, log_price: float
               ) -> list[Outcome]:
        """Label and learn from every pending prediction whose target ``t`` has reached."""
        outcomes = []
        while self.pending and self.pending[0].target <= t:
            item = self.pending.popleft()
            if t0 is None or lp0 is None or min(item.target - t0, t - item.target) > self.tolerance:
                self.counts["unlabelled_gap"] += 1
                continue
            w = (item.target - t0) / (t - t0)
            outcomes.append(self._learn(item, lp0 + w * (log_price - lp0)))
        return outcomes

    def _learn(self, item: Pending, label_log_price: float) -> Outcome:
        y = label_log_price - item.log_price
        p = item.prediction
        price, actual = p.price, math.exp(label_log_price)
        sigma = item.sigma
        if item.x is not None:
            z = max(-LABEL_CLIP, min(LABEL_CLIP, y / sigma))
            for model in self.models.values():
                model.learn_one(item.x, z)
        half = self.z_interval * sigma
        ewma_q = tuple(price * math.exp(z * sigma) for z in _Z_LEVELS)
        self.scores[EWMA].update(price, price, price * math.exp(-half), price * math.exp(half),
                                 actual, ewma_q, 0.5, sigma)
        self.scores[PERSISTENCE].update(price, price, None, None, actual)
        for name, z_hat in item.z_hat.items():
            y_hat = z_hat * sigma
            self.scores[name].update(price, price * math.exp(y_hat),
                                     price * math.exp(y_hat - half), price * math.exp(y_hat + half),
                                     actual)
        self.scores[PUBLISHED].update(price, p.forecast, p.lower, p.upper, actual, p.quantiles,
                                      p.p_up, p.vol)
        return Outcome(prediction=p, actual=actual)

    # -- forecasts ---------------------------------------------------------------------------

    def forecast(self, t: float, price: float, log_price: float, vol: RiskMetrics,
                 x: dict | None) -> Prediction | None:
        sigma = vol.horizon_std(self.seconds)
        if not sigma > 0:
            self.counts["warming_up"] += 1
            return None
        z_hat = {}
        if x is not None:
            for name, model in self.models.items():
                z = model.predict_one(x)
                z_hat[name] = max(-Z_CLIP, min(Z_CLIP, z)) if math.isfinite(z) else 0.0
        half = self.z_interval * sigma
        prediction = Prediction(
            coin=self.coin,
            made_at=from_epoch(t),
            target_at=from_epoch(t + self.seconds),
            price=price,
            forecast=price,
            lower=price * math.exp(-half),
            upper=price * math.exp(half),
            model=PERSISTENCE,
            horizon=self.label,
            quantiles=tuple(price * math.exp(z * sigma) for z in _Z_LEVELS),
            p_up=0.5,
            vol=sigma,
            p_move=move_probabilities(sigma, self.settings.move_thresholds),
        )
        if len(self.pending) >= self.settings.max_pending:
            self.pending.popleft()
            self.counts["pending_dropped"] += 1
        self.pending.append(Pending(t, t + self.seconds, log_price, sigma, x, z_hat, prediction))
        self.last_prediction = prediction
        return prediction

    def metrics(self) -> dict[str, dict]:
        """Scores of the published forecast and every expert, with skills."""
        raw = {name: s.as_dict() for name, s in self.scores.items()}
        return with_skills(raw, PERSISTENCE, EWMA)

    @property
    def model_in_use(self) -> str:
        return self.last_prediction.model if self.last_prediction else PERSISTENCE


class CoinLearner:
    """Everything one coin has learned, every horizon. Picklable: :func:`dumps`, :func:`loads`."""

    def __init__(self, coin: str, settings: ModelSettings):
        self.coin = coin
        self.settings = settings
        self.vol = RiskMetrics()
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
            outcomes += h.settle(self.last_t, self.last_log_price, t, log_price)
        x_in = {"t": t, "price": tick.price, "volume": tick.volume_24h}
        self.vol.learn_one(x_in)
        x = None
        if self.features is not None:
            self.features.learn_one(x_in)
            x = self.features.transform_one(x_in)
        self.last_t, self.last_log_price = t, log_price
        self.ticks_seen += 1
        predictions = []
        for h in self.horizons.values():
            p = h.forecast(t, tick.price, log_price, self.vol, x)
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


CHECKPOINT_FORMAT = 2
"""2: several horizons per learner (PROB-INTERFACE). Format 1 (one horizon) is refused, and
the engine rebuilds the learner from the stored ticks."""


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
