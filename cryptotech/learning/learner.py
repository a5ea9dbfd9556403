"""One coin's online learner: features, candidates, delayed labels, interval, metrics.

The same :class:`CoinLearner` runs live and in a backtest. ``process(tick)`` does, in order:

1. drop the tick if it is invalid, a duplicate or older than the last one (counted);
2. label every pending prediction whose target time ``made_at + H`` the new tick has reached,
   interpolating the log price between the two ticks around it (no label if neither lies
   within ``label_tolerance``), and learn from it: every candidate, the intervals, the
   selector and the rolling metrics;
3. take the tick into the features and forecast ``H`` ahead with every candidate, publish
   the selected one with its interval, and queue it until its label is known.

Event time (the tick's own timestamp) drives everything, so the result depends only on the
ticks, the settings and the seed.
"""

from __future__ import annotations

import math
import pickle
import platform
from collections import Counter, deque
from dataclasses import dataclass

import river

from cryptotech.config import ModelSettings
from cryptotech.domain import Outcome, Prediction, Tick, from_epoch, valid_price
from cryptotech.errors import CheckpointError
from cryptotech.learning.features import TickFeatures
from cryptotech.learning.models import (
    LABEL_CLIP,
    PERSISTENCE,
    Z_CLIP,
    ConformalInterval,
    Scores,
    Selector,
    make_candidate,
)

PUBLISHED = "published"


@dataclass(slots=True)
class Pending:
    """A prediction waiting for the price at its target time."""

    made_at: float
    target: float
    log_price: float
    sigma: float
    x: dict
    z_hat: dict  # candidate -> normalised forecast (persistence included, always 0)
    q: dict  # candidate -> interval multiplier issued
    prediction: Prediction


