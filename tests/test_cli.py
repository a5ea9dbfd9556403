"""The ``cryptotech`` command as a user runs it: real subprocesses, real sockets, real files.

Every refusal is one line on stderr and exit status 2, before anything is started or
created; a started server answers on the port it announced.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import httpx
import pytest

from cryptotech.testing.fake_coingecko import FakeCoinGecko

ROOT = Path(__file__).resolve().parents[1]
BTC = ROOT / "cryptotech" / "data" / "BTCUSDT_5m.csv.gz"


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``cryptotech ARGS`` in ``cwd`` (no config.toml there), with ``env`` added."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOTECH_")}
    return subprocess.run([sys.executable, "-m", "cryptotech.cli", *args], cwd=cwd,
                          env={**environ, **(env or {})}, capture_output=True, text=True,
                          timeout=timeout)


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    return lines[0]


@pytest.fixture
def busy_port():
    """A port on 127.0.0.1 that another program is listening on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


@pytest.mark.parametrize("command", ["run", "demo"])
def test_busy_port_is_one_line_with_the_port_flag_and_nothing_created(command, busy_port,
                                                                        tmp_path):
    line = one_line(cli(command, "--port", str(busy_port), "--db", "x.db", cwd=tmp_path))
    assert str(busy_port) in line and "--port" in line and "in use" in line
    assert list(tmp_path.iterdir()) == []  # no database, no -wal, nothing


def test_busy_port_from_the_environment_is_caught_too(busy_port, tmp_path):
    line = one_line(cli("demo", cwd=tmp_path, env={"CRYPTOTECH_API__PORT": str(busy_port)}))
    assert str(busy_port) in line and "--port" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("flag", ["--output", "--report"])
def test_unwritable_output_is_refused_before_the_replay(flag, tmp_path):
    missing = tmp_path / "nonexistent" / "dir" / "p.out"
    line = one_line(cli("backtest", str(BTC), flag, str(missing), cwd=tmp_path))
    assert flag in line and "does not exist" in line and str(missing.parent) in line
    folder = one_line(cli("backtest", str(BTC), flag, str(tmp_path), cwd=tmp_path))
    assert flag in folder and "folder" in folder
    # one line means the files were not even read: reading prints a line per file first
    assert not missing.parent.exists()


def test_demo_laps_zero_is_refused(tmp_path):
    line = one_line(cli("demo", "--laps", "0", "--db", "x.db", cwd=tmp_path))
    assert "--laps" in line and "at least 1" in line
    assert list(tmp_path.iterdir()) == []
    help_text = cli("demo", "--help", cwd=tmp_path).stdout
    assert "at least 1" in " ".join(help_text.split())


def test_config_errors_blame_the_flag_the_variable_or_the_file(tmp_path):
    port = one_line(cli("demo", "--port", "99999", cwd=tmp_path))
    assert "'api.port' (flag --port)" in port and "CRYPTOTECH_API__PORT" not in port
    horizon = one_line(cli("backtest", "--horizon", "0m", str(BTC), cwd=tmp_path))
    assert "'model.horizon' (flag --horizon)" in horizon and "environment" not in horizon
    env = one_line(cli("backtest", str(BTC), cwd=tmp_path,
                       env={"CRYPTOTECH_MODEL__HORIZON": "banana"}))
    assert "(environment CRYPTOTECH_MODEL__HORIZON)" in env and env.count("banana") == 1
    (tmp_path / "config.toml").write_text("[api]\nport = 70000\n", encoding="utf-8")
    file = one_line(cli("run", cwd=tmp_path))
    assert "(file config.toml, key [api] port)" in file and file.count("70000") == 1
    # the environment wins over the file, so it is the one blamed
    both = one_line(cli("run", cwd=tmp_path, env={"CRYPTOTECH_API__PORT": "-1"}))
    assert "(environment CRYPTOTECH_API__PORT)" in both and "config.toml" not in both


def test_backfill_says_ticks_and_coins_in_good_grammar(tmp_path):
    with FakeCoinGecko() as fake:
        proc = cli("backfill", "--db", "b.db", cwd=tmp_path,
                   env={"CRYPTOTECH_SOURCE__BASE_URL": fake.url, "CRYPTOTECH_COINS": "btc=bitcoin"})
    assert proc.returncode == 0, proc.stderr
    summary = [line for line in proc.stdout.splitlines() if line.startswith("backfill:")]
    assert len(summary) == 1
    assert " for 1 coin, " in summary[0] and "1 coins" not in proc.stdout + proc.stderr
    assert "tick(s) for 1 coin(s)" in proc.stderr  # the log line


def free_port() -> int:
    with socket.socket() as probe:  # a free port, released for the server to take
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serving(*args: str, cwd: Path, env: dict[str, str] | None = None):
    """``cryptotech ARGS`` running: yields (banner lines, GET /status); stopped with Ctrl+C."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOTECH_")}
    proc = subprocess.Popen([sys.executable, "-m", "cryptotech.cli", *args], cwd=cwd,
                            env={**environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    banner_done = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Ctrl+C"):
                banner_done.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    port = args[args.index("--port") + 1]

    def status() -> httpx.Response:
        deadline = time.monotonic() + 60
        while True:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/status", timeout=5)
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)  # polling for the server's start, bounded by the deadline

    try:
        assert banner_done.wait(60), (lines, proc.poll())
        yield lines, status
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)
        errors = proc.stderr.read() if proc.stderr else ""
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    assert proc.returncode in (0, 130), errors  # 130: stopped by Ctrl+C, as shells count it
    assert "Traceback" not in errors


def test_demo_serves_on_the_port_it_bound_and_names_the_zone_by_city(tmp_path):
    port = free_port()
    with serving("demo", "--port", str(port), "--db", "d.db", "--laps", "1",
                 cwd=tmp_path) as (banner, status):
        assert "  horários: fuso de São Paulo" in banner
        assert f"  painel:   http://127.0.0.1:{port}/painel/" in banner
        answer = status()
        assert answer.status_code == 200
        assert answer.json()["fonte"]["tipo"] == "replay"


def test_run_against_the_live_fake_looks_live_and_says_rest_in_portuguese(tmp_path):
    port = free_port()
    with FakeCoinGecko(live=True) as fake:
        env = {"CRYPTOTECH_SOURCE__BASE_URL": fake.url, "CRYPTOTECH_COINS": "btc=bitcoin",
               "CRYPTOTECH_MODEL__CANDIDATES": '["bayes_linear"]'}
        with serving("run", "--port", str(port), "--db", "r.db", cwd=tmp_path,
                     env=env) as (_, status):
            deadline = time.monotonic() + 90
            fonte: dict = {}
            while time.monotonic() < deadline:
                fonte = status().json()["fonte"]
                if fonte["estado"] == "live" and fonte["ultimo_preco_em"].get("btc"):
                    break
                time.sleep(0.1)  # waiting for the first poll, bounded by the deadline
    assert fonte["tipo"] == "rest" and fonte["estado"] == "live"
    assert fonte["mensagem"].startswith("consultando 127.0.0.1:") and "1 moeda" in fonte["mensagem"]
    last = datetime.fromisoformat(fonte["ultimo_preco_em"]["btc"])
    assert abs((datetime.now(timezone.utc) - last).total_seconds()) < 120
