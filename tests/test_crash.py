"""SIGKILL the real `cryptotech demo` process at random moments; nothing committed is lost.

The demo replays two coins of real 5-minute data as fast as it can, checkpointing every
second. Each restart recovers from the newest checkpoint plus the stored ticks after it and
resumes the replay after the last stored tick. The end state must equal a run that was never
interrupted: same predictions and outcomes (ids included), every tick exactly once.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from conftest import cli_env, db_snapshot, free_port, start_cli, ticks_in

EXPECTED_TICKS = 2 * 8640
ENV = {
    "CRYPTOTECH_COINS": "btc=bitcoin,eth=ethereum",
    "CRYPTOTECH_MODEL__CANDIDATES": '["bayes_linear", "hoeffding_tree"]',
    "CRYPTOTECH_MODEL__HORIZONS": '["1h", "4h"]',  # two horizons: each has its own models
    "CRYPTOTECH_STORE__CHECKPOINT_EVERY": "1s",
}


def start(db: Path, tmp: Path) -> subprocess.Popen:
    return start_cli(["demo", "--db", db, "--port", free_port(), "--speed", "1e9", "--laps", "1"],
                     cli_env(**ENV), tmp, tmp / "log.txt", stdout=subprocess.DEVNULL)


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
        deadline = time.monotonic() + 120  # a busy machine starts slowly: wait for learning
        while ticks_in(db) <= before and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)  # polling the database, bounded by the deadline
        time.sleep(rng.uniform(0.0, 2.0))  # then a random moment while it learns
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        kills += 1
        if ticks_in(db) >= EXPECTED_TICKS:
            break
        assert ticks_in(db) >= before
    assert kills >= 3
    assert 0 < ticks_in(db) < EXPECTED_TICKS, "the kills must land mid-replay"
    run_to_end(db, tmp_path)

    want, got = db_snapshot(reference), db_snapshot(db)
    assert got["integrity"] == "ok"
    assert got["dup_ticks"] == 0
    assert len(got["ticks"]) == EXPECTED_TICKS
    assert got["ticks"] == want["ticks"]
    assert len(got["predictions"]) == len(want["predictions"]) > 17000
    assert got["predictions"] == want["predictions"]
    assert got["outcomes"] == want["outcomes"]
