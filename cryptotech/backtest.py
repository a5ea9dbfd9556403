"""Backtest: the live learner fed a replayed stream as fast as it can go.

Writes the predictions whose target was reached as CSV, one row per prediction and horizon
(ISO-8601 UTC): ``coin,made_at,target_at,price,predicted,lower,upper,actual`` then
``horizon,q05,q10,q25,q50,q75,q90,q95,p_up,vol`` (quantiles are prices at ``target_at``,
``p_up`` the probability that the price at ``target_at`` is above ``price``, ``vol`` the
forecast standard deviation of the log-return over the horizon). Prints, per coin and horizon,
exactly what ``score_forecasts.py`` computes from that CSV (:func:`score_rows`: the same
EWMA-Gaussian baseline and warm-up); the HTML report is :mod:`cryptotech.report`.
"""

from __future__ import annotations

import csv
import math
import statistics
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from cryptotech.config import ModelSettings
from cryptotech.domain import QUANTILE_LEVELS, Outcome, Tick
from cryptotech.learning.learner import CoinLearner
from cryptotech.learning.scoring import interval_score, pinball

CSV_COLUMNS = ("coin", "made_at", "target_at", "price", "predicted", "lower", "upper", "actual",
               "horizon", "q05", "q10", "q25", "q50", "q75", "q90", "q95", "p_up", "vol")
WARM = 1000
"""Rows per coin and horizon left out of the scores (as ``score_forecasts.py --warm``)."""


@dataclass
class CoinResult:
    """Everything one coin's backtest produced (every horizon's outcomes, in time order)."""

    coin: str
    ticks: int = 0
    seconds: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)
    learner: CoinLearner | None = None

    def by_horizon(self) -> dict[str, list[Outcome]]:
        """The outcomes of each horizon, in the learner's horizon order."""
        out: dict[str, list[Outcome]] = {}
        if self.learner is not None:
            out = {label: [] for label in self.learner.horizons}
        for o in self.outcomes:
            out.setdefault(o.prediction.horizon, []).append(o)
        return out


def run_backtest(ticks: Iterable[Tick], settings: ModelSettings, total: int | None = None,
                 progress: bool = False) -> dict[str, CoinResult]:
    """Run one learner per coin over ``ticks`` (in time order); time spent is per coin."""
    results: dict[str, CoinResult] = {}
    clock = time.perf_counter
    for tick in tqdm(ticks, total=total, disable=not progress, unit="tick", mininterval=0.5):
        result = results.get(tick.coin)
        if result is None:
            result = results[tick.coin] = CoinResult(tick.coin, learner=CoinLearner(tick.coin, settings))
        assert result.learner is not None
        start = clock()
        _, outcomes = result.learner.process(tick)
        result.seconds += clock() - start
        result.ticks += 1
        result.outcomes.extend(outcomes)
    return results


def write_csv(results: dict[str, CoinResult], path: Path) -> int:
    """The CSV contract: one row per prediction and horizon whose target was reached."""
    order: dict[str, int] = {}
    for r in results.values():
        for label in (r.learner.horizons if r.learner else ()):
            order.setdefault(label, len(order))
    rows = sorted((o for r in results.values() for o in r.outcomes),
                  key=lambda o: (o.prediction.made_at, o.prediction.coin,
                                 order.get(o.prediction.horizon, len(order))))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for o in rows:
            p = o.prediction
            quantiles = [repr(q) for q in p.quantiles] or [""] * len(QUANTILE_LEVELS)
            writer.writerow([p.coin, _iso(p.made_at), _iso(p.target_at), repr(p.price),
                             repr(p.forecast), repr(p.lower), repr(p.upper), repr(o.actual),
                             p.horizon, *quantiles, _opt(p.p_up), _opt(p.vol)])
    return len(rows)


def _iso(dt) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def _opt(value: float | None) -> str:
    return "" if value is None else repr(value)