class CoinLearner:
    """Everything one coin has learned. Picklable; see :func:`dumps` and :func:`loads`."""

    def __init__(self, coin: str, settings: ModelSettings):
        self.coin = coin
        self.settings = settings
        self.horizon = settings.horizon.total_seconds()
        self.tolerance = settings.label_tolerance.total_seconds()
        self.names = list(settings.candidates)
        self.features = TickFeatures()
        self.models = {
            name: make_candidate(name, settings.seed, settings.arf_trees) for name in self.names
        }
        every = [PERSISTENCE, *self.names]
        window = settings.metrics_window
        self.intervals = {name: ConformalInterval(settings.interval_level) for name in every}
        self.selector = Selector(self.names)
        self.scores = {name: Scores(window) for name in [PUBLISHED, *every]}
        self.pending: deque[Pending] = deque()
        self.counts: Counter = Counter()
        self.last_t: float | None = None
        self.last_log_price: float | None = None
        self.last_prediction: Prediction | None = None
        self.ticks_seen = 0

    # -- the one entry point -------------------------------------------------------------

    def process(self, tick: Tick) -> tuple[Prediction | None, list[Outcome]]:
        """Take one tick; return the forecast it led to (if any) and the outcomes it settled."""
        if tick.coin != self.coin:
            raise ValueError(f"tick for {tick.coin!r} given to the learner of {self.coin!r}")
        if not valid_price(tick.price):
            self.counts["invalid_price"] += 1
            return None, []
        t = tick.epoch
        if self.last_t is not None and t <= self.last_t:
            self.counts["duplicate" if t == self.last_t else "out_of_order"] += 1
            return None, []
        log_price = math.log(tick.price)
        outcomes = self._settle(t, log_price)
        x_in = {"t": t, "price": tick.price, "volume": tick.volume_24h}
        self.features.learn_one(x_in)
        self.last_t, self.last_log_price = t, log_price
        self.ticks_seen += 1
        prediction = self._forecast(t, tick.price, log_price, self.features.transform_one(x_in))
        return prediction, outcomes

    # -- labels ------------------------------------------------------------------------------

    def _settle(self, t: float, log_price: float) -> list[Outcome]:
        outcomes = []
        t0, lp0 = self.last_t, self.last_log_price
        while self.pending and self.pending[0].target <= t:
            item = self.pending.popleft()
            if t0 is None or min(item.target - t0, t - item.target) > self.tolerance:
                self.counts["unlabelled_gap"] += 1
                continue
            w = (item.target - t0) / (t - t0)
            label = lp0 + w * (log_price - lp0)
            outcomes.append(self._learn(item, label))
        return outcomes

    def _learn(self, item: Pending, label_log_price: float) -> Outcome:
        y = label_log_price - item.log_price
        z = max(-LABEL_CLIP, min(LABEL_CLIP, y / item.sigma))
        price = item.prediction.price
        actual = math.exp(label_log_price)
        for name, model in self.models.items():
            model.learn_one(item.x, z)
        forecasts = {}
        for name, z_hat in item.z_hat.items():
            score = abs(z - z_hat)
            self.intervals[name].update(score, covered=score <= item.q[name])
            y_hat = z_hat * item.sigma
            forecasts[name] = y_hat
            lo, hi = (y_hat - item.q[name] * item.sigma, y_hat + item.q[name] * item.sigma)
            self.scores[name].update(
                price, price * math.exp(y_hat), price * math.exp(lo), price * math.exp(hi), actual
            )
        self.selector.update(y, forecasts)
        p = item.prediction
        self.scores[PUBLISHED].update(price, p.forecast, p.lower, p.upper, actual)
        return Outcome(prediction=p, actual=actual)

    # -- forecasts ---------------------------------------------------------------------------

    def _forecast(self, t: float, price: float, log_price: float, x: dict) -> Prediction | None:
        sigma = self.features.volatility(self.horizon)
        if not sigma > 0:
            self.counts["warming_up"] += 1
            return None
        z_hat = {PERSISTENCE: 0.0}
        for name, model in self.models.items():
            z = model.predict_one(x)
            z_hat[name] = max(-Z_CLIP, min(Z_CLIP, z)) if math.isfinite(z) else 0.0
        q = {name: ci.quantile() for name, ci in self.intervals.items()}
        chosen = self.selector.choose()
        y_hat = z_hat[chosen] * sigma
        half = q[chosen] * sigma
        prediction = Prediction(
            coin=self.coin,
            made_at=from_epoch(t),
            target_at=from_epoch(t + self.horizon),
            price=price,
            forecast=price * math.exp(y_hat),
            lower=price * math.exp(y_hat - half),
            upper=price * math.exp(y_hat + half),
            model=chosen,
        )
        if len(self.pending) >= self.settings.max_pending:
            self.pending.popleft()
            self.counts["pending_dropped"] += 1
        self.pending.append(Pending(t, t + self.horizon, log_price, sigma, x, z_hat, q, prediction))
        self.last_prediction = prediction
        return prediction

    # -- reporting ---------------------------------------------------------------------------

    def metrics(self) -> dict[str, dict]:
        """Rolling metrics of the published forecast and every candidate, persistence first."""
        baseline = self.scores[PERSISTENCE].as_dict(None)["mae"]
        return {name: s.as_dict(baseline) for name, s in self.scores.items()}

    @property
    def model_in_use(self) -> str:
        return self.selector.choose()


CHECKPOINT_FORMAT = 1


def dumps(learner: CoinLearner) -> bytes:
    """Pickle a learner with the versions needed to trust it when it is read back."""
    meta = {
        "format": CHECKPOINT_FORMAT,
        "river": river.__version__,
        "python": platform.python_version(),
    }
    return pickle.dumps((meta, learner), protocol=pickle.HIGHEST_PROTOCOL)


def loads(blob: bytes) -> CoinLearner:
    """Unpickle a learner; :class:`CheckpointError` if corrupt or from another River version."""
    try:
        meta, learner = pickle.loads(blob)
    except Exception as exc:  # pickle raises many types on corrupt input
        raise CheckpointError(f"checkpoint unreadable: {type(exc).__name__}: {exc}") from None
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError("checkpoint of an unknown format")
    if meta.get("river") != river.__version__:
        raise CheckpointError(
            f"checkpoint made with River {meta.get('river')}, this is River {river.__version__}"
        )
    if not isinstance(learner, CoinLearner):
        raise CheckpointError("checkpoint does not hold a learner")
    return learner
