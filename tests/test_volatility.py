"""The volatility learners and the distribution, on streams with known answers."""

import math
import random
from dataclasses import replace
from datetime import timedelta
from statistics import NormalDist

from conftest import START, model_settings, random_walk

from cryptotech.domain import Tick
from cryptotech.learning.distribution import ScaleConformal
from cryptotech.learning.learner import CoinLearner
from cryptotech.learning.volatility import MarketClock, RecursiveLeastSquares, RiskMetrics


def test_riskmetrics_is_exactly_the_baseline_definition():
    ticks = random_walk(300, sigma=0.003, seed=2)
    rm = RiskMetrics()
    ew = None
    for prev, tick in zip([None, *ticks], ticks):
        rm.learn_one({"t": tick.epoch, "price": tick.price})
        if prev is not None:
            r = math.log(tick.price / prev.price)
            ew = r * r if ew is None else 0.94 * ew + 0.06 * r * r
    assert rm.var == ew
    assert rm.horizon_std(3600) == math.sqrt(ew * 12)  # 5-minute ticks: 12 an hour


def seasonal_walk(days: int, step_s: int = 300, seed: int = 1, calm: float = 0.001,
                  busy_hours=range(13, 16), busy: float = 0.004) -> list[Tick]:
    """A random walk whose volatility is 4x higher from 13:00 to 16:00 UTC every day."""
    rng = random.Random(seed)
    lp, out = math.log(100.0), []
    for i in range(days * 86400 // step_s):
        t = START + timedelta(seconds=i * step_s)
        out.append(Tick("btc", t, math.exp(lp)))
        sd = busy if t.hour in busy_hours else calm
        lp += rng.gauss(0.0, sd)
    return out


def test_market_clock_learns_the_intraday_profile():
    clock = MarketClock()
    for tick in seasonal_walk(20):
        clock.learn_one({"t": tick.epoch, "price": tick.price})
    calm = [clock.factor(START.replace(hour=h).timestamp()) for h in range(12)]
    busy = clock.factor(START.replace(hour=14).timestamp())
    ratio = busy / math.exp(sum(map(math.log, calm)) / len(calm))
    # variance ratio 16 (4x the volatility), shrunk toward 1 while a bin has few observations
    # (120 each here: 16 ** (120 / 140) = 10.8)
    assert 8 < ratio < 16


def test_recursive_least_squares_recovers_a_noisy_line():
    rng = random.Random(7)
    rls = RecursiveLeastSquares(["a", "b"], prior_variance=10.0)
    for _ in range(3000):
        a, b = rng.gauss(0, 1), rng.gauss(0, 1)
        rls.learn_one({"a": a, "b": b}, 1.0 + 2.0 * a - 0.5 * b + rng.gauss(0, 0.5))
    w = rls.weights
    assert abs(w[0] - 1.0) < 0.05 and abs(w[1] - 2.0) < 0.05 and abs(w[2] + 0.5) < 0.05


def test_conformal_multiplier_finds_a_fat_tailed_quantile():
    rng = random.Random(8)
    sc = ScaleConformal(window=4000)
    draws = []
    for _ in range(4000):
        # Student-t with 3 degrees of freedom, scaled: fatter tails than the normal
        z = rng.gauss(0, 1) / math.sqrt(sum(rng.gauss(0, 1) ** 2 for _ in range(3)) / 3)
        draws.append(abs(z))
        sc.update(abs(z))
    assert abs(sc.multiplier(0.9) - 2.353) < 0.15  # t(3): 95 % quantile 2.353
    inside = sum(d <= sc.multiplier(0.9) for d in draws) / len(draws)
    assert abs(inside - 0.9) < 0.002


def test_seasonal_volatility_beats_the_ewma_band_where_there_is_a_season():
    learner = CoinLearner("btc", model_settings(candidates=[], horizons=["1h"]))
    outcomes = []
    for tick in seasonal_walk(21):
        outcomes += learner.process(tick)[1]
    m = learner.horizon_metrics()
    # the EWMA band lags every switch between calm and busy hours; the seasonal one does not
    assert m["har"]["interval_score_skill"] > 0.05
    assert m["published"]["interval_score_skill"] > 0.03
    late = outcomes[-3000:]
    coverage = sum(o.covered for o in late) / len(late)
    assert 0.87 <= coverage <= 0.93
    q = m["published"]["quantile_coverage"]
    for name, level in (("q05", 0.05), ("q25", 0.25), ("q50", 0.5), ("q75", 0.75), ("q95", 0.95)):
        assert abs(q[name] - level) < 0.05, (name, q[name])


def test_gaussian_outcomes_give_gaussian_quantiles_and_move_probabilities():
    learner = CoinLearner("btc", model_settings(candidates=[], horizons=["1h"],
                                                move_thresholds=[0.01]))
    ticks = random_walk(5000, sigma=0.002, seed=21)
    for tick in ticks:
        predictions, _ = learner.process(tick)
    (p,) = predictions
    sd = 0.002 * math.sqrt(12)  # the true std of the 1 h log-return
    assert abs(p.vol / sd - 1) < 0.25
    true_move = 2 * (1 - NormalDist().cdf(math.log1p(0.01) / sd))
    assert abs(p.p_move[0][1] - true_move) < 0.1
    assert p.p_up == 0.5  # no candidate: no direction is claimed
    assert replace(p, forecast=p.price) == p  # the median is persistence
