"""Backtest: the live learner fed a replayed stream as fast as it can go.

Writes the predictions whose target was reached as CSV
(``coin,made_at,target_at,price,predicted,lower,upper,actual``, ISO-8601 UTC), prints a
per-coin table beside persistence (the HTML report is :mod:`cryptotech.report`).
"""

from __future__ import annotations

import csv
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from cryptotech.config import ModelSettings
from cryptotech.domain import Outcome, Tick
from cryptotech.learning.learner import CoinLearner

CSV_COLUMNS = ("coin", "made_at", "target_at", "price", "predicted", "lower", "upper", "actual")


@dataclass
class CoinResult:
    """Everything one coin's backtest produced."""

    coin: str
    ticks: int = 0
    seconds: float = 0.0
    outcomes: list[Outcome] = field(default_factory=list)
    learner: CoinLearner | None = None

    def summary(self) -> dict[str, float | int | str | None]:
        """Accuracy over all outcomes of the run, beside persistence."""
        rows = self.outcomes
        n = len(rows)
        out: dict[str, float | int | str | None] = {"coin": self.coin, "n": n}
        if not n:
            return out | {"ticks_per_s": self.ticks / self.seconds if self.seconds else None}
        mae = sum(abs(o.error) for o in rows) / n
        mae_p = sum(abs(o.prediction.price - o.actual) for o in rows) / n
        moved = [o for o in rows if o.prediction.forecast != o.prediction.price
                 and o.actual != o.prediction.price]
        hits = [(o.prediction.forecast > o.prediction.price) == (o.actual > o.prediction.price)
                for o in moved]
        return out | {
            "mae": mae,
            "mae_persistence": mae_p,
            "skill": 1.0 - mae / mae_p if mae_p else None,
            "direction_hit_rate": sum(hits) / len(hits) if hits else None,
            "direction_n": len(hits),
            "coverage": sum(o.covered for o in rows) / n,
            "mean_width_bps": sum((o.prediction.upper - o.prediction.lower) / o.prediction.price
                                  for o in rows) / n * 1e4,
            "ticks_per_s": self.ticks / self.seconds if self.seconds else None,
        }


def run_backtest(ticks: Iterable[Tick], settings: ModelSettings, total: int | None = None,
                 progress: bool = False) -> dict[str, CoinResult]:
    """Run one learner per coin over ``ticks`` (in time order); time spent is per coin."""
    results: dict[str, CoinResult] = {}
    clock = time.perf_counter
    for tick in tqdm(ticks, total=total, disable=not progress, unit="tick", mininterval=0.5):
        result = results.get(tick.coin)
        if result is None:
            result = results[tick.coin] = CoinResult(tick.coin, learner=CoinLearner(tick.coin, settings))
        start = clock()
        _, outcomes = result.learner.process(tick)
        result.seconds += clock() - start
        result.ticks += 1
        result.outcomes.extend(outcomes)
    return results


def write_csv(results: dict[str, CoinResult], path: Path) -> int:
    """The CSV contract: one row per prediction whose target was reached. Returns rows."""
    rows = sorted((o for r in results.values() for o in r.outcomes),
                  key=lambda o: (o.prediction.made_at, o.prediction.coin))
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(CSV_COLUMNS)
        for o in rows:
            p = o.prediction
            writer.writerow([p.coin, _iso(p.made_at), _iso(p.target_at), repr(p.price),
                             repr(p.forecast), repr(p.lower), repr(p.upper), repr(o.actual)])
    return len(rows)


def _iso(dt) -> str:
    return dt.isoformat().replace("+00:00", "Z")


def format_table(results: dict[str, CoinResult]) -> str:
    """The per-coin table printed at the end of a backtest."""
    header = ("coin", "n", "MAE", "MAE persist.", "skill", "dir. hit", "coverage",
              "width bps", "ticks/s")
    lines = [header]
    for coin in sorted(results):
        s = results[coin].summary()
        lines.append((
            coin, str(s["n"]), _num(s.get("mae")), _num(s.get("mae_persistence")),
            _fmt(s.get("skill"), "{:+.4f}"), _fmt(s.get("direction_hit_rate"), "{:.3f}"),
            _fmt(s.get("coverage"), "{:.3f}"), _fmt(s.get("mean_width_bps"), "{:.0f}"),
            _fmt(s.get("ticks_per_s"), "{:.0f}"),
        ))
    widths = [max(len(row[i]) for row in lines) for i in range(len(header))]
    text = ["  ".join(cell.rjust(w) for cell, w in zip(row, widths)) for row in lines]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def format_candidates(results: dict[str, CoinResult]) -> str:
    """Each candidate's rolling skill and hit rate (last ``metrics_window`` outcomes)."""
    lines = []
    for coin in sorted(results):
        learner = results[coin].learner
        if learner is None or not results[coin].outcomes:
            continue
        parts = []
        for name, m in learner.metrics().items():
            if name in ("published", "persistence"):
                continue
            parts.append(f"{name} skill {_fmt(m['skill'], '{:+.4f}')} "
                         f"hit {_fmt(m['direction_hit_rate'], '{:.3f}')}")
        lines.append(f"{coin}: " + "; ".join(parts)
                     + f" (last {learner.settings.metrics_window} outcomes;"
                     f" published now: {learner.model_in_use})")
    return "\n".join(lines)


def _fmt(value, spec: str) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else spec.format(value)


def _num(value) -> str:
    """Significant digits whatever the coin's price scale (BTC 1e5, DOGE 1e-1)."""
    return _fmt(value, "{:.4g}")
