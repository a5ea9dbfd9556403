"""Section 2, cost: backtest throughput per core and the memory of one coin's learner.

* **throughput**: ``CoinLearner.process`` over one coin's real 5-minute series (BTC, last 14
  days; ``--quick``: last 2 days), CPU time (``time.process_time``, so other processes on the
  machine do not count), for the default config (every configured horizon: 15m, 1h, 4h, 24h)
  and beside it the same with one horizon, and with the point candidate ``bayes_linear``
  (the value-per-cost comparison behind the default of no candidate). Target of issue 10: at
  least 2,000 ticks/s per core for all four horizons together.
* **memory**: one default learner after a week of 1-minute ticks (a random walk at 60 s
  cadence, 10,080 ticks: 1,440 predictions wait for their 24 h label at any time), measured
  as the pickled checkpoint and as ``tracemalloc`` of a freshly unpickled copy. Target: at
  most 1 MB per coin learner (all horizons).

Run alone: ``python benchmarks/bench_engine.py [--quick]``.
"""

from __future__ import annotations

import gc
import math
import random
import sys
import time
from datetime import datetime, timedelta, timezone

import common
from common import fmt_stat, stat

NAME = "engine"
TITLE = "2. Cost: backtest throughput per core and memory per coin learner"
COIN = "btc"
CONFIGS = {
    "default": {},
    "default, 1h only": {"horizons": ["1h"]},
    "+ bayes_linear": {"candidates": ["bayes_linear"]},
}


def slice_days(ctx) -> float:
    return ctx.pick(full=14, quick=2)


def engine_cpu(ticks, settings) -> tuple[float, int]:
    """CPU seconds of ``process`` over ``ticks`` (a fresh learner) and outcomes settled."""
    from cryptotech.learning.learner import CoinLearner

    learner = CoinLearner(ticks[0].coin, settings)
    gc.collect()
    c0 = time.process_time()
    n = 0
    for tick in ticks:
        n += len(learner.process(tick)[1])
    return time.process_time() - c0, n


def measure(ctx, configs=None) -> dict:
    """CPU per tick per config over ``ctx.repeats`` repeats (memoised; other sections use
    ``measure(ctx, ["default"])["default"]["engine_cpu_us_per_tick"]``)."""
    from cryptotech.config import ModelSettings

    configs = list(configs or CONFIGS)
    days = slice_days(ctx)
    key = ("throughput", days, ctx.repeats)
    done = ctx.cache.setdefault(key, {})
    todo = [c for c in configs if c not in done]
    if not todo:
        return done
    coin = COIN if COIN in ctx.data.coins else ctx.data.coins[0]
    ticks = ctx.data.window(coin, days)
    raw: dict[str, list[float]] = {c: [] for c in todo}
    outcomes = {}
    for rep in range(ctx.repeats):
        for config in todo:
            common.log(f"throughput: repeat {rep + 1}/{ctx.repeats}, {config} on {coin} "
                       f"({len(ticks)} ticks)")
            cpu, outcomes[config] = engine_cpu(ticks, ModelSettings(**CONFIGS[config]))
            raw[config].append(cpu)
    for config, cpus in raw.items():
        n = len(ticks)
        done[config] = {
            "coin": coin, "days": days, "ticks": n, "outcomes": outcomes[config],
            "engine_ticks_per_s": stat(n / c for c in cpus),
            "engine_cpu_us_per_tick": stat(c / n * 1e6 for c in cpus),
            "raw_cpu_seconds": cpus,
        }
    return done


def week_of_minutes(seed: int = 7) -> list:
    """A week of 1-minute ticks: a random walk with a crypto-like volatility."""
    from cryptotech.domain import Tick

    rng = random.Random(seed)
    start = datetime(2025, 6, 2, tzinfo=timezone.utc)
    lp, out = math.log(60_000.0), []
    for i in range(7 * 24 * 60):
        out.append(Tick("btc", start + timedelta(minutes=i), math.exp(lp), volume_24h=1e9))
        lp += rng.gauss(0.0, 0.0008)
    return out


def memory(ctx) -> dict:
    from cryptotech.config import ModelSettings
    from cryptotech.learning.learner import CoinLearner, dumps

    ticks = week_of_minutes()
    learner = CoinLearner("btc", ModelSettings())
    for tick in ticks:
        learner.process(tick)
    size = common.state_size(learner)
    return {"ticks": len(ticks), "pending": learner.pending_count,
            "pickle_kb": len(dumps(learner)) / 1024, "memory_kb": size["memory_mb"] * 1024}


def run(ctx) -> dict:
    results = measure(ctx)
    rows = []
    for config, r in results.items():
        rows.append([config, fmt_stat(r["engine_ticks_per_s"], "{:,.0f}"),
                     fmt_stat(r["engine_cpu_us_per_tick"], "{:.0f}")])
    any_r = next(iter(results.values()))
    mem = memory(ctx)
    tables = [
        common.table(
            "Backtest throughput per core (CPU time of CoinLearner.process)",
            ["config", "ticks/s per core", "µs CPU per tick"], rows,
            [f"{any_r['coin'].upper()}, last {any_r['days']:g} days of 5-minute data: "
             f"{any_r['ticks']} ticks; a fresh learner each repeat; median (min–max) over "
             "the repeats.",
             "default = config.toml: horizons 15m, 1h, 4h, 24h, no point candidate. "
             "Target: ≥ 2,000 ticks/s per core for all four horizons together."]),
        common.table(
            "Memory of one coin's learner (default config, all four horizons)",
            ["after", "predictions waiting", "checkpoint (pickle)", "in memory (tracemalloc)"],
            [[f"a week of 1-minute ticks ({mem['ticks']:,})", f"{mem['pending']:,}",
              f"{mem['pickle_kb']:,.0f} KiB", f"{mem['memory_kb']:,.0f} KiB"]],
            ["Target: ≤ 1 MB per coin learner (all horizons), so 10,000 coins fit in 10 GB."]),
    ]
    return {"title": TITLE, "notes": [], "tables": tables,
            "data": {"by_config": results, "memory": mem}}


if __name__ == "__main__":
    sys.exit(common.main_single(sys.modules[__name__]))
