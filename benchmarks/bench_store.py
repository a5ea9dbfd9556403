"""Section: the store. Ticks/s learned AND persisted vs learned only; checkpoints; recovery.

On real 5-minute data of two coins (BTC and ETH, the last 7 days; ``--quick``: 2 days):

* **learn only**: the engine's ``Engine.process`` path without the store, i.e. each coin's
  ``CoinLearner.process`` (the backtest);
* **learn + store**: ``Engine.process`` on a real SQLite file in a temporary folder (WAL,
  ``synchronous=NORMAL``): learning, then the tick, its prediction, outcomes and events
  committed in one transaction per tick;
* **checkpoint**: size and time of ``dumps`` + ``save_checkpoint`` per coin, default config;
* **recovery**: ``Engine.recover`` (newest checkpoint + replay of the stored ticks after it)
  against the number of ticks stored since the last checkpoint.

Run alone: ``python benchmarks/bench_store.py [--quick]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import common
from common import fmt, fmt_stat, stat

NAME = "store"
TITLE = "5. Store: ticks/s persisted, checkpoints, recovery"
COINS = ("btc", "eth")


def _ticks(ctx, days: float):
    ticks = [t for coin in COINS for t in ctx.data.window(coin, days)]
    return sorted(ticks, key=lambda t: (t.ts, t.coin))


def _settings(folder: Path, config: str = "default"):
    from cryptotech.config import Settings

    return Settings(coins={"btc": "bitcoin", "eth": "ethereum"},
                    model=common.model_settings(config),
                    store={"path": str(folder / "bench.db")})


def _engine(settings):
    from cryptotech.engine import Engine
    from cryptotech.hub import Hub
    from cryptotech.store import Store

    store = Store(settings.store.path)
    engine = Engine(settings, store, Hub(), None)
    engine.recover()
    return engine, store


def _learn_only(settings, ticks) -> float:
    from cryptotech.learning.learner import CoinLearner

    learners = {c: CoinLearner(c, settings.model) for c in COINS}
    start = time.perf_counter()
    for tick in ticks:
        learners[tick.coin].process(tick)
    return len(ticks) / (time.perf_counter() - start)


def _learn_and_store(settings, ticks) -> float:
    engine, store = _engine(settings)
    try:
        start = time.perf_counter()
        for tick in ticks:
            engine.process(tick)
        return len(ticks) / (time.perf_counter() - start)
    finally:
        engine._executor.shutdown()
        store.close()


def _recovery(folder: Path, config: str, ticks, since: list[int]) -> list[dict]:
    """Store all ticks, checkpoint at ``len - n`` for each n, time a cold ``recover``."""
    rows = []
    for n in since:
        sub = folder / f"rec{n}"
        sub.mkdir()
        settings = _settings(sub, config)
        engine, store = _engine(settings)
        cut = len(ticks) - n
        for i, tick in enumerate(ticks):
            engine.process(tick)
            if i == cut - 1:
                engine.checkpoint()
        engine._executor.shutdown()
        store.close()
        engine, store = _engine_cold(settings)
        start = time.perf_counter()
        engine.recover()
        seconds = time.perf_counter() - start
        engine._executor.shutdown()
        store.close()
        rows.append({"ticks_since_checkpoint": n, "seconds": seconds})
    return rows


def _engine_cold(settings):
    from cryptotech.engine import Engine
    from cryptotech.hub import Hub
    from cryptotech.store import Store

    store = Store(settings.store.path)
    return Engine(settings, store, Hub(), None), store


def run(ctx) -> dict:
    days = ctx.pick(full=7, quick=2)
    ticks = _ticks(ctx, days)
    tps: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for r in range(ctx.repeats):
            for config in ("default", "bayes_linear"):
                common.log(f"store: {config}, repeat {r + 1}/{ctx.repeats}, {len(ticks)} ticks")
                runs = tps.setdefault(config, {"learn": [], "persist": []})
                runs["learn"].append(_learn_only(_settings(folder, config), ticks))
                sub = folder / f"{config}-r{r}"
                sub.mkdir()
                runs["persist"].append(_learn_and_store(_settings(sub, config), ticks))
        settings = _settings(folder / "default-r0")
        engine, store = _engine(settings)
        sizes = [engine.checkpoint() for _ in range(ctx.repeats)]
        engine._executor.shutdown()
        store.close()
        since = ctx.pick(full=[0, 100, 1000, 4000], quick=[0, 100, 500])
        recovery = {}
        for config in ("default", "bayes_linear"):
            (folder / config).mkdir()
            recovery[config] = _recovery(folder / config, config, ticks, since)
    rows = []
    for config, runs in tps.items():
        ratio = stat([p / q for p, q in zip(runs["persist"], runs["learn"])])
        rows.append([config, fmt_stat(stat(runs["learn"]), "{:,.0f}"),
                     fmt_stat(stat(runs["persist"]), "{:,.0f}"), fmt_stat(ratio, "{:.2f}")])
    cp_rows = []
    for coin in COINS:
        size = stat([s[coin][0] / 1024 for s in sizes])
        secs = stat([s[coin][1] * 1000 for s in sizes])
        cp_rows.append([coin, fmt_stat(size, "{:,.0f}"), fmt_stat(secs, "{:.1f}")])
    rec_rows = [[config, str(r["ticks_since_checkpoint"]), fmt(r["seconds"], "{:.2f}"),
                 fmt(r["seconds"] / max(r["ticks_since_checkpoint"], 1) * 1e6, "{:,.0f}")
                 if r["ticks_since_checkpoint"] else "-"]
                for config, rs in recovery.items() for r in rs]
    return {
        "title": TITLE,
        "tables": [
            common.table(f"Ticks/s, {len(COINS)} coins, last {days:g} days of real 5-minute data"
                         f" ({len(ticks)} ticks)", ["candidates", "learn only (backtest) ticks/s",
                          "learn + store ticks/s", "ratio"], rows,
                         ["learn + store: Engine.process on a real SQLite file (WAL, "
                          "synchronous=NORMAL), one transaction per tick holding the tick, "
                          "its prediction, outcomes and events."]),
            common.table("Checkpoint per coin (pickle + insert, default config)",
                         ["coin", "size KiB", "ms"], cp_rows),
            common.table("Recovery (cold start: newest checkpoint + replay of stored ticks)",
                         ["candidates", "ticks since checkpoint", "seconds", "µs per replayed tick"],
                         rec_rows,
                         ["Both coins' learners are recovered; the ticks since the checkpoint "
                          "are counted over both coins."]),
        ],
        "notes": [],
        "data": {"days": days, "ticks": len(ticks), "ticks_per_s": tps, "checkpoints": sizes,
                 "recovery": recovery},
    }


if __name__ == "__main__":
    sys.exit(common.main_single(sys.modules[__name__]))
