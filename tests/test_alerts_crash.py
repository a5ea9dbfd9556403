"""SIGKILL the real ``cryptotech demo`` while its webhook is down: after the restart every
alert reaches the webhook exactly once, and the alerts equal those of an uninterrupted run.

One horizon (``1h``), like the other alert tests: the rules watch the first horizon only, and
four horizons per tick would only make each replay slower. Every wait is on a condition (all
the replay's ticks stored, the alerts accepted) with a generous bound, for a busy machine.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess

import pytest
from conftest import cli_env, free_port, start_cli, ticks_in, wait_until
from test_alerts_delivery import Receiver

EXPECTED_TICKS = 8640  # the bundled 30 days of btc
REPLAY_S = 300  # bound on one whole replay (about 15 s on an idle machine)
STOP_S = 60  # bound on a graceful stop (final checkpoint within 2.5 s, uvicorn's 2 s grace)
CONFIG = """
[coins]
btc = "bitcoin"

[model]
candidates = ["bayes_linear"]
horizons = ["1h"]

[[alertas]]
tipo = "fora_do_intervalo"
moeda = "btc"
intervalo_minimo = "1s"

[[alertas]]
tipo = "variacao"
percentual = 1.5
janela = "1h"
"""


def alerts_in(db) -> list[tuple]:
    if not db.exists():
        return []
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
            return conn.execute("SELECT id, rule, ts FROM alerts ORDER BY id").fetchall()
    except sqlite3.OperationalError:  # schema not created yet
        return []


def outbox(db) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5) as conn:
        return dict(conn.execute("SELECT state, COUNT(*) FROM alert_outbox GROUP BY state"))


def demo(tmp, db, env):
    return start_cli(["demo", "--db", db, "--port", free_port(), "--speed", "2e5", "--laps",
                      "1", "--config", tmp / "config.toml"], env, tmp, tmp / "log.txt",
                     stdout=subprocess.DEVNULL)


def stop(proc, log) -> None:
    """SIGTERM, and the demo must end by itself (a hang at shutdown fails, with the log)."""
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=STOP_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        tail = log.read_text(encoding="utf-8", errors="replace")[-2000:]
        pytest.fail(f"the demo did not stop within {STOP_S} s of SIGTERM; its log:\n{tail}")
    assert code in (0, -signal.SIGTERM)


@pytest.mark.slow
def test_a_webhook_down_during_a_sigkill_gets_each_alert_once_after_restart(tmp_path):
    (tmp_path / "config.toml").write_text(CONFIG, encoding="utf-8")
    port = free_port()
    env = cli_env(CRYPTOTECH_ALERTAS_URLS=f"json://127.0.0.1:{port}/?cto=0.5&rto=2")

    # reference: the same replay never interrupted, no channel
    reference = tmp_path / "reference.db"
    proc = demo(tmp_path, reference, cli_env())
    wait_until(lambda: ticks_in(reference) == EXPECTED_TICKS, REPLAY_S)
    stop(proc, tmp_path / "log.txt")

    db = tmp_path / "killed.db"
    proc = demo(tmp_path, db, env)  # nothing listens on the webhook's port yet
    wait_until(lambda: len(alerts_in(db)) >= 5, 120)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert ticks_in(db) < EXPECTED_TICKS, "the kill must land mid-replay"
    assert outbox(db).get("enviado", 0) == 0 and outbox(db)["pendente"] >= 5

    with Receiver(port=port) as receiver:
        proc = demo(tmp_path, db, env)
        try:
            wait_until(lambda: ticks_in(db) == EXPECTED_TICKS, REPLAY_S)
            stored = alerts_in(db)
            wait_until(lambda: set(receiver.accepted_ids()) == {a[0] for a in stored}, 120)
            wait_until(lambda: outbox(db) == {"enviado": len(stored)}, 60)
            assert all(n == 1 for n in receiver.accepted_ids().values())
        finally:
            stop(proc, tmp_path / "log.txt")
    # the kill changed no alert: same rules, same times as the uninterrupted run
    assert [(r, ts) for _, r, ts in alerts_in(db)] == [(r, ts) for _, r, ts in
                                                       alerts_in(reference)]