def score_rows(outcomes: list[Outcome], level: float = 0.9, warm: int = WARM
               ) -> dict[str, float | int | None]:
    """Score one coin's outcomes at one horizon exactly as ``score_forecasts.py`` does.

    Rows sorted by ``made_at``; the baseline is a RiskMetrics EWMA (0.94) of the squared log
    returns between consecutive rows' prices, scaled by the square root of the median horizon
    in median row spacings, Gaussian around persistence, ``P(rise) = 0.5``; the first ``warm``
    rows are scored by neither. Interval and quantile scores are in basis points of the price.
    """
    rows = sorted(outcomes, key=lambda o: o.prediction.made_at)
    if len(rows) < 2:
        return {"n": 0}
    made = [o.prediction.made_at.timestamp() for o in rows]
    step = statistics.median(b - a for a, b in zip(made, made[1:]))
    h_steps = statistics.median(o.prediction.target_at.timestamp() - t
                                for o, t in zip(rows, made)) / step
    alpha = 1.0 - level
    normal = statistics.NormalDist()
    z = normal.inv_cdf(1.0 - alpha / 2.0)
    zq = [normal.inv_cdf(tau) for tau in QUANTILE_LEVELS]
    acc: dict[str, float] = defaultdict(float)
    ew: float | None = None
    n = 0
    for i, o in enumerate(rows):
        p = o.prediction
        if i:
            r = math.log(p.price / rows[i - 1].prediction.price)
            ew = r * r if ew is None else 0.94 * ew + 0.06 * r * r
        if i < warm or not ew:
            continue
        price, y = p.price, o.actual
        sb = math.sqrt(ew * h_steps)
        n += 1
        acc["ae"] += abs(p.forecast - y)
        acc["ae_p"] += abs(price - y)
        acc["cov"] += p.lower <= y <= p.upper
        acc["cov_b"] += price * math.exp(-z * sb) <= y <= price * math.exp(z * sb)
        acc["width"] += (p.upper - p.lower) / price * 1e4
        acc["width_b"] += 2 * math.sinh(z * sb) * 1e4
        acc["is"] += interval_score(p.lower, p.upper, y, alpha) / price * 1e4
        acc["is_b"] += interval_score(price * math.exp(-z * sb), price * math.exp(z * sb), y,
                                      alpha) / price * 1e4
        for q, zt, tau in zip(p.quantiles, zq, QUANTILE_LEVELS):
            acc["qs"] += pinball(q, y, tau) / price * 1e4
            acc["qs_b"] += pinball(price * math.exp(zt * sb), y, tau) / price * 1e4
        up = 1.0 if y > price else 0.0
        if p.p_up is not None:
            acc["brier"] += (p.p_up - up) ** 2
            acc["brier_b"] += (0.5 - up) ** 2
            acc["n_pup"] += 1
        lr = math.log(y / price)
        if p.vol is not None and p.vol > 0:
            acc["nll"] += 0.5 * (math.log(2 * math.pi * p.vol ** 2) + lr * lr / p.vol ** 2)
            acc["nll_b"] += 0.5 * (math.log(2 * math.pi * sb * sb) + lr * lr / (sb * sb))
            acc["n_vol"] += 1
    if not n:
        return {"n": 0}
    return {
        "n": n,
        "skill": 1 - acc["ae"] / acc["ae_p"] if acc["ae_p"] else None,
        "coverage": acc["cov"] / n,
        "coverage_base": acc["cov_b"] / n,
        "width_bp": acc["width"] / n,
        "width_base_bp": acc["width_b"] / n,
        "is_ratio": acc["is"] / acc["is_b"],
        "qs_ratio": acc["qs"] / acc["qs_b"] if acc["qs_b"] else None,
        "brier_skill": 1 - acc["brier"] / acc["brier_b"] if acc["n_pup"] else None,
        "nll_diff": (acc["nll"] - acc["nll_b"]) / acc["n_vol"] if acc["n_vol"] else None,
    }


TABLE_COLUMNS = ("coin", "horizon", "n", "skill", "coverage", "cov. EWMA", "width bp",
                 "EWMA bp", "IS/EWMA", "QS/EWMA", "Brier skill", "NLL-EWMA", "ticks/s")


def format_table(results: dict[str, CoinResult], level: float = 0.9, warm: int = WARM) -> str:
    """Per coin and horizon, what ``score_forecasts.py`` computes from the CSV (same baseline,
    same warm-up), and the learner's speed (ticks/s, all horizons together)."""
    lines = [TABLE_COLUMNS]
    for coin in sorted(results):
        result = results[coin]
        speed = _fmt(result.ticks / result.seconds if result.seconds else None, "{:.0f}")
        for label, outcomes in result.by_horizon().items():
            s = score_rows(outcomes, level, warm)
            lines.append((
                coin, label, str(s["n"]), _fmt(s.get("skill"), "{:+.4f}"),
                _fmt(s.get("coverage"), "{:.3f}"), _fmt(s.get("coverage_base"), "{:.3f}"),
                _fmt(s.get("width_bp"), "{:.0f}"), _fmt(s.get("width_base_bp"), "{:.0f}"),
                _fmt(s.get("is_ratio"), "{:.4f}"), _fmt(s.get("qs_ratio"), "{:.4f}"),
                _fmt(s.get("brier_skill"), "{:+.4f}"), _fmt(s.get("nll_diff"), "{:+.4f}"),
                speed,
            ))
    widths = [max(len(row[i]) for row in lines) for i in range(len(TABLE_COLUMNS))]
    text = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def format_candidates(results: dict[str, CoinResult]) -> str:
    """Each expert's recent skills per horizon (exponential window of ``metrics_window``)."""
    lines = []
    for coin in sorted(results):
        learner = results[coin].learner
        if learner is None or not results[coin].outcomes:
            continue
        for label, h in learner.horizons.items():
            parts = []
            for name, m in h.metrics().items():
                if name == "persistence":
                    continue
                parts.append(f"{name} skill {_fmt(m['skill'], '{:+.4f}')} "
                             f"IS skill {_fmt(m['interval_score_skill'], '{:+.4f}')}")
            lines.append(f"{coin} {label}: " + "; ".join(parts)
                         + f" (last ~{learner.settings.metrics_window} outcomes;"
                         f" median from: {h.model_in_use})")
    return "\n".join(lines)


def _fmt(value, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else spec.format(value)


def _num(value) -> str:
    """Significant digits whatever the coin's price scale (BTC 1e5, DOGE 1e-1)."""
    return _fmt(value, "{:.4g}")
