"""Ticks/s stored on PostgreSQL vs SQLite: ``commit_tick`` alone, learning excluded.

The bundled real 5-minute data of two coins (btc, eth) goes through the learners first
(default horizons 15m, 1h, 4h, 24h; persistence and EWMA experts only, no point candidates),
so each tick carries its four forecasts and the outcomes it settles. Then the same sequence
of ``commit_tick`` calls (one transaction per tick: tick, events, predictions, outcomes) is
timed on a SQLite file in a temporary folder (WAL, ``synchronous=NORMAL``) and on a fresh
PostgreSQL database (dropped afterwards; default server ``postgresql://postgres@127.0.0.1:5432``,
or ``--server URL``). Also timed: reading every event back (``events_after``, 10,000 a page).

Run: ``python benchmarks/bench_pgstore.py [--ticks N] [--server URL]``. Figures only, no
assertions; the machine is shared, so compare the two backends within one run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit


def workload(n: int):
    from cryptotech.config import ModelSettings
    from cryptotech.learning.learner import CoinLearner
    from cryptotech.sources.replay import Replay, bundled_inputs

    settings = ModelSettings(candidates=[], horizons=["15m", "1h", "4h", "24h"])
    learners: dict = {}
    out = []
    for tick in Replay(bundled_inputs(["btc", "eth"])):
        learner = learners.setdefault(tick.coin, CoinLearner(tick.coin, settings))
        out.append((tick, *learner.process(tick)))
        if len(out) >= n:
            break
    return out


def timed(store, work) -> dict:
    lat = []
    start = time.perf_counter()
    for tick, predictions, outcomes in work:
        t0 = time.perf_counter()
        store.commit_tick(tick, predictions, outcomes)
        lat.append(time.perf_counter() - t0)
    total = time.perf_counter() - start
    t0 = time.perf_counter()
    last, read = 0, 0
    while batch := store.events_after(last, limit=10_000):
        last, read = batch[-1].id, read + len(batch)
    reading = time.perf_counter() - t0
    lat.sort()
    return {"ticks/s": len(work) / total, "p50 ms": 1e3 * statistics.median(lat),
            "p99 ms": 1e3 * lat[int(0.99 * (len(lat) - 1))], "events": read,
            "events read/s": read / reading}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ticks", type=int, default=4000)
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()

    import psycopg

    from cryptotech.pgstore import PostgresStore
    from cryptotech.store import Store

    work = workload(args.ticks)
    rows = {}
    with tempfile.TemporaryDirectory() as folder, Store(Path(folder) / "bench.db") as lite:
        rows["SQLite (WAL, synchronous=NORMAL)"] = timed(lite, work)
    name = f"cryptotech_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(args.server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = urlunsplit(urlsplit(args.server)._replace(path=f"/{name}"))
        with PostgresStore(url) as pg:
            rows["PostgreSQL (localhost, psycopg 3 pool)"] = timed(pg, work)
    finally:
        with psycopg.connect(args.server, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    print(f"{len(work)} ticks of btc and eth, 4 horizons, "
          f"{sum(len(p) for _, p, _ in work)} predictions, {sum(len(o) for *_, o in work)} outcomes")
    print(f"{'backend':40} {'ticks/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'events read/s':>14}")
    for backend, r in rows.items():
        print(f"{backend:40} {r['ticks/s']:9.0f} {r['p50 ms']:8.2f} {r['p99 ms']:8.2f} "
              f"{r['events read/s']:14.0f}")


if __name__ == "__main__":
    main()
