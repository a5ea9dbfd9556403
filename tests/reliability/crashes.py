"""2. Crashes: SIGKILL the real ``cryptotech demo`` process at random moments, restart it.

The demo replays the bundled real 5-minute history as fast as it can (``--speed 1e9
--laps 1``), checkpointing every second. Three kills in four land while it is learning
(a random 0-0.6 s after its first new tick: mid-transaction, mid-checkpoint, between the
two), one in four at any moment from the start (while it loads a checkpoint and replays the
stored ticks after it). After each kill the database must pass ``PRAGMA integrity_check``
and still hold every tick committed before (nothing lost; ``UNIQUE(coin, ts)`` and a count
say nothing doubled). At the end the run is completed and compared with a run that was never
interrupted: the same ticks, predictions (ids included) and outcomes.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from conftest import db_snapshot, free_port, start_cli, ticks_in

from cryptotech.testing.fake_coingecko import load_history
from reliability.core import Context, Row, say


def _keys(db: Path) -> set[tuple[str, float]]:
    if not db.exists():
        return set()
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return set(conn.execute("SELECT coin, ts FROM ticks"))
    except sqlite3.OperationalError:  # no schema yet
        return set()
    finally:
        conn.close()


def _health(db: Path) -> tuple[str, int]:
    """integrity_check and the number of (coin, ts) stored more than once.

    A kill during start-up may come before the database or its schema exists: nothing was
    committed yet, so that is healthy (the next start creates them)."""
    if not db.exists():
        return "ok", 0
    conn = sqlite3.connect(db, timeout=10)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'ticks'"
                        ).fetchone() is None:
            return integrity, 0
        dups = conn.execute("SELECT COUNT(*) FROM (SELECT coin, ts FROM ticks GROUP BY coin, ts"
                            " HAVING COUNT(*) > 1)").fetchone()[0]
        return integrity, dups
    except sqlite3.OperationalError as exc:
        return f"error: {exc}", 0
    finally:
        conn.close()


class Demo:
    def __init__(self, ctx: Context, env: dict[str, str]):
        self.ctx, self.env = ctx, env
        self.folder = ctx.folder("crashes")
        self.log = ctx.log_file("crashes-demo")

    def start(self, db: Path) -> subprocess.Popen:
        return start_cli(["demo", "--db", db, "--port", free_port(), "--speed", "1e9",
                          "--laps", "1"], self.env, self.folder, self.log)

    def run_to_end(self, db: Path, expected: int, limit: float = 300,
                   proc: subprocess.Popen | None = None) -> float:
        """Run (or let ``proc`` run) the replay to its end, then stop it with SIGTERM."""
        began = time.monotonic()
        proc = proc or self.start(db)
        try:
            deadline = began + limit
            while ticks_in(db) < expected:
                if proc.poll() is not None:
                    raise RuntimeError(f"the demo exited with {proc.returncode}; see {self.log}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the replay did not finish within {limit:g} s")
                time.sleep(0.2)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        return time.monotonic() - began


def run(ctx: Context) -> list[Row]:
    coins = ctx.pick({"btc": "bitcoin", "eth": "ethereum"}, {"btc": "bitcoin"})
    candidates = ctx.pick('["bayes_linear", "hoeffding_tree"]', '["bayes_linear"]')
    target = ctx.pick(24, 5)
    env = ctx.child_env(CRYPTOTECH_COINS=",".join(f"{k}={v}" for k, v in coins.items()),
                        CRYPTOTECH_MODEL__CANDIDATES=candidates,
                        CRYPTOTECH_STORE__CHECKPOINT_EVERY="1s")
    expected = sum(len(load_history(coin)) for coin in coins)
    demo = Demo(ctx, env)
    row = Row(f"2. SIGKILL during a replay ({len(coins)} coin{'s' * (len(coins) > 1)}, "
              f"{expected} ticks)", "faults")

    reference = demo.folder / "reference.db"
    uninterrupted = demo.start(reference)  # runs beside the killed ones (two cores)

    rng = random.Random(ctx.seed)
    db = demo.folder / "killed.db"
    committed: set[tuple[str, float]] = set()
    lost_total = 0
    moments = {"learning": 0, "any": 0}
    attempts = 0
    while row.tried < target and attempts < target * 3:
        attempts += 1
        before = len(committed)
        proc = demo.start(db)
        mode = "learning" if rng.random() < 0.75 else "any"
        if mode == "learning":
            deadline = time.monotonic() + 60
            while ticks_in(db) <= before and time.monotonic() < deadline \
                    and proc.poll() is None:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.6))
        else:
            time.sleep(rng.uniform(0.2, 3.0))
        alive = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        now = _keys(db)
        if not alive or len(now) >= expected:  # too late: it was not a kill mid-replay
            committed |= now
            if len(now) >= expected:
                break
            continue
        moments[mode] += 1
        lost = committed - now
        integrity, dups = _health(db)
        lost_total += len(lost) + dups
        row.count(not lost and not dups and integrity == "ok",
                  f"kill {row.tried + 1}: {len(lost)} committed ticks lost, {dups} doubled, "
                  f"integrity {integrity}")
        committed |= now
    row.check(row.tried >= target, f"only {row.tried} kills landed mid-replay")
    at_last_kill = len(committed)
    demo.run_to_end(db, expected)
    took = demo.run_to_end(reference, expected, proc=uninterrupted)
    say(f"  crashes: {row.tried} kills; the uninterrupted run, alongside, needed {took:.1f} s "
        "more")

    want, got = db_snapshot(reference), db_snapshot(db)
    lost_total += len(committed - _keys(db)) + got["dup_ticks"]
    row.lost = lost_total
    row.check(got["integrity"] == "ok", f"final integrity_check: {got['integrity']}")
    row.check(len(got["ticks"]) == expected and got["ticks"] == want["ticks"],
              f"final ticks differ from the uninterrupted run ({len(got['ticks'])} vs "
              f"{len(want['ticks'])})")
    row.check(got["predictions"] == want["predictions"],
              f"final predictions differ ({len(got['predictions'])} vs "
              f"{len(want['predictions'])})")
    row.check(got["outcomes"] == want["outcomes"],
              f"final outcomes differ ({len(got['outcomes'])} vs {len(want['outcomes'])})")
    row.notes.append(
        f"{moments['learning']} kills while learning, {moments['any']} at any moment "
        f"(start-up, recovery); {at_last_kill} of {expected} ticks stored at the last kill; "
        f"integrity ok after every kill; final ticks, {len(got['predictions'])} predictions "
        f"(ids included) and {len(got['outcomes'])} outcomes equal to an uninterrupted run's")
    row.data = {"kills": row.tried, "moments": moments, "expected_ticks": expected}
    return [row]
