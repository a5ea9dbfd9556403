"""Section 2, ceiling: backtest throughput beside a bare River loop over the same features.

On one coin's series (BTC, last 14 days; ``--quick``: last 2 days):

* **engine**: ``cryptotech.backtest.run_backtest`` with the default config and with each
  candidate alone: everything the learner does per tick (validation, delayed labels,
  features, every candidate's predict and learn, conformal intervals, selection, metrics).
* **ceiling**: the feature dicts and normalised labels are computed once, up front, with the
  engine's own ``TickFeatures`` and label rule; then only a loop of ``predict_one`` +
  ``learn_one`` of the same River pipelines (``make_candidate``) over those pairs is timed.

The ratio engine / ceiling, per repeat, says how much of the engine's time is the models
themselves. Engine and ceiling alternate inside each repeat, so background load hits both.

Run alone: ``python benchmarks/bench_engine.py [--quick]``.
"""

from __future__ import annotations

import gc
import math
import sys
import time
from bisect import bisect_left

import common
from common import CONFIGS, fmt_stat, stat

NAME = "engine"
TITLE = "2. Throughput and its ceiling (one coin, backtest vs bare River loop)"
COIN = "btc"


def slice_days(ctx) -> float:
    return ctx.pick(full=14, quick=2)


def precompute(ticks, settings) -> list[tuple[dict, float]]:
    """(features, normalised label) pairs, exactly as the learner forms them.

    Features: ``TickFeatures.learn_one`` then ``transform_one`` on each tick; a forecast is
    made only when the volatility scale is positive. Label: the log price at ``t + H``,
    interpolated between the ticks around it, none if neither is within the tolerance;
    normalised by the volatility scale at ``t`` and clipped, as in ``CoinLearner._learn``.
    """
    from cryptotech.learning.features import TickFeatures
    from cryptotech.learning.models import LABEL_CLIP

    horizon = settings.horizon.total_seconds()
    tolerance = settings.label_tolerance.total_seconds()
    features = TickFeatures()
    times = [t.epoch for t in ticks]
    log_prices = [math.log(t.price) for t in ticks]
    made = []
    for tick, t, lp in zip(ticks, times, log_prices):
        x_in = {"t": t, "price": tick.price, "volume": tick.volume_24h}
        features.learn_one(x_in)
        x = features.transform_one(x_in)
        sigma = features.volatility(horizon)
        if sigma > 0:
            made.append((t, lp, sigma, x))
    pairs = []
    for t, lp, sigma, x in made:
        target = t + horizon
        i = bisect_left(times, target)
        if i >= len(times) or i == 0:
            continue
        # the learner settles on the first tick at or after the target, with the one before
        t1, t0 = times[i], times[i - 1]
        if min(target - t0, t1 - target) > tolerance:
            continue
        w = (target - t0) / (t1 - t0)
        label = log_prices[i - 1] + w * (log_prices[i] - log_prices[i - 1])
        z = max(-LABEL_CLIP, min(LABEL_CLIP, (label - lp) / sigma))
        pairs.append((x, z))
    return pairs


def bare_loop(pairs, names: list[str], seed: int, arf_trees: int) -> tuple[float, float]:
    """Wall and CPU seconds of predict_one + learn_one of fresh candidates over ``pairs``."""
    from cryptotech.learning.models import make_candidate

    models = [make_candidate(name, seed, arf_trees) for name in names]
    gc.collect()
    w0, c0 = time.perf_counter(), time.process_time()
    for x, z in pairs:
        for model in models:
            model.predict_one(x)
            model.learn_one(x, z)
    return time.perf_counter() - w0, time.process_time() - c0


def engine_loop(ticks, settings) -> tuple[float, float, int]:
    """Wall seconds as the backtest counts them (time inside ``process``), CPU seconds of the
    whole call, and the number of outcomes."""
    from cryptotech.backtest import run_backtest

    gc.collect()
    c0 = time.process_time()
    results = run_backtest(ticks, settings)
    cpu = time.process_time() - c0
    r = results[ticks[0].coin]
    return r.seconds, cpu, len(r.outcomes)


