"""Online aggregation of experts with a regret guarantee: BOA (Wintenberger, 2017).

Bernstein Online Aggregation, as the ``opera`` package (Gaillard and Goude) runs it with the
*gradient trick* and one adaptive learning rate per expert: for a convex loss ``l`` scored on
the aggregate ``a = sum_k w_k x_k``, each outcome gives every expert the linearised regret
``r_k = l'(a) (a - x_k)``; weights are ``w_k ~ prior_k eta_k exp(eta_k R_k)`` where
``R_k = sum (r_k - eta_k r_k**2)`` and ``eta_k = min(1 / (2 B_k), sqrt(ln K / V_k))`` (``V_k``
the sum of ``r_k**2``, ``B_k`` their largest size). Forecasts made every tick for a horizon
of ``m`` ticks give ``m`` overlapping, correlated outcomes in a row; the learning rate then
counts the variance ``m`` times (``eta_k = sqrt(ln K / (m V_k))``), as for blocks of ``m``
rounds. Its regret against the best expert, and for
exp-concave losses against the best fixed convex combination, grows like ``sqrt(T ln K)`` (and
``ln K`` under curvature), with no tuning: the published forecast tracks the best expert, and
beats every one when they take turns.

The losses used here: pinball at level ``tau`` for a quantile (``l'(a) = 1{y < a} - tau``),
absolute error for the median (``tau = 0.5``), squared error for a probability (Brier).
"""

from __future__ import annotations

import math


class BOA:
    """Bernstein Online Aggregation of ``n_experts`` forecasts of one quantity.

    Parameters
    ----------
    n_experts
        How many experts.
    prior
        Prior weights (default uniform).

    Examples
    --------
    Two experts of the 90 % quantile of a standard normal: the right one (1.28) and a wrong
    one (0). The weight moves to the right one.

    >>> import random
    >>> rng = random.Random(1)
    >>> boa = BOA(2)
    >>> for _ in range(2000):
    ...     experts = [1.2816, 0.0]
    ...     a = boa.aggregate(experts)
    ...     boa.update(experts, a, pinball_gradient(a, rng.gauss(0, 1), 0.9))
    >>> boa.weights()[0] > 0.9
    True
    """

    def __init__(self, n_experts: int, prior: list[float] | None = None):
        self.n_experts = n_experts
        self.prior = prior
        total = sum(prior) if prior else float(n_experts)
        self._log_prior = [math.log((prior[k] if prior else 1.0) / total)
                           for k in range(n_experts)]
        self._regret = [0.0] * n_experts
        self._v = [0.0] * n_experts
        self._b = [0.0] * n_experts
        self._eta = [0.0] * n_experts
        self._w = [math.exp(lp) for lp in self._log_prior]
        self.n = 0

    def weights(self) -> list[float]:
        return list(self._w)

    def aggregate(self, experts: list[float]) -> float:
        """The weighted forecast of the experts' ``experts`` values."""
        return sum(w * x for w, x in zip(self._w, experts))

    def update(self, experts: list[float], aggregate: float, g: float,
               overlap: float = 1.0) -> None:
        """Learn from one outcome: the experts' forecasts ``experts``, the ``aggregate`` that
        was issued, and ``g`` the derivative of the loss at the aggregate for that outcome.

        ``overlap``: how many consecutive outcomes share most of their information (a
        forecast ``H`` ahead made every tick: the ticks per horizon). Their regrets are
        correlated, so the variance that sets the learning rate is counted ``overlap`` times.
        """
        if g == 0.0:
            self.n += 1
            return
        log_k = math.log(max(self.n_experts, 2)) / max(overlap, 1.0)
        for k, x in enumerate(experts):
            r = g * (aggregate - x)
            eta = self._eta[k]
            self._regret[k] += r - eta * r * r
            self._v[k] += r * r
            self._b[k] = max(self._b[k], abs(r))
            if self._v[k] > 0 and self._b[k] > 0:
                self._eta[k] = min(1.0 / (2.0 * self._b[k]), math.sqrt(log_k / self._v[k]))
        self.n += 1
        self._reweigh()

    def _reweigh(self) -> None:
        logs = []
        for k in range(self.n_experts):
            eta = self._eta[k]
            if eta <= 0:
                logs.append(self._log_prior[k])
            else:
                logs.append(self._log_prior[k] + math.log(eta) + eta * self._regret[k])
        top = max(logs)
        raw = [math.exp(v - top) for v in logs]
        total = sum(raw)
        self._w = [v / total for v in raw]


