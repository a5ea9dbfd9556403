import math
import pickle
from dataclasses import replace
from datetime import timedelta

import pytest
import river
from conftest import START, model_settings, random_walk
from river import base

from cryptotech.domain import QUANTILE_LEVELS, Tick
from cryptotech.errors import CheckpointError
from cryptotech.learning.learner import EWMA, HAR, PERSISTENCE, CoinLearner, dumps, loads


def run(learner, ticks):
    predictions, outcomes = [], []
    for tick in ticks:
        p, o = learner.process(tick)
        predictions.extend(p)
        outcomes.extend(o)
    return predictions, outcomes


def first(learner):
    """The learner of the first configured horizon."""
    return learner.horizon()


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
        feats_a.append(first(a).pending_x[-1] if pa else None)
        feats_b.append(first(b).pending_x[-1] if pb else None)
        if ta.ts < ticks[k].ts:
            assert pa == pb
    assert feats_a[:k] == feats_b[:k]
    assert feats_a[k] != feats_b[k]  # the change is visible from tick k on


def test_label_arrives_exactly_at_target_time_and_not_before():
    learner = CoinLearner("btc", model_settings())
    ticks = random_walk(30)
    made = None
    for tick in ticks:
        p, outcomes = learner.process(tick)
        made = made or (p[0] if p else None)
        if made is None or tick.ts < made.target_at:
            assert not outcomes
        elif tick.ts == made.target_at:
            assert outcomes[0].prediction == made
            assert outcomes[0].actual == pytest.approx(tick.price, rel=1e-12)
            break
    else:
        pytest.fail("first prediction never settled")


def test_label_is_interpolated_between_the_ticks_around_the_target():
    learner = CoinLearner("btc", model_settings(label_tolerance="10m"))
    t0 = START
    learner.process(Tick("btc", t0 - timedelta(minutes=5), 100.5))
    (p,), _ = learner.process(Tick("btc", t0, 100.0))
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
    assert first(learner).counts["unlabelled_gap"] == 2
    assert [p.made_at for p in first(learner).waiting()] == [
        START + timedelta(minutes=105)]


def test_pending_queue_is_bounded_and_counts_what_it_drops():
    learner = CoinLearner("btc", model_settings(max_pending=10, horizons=["1d", "15m"]))
    run(learner, random_walk(50))
    day, quarter = learner.horizons["24h"], learner.horizons["15m"]
    assert len(day.pending) == 10 and len(quarter.pending) == 3
    assert day.counts["pending_dropped"] == 50 - 1 - 10  # first tick makes no forecast
    assert quarter.counts["pending_dropped"] == 0 and learner.pending_count == 13


def test_invalid_duplicate_and_old_ticks_never_reach_learn_one():
    learner = CoinLearner("btc", model_settings())
    spy = first(learner).models["bayes_linear"] = Recorder()
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
    clean_spy = first(clean).models["bayes_linear"] = Recorder()
    run(learner, noisy)
    run(clean, ticks)
    assert spy.seen == clean_spy.seen and len(spy.seen) > 0
    assert all(math.isfinite(y) for _, y in spy.seen)
    assert learner.counts["invalid_price"] == 4 * 8
    assert learner.counts["duplicate"] == 8 and learner.counts["out_of_order"] == 8


def test_a_candidate_losing_badly_loses_its_weight_and_costs_nothing_material():
    learner = CoinLearner("btc", model_settings())
    first(learner).models["bayes_linear"] = Recorder(answer=2.5)  # always "up 2.5 sigma"
    predictions, outcomes = run(learner, random_walk(3000, seed=7))
    assert {p.model for p in predictions[-2000:]} == {PERSISTENCE}
    assert first(learner).median.weights()[1] < 0.05
    m = learner.horizon_metrics()
    assert m["bayes_linear"]["skill"] < -0.05  # it really is losing (fenced at 0.5 sigma)
    assert m["published"]["skill"] > -0.002
    late = outcomes[-1000:]
    assert sum(abs(o.error) for o in late) <= 1.001 * sum(
        abs(o.prediction.price - o.actual) for o in late)


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
    def width(p):
        return (p.upper - p.lower) / p.price

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


