"""SIGKILL the real `cryptotech demo` process at random moments; nothing committed is lost.

The demo replays two coins of real 5-minute data as fast as it can, checkpointing every
second. Each restart recovers from the newest checkpoint plus the stored ticks after it and
resumes the replay after the last stored tick. The end state must equal a run that was never
interrupted: same predictions and outcomes (ids included), every tick exactly once.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

EXPECTED_TICKS = 2 * 8640
ENV = {
    "CRYPTOTECH_COINS": "btc=bitcoin,eth=ethereum",
    "CRYPTOTECH_MODEL__CANDIDATES": '["bayes_linear", "hoeffding_tree"]',
    "CRYPTOTECH_STORE__CHECKPOINT_EVERY": "1s",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(db: Path, tmp: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOTECH_")} | ENV
    with open(tmp / "log.txt", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "cryptotech.cli", "demo", "--db", str(db), "--port",
             str(free_port()), "--speed", "1e9", "--laps", "1"],
            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=log,
        )


def ticks_in(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM ticks").fetchone()[0]
    except sqlite3.OperationalError:  # schema not created yet
        return 0


def run_to_end(db: Path, tmp: Path) -> None:
    proc = start(db, tmp)
    deadline = time.monotonic() + 240
    while ticks_in(db) < EXPECTED_TICKS and time.monotonic() < deadline:
        assert proc.poll() is None, (tmp / "log.txt").read_text()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    # uvicorn shuts down gracefully, then re-raises the signal: exit by SIGTERM is expected
    assert proc.wait(timeout=10) in (0, -signal.SIGTERM)
    assert ticks_in(db) == EXPECTED_TICKS


def snapshot(db: Path) -> dict:
    with sqlite3.connect(db) as conn:
        return {
            "integrity": conn.execute("PRAGMA integrity_check").fetchone()[0],
            "ticks": conn.execute("SELECT coin, ts, price FROM ticks ORDER BY coin, ts").fetchall(),
            "dup_ticks": conn.execute("SELECT COUNT(*) FROM (SELECT coin, ts FROM ticks"
                                      " GROUP BY coin, ts HAVING COUNT(*) > 1)").fetchone()[0],
            "predictions": conn.execute("SELECT * FROM predictions ORDER BY id").fetchall(),
            "outcomes": conn.execute("SELECT prediction_id, actual, error, covered, settled_at"
                                     " FROM outcomes ORDER BY prediction_id").fetchall(),
        }


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_and_duplicates_nothing(tmp_path):
    reference = tmp_path / "reference.db"
    run_to_end(reference, tmp_path)

    db = tmp_path / "killed.db"
    rng = random.Random(20251124)
    kills = 0
    for _ in range(5):
        before = ticks_in(db)
        proc = start(db, tmp_path)
        time.sleep(rng.uniform(1.5, 5.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
        if ticks_in(db) >= EXPECTED_TICKS:
            break
        assert ticks_in(db) >= before
    assert kills >= 3
    assert 0 < ticks_in(db) < EXPECTED_TICKS, "the kills must land mid-replay"
    run_to_end(db, tmp_path)

    want, got = snapshot(reference), snapshot(db)
    assert got["integrity"] == "ok"
    assert got["dup_ticks"] == 0
    assert len(got["ticks"]) == EXPECTED_TICKS
    assert got["ticks"] == want["ticks"]
    assert len(got["predictions"]) == len(want["predictions"]) > 17000
    assert got["predictions"] == want["predictions"]
    assert got["outcomes"] == want["outcomes"]
