"""Shared test helpers: real-data fixtures, synthetic tick streams, a live uvicorn, engine runs
and the real ``cryptotech`` process (also used by the reliability suite, ``tests/reliability``).
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from cryptotech.config import ModelSettings
from cryptotech.domain import Tick

FIXTURES = Path(__file__).parent / "fixtures"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "reliability: the short reliability suite of issue 7 (tests/reliability); "
        "the full one is `python benchmarks/reliability.py`")


START = datetime(2025, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


def model_settings(**changes) -> ModelSettings:
    """Fast model settings for tests (linear candidate and the 1 h horizon only unless asked)."""
    base: dict = {"candidates": ["bayes_linear"], "horizons": ["1h"]}
    base.update(changes)
    return ModelSettings(**base)


def random_walk(n: int, coin: str = "btc", step: timedelta = timedelta(minutes=5),
                sigma: float = 0.002, seed: int = 1, price: float = 100.0,
                drift_fn=None) -> list[Tick]:
    """Geometric random walk with known per-step log-return noise ``sigma``."""
    rng = random.Random(seed)
    ticks, lp = [], math.log(price)
    for i in range(n):
        ticks.append(Tick(coin=coin, ts=START + i * step, price=math.exp(lp), volume_24h=1e6))
        r = rng.gauss(0.0, sigma)
        if drift_fn is not None:
            r += drift_fn(ticks)
        lp += r
    return ticks


# -- virtual time for the sources' waits ----------------------------------------------------


class VirtualClock:
    """Time that moves only when a source waits: ``sleep`` records the wait and returns at once.

    Pass ``**clock.source_options()`` to a source (``now``, ``monotonic``, ``sleep``) and assert
    on ``clock.waits`` (every wait asked for, in order) instead of on wall-clock windows.
    ``advance`` moves time as if work took that long. With ``hold_after=n`` the n-th wait
    never ends (until the stream is cancelled), so a test sees the source stopped at a
    known point: ``await run_until(source.stream(), lambda: len(clock.waits) == n)``.
    """

    def __init__(self, start: datetime = datetime(2025, 6, 10, 12, tzinfo=timezone.utc),
                 hold_after: int | None = None):
        self.start = start
        self.elapsed = 0.0
        self.waits: list[float] = []
        self.hold_after = hold_after

    def monotonic(self) -> float:
        return self.elapsed

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.elapsed)

    def advance(self, seconds: float) -> None:
        self.elapsed += seconds

    async def sleep(self, seconds: float) -> None:
        import asyncio

        self.waits.append(seconds)
        if self.hold_after is not None and len(self.waits) >= self.hold_after:
            await asyncio.Event().wait()  # held here until cancelled
        self.elapsed += seconds
        await asyncio.sleep(0)  # let the rest of the loop run, as a real wait would

    def source_options(self) -> dict:
        return {"now": self.now, "monotonic": self.monotonic, "sleep": self.sleep}


async def run_until(stream, done, timeout: float = 10.0) -> list:
    """Consume ``stream`` until ``done()`` is true, then close it; fail after ``timeout``
    seconds (or if the stream ends first). Returns the ticks it yielded."""
    import asyncio
    import time
    from contextlib import aclosing

    out: list = []

    async def consume() -> None:
        async with aclosing(stream) as ticks:
            async for tick in ticks:
                out.append(tick)

    task = asyncio.create_task(consume())
    deadline = time.monotonic() + timeout
    try:
        while not done():
            if task.done():
                task.result()  # the stream failed: raise its error
                raise AssertionError("the stream ended before the condition was met")
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout} s")
            await asyncio.sleep(0.005)
    finally:
        task.cancel()
        (outcome,) = await asyncio.gather(task, return_exceptions=True)
    if isinstance(outcome, Exception):
        raise outcome
    return out


# -- a real uvicorn for API and SSE tests ------------------------------------------------------


class FeedSource:
    """A price source the test feeds by hand, from its own thread (``feed(ticks)``)."""

    def __init__(self):
        import threading

        from cryptotech.sources.base import SourceStatus

        self.status = SourceStatus(source="teste")
        self._ready = threading.Event()
        self._loop = None
        self._queue = None

    async def backfill(self):
        return []

    async def stream(self):
        import asyncio

        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self.status.change("live", "ticks fed by the test")
        self._ready.set()
        while True:
            tick = await self._queue.get()
            self.status.last_tick_at[tick.coin] = tick.ts
            yield tick

    def feed(self, ticks) -> None:
        assert self._ready.wait(10), "the engine never started reading the source"
        for tick in ticks:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, tick)


class LiveServer:
    """A real uvicorn serving ``app`` on a free port of 127.0.0.1, in a background thread.

    ``with LiveServer(app) as server:`` starts it (lifespan included) and stops it on exit,
    streams first (``begin_shutdown``: every SSE stream gets its farewell), bounded in time.
    ``server.call(fn, *args)`` runs ``fn`` on the server's event loop and returns its result.
    """

    def __init__(self, app, graceful_timeout: float = 2.0):
        self.app = app
        self.graceful_timeout = graceful_timeout
        self.loop = None
        self.server = None
        self.thread = None
        self.url = ""

    def __enter__(self) -> LiveServer:
        import asyncio
        import socket
        import threading
        import time

        import uvicorn

        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self.app, lifespan="on", log_level="warning", ws="none",
                                timeout_graceful_shutdown=self.graceful_timeout)
        self.server = uvicorn.Server(config)

        async def serve():
            self.loop = asyncio.get_running_loop()
            await self.server.serve(sockets=[sock])

        self.thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True,
                                       name="uvicorn-test")
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def call(self, fn, *args, timeout: float = 10.0):
        import asyncio

        async def run():
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(timeout)

    @property
    def state(self):
        return self.app.state

    def stop(self) -> None:
        from cryptotech.api.app import begin_shutdown

        if self.thread is None or not self.thread.is_alive():
            return
        self.loop.call_soon_threadsafe(begin_shutdown, self.app)
        self.server.should_exit = True
        self.thread.join(15)
        assert not self.thread.is_alive(), "the test server did not stop within 15 s"

    def __exit__(self, *exc) -> None:
        self.stop()


def wait_until(predicate, timeout: float = 15.0, interval: float = 0.02) -> None:
    """Poll ``predicate`` until it is true; fail after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def api_settings(tmp_path, **changes):
    """Settings for API tests: btc and eth, the linear candidate, the 1 h horizon, a
    temporary database."""
    from cryptotech.config import Settings

    base = {"coins": {"btc": "bitcoin", "eth": "ethereum"},
            "model": {"candidates": ["bayes_linear"], "horizons": ["1h"]},
            "store": {"path": str(tmp_path / "api.db")},
            "source": {"backfill": False}}
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = {**base[key], **value}
        else:
            base[key] = value
    return Settings(**base)


