"""Volatility of one coin's price stream, in event time.

* :class:`RiskMetrics` is the baseline every forecast is judged against, exactly as the issue
  defines it: ``s2 = 0.94 * s2 + 0.06 * r**2`` on tick log-returns, the horizon's standard
  deviation ``sqrt(s2 * ticks per horizon)``, where the ticks per horizon come from the median
  spacing of the recent ticks.
* :class:`MarketClock` learns what every horizon's volatility learner shares: an intraday and
  weekday seasonal profile of the variance rate, and HAR components (Corsi): exponentially
  weighted deseasonalised variance rates over about an hour, a day and a week of *event time*
  (half-lives in seconds, so a 1-minute, 5-minute or hourly stream means the same thing).
* :class:`RecursiveLeastSquares` is the online regression (with a prior and forgetting) that
  each horizon fits on log realised variance.

Rates are variances per second: ``r**2 / dt`` for a tick ``dt`` seconds after the previous one.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import deque

from river import base

LN2 = math.log(2.0)
HOUR = 3600.0
DAY = 86400.0
WEEK = 7 * DAY
RATE_FLOOR = 1e-14  # variance per second; far below any traded coin's
WINDUP_CAP = 1000.0  # the regression's covariance trace: at most this many times the prior's


class RiskMetrics:
    """RiskMetrics EWMA of squared tick log-returns, scaled to a horizon by the tick spacing.

    Parameters
    ----------
    lam
        Decay per tick (0.94 is RiskMetrics' daily value, used here per tick as specified).
    spacing_window
        How many recent tick intervals give the median spacing.

    Examples
    --------
    >>> v = RiskMetrics()
    >>> for i, p in enumerate([100.0, 101.0, 100.0, 101.0]):
    ...     v.learn_one({"t": 300.0 * i, "price": p})
    >>> v.spacing
    300.0
    >>> round(v.horizon_std(3600.0), 4)  # every return is ln(1.01) in size; 12 ticks an hour
    0.0345
    """

    def __init__(self, lam: float = 0.94, spacing_window: int = 31):
        self.lam = lam
        self.spacing_window = spacing_window
        self.var: float | None = None
        self._last: tuple[float, float] | None = None
        self._gaps: deque[float] = deque()
        self._sorted_gaps: list[float] = []

    def learn_one(self, x: dict) -> None:
        t, price = float(x["t"]), float(x["price"])
        if self._last is not None:
            t0, p0 = self._last
            r = math.log(price / p0)  # as the scorer computes it, to the last bit
            new = round(1.0 - self.lam, 12)  # 0.06 exactly, as the baseline is written
            self.var = r * r if self.var is None else self.lam * self.var + new * r * r
            gap = t - t0
            self._gaps.append(gap)
            insort(self._sorted_gaps, gap)
            if len(self._gaps) > self.spacing_window:
                del self._sorted_gaps[bisect_left(self._sorted_gaps, self._gaps.popleft())]
        self._last = (t, price)

    @property
    def spacing(self) -> float | None:
        """Median seconds between recent ticks (``None`` before the second tick)."""
        n = len(self._sorted_gaps)
        if not n:
            return None
        mid = n // 2
        return self._sorted_gaps[mid] if n % 2 else 0.5 * (self._sorted_gaps[mid - 1]
                                                           + self._sorted_gaps[mid])

    def ticks_per(self, horizon: float) -> float:
        """Ticks in ``horizon`` seconds at the recent spacing (0 before the second tick)."""
        spacing = self.spacing
        return horizon / spacing if spacing else 0.0

    def horizon_std(self, horizon: float) -> float:
        """Standard deviation of the log-return over ``horizon`` seconds (0 if unknown)."""
        if self.var is None:
            return 0.0
        return math.sqrt(self.var * self.ticks_per(horizon))


class MarketClock:
    """Seasonal profile and HAR components of one coin's variance rate, in event time.

    The profile is multiplicative, ``hour-of-day factor x day-of-week factor`` (UTC), each an
    exponentially weighted mean of the variance rate in its bin relative to the overall mean,
    shrunk toward 1 while a bin has few observations. The HAR components are exponentially
    weighted means of the *deseasonalised* rate with half-lives ``halflives`` (seconds). Large
    returns are winsorised at ``clip`` times the slow component before they enter the profile
    and the slow components, so one crash tick does not set the profile for weeks.

    Parameters
    ----------
    halflives
        Half-lives (seconds) of the HAR components, fastest first.
    profile_halflife
        Half-life (seconds of event time) of the hour-of-day profile; the day-of-week profile
        remembers seven times longer (each of its bins is visited once a week).
    prior_count
        Observations at which a bin's factor is half its own estimate, half 1.
    clip
        Winsorisation of the rate entering the profile and the slower components.

    Examples
    --------
    >>> clock = MarketClock()
    >>> for i in range(600):  # 5-minute ticks, twice as volatile in the first half of each day
    ...     t = 300.0 * i
    ...     r = 0.002 if (t % 86400) < 43200 else 0.001
    ...     clock.learn_one({"t": t, "price": 100.0 * math.exp(r * (i % 2))})
    >>> 1.3 < clock.factor(3600.0) / clock.factor(50000.0) < 4.5
    True
    >>> len(clock.components()) == 4 and min(clock.components()) > 0
    True
    """

    def __init__(self, halflives: tuple[float, ...] = (HOUR / 4, 4 * HOUR, DAY, WEEK),
                 profile_halflife: float = 30 * DAY, prior_count: float = 20.0,
                 clip: float = 25.0, bins_per_day: int = 48):
        self.halflives = halflives
        self.profile_halflife = profile_halflife
        self.prior_count = prior_count
        self.clip = clip
        self.bins_per_day = bins_per_day
        self._bin = DAY / bins_per_day
        self._hour_mean = [0.0] * bins_per_day
        self._hour_n = [0.0] * bins_per_day
        self._day_mean = [0.0] * 7
        self._day_n = [0.0] * 7
        self._overall = 0.0
        self._overall_n = 0.0
        self._cached_hour: list[float | None] = [None] * bins_per_day
        self._cached_day: list[float | None] = [None] * 7
        self._har: list[float] = []
        self._last: tuple[float, float] | None = None
        self.cum_var = 0.0  # sum of squared log-returns so far (realised variance clock)

    def _bins(self, t: float) -> tuple[int, int]:
        day = int(t // DAY)
        return int((t % DAY) // self._bin), (day + 3) % 7  # 1970-01-01 was a Thursday: Monday = 0

    def factor(self, t: float) -> float:
        """The seasonal factor of the variance rate at time ``t`` (1 = an average moment)."""
        if self._overall <= 0:
            return 1.0
        h, d = self._bins(t)
        # the same factors are asked for by every horizon between two ticks: kept until the
        # next tick changes the profile
        hour = self._cached_hour[h]
        if hour is None:
            hour = self._cached_hour[h] = self._shrunk(self._hour_mean[h], self._hour_n[h])
        day = self._cached_day[d]
        if day is None:
            day = self._cached_day[d] = self._shrunk(self._day_mean[d], self._day_n[d])
        return hour * day

    def _shrunk(self, mean: float, n: float) -> float:
        if n <= 0 or mean <= 0:
            return 1.0
        w = n / (n + self.prior_count)
        return math.exp(w * math.log(mean / self._overall))

    def mean_factor(self, t: float, horizon: float) -> float:
        """The mean seasonal factor over ``(t, t + horizon]`` (steps of one profile bin, at most
        a day's worth: beyond a day only the weekday profile varies, and slowly)."""
        steps = max(1, min(int(math.ceil(horizon / self._bin)), self.bins_per_day))
        step = horizon / steps
        return sum(self.factor(t + (i + 0.5) * step) for i in range(steps)) / steps

    def _forget_factors(self) -> None:
        self._cached_hour = [None] * self.bins_per_day
        self._cached_day = [None] * 7

    def components(self) -> list[float]:
        """The HAR components (deseasonalised variance per second), fastest first."""
        return list(self._har)

    def learn_one(self, x: dict) -> None:
        t, lp = float(x["t"]), math.log(x["price"])
        last, self._last = self._last, (t, lp)
        if last is None:
            return
        self._forget_factors()
        dt = t - last[0]
        r2 = (lp - last[1]) ** 2
        self.cum_var += r2
        rate = max(r2 / dt, RATE_FLOOR)
        slow = self._har[-1] if self._har else 0.0
        capped = min(rate, self.clip * slow * self.factor(t)) if slow > 0 else rate
        # the profile: bins of hour-of-day and day-of-week, against the overall mean
        # a bin is visited for 1/24 (hour) or 1/7 (day, remembering 7 times longer) of the time:
        # per visit, a tick of dt seconds weighs as dt / (halflife * share) half-lives
        hl = self.profile_halflife
        h, d = self._bins(t)
        for means, counts, i, span in ((self._hour_mean, self._hour_n, h,
                                        hl / self.bins_per_day),
                                       (self._day_mean, self._day_n, d, hl)):
            counts[i] += 1.0
            a = 1.0 - math.exp(-dt * LN2 / span)
            means[i] += max(a, 1.0 / counts[i]) * (capped - means[i])
        self._overall_n += 1.0
        a_all = 1.0 - math.exp(-dt * LN2 / hl)
        self._overall += max(a_all, 1.0 / self._overall_n) * (capped - self._overall)
        self._forget_factors()
        deseason = rate / self.factor(t)
        deseason_capped = capped / self.factor(t)
        if not self._har:
            self._har = [deseason_capped] * len(self.halflives)
            return
        for i, hl in enumerate(self.halflives):
            a = 1.0 - math.exp(-dt * LN2 / hl)
            value = deseason if i == 0 else deseason_capped
            self._har[i] += a * (value - self._har[i])


class RecursiveLeastSquares(base.Regressor):
    """Linear regression fitted online by recursive least squares, with a prior and forgetting.

    Minimises ``sum_i forget**(n - i) * (y_i - w.x_i)**2 + (w - prior).P0^-1.(w - prior)``
    exactly after every example (``P0 = prior_variance * I``). Features are read in the order
    of ``features``; a missing feature counts as 0. Cost per example: a few ``d x d`` products.

    Parameters
    ----------
    features
        The names of the features (the intercept is added as ``"1"``; do not include it).
    prior
        Prior weights by name (``"1"`` for the intercept); 0 for the others.
    prior_variance
        Variance of the prior on every weight: small = trust the prior longer.
    forget
        Forgetting factor per example of weight 1 (1 = never forget).

    Examples
    --------
    >>> rls = RecursiveLeastSquares(["x"], prior_variance=100.0)
    >>> for i in range(50):
    ...     rls.learn_one({"x": i / 10}, 2.0 + 3.0 * i / 10)
    >>> round(rls.predict_one({"x": 1.0}), 2)
    5.0
    """

    def __init__(self, features: list[str], prior: dict[str, float] | None = None,
                 prior_variance: float = 1.0, forget: float = 1.0):
        self.features = features
        self.prior = prior
        self.prior_variance = prior_variance
        self.forget = forget
        names = ["1", *features]
        self._names = names
        d = len(names)
        self.weights = [float((prior or {}).get(name, 0.0)) for name in names]
        self._p = [[prior_variance if i == j else 0.0 for j in range(d)] for i in range(d)]
        self.n = 0

    def _vector(self, x: dict) -> list[float]:
        return [1.0, *(float(x.get(name, 0.0)) for name in self.features)]

    def predict_one(self, x: dict) -> float:
        return sum(w * v for w, v in zip(self.weights, self._vector(x)))

    def learn_one(self, x: dict, y: float, w: float = 1.0) -> None:
        """Learn from one example, weighing it ``w`` (forgetting ``forget ** w``)."""
        root = math.sqrt(w)
        v = [vi * root for vi in self._vector(x)]
        y = y * root
        forget = self.forget ** w
        p = self._p
        pv = [sum(row[j] * v[j] for j in range(len(v))) for row in p]
        denom = forget + sum(vi * pvi for vi, pvi in zip(v, pv))
        gain = [pvi / denom for pvi in pv]
        err = y - sum(wi * vi for wi, vi in zip(self.weights, v))
        self.weights = [wi + g * err for wi, g in zip(self.weights, gain)]
        inv_forget = 1.0 / forget
        new_p = [[(p[i][j] - gain[i] * pv[j]) * inv_forget for j in range(len(v))]
                 for i in range(len(v))]
        # forgetting inflates the covariance of directions the data no longer excite (a stuck
        # or perfectly smooth price) without bound ("wind-up"): its trace is capped far above
        # the prior's, where it never is on real data
        trace = sum(new_p[i][i] for i in range(len(v)))
        cap = WINDUP_CAP * self.prior_variance * len(v)
        if trace > cap:
            scale = cap / trace
            new_p = [[value * scale for value in row] for row in new_p]
        self._p = new_p
        self.n += 1