def pinball_gradient(a: float, y: float, tau: float) -> float:
    """``d/da`` of the pinball loss at level ``tau`` (absolute error / 2 at ``tau = 0.5``).

    >>> pinball_gradient(1.0, 2.0, 0.9), pinball_gradient(1.0, 0.0, 0.9)
    (-0.9, 0.09999999999999998)
    """
    return (1.0 if y < a else 0.0) - tau


def squared_gradient(a: float, y: float) -> float:
    """``d/da`` of ``(a - y)**2`` (the Brier score of a probability ``a`` of an event ``y``).

    >>> squared_gradient(0.7, 1.0)
    -0.6000000000000001
    """
    return 2.0 * (a - y)


class MLPoly:
    """ML-Poly (Gaillard, Stoltz and van Erven, 2014): polynomially weighted averages with one
    learning rate per expert, as the ``opera`` package runs it with the gradient trick.

    With ``r_k`` the linearised regret of expert ``k`` (see :class:`BOA`), ``R_k = sum r_k``
    and ``eta_k = 1 / (1 / eta_0 + sum r_k**2)``, the weights are ``w_k ~ eta_k (R_k)_+``
    (the prior while no expert has positive regret). Its regret against the best expert is
    second-order (``sqrt(ln K sum r_k**2)``), with no tuning, and its weights move in
    proportion to the evidence instead of jumping: two experts of nearly equal loss share the
    weight (``BOA``'s exponential weights jump from one to the other on such streams, and on
    the design data that cost more than either expert alone). ``overlap`` is accepted as in
    :meth:`BOA.update` but changes nothing here: the weights do not change when every
    expert's variance is scaled alike.

    Examples
    --------
    >>> import random
    >>> rng = random.Random(1)
    >>> agg = MLPoly(2)
    >>> for _ in range(2000):
    ...     experts = [1.2816, 0.0]
    ...     a = agg.aggregate(experts)
    ...     agg.update(experts, a, pinball_gradient(a, rng.gauss(0, 1), 0.9))
    >>> agg.weights()[0] > 0.9
    True
    """

    def __init__(self, n_experts: int, prior: list[float] | None = None):
        self.n_experts = n_experts
        self.prior = prior
        total = sum(prior) if prior else float(n_experts)
        self._prior = [(prior[k] if prior else 1.0) / total for k in range(n_experts)]
        self._regret = [0.0] * n_experts
        self._v = [0.0] * n_experts
        self._w = list(self._prior)
        self.n = 0

    def weights(self) -> list[float]:
        return list(self._w)

    def aggregate(self, experts: list[float]) -> float:
        """The weighted forecast of the experts' ``experts`` values."""
        return sum(w * x for w, x in zip(self._w, experts))

    def update(self, experts: list[float], aggregate: float, g: float,
               overlap: float = 1.0) -> None:
        """Learn from one outcome (see :meth:`BOA.update`)."""
        self.n += 1
        if g == 0.0:
            return
        for k, x in enumerate(experts):
            r = g * (aggregate - x)
            self._regret[k] += r
            self._v[k] += r * r
        raw = [p * max(reg, 0.0) / v if v > 0 else 0.0
               for p, reg, v in zip(self._prior, self._regret, self._v)]
        total = sum(raw)
        self._w = [v / total for v in raw] if total > 0 else list(self._prior)
