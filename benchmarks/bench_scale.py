"""Section 4, scale on one process: CPU per poll and memory as the number of coins grows.

A live engine polls every 60 s and gets one tick per coin. Here N coins (10, 100, 1,000;
``--quick``: 10, 100) are replayed as if so polled. There are only six real series, so coin
``k`` is synthesised from real series ``k mod 6`` starting ``k div 6`` strides later: real
prices, but copies of the same six markets at shifted times. The rows are re-spaced to 60 s
(one row per poll) so that label delays (60 polls for a 1 h horizon), pending queues and
look-back buffers have the sizes a 60 s poll gives.

Each N runs in its own child process (so its peak memory is its own): build N learners
(default config), warm up for ``WARMUP`` polls (past the horizon, so every later tick also
settles a label and every candidate learns), then time ``POLLS`` polls with
``time.process_time`` (CPU of the process) and ``time.perf_counter``. Memory: peak RSS
(``VmHWM``) minus the RSS before the learners were built.

From the largest N, the per-coin CPU cost gives, by linear extrapolation, the largest number of
coins one process could handle inside a 60 s poll. Learners keep growing after warm-up (trees,
their split statistics, 1.5 days of look-back), so capacity is also extrapolated from mature
learners: CPU per tick from section 2 (learners days old) and memory from the state size of one
learner as it ages through the accuracy window (section 1). All are extrapolations, and say so.

Run alone: ``python benchmarks/bench_scale.py [--quick]``.
Worker (internal): ``python benchmarks/bench_scale.py --worker N WARMUP POLLS BUDGET_S``.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path

import common
from common import fmt, fmt_stat, stat

NAME = "scale"
TITLE = "4. Scale on one process (60 s poll, default config)"
POLL_S = 60
WARMUP = 65  # polls: the horizon is 60 polls, so labels flow from poll 61 on
T0 = 1_748_736_000  # 2025-06-01T00:00Z, the synthetic poll clock's origin


def plan(ctx) -> list[tuple[int, int, int]]:
    """(coins, measured polls, time budget in seconds) per step."""
    if ctx.quick:
        return [(10, 5, 30), (100, 3, 60)]
    return [(10, 20, 120), (100, 10, 300), (1000, 5, 900)]


# -- the child process ------------------------------------------------------------------------


def _rss_mb() -> tuple[float | None, float | None]:
    """(current, peak) resident memory of this process in MB, from /proc or getrusage."""
    try:
        fields = {}
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
        return fields.get("VmRSS"), fields.get("VmHWM")
    except OSError:
        try:
            import resource

            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            return None, peak / 1024 if sys.platform != "darwin" else peak / 1024**2
        except ImportError:
            return None, None


def worker(n_coins: int, warmup: int, polls: int, budget_s: float) -> dict:
    from cryptotech.domain import Tick, from_epoch
    from cryptotech.learning.learner import CoinLearner

    budget = common.Budget(budget_s)
    data = common.Dataset()
    series = []
    for coin in data.coins:
        ticks = data.ticks(coin)
        series.append(([t.price for t in ticks], [t.volume_24h for t in ticks], coin))
    needed = warmup + polls
    n_series = len(series)
    slots = math.ceil(n_coins / n_series)
    coins = []
    for k in range(n_coins):
        prices, volumes, base = series[k % n_series]
        stride = max(1, (len(prices) - needed) // max(1, slots))
        offset = (k // n_series) * stride
        coins.append((f"c{k:04d}", prices, volumes, offset, base))
    settings = common.model_settings("default")
    mem_limit = (common.memory_total_mb() or 8192) * 0.6
    rss0, _ = _rss_mb()
    c0 = time.process_time()
    learners = [CoinLearner(name, settings) for name, *_ in coins]
    build_cpu = time.process_time() - c0

    def poll_ticks(p: int) -> list:
        t = from_epoch(T0 + POLL_S * p)
        return [Tick(coin=name, ts=t, price=prices[offset + p], volume_24h=volumes[offset + p])
                for name, prices, volumes, offset, _ in coins]

    def one_poll(p: int) -> tuple[float, float]:
        ticks = poll_ticks(p)
        w0, c0 = time.perf_counter(), time.process_time()
        for learner, tick in zip(learners, ticks):
            learner.process(tick)
        return time.process_time() - c0, time.perf_counter() - w0

    stopped = None
    warm = 0
    warm_cpu = 0.0
    while warm < warmup:
        warm_cpu += one_poll(warm)[0]
        warm += 1
        if budget.elapsed() > budget_s * 0.7:
            stopped = f"warm-up stopped by its time budget after {warm} polls"
            break
        if (_rss_mb()[0] or 0) > mem_limit:
            stopped = f"warm-up stopped at the memory limit after {warm} polls"
            break
    cpu, wall = [], []
    if stopped is None:
        for p in range(warm, warm + polls):
            c, w = one_poll(p)
            cpu.append(c)
            wall.append(w)
            if budget.over():
                stopped = f"measurement stopped by its time budget after {len(cpu)} polls"
                break
    rss1, peak = _rss_mb()
    labelled = sum(lr.scores["published"].n_total for lr in learners)
    return {"coins": n_coins, "warmup_polls": warm, "measured_polls": len(cpu),
            "cpu_per_poll_s": cpu, "wall_per_poll_s": wall, "warmup_cpu_s": warm_cpu,
            "build_cpu_s": build_cpu, "rss_before_mb": rss0, "rss_end_mb": rss1,
            "peak_rss_mb": peak, "outcomes": labelled, "stopped": stopped,
            "bases": sorted({c[4] for c in coins})}


# -- the section ------------------------------------------------------------------------------


def mature_state(ctx) -> dict:
    """State size of one default learner as it ages, up to the end of the accuracy window
    (reused from section 1 when it ran)."""
    import bench_accuracy

    days = bench_accuracy.window_days(ctx)
    coin = "btc" if "btc" in ctx.data.coins else ctx.data.coins[0]
    run = common.engine_run(ctx, coin, "default", days, size_marks=bench_accuracy.SIZE_MARKS)
    return {"coin": coin, "days": days, **run["sizes"][float(days)],
            "by_days": {f"{d:g}": v for d, v in sorted(run["sizes"].items())}}


def run(ctx) -> dict:
    steps = []
    for n, polls, budget_s in plan(ctx):
        common.log(f"scale: {n} coins, {WARMUP} warm-up polls + {polls} measured "
                   f"(child process, budget {budget_s} s)")
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(n), str(WARMUP),
               str(polls), str(budget_s)]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=budget_s + 120)
        except subprocess.TimeoutExpired:
            steps.append({"coins": n, "error": f"child killed after {budget_s + 120} s"})
            continue
        if proc.returncode != 0:
            steps.append({"coins": n, "error": proc.stderr.strip()[-2000:]})
            continue
        steps.append(json.loads(proc.stdout.strip().splitlines()[-1]))

    rows, data_steps = [], []
    best = None
    for s in steps:
        if "error" in s:
            rows.append([f"{s['coins']:,}", "failed", "-", "-", "-", "-", "-", "-"])
            data_steps.append(s)
            continue
        cpu = stat(s["cpu_per_poll_s"])
        wall = stat(s["wall_per_poll_s"])
        per_tick = stat(c / s["coins"] * 1e6 for c in s["cpu_per_poll_s"])
        grown = (s["peak_rss_mb"] - s["rss_before_mb"]) if s["peak_rss_mb"] and s["rss_before_mb"] else None
        max_coins = (math.floor(POLL_S / (cpu["median"] / s["coins"]))
                     if cpu["median"] else None)
        s.update({"cpu_per_poll": cpu, "wall_per_poll": wall, "cpu_us_per_tick": per_tick,
                  "memory_grown_mb": grown, "max_coins_cpu_extrapolated": max_coins})
        data_steps.append(s)
        if cpu["median"]:
            best = s
        rows.append([
            f"{s['coins']:,}",
            f"{s['warmup_polls']} + {s['measured_polls']}",
            fmt_stat(cpu, "{:.3f}"), fmt_stat(wall, "{:.3f}"), fmt_stat(per_tick, "{:.0f}"),
            fmt(s["peak_rss_mb"], "{:.0f}"), fmt(grown, "{:.0f}"),
            fmt(grown / s["coins"] if grown is not None else None, "{:.2f}"),
        ])
    notes = [
        "Coins: the real 5-minute series reused (coin k = series k mod 6, started k div 6 "
        "strides later), re-spaced to one row per 60 s poll: real prices, synthetic coins.",
        f"warm-up + measured polls: {WARMUP} warm-up polls (the 1 h horizon is 60 polls, so "
        "every measured tick also settles a label); CPU/wall per poll: median (min–max) "
        "over the measured polls of one run, learning only (no store, API or network).",
        "peak RSS: the child process's VmHWM; grown = peak − RSS before the learners "
        "were built (interpreter, libraries and data excluded). Young learners: see the "
        "capacity table for mature ones.",
    ]
    common.log("scale: state size of one learner as it ages")
    mature = mature_state(ctx)
    import bench_engine

    eng = bench_engine.measure(ctx, ["default"])["default"]
    mature_cpu_us = eng["engine_cpu_us_per_tick"]["median"]
    total_mb = common.memory_total_mb()
    cap_rows = []
    max_young = best["max_coins_cpu_extrapolated"] if best else None
    if best:
        cap_rows.append([
            f"CPU, learners after {best['warmup_polls']} polls (measured at "
            f"{best['coins']:,} coins)",
            f"{best['cpu_us_per_tick']['median']:.0f} µs CPU per tick",
            f"{max_young:,}"])
    max_mature = math.floor(POLL_S / (mature_cpu_us / 1e6)) if mature_cpu_us else None
    cap_rows.append([
        f"CPU, learners after {eng['days']:g} days ({eng['coin'].upper()}, section 2)",
        f"{fmt(mature_cpu_us, '{:.0f}')} µs CPU per tick", fmt(max_mature, "{:,}")])
    max_mem = (math.floor(total_mb * 0.8 / mature["memory_mb"])
               if total_mb and mature["memory_mb"] else None)
    cap_rows.append([
        f"memory, learner after {mature['days']:g} days ({mature['coin'].upper()}), "
        f"80 % of {total_mb / 1024:.0f} GB" if total_mb else "memory",
        f"{mature['memory_mb']:.1f} MB per coin", fmt(max_mem, "{:,}")])
    growth = ", ".join(f"{d} d: {v['memory_mb']:.1f} MB" for d, v in mature["by_days"].items())
    cap_notes = [
        f"All three are linear extrapolations (coins = {POLL_S} s / CPU per tick, or "
        "memory / memory per coin), not measurements at that size; learning only, one core "
        "(one Python process uses one core for this work), no store, API or network.",
        f"State of one learner as it ages ({mature['coin'].upper()}, default config, "
        f"in memory after unpickling, tracemalloc): {growth}. Growth beyond "
        f"{mature['days']:g} days was not measured.",
    ]
    summary = []
    capacity = [c for c in (max_mature, max_mem) if c]
    if capacity:
        summary.append(
            f"Capacity of one process at a {POLL_S} s poll (extrapolated): about "
            f"{min(capacity):,} coins with mature learners, bounded by "
            f"{'memory' if max_mem and max_mem <= (max_mature or max_mem) else 'CPU'}.")
    return {"title": TITLE,
            "tables": [common.table(
                "CPU per 60 s poll (one tick per coin) and memory as coins grow",
                ["coins", "warm-up + measured polls", "CPU s per poll", "wall s per poll",
                 "CPU µs per tick", "peak RSS MB", "grown MB", "MB per coin"], rows,
                notes + [s for s in (st.get("stopped") for st in data_steps) if s]),
                common.table("Extrapolated capacity of one process (60 s poll)",
                             ["bound", "cost", "max coins"], cap_rows, cap_notes)],
            "notes": summary,
            "data": {"poll_s": POLL_S, "warmup_polls": WARMUP, "steps": data_steps,
                     "mature_state": mature,
                     "max_coins_cpu_young_extrapolated": max_young,
                     "max_coins_cpu_mature_extrapolated": max_mature,
                     "max_coins_memory_extrapolated": max_mem}}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        n, warmup, polls, budget = sys.argv[2:6]
        print(json.dumps(common.clean(worker(int(n), int(warmup), int(polls), float(budget)))))
        sys.exit(0)
    sys.exit(common.main_single(sys.modules[__name__]))
