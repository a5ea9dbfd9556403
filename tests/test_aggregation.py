"""Online aggregation on synthetic streams with known answers."""

import random
from statistics import NormalDist

import pytest

from cryptotech.learning.aggregation import BOA, MLPoly, pinball_gradient
from cryptotech.learning.scoring import pinball

Z90 = NormalDist().inv_cdf(0.9)


def play(agg, rounds, tau=0.9):
    """Feed (experts, outcome) rounds; return cumulative pinball loss of the aggregate and of
    each expert."""
    total, each = 0.0, None
    for experts, y in rounds:
        a = agg.aggregate(experts)
        total += pinball(a, y, tau)
        losses = [pinball(x, y, tau) for x in experts]
        each = losses if each is None else [e + v for e, v in zip(each, losses)]
        agg.update(experts, a, pinball_gradient(a, y, tau))
    return total, each


@pytest.mark.parametrize("cls", [MLPoly, BOA])
def test_aggregate_tracks_the_best_expert(cls):
    rng = random.Random(3)
    # the 90 % quantile of N(0, 1): one expert right, two wrong (too low, far too high)
    rounds = [([Z90, 0.3, 3.0], rng.gauss(0, 1)) for _ in range(5000)]
    total, each = play(cls(3), rounds)
    best = min(each)
    assert best == each[0]
    assert total <= best * 1.01  # regret: about 1 % of the best expert's loss, or less


@pytest.mark.parametrize("cls", [MLPoly, BOA])
def test_aggregate_beats_each_expert_where_they_take_turns(cls):
    rng = random.Random(4)
    rounds = []
    # calm and wild blocks alternate; one expert is right in calm blocks, the other in wild ones
    for block in range(20):
        sd = 1.0 if block % 2 == 0 else 2.0
        rounds += [([Z90 * 1.0, Z90 * 2.0], rng.gauss(0, sd)) for _ in range(300)]
    total, each = play(cls(2), rounds)
    assert total < min(each)  # better than either expert on its own
    assert abs(each[0] - each[1]) / min(each) < 0.2  # and neither expert is simply the best


def test_overlapping_outcomes_slow_boa_down():
    rng = random.Random(5)
    fast, slow = BOA(2), BOA(2)
    for _ in range(200):
        y, experts = rng.gauss(0, 1), [Z90, 0.0]
        for agg, m in ((fast, 1.0), (slow, 12.0)):
            a = agg.aggregate(experts)
            agg.update(experts, a, pinball_gradient(a, y, 0.9), overlap=m)
    assert fast.weights()[0] > slow.weights()[0] > 0.5