# -- engine runs over a store (engine and reliability tests) ---------------------------------


def run_engine(s, ticks, checkpoint_at=()):
    """Feed ``ticks`` through a fresh engine on the store; checkpoint after given indexes.

    Returns the engine and every event its hub published.
    """
    import asyncio

    from cryptotech.engine import Engine
    from cryptotech.hub import Hub
    from cryptotech.store import Store

    async def go():
        with Store(s.store.path) as store:
            hub = Hub()
            sub = hub.subscribe()
            engine = Engine(s, store, hub, None)
            await engine.start()
            for i, tick in enumerate(ticks):
                await engine.handle(tick)
                if i in checkpoint_at:
                    await engine.run_in_worker(engine.checkpoint)
            for task in engine._tasks:
                task.cancel()
            engine._executor.shutdown()
            received = []
            while not sub.queue.empty():
                received.append(sub.queue.get_nowait())
            return engine, received

    return asyncio.run(go())


def stored_predictions(path, coins=("btc", "eth")):
    """Every stored prediction (with its outcome) of ``coins``, as tuples in id order."""
    from cryptotech.store import Store

    with Store(path) as store:
        return [tuple(r.values()) for coin in coins for r in store.predictions(coin)]


def two_coins(n):
    """``n`` 5-minute ticks each of btc and eth, merged in time order."""
    a, b = random_walk(n, "btc", seed=1), random_walk(n, "eth", seed=2, price=3000)
    return sorted(a + b, key=lambda t: (t.ts, t.coin))


# -- the real `cryptotech` process (crash, shutdown and reliability tests) --------------------


def free_port() -> int:
    """A port of 127.0.0.1 that was free a moment ago."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli_env(**values: str) -> dict:
    """This environment without any ``CRYPTOTECH_*`` variable, plus ``values``."""
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOTECH_")}
    env.update(values)
    return env


def start_cli(args, env, cwd, log_path, **popen):
    """``python -m cryptotech.cli ARGS`` as a real process; stderr (and stdout) to ``log_path``."""
    import subprocess
    import sys

    with open(log_path, "ab") as log:
        return subprocess.Popen([sys.executable, "-m", "cryptotech.cli", *map(str, args)],
                                cwd=cwd, env=env, stdout=popen.pop("stdout", log), stderr=log,
                                **popen)


def ticks_in(db) -> int:
    """How many ticks the database holds (0 if it or its schema does not exist yet)."""
    import sqlite3

    if not Path(db).exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM ticks").fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def db_snapshot(db) -> dict:
    """What must be equal between an interrupted and an uninterrupted run, and health."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        return {
            "integrity": conn.execute("PRAGMA integrity_check").fetchone()[0],
            "ticks": conn.execute("SELECT coin, ts, price FROM ticks ORDER BY coin, ts").fetchall(),
            "dup_ticks": conn.execute("SELECT COUNT(*) FROM (SELECT coin, ts FROM ticks"
                                      " GROUP BY coin, ts HAVING COUNT(*) > 1)").fetchone()[0],
            "predictions": conn.execute("SELECT * FROM predictions ORDER BY id").fetchall(),
            "outcomes": conn.execute("SELECT prediction_id, actual, error, covered, settled_at"
                                     " FROM outcomes ORDER BY prediction_id").fetchall(),
        }
    finally:
        conn.close()


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MB (Linux /proc; psutil elsewhere if installed)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 1024**2
    except Exception:  # noqa: BLE001 - no way to measure on this platform
        return None
