"""`cryptotech run|demo --store postgresql://...`: the whole product in one process on
PostgreSQL (real subprocesses, a real server, a fresh database per test)."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psycopg
import pytest
from conftest import cli_env, free_port, start_cli, ticks_in
from pgserver import fresh_database, require_server

from cryptotech.pgstore import redact_url

EXPECTED_TICKS = 8640  # 30 days of 5-minute btc prices, one lap
ENV = {
    "CRYPTOTECH_COINS": "btc=bitcoin",
    "CRYPTOTECH_MODEL__CANDIDATES": '["bayes_linear"]',
    "CRYPTOTECH_MODEL__HORIZONS": '["1h", "4h"]',
    "CRYPTOTECH_STORE__CHECKPOINT_EVERY": "1s",
}


def run_cli(args, tmp_path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "cryptotech.cli", *map(str, args)],
                          cwd=tmp_path, env=cli_env(**env), capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("command", ["run", "demo"])
@pytest.mark.parametrize(("host", "db", "why"), [
    ("nobody_at_all:hunter2@127.0.0.1:5432", "postgres", 'role "nobody_at_all" does not exist'),
    ("postgres:hunter2@127.0.0.1:5432", "no_such_db_here", 'database "no_such_db_here"'),
    ("postgres:hunter2@127.0.0.1:1", "postgres", "Connection refused"),
])
def test_a_store_url_that_does_not_work_is_one_line_and_exit_2(tmp_path, command, host, db, why):
    require_server()
    url = f"postgresql://{host}/{db}"
    proc = run_cli([command, "--store", url, "--port", "0"], tmp_path,
                   CRYPTOTECH_SOURCE__BASE_URL="http://127.0.0.1:9/api/v3")
    assert proc.returncode == 2, proc.stderr
    assert "hunter2" not in proc.stderr + proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and why in lines[0] and redact_url(url) in lines[0], proc.stderr


def test_a_store_url_that_is_not_postgresql_is_a_setting_error_without_the_password(tmp_path):
    proc = run_cli(["demo", "--port", "0"], tmp_path,
                   CRYPTOTECH_STORE__URL="mysql://me:hunter2@127.0.0.1/ct")
    assert proc.returncode == 2
    assert "hunter2" not in proc.stderr
    assert proc.stderr.strip() == (
        "config: invalid value for 'store.url' (environment CRYPTOTECH_STORE__URL): expected a "
        "postgresql://user@host:5432/database URL (or nothing: the SQLite file store.path)")


def test_db_and_store_cannot_both_be_given(tmp_path):
    proc = run_cli(["demo", "--db", "a.db", "--store", "b.db"], tmp_path)
    assert proc.returncode == 2 and "not allowed with argument" in proc.stderr


# -- the end-to-end crash test ---------------------------------------------------------------

SNAPSHOT = {
    "ticks": "SELECT coin, ts, price FROM ticks ORDER BY coin, ts",
    "dup_ticks": "SELECT COUNT(*) FROM (SELECT coin, ts FROM ticks GROUP BY coin, ts"
                 " HAVING COUNT(*) > 1) d",
    "predictions": "SELECT coin, made_at, target_at, price, forecast, lower, upper, model,"
                   " horizon, q05, q10, q25, q50, q75, q90, q95, p_up, vol FROM predictions"
                   " ORDER BY coin, horizon, made_at",
    "outcomes": "SELECT p.coin, p.horizon, p.made_at, o.actual, o.error, o.covered,"
                " o.settled_at FROM outcomes o JOIN predictions p ON p.id = o.prediction_id"
                " ORDER BY p.coin, p.horizon, p.made_at",
}


def snapshot(conn) -> dict:
    """Every row that must be equal between the runs, ids aside (the same SQL on both)."""
    return {name: [tuple(r) for r in conn.execute(sql).fetchall()]
            for name, sql in SNAPSHOT.items()}


def pg_ticks(url: str) -> int:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            return conn.execute("SELECT COUNT(*) FROM ticks").fetchone()[0]
    except psycopg.Error:  # the schema is not there yet
        return 0


def get_json(url: str) -> tuple[int, dict]:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def wait_for(predicate, proc, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"timed out; log:\n{log.read_text()[-3000:]}"
        time.sleep(0.2)


def start_demo(store: str, port: int, tmp: Path) -> subprocess.Popen:
    flag = "--store" if store.startswith("postgresql://") else "--db"
    return start_cli(["demo", flag, store, "--port", port, "--speed", "1e9", "--laps", "1"],
                     cli_env(**ENV), tmp, tmp / "log.txt", stdout=subprocess.DEVNULL)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) in (0, -signal.SIGTERM)


@pytest.mark.slow
def test_demo_on_postgresql_killed_mid_replay_ends_like_an_uninterrupted_sqlite_run(tmp_path):
    require_server()
    reference = tmp_path / "reference.db"
    proc = start_demo(str(reference), free_port(), tmp_path)
    wait_for(lambda: ticks_in(reference) >= EXPECTED_TICKS, proc, tmp_path / "log.txt", 300)
    stop(proc)

    with fresh_database() as plain:
        url = plain.replace("postgres@", "postgres:hunter2@", 1)  # trust auth ignores it
        assert url != plain
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        proc = start_demo(url, port, tmp_path)

        def serving() -> bool:
            if pg_ticks(url) < 1500:
                return False
            status, forecast = get_json(f"{base}/prever/btc")
            assert status == 200 and forecast["moeda"] == "btc", forecast
            status, health = get_json(f"{base}/status")
            assert status == 200
            assert "hunter2" not in json.dumps(health)
            return True

        wait_for(serving, proc, tmp_path / "log.txt", 180)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        killed_at = pg_ticks(url)
        assert 0 < killed_at < EXPECTED_TICKS, "the kill must land mid-replay"

        proc = start_demo(url, free_port(), tmp_path)  # recovers, resumes after the last tick
        wait_for(lambda: pg_ticks(url) >= EXPECTED_TICKS, proc, tmp_path / "log.txt", 300)
        stop(proc)

        with psycopg.connect(url) as conn:
            got = snapshot(conn)
        with sqlite3.connect(reference) as conn:
            want = snapshot(conn)
        conn.close()
    assert got["dup_ticks"] == [(0,)]
    assert len(got["ticks"]) == EXPECTED_TICKS and got["ticks"] == want["ticks"]
    assert len(got["predictions"]) == len(want["predictions"]) > 2 * (EXPECTED_TICKS - 100)
    assert got["predictions"] == want["predictions"]
    assert got["outcomes"] == want["outcomes"]
    assert "hunter2" not in (tmp_path / "log.txt").read_text()


def test_store_url_in_config_toml_runs_the_demo_on_postgresql(tmp_path):
    with fresh_database() as url:
        port = free_port()
        (tmp_path / "config.toml").write_text(f'[coins]\nbtc = "bitcoin"\n\n[store]\nurl = "{url}"\n')
        proc = start_cli(["demo", "--port", port, "--speed", "1e6"], cli_env(), tmp_path,
                         tmp_path / "log.txt", stdout=subprocess.DEVNULL)
        try:
            def answers() -> bool:
                if pg_ticks(url) < 100:
                    return False
                status, forecast = get_json(f"http://127.0.0.1:{port}/prever/btc")
                return status == 200 and forecast["moeda"] == "btc"

            wait_for(answers, proc, tmp_path / "log.txt", 120)
        finally:
            stop(proc)
        assert not (tmp_path / "cryptotech-demo.db").exists()  # nothing went to SQLite
