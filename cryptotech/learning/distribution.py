"""The predictive distribution of a log-return from a volatility forecast: conformal scores.

:class:`ScaleConformal` keeps the last ``window`` standardised outcomes ``|z| = |y| / sigma``
(``y`` the realised log-return, ``sigma`` the volatility forecast issued for it) in two flat
arrays (arrival order and sorted), so a quantile is one index and memory is 16 bytes a score.
The distribution it gives is symmetric around the median (persistence): quantile ``tau`` is
``sign(tau - 0.5) * Q_|z|(|2 tau - 1|) * sigma``. Split-conformal over a rolling window keeps
each quantile's realised frequency near its level without assuming a shape (fat tails
included), and it reacts to a volatility forecast that is biased by rescaling it.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, bisect_right, insort
from statistics import NormalDist

_NORMAL = NormalDist()


class ScaleConformal:
    """Rolling split-conformal quantiles of standardised absolute outcomes.

    Parameters
    ----------
    window
        How many recent scores are kept.
    min_scores
        Below this many scores, quantiles are Gaussian (``|z|`` of a standard normal).

    Examples
    --------
    >>> sc = ScaleConformal(window=1000, min_scores=10)
    >>> round(sc.multiplier(0.9), 3)  # no scores yet: Gaussian
    1.645
    >>> for i in range(1000):
    ...     sc.update((i % 100) / 50)  # |z| spread evenly over [0, 2)
    >>> round(sc.multiplier(0.9), 2), round(sc.multiplier(0.5), 2)
    (1.8, 1.0)
    >>> sc.fraction_above(1.5)  # 1.52, 1.54, ..., 1.98
    0.24
    """

    def __init__(self, window: int = 3000, min_scores: int = 50):
        self.window = window
        self.min_scores = min_scores
        self._ring = array("d")
        self._sorted = array("d")
        self._head = 0
        self._sum_sq = 0.0

    def __len__(self) -> int:
        return len(self._sorted)

    def update(self, score: float) -> None:
        """Take one standardised absolute outcome ``|y| / sigma``."""
        if not math.isfinite(score):
            return
        insort(self._sorted, score)
        self._sum_sq += score * score
        if len(self._ring) < self.window:
            self._ring.append(score)
            return
        old = self._ring[self._head]
        self._ring[self._head] = score
        self._head = (self._head + 1) % self.window
        del self._sorted[bisect_left(self._sorted, old)]
        self._sum_sq -= old * old

    def multiplier(self, coverage: float) -> float:
        """The ``coverage`` quantile of ``|z|``: the half-width of a central interval of that
        probability, in units of sigma (Gaussian until ``min_scores`` scores)."""
        n = len(self._sorted)
        if n < self.min_scores:
            return _NORMAL.inv_cdf(0.5 + coverage / 2.0)
        rank = math.ceil((n + 1) * coverage) - 1
        return self._sorted[min(max(rank, 0), n - 1)]

    def fraction_above(self, threshold: float) -> float:
        """Share of the kept scores above ``threshold`` (Gaussian until ``min_scores``)."""
        n = len(self._sorted)
        if n < self.min_scores:
            return 2.0 * (1.0 - _NORMAL.cdf(threshold))
        return (n - bisect_right(self._sorted, threshold)) / n

    def rms(self) -> float:
        """Root mean square of the kept scores: the factor that makes ``sigma`` the standard
        deviation of the outcomes (1 until ``min_scores``)."""
        n = len(self._sorted)
        if n < self.min_scores:
            return 1.0
        return math.sqrt(max(self._sum_sq, 0.0) / n)


def symmetric_offsets(levels: tuple[float, ...], multiplier) -> list[float]:
    """Offsets (in sigma) of the quantiles at ``levels`` of a distribution symmetric about 0.

    >>> [round(v, 3) for v in symmetric_offsets((0.05, 0.5, 0.95),
    ...                                         lambda c: NormalDist().inv_cdf(0.5 + c / 2))]
    [-1.645, 0.0, 1.645]
    """
    out = []
    for tau in levels:
        c = abs(2.0 * tau - 1.0)
        m = multiplier(c) if c > 0 else 0.0
        out.append(m if tau >= 0.5 else -m)
    return out