def measure(ctx, configs=None) -> dict:
    """Engine and ceiling timings per config over ``ctx.repeats`` repeats (memoised)."""
    configs = list(configs or CONFIGS)
    days = slice_days(ctx)
    key = ("throughput", days, ctx.repeats)
    done = ctx.cache.setdefault(key, {})
    todo = [c for c in configs if c not in done]
    if not todo:
        return done
    coin = COIN if COIN in ctx.data.coins else ctx.data.coins[0]
    ticks = ctx.data.window(coin, days)
    settings = common.model_settings("default")
    pairs = precompute(ticks, settings)
    raw = {c: {"engine_wall": [], "engine_cpu": [], "bare_wall": [], "bare_cpu": [],
               "outcomes": None} for c in todo}
    budget = common.Budget(ctx.pick(full=1800, quick=90))
    for rep in range(ctx.repeats):
        for config in todo:
            common.log(f"throughput: repeat {rep + 1}/{ctx.repeats}, {config} on {coin} "
                       f"({len(ticks)} ticks)")
            ew, ec, n_out = engine_loop(ticks, common.model_settings(config))
            bw, bc = bare_loop(pairs, CONFIGS[config], settings.seed, settings.arf_trees)
            r = raw[config]
            r["engine_wall"].append(ew)
            r["engine_cpu"].append(ec)
            r["bare_wall"].append(bw)
            r["bare_cpu"].append(bc)
            r["outcomes"] = n_out
        if budget.over() and rep + 1 < ctx.repeats:
            common.log(f"throughput: time budget spent after {rep + 1} repeat(s)")
            break
    for config, r in raw.items():
        n_ticks, n_pairs = len(ticks), len(pairs)
        done[config] = {
            "coin": coin, "days": days, "ticks": n_ticks, "pairs": n_pairs,
            "engine_outcomes": r["outcomes"],
            "engine_ticks_per_s": stat(n_ticks / w for w in r["engine_wall"]),
            "engine_us_per_tick": stat(w / n_ticks * 1e6 for w in r["engine_wall"]),
            "engine_cpu_us_per_tick": stat(c / n_ticks * 1e6 for c in r["engine_cpu"]),
            "ceiling_ticks_per_s": stat(n_pairs / w for w in r["bare_wall"]),
            "ceiling_us_per_tick": stat(w / n_pairs * 1e6 for w in r["bare_wall"]),
            "ratio": stat((n_ticks / ew) / (n_pairs / bw)
                          for ew, bw in zip(r["engine_wall"], r["bare_wall"])),
            "raw_seconds": r,
        }
    return done


def run(ctx) -> dict:
    results = measure(ctx)
    rows = []
    for config, r in results.items():
        rows.append([
            config if config == "default" else f"{config} alone",
            fmt_stat(r["engine_ticks_per_s"], "{:.0f}"),
            fmt_stat(r["engine_us_per_tick"], "{:.0f}"),
            fmt_stat(r["ceiling_ticks_per_s"], "{:.0f}"),
            fmt_stat(r["ceiling_us_per_tick"], "{:.0f}"),
            fmt_stat(r["ratio"], "{:.2f}"),
        ])
    any_r = next(iter(results.values()))
    notes = [
        f"{any_r['coin'].upper()}, last {any_r['days']:g} days: {any_r['ticks']} ticks; "
        f"{any_r['pairs']} (features, label) pairs for the bare loop; the engine settled "
        f"{any_r['engine_outcomes']} labels (should equal the pairs).",
        "Each cell: median (min–max) over the repeats; wall time (time.perf_counter).",
        "engine ticks/s = ticks / time inside CoinLearner.process, as `cryptotech backtest` "
        "reports it. ceiling ticks/s = pairs / time of the bare loop (one predict_one and one "
        "learn_one per candidate per pair). ratio = engine / ceiling, per repeat: 1.0 would "
        "mean the engine adds nothing around the models.",
        "The bare loop learns each pair at once; the engine learns it one hour later "
        "(delayed label). Same calls, same count, different order.",
    ]
    return {"title": TITLE, "notes": [], "data": {"by_config": results},
            "tables": [common.table(
                "Backtest throughput vs the bare River loop (same features, same run)",
                ["config", "engine ticks/s", "engine µs/tick", "ceiling ticks/s",
                 "ceiling µs/pair", "engine / ceiling"], rows, notes)]}


if __name__ == "__main__":
    sys.exit(common.main_single(sys.modules[__name__]))
