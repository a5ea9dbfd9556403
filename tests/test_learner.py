import math
import pickle
from dataclasses import replace
from datetime import timedelta

import pytest
import river
from conftest import START, model_settings, random_walk
from river import base

from cryptotech.domain import Tick
from cryptotech.errors import CheckpointError
from cryptotech.learning.learner import CoinLearner, dumps, loads
from cryptotech.learning.models import PERSISTENCE


def run(learner, ticks):
    predictions, outcomes = [], []
    for tick in ticks:
        p, o = learner.process(tick)
        if p is not None:
            predictions.append(p)
        outcomes.extend(o)
    return predictions, outcomes


class Recorder(base.Regressor):
    """A River regressor that remembers every label it was taught."""

    def __init__(self, answer: float = 0.0):
        self.answer = answer
        self.seen: list[tuple[dict, float]] = []

    def learn_one(self, x, y):
        self.seen.append((dict(x), y))

    def predict_one(self, x):
        return self.answer


def test_changing_a_later_tick_never_changes_an_earlier_feature_or_prediction():
    ticks = random_walk(600, seed=3)
    k = 400
    altered = list(ticks)
    altered[k] = replace(ticks[k], price=ticks[k].price * 1.3, volume_24h=9e9)
    altered[k + 1:] = [replace(t, price=t.price * 0.8) for t in ticks[k + 1:]]
    a, b = CoinLearner("btc", model_settings()), CoinLearner("btc", model_settings())
    feats_a, feats_b = [], []
    for ta, tb in zip(ticks, altered):
        pa, _ = a.process(ta)
        pb, _ = b.process(tb)
        feats_a.append(a.pending[-1].x if pa else None)
        feats_b.append(b.pending[-1].x if pb else None)
        if ta.ts < ticks[k].ts:
            assert pa == pb
    assert feats_a[:k] == feats_b[:k]
    assert feats_a[k] != feats_b[k]  # the change is visible from tick k on


def test_label_arrives_exactly_at_target_time_and_not_before():
    learner = CoinLearner("btc", model_settings())
    ticks = random_walk(30)
    first = None
    for i, tick in enumerate(ticks):
        p, outcomes = learner.process(tick)
        first = first or p
        if first is None or tick.ts < first.target_at:
            assert not outcomes
        elif tick.ts == first.target_at:
            assert outcomes[0].prediction == first
            assert outcomes[0].actual == pytest.approx(tick.price, rel=1e-12)
            break
    else:
        pytest.fail("first prediction never settled")


def test_label_is_interpolated_between_the_ticks_around_the_target():
    learner = CoinLearner("btc", model_settings(label_tolerance="10m"))
    t0 = START
    learner.process(Tick("btc", t0 - timedelta(minutes=5), 100.5))
    p, _ = learner.process(Tick("btc", t0, 100.0))
    assert p.target_at == t0 + timedelta(hours=1)
    learner.process(Tick("btc", t0 + timedelta(minutes=55), 110.0))
    _, outcomes = learner.process(Tick("btc", t0 + timedelta(minutes=67), 120.0))
    mine = [o for o in outcomes if o.prediction.made_at == t0]
    # log-linear interpolation at 5/12 of the way from 110 to 120
    assert mine[0].actual == pytest.approx(math.exp(math.log(110) + 5 / 12 * math.log(120 / 110)))


def test_no_label_across_a_gap_wider_than_the_tolerance():
    learner = CoinLearner("btc", model_settings(label_tolerance="10m"))
    learner.process(Tick("btc", START - timedelta(minutes=5), 100.0))
    learner.process(Tick("btc", START, 101.0))
    learner.process(Tick("btc", START + timedelta(minutes=30), 102.0))
    # nothing between +30m and +1h45m: the targets of both earlier predictions fall in the gap
    _, outcomes = learner.process(Tick("btc", START + timedelta(minutes=105), 103.0))
    assert outcomes == []
    assert learner.counts["unlabelled_gap"] == 2
    assert [p.made_at for p in (i.prediction for i in learner.pending)] == [
        START + timedelta(minutes=105)]


def test_pending_queue_is_bounded_and_counts_what_it_drops():
    learner = CoinLearner("btc", model_settings(max_pending=10, horizon="1d"))
    run(learner, random_walk(50))
    assert len(learner.pending) == 10
    assert learner.counts["pending_dropped"] == 50 - 1 - 10  # first tick makes no forecast


def test_invalid_duplicate_and_old_ticks_never_reach_learn_one():
    learner = CoinLearner("btc", model_settings())
    spy = learner.models["bayes_linear"] = Recorder()
    ticks = random_walk(40)
    noisy = []
    for i, t in enumerate(ticks):
        noisy.append(t)
        if i % 5 == 0:
            noisy += [replace(t, price=float("nan")), replace(t, price=-t.price),
                      replace(t, price=0.0), replace(t, price=float("inf")),
                      replace(t, price=t.price * 2),  # same timestamp: a duplicate
                      replace(t, ts=t.ts - timedelta(minutes=7))]  # older than the last
    clean = CoinLearner("btc", model_settings())
    clean_spy = clean.models["bayes_linear"] = Recorder()
    run(learner, noisy)
    run(clean, ticks)
    assert spy.seen == clean_spy.seen and len(spy.seen) > 0
    assert all(math.isfinite(y) for _, y in spy.seen)
    assert learner.counts["invalid_price"] == 4 * 8
    assert learner.counts["duplicate"] == 8 and learner.counts["out_of_order"] == 8