def test_checkpoint_of_another_format_river_version_or_corrupt_is_refused(monkeypatch):
    blob = dumps(CoinLearner("btc", model_settings()))
    meta, learner = pickle.loads(blob)
    with pytest.raises(CheckpointError, match="format 1"):  # one-horizon learners of old
        loads(pickle.dumps((meta | {"format": 1}, learner)))
    with pytest.raises(CheckpointError, match="unreadable"):
        loads(blob[: len(blob) // 2])
    meta, learner = pickle.loads(blob)
    meta["river"] = "0.0.1"
    with pytest.raises(CheckpointError, match="River 0.0.1"):
        loads(pickle.dumps((meta, learner)))
    assert loads(blob).coin == "btc"
    assert pickle.loads(blob)[0]["river"] == river.__version__


def test_metrics_cover_every_horizon_published_every_expert_and_persistence():
    settings = model_settings(candidates=["bayes_linear", "hoeffding_tree"],
                              horizons=["1h", "4h"])
    learner = CoinLearner("btc", settings)
    run(learner, random_walk(1500, seed=8))
    by_horizon = learner.metrics()
    assert list(by_horizon) == ["1h", "4h"]
    m = by_horizon["1h"]
    assert set(m) == {"published", PERSISTENCE, EWMA, HAR, "bayes_linear", "hoeffding_tree"}
    for values in m.values():
        assert set(values) >= {"mae", "rmse", "mape", "r2", "skill", "direction_hit_rate",
                               "coverage", "mean_width_bps", "n", "interval_score",
                               "interval_score_skill", "pinball", "pinball_skill", "brier",
                               "brier_skill", "vol_loglik", "quantile_coverage"}
        assert values["n"] == 1000  # the window
    assert m[PERSISTENCE]["skill"] == 0.0
    assert m[PERSISTENCE]["direction_hit_rate"] is None  # persistence never calls a direction
    assert 0.3 < m["bayes_linear"]["direction_hit_rate"] < 0.7
    assert m[EWMA]["interval_score_skill"] == 0.0 and m[EWMA]["brier_skill"] == 0.0
    q = m["published"]["quantile_coverage"]
    assert list(q) == ["q05", "q10", "q25", "q50", "q75", "q90", "q95"]
    assert q["q05"] < q["q25"] < q["q50"] < q["q75"] < q["q95"]
    assert learner.horizons["4h"].scores["published"].n_total == 1500 - 1 - 48


def test_one_prediction_per_horizon_with_the_whole_distribution():
    learner = CoinLearner("btc", model_settings(horizons=["15m", "1h", "4h", "24h"],
                                                move_thresholds=[0.02, 0.05]))
    ticks = random_walk(400, seed=12)
    run(learner, ticks[:-1])
    predictions, _ = learner.process(ticks[-1])
    assert [p.horizon for p in predictions] == ["15m", "1h", "4h", "24h"]
    vols = []
    for p, hours in zip(predictions, (0.25, 1, 4, 24)):
        assert p.target_at - p.made_at == timedelta(hours=hours)
        assert len(p.quantiles) == len(QUANTILE_LEVELS)
        assert list(p.quantiles) == sorted(p.quantiles) and p.quantiles[3] == p.forecast
        assert p.lower <= p.forecast <= p.upper
        assert 0.0 <= p.p_up <= 1.0 and p.vol > 0
        assert [x for x, _ in p.p_move] == [0.02, 0.05]
        assert p.p_move[0][1] >= p.p_move[1][1]
        vols.append(p.vol)
    assert vols == sorted(vols)  # more time, more spread
    assert [h.label for h in learner.horizons.values()] == ["15m", "1h", "4h", "24h"]
