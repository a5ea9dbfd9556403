"""Incremental features of one coin's price stream, over event time.

:class:`TickFeatures` is a River transformer. ``learn_one`` takes the tick that just
arrived (``{"t": epoch seconds, "price": p, "volume": 24 h volume or None}``) into its state;
``transform_one`` describes the market as of that tick using only that state, so nothing ever
looks ahead: a later tick cannot change an earlier feature.
"""

from __future__ import annotations

import math
from bisect import bisect_right

from river import base

LN2 = math.log(2.0)


class TickFeatures(base.Transformer):
    """Returns, EWMA deviations, volatility, volume change and time of day.

    Parameters
    ----------
    return_windows
        Look-back windows (seconds) of the log-returns ``ln p(t) - ln p(t - w)``.
    ewma_halflives
        Half-lives (seconds) of the EWMAs of log price; the feature is the deviation from each.
    volatility_halflives
        Half-lives (seconds) of the EWMAs of squared 1-step log-returns per second.

    Examples
    --------
    >>> f = TickFeatures()
    >>> for i, p in enumerate([100.0, 101.0, 100.5, 102.0]):
    ...     f.learn_one({"t": 1_700_000_000 + 300 * i, "price": p, "volume": None})
    >>> x = f.transform_one({"t": 1_700_000_900, "price": 102.0, "volume": None})
    >>> round(x["ret_300"], 6)  # ln(102 / 100.5)
    0.014815
    >>> round(f.volatility(3600), 4) > 0
    True
    """

    def __init__(
        self,
        return_windows: tuple[int, ...] = (300, 900, 3600, 4 * 3600, 24 * 3600),
        ewma_halflives: tuple[int, ...] = (1800, 6 * 3600, 24 * 3600),
        volatility_halflives: tuple[int, ...] = (3600, 24 * 3600),
    ):
        self.return_windows = return_windows
        self.ewma_halflives = ewma_halflives
        self.volatility_halflives = volatility_halflives
        self._t: list[float] = []
        self._lp: list[float] = []
        self._lv: list[float | None] = []
        self._ewma: dict[int, float] = {}
        self._var: dict[int, float] = {}
        self._keep = max(return_windows) * 1.5 + 600

    @property
    def n(self) -> int:
        """How many ticks are in the current look-back buffer."""
        return len(self._t)

    def learn_one(self, x: dict) -> None:
        t, lp = float(x["t"]), math.log(x["price"])
        volume = x.get("volume")
        lv = math.log(volume) if volume is not None and volume > 0 else None
        if self._t:
            dt = t - self._t[-1]
            if dt <= 0:
                raise ValueError("ticks must arrive in increasing time order")
            r = lp - self._lp[-1]
            for h in self.ewma_halflives:
                a = 1.0 - math.exp(-dt * LN2 / h)
                self._ewma[h] += a * (lp - self._ewma[h])
            for h in self.volatility_halflives:
                a = 1.0 - math.exp(-dt * LN2 / h)
                rate = r * r / dt
                self._var[h] = rate if h not in self._var else self._var[h] + a * (rate - self._var[h])
        else:
            self._ewma = {h: lp for h in self.ewma_halflives}
        self._t.append(t)
        self._lp.append(lp)
        self._lv.append(lv)
        cut = bisect_right(self._t, t - self._keep)
        if cut > 64 and cut > len(self._t) // 2:
            del self._t[:cut], self._lp[:cut], self._lv[:cut]

    def _at_or_before(self, t: float) -> int | None:
        i = bisect_right(self._t, t) - 1
        return i if i >= 0 else None

    def volatility(self, horizon: float) -> float:
        """Expected standard deviation of the log-return over ``horizon`` seconds (0 if unknown).

        Uses the fastest volatility EWMA, floored at half the slowest so that a quiet hour
        does not make the scale collapse.
        """
        if not self._var:
            return 0.0
        fast = self._var[self.volatility_halflives[0]]
        slow = self._var[self.volatility_halflives[-1]]
        return math.sqrt(max(fast, 0.25 * slow) * horizon)

    def transform_one(self, x: dict) -> dict:
        t, lp = float(x["t"]), math.log(x["price"])
        out: dict[str, float] = {}
        for w in self.return_windows:
            i = self._at_or_before(t - w)
            out[f"ret_{w}"] = lp - self._lp[i] if i is not None else 0.0
        for h in self.ewma_halflives:
            out[f"ewma_dev_{h}"] = lp - self._ewma.get(h, lp)
        vols = []
        for h in self.volatility_halflives:
            v = math.sqrt(self._var[h] * 3600) if self._var.get(h) else 0.0
            vols.append(v)
            out[f"vol_{h}"] = v
        out["vol_ratio"] = math.log(vols[0] / vols[-1]) if vols[0] > 0 and vols[-1] > 0 else 0.0
        volume = x.get("volume")
        i = self._at_or_before(t - 3600)
        past = self._lv[i] if i is not None else None
        out["volume_chg_3600"] = (
            math.log(volume) - past if volume is not None and volume > 0 and past is not None else 0.0
        )
        day = 2 * math.pi * (t % 86400) / 86400
        out["tod_sin"] = math.sin(day)
        out["tod_cos"] = math.cos(day)
        return out