def test_selection_never_publishes_a_candidate_losing_badly_to_persistence():
    learner = CoinLearner("btc", model_settings())
    learner.models["bayes_linear"] = Recorder(answer=2.5)  # always "up 2.5 sigma"
    predictions, outcomes = run(learner, random_walk(3000, seed=7))
    assert {p.model for p in predictions} == {PERSISTENCE}
    assert learner.metrics()["bayes_linear"]["skill"] < -0.5  # it really is losing badly
    assert learner.metrics()["published"]["skill"] == pytest.approx(0.0)


def test_selection_publishes_a_candidate_that_beats_persistence():
    # a stream with a daily cycle in its drift: learnable from the time-of-day features
    def daily_cycle(ticks):
        return 0.2 * 0.002 * math.sin(2 * math.pi * (ticks[-1].epoch % 86400) / 86400)

    learner = CoinLearner("btc", model_settings())
    predictions, outcomes = run(learner, random_walk(4000, seed=11, drift_fn=daily_cycle))
    late = predictions[-1000:]
    assert sum(p.model == "bayes_linear" for p in late) > 900
    m = learner.metrics()
    assert m["published"]["skill"] > 0.02 and m["bayes_linear"]["skill"] > 0.02


def test_interval_coverage_on_known_noise_is_within_3_points_of_nominal():
    for level in (0.8, 0.9):
        learner = CoinLearner("btc", model_settings(interval_level=level))
        _, outcomes = run(learner, random_walk(6000, seed=5, sigma=0.003))
        late = outcomes[1000:]
        coverage = sum(o.covered for o in late) / len(late)
        assert abs(coverage - level) <= 0.03, (level, coverage)


def test_interval_narrows_when_the_market_calms():
    ticks = random_walk(3000, sigma=0.004, seed=2)
    calm = random_walk(3000, sigma=0.001, seed=3, price=ticks[-1].price)
    calm = [replace(t, ts=ticks[-1].ts + (i + 1) * timedelta(minutes=5)) for i, t in enumerate(calm)]
    learner = CoinLearner("btc", model_settings())
    predictions, _ = run(learner, ticks + calm)
    width = lambda p: (p.upper - p.lower) / p.price
    wild = sum(map(width, predictions[2000:2900])) / 900
    quiet = sum(map(width, predictions[-900:])) / 900
    assert quiet < 0.5 * wild


def test_same_input_and_seed_give_identical_predictions():
    settings = model_settings(candidates=["bayes_linear", "hoeffding_tree", "arf"], arf_trees=3)
    ticks = random_walk(500, seed=9)
    assert run(CoinLearner("btc", settings), ticks) == run(CoinLearner("btc", settings), ticks)


def test_pickled_learner_continues_with_the_same_predictions():
    settings = model_settings(candidates=["bayes_linear", "hoeffding_tree", "arf"], arf_trees=3)
    ticks = random_walk(700, seed=4)
    straight = CoinLearner("btc", settings)
    run(straight, ticks[:400])
    restored = loads(dumps(straight))
    assert run(restored, ticks[400:]) == run(straight, ticks[400:])


def test_checkpoint_from_another_river_version_or_corrupt_is_refused(monkeypatch):
    blob = dumps(CoinLearner("btc", model_settings()))
    with pytest.raises(CheckpointError, match="unreadable"):
        loads(blob[: len(blob) // 2])
    meta, learner = pickle.loads(blob)
    meta["river"] = "0.0.1"
    with pytest.raises(CheckpointError, match="River 0.0.1"):
        loads(pickle.dumps((meta, learner)))
    assert loads(blob).coin == "btc"
    assert pickle.loads(blob)[0]["river"] == river.__version__


def test_metrics_cover_published_every_candidate_and_persistence():
    settings = model_settings(candidates=["bayes_linear", "hoeffding_tree"])
    learner = CoinLearner("btc", settings)
    run(learner, random_walk(1500, seed=8))
    m = learner.metrics()
    assert set(m) == {"published", PERSISTENCE, "bayes_linear", "hoeffding_tree"}
    for name, values in m.items():
        assert set(values) >= {"mae", "rmse", "mape", "r2", "skill", "direction_hit_rate",
                               "coverage", "mean_width_bps", "n"}
        assert values["n"] == 1000  # rolling window
    assert m[PERSISTENCE]["skill"] == 0.0
    assert m[PERSISTENCE]["direction_hit_rate"] is None  # persistence never calls a direction
    assert 0.3 < m["bayes_linear"]["direction_hit_rate"] < 0.7
