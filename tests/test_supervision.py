"""The engine never stops learning while /status says all is well (issue 11, section 1).

An unexpected exception (ValueError, RuntimeError, KeyError) is injected once into the real
store, the real learner, the real hub or the source of a real uvicorn serving the app. Each
time: it is logged at once with its traceback, counted, visible in ``/status`` (and
``/saude``), the engine learns the next ticks, and the database holds every tick once, with
the predictions of a run that only ever saw the stored ticks.
"""

from __future__ import annotations

import asyncio
import logging
import random

import httpx
import pytest
from conftest import (
    FeedSource,
    LiveServer,
    api_settings,
    random_walk,
    run_engine,
    stored_predictions,
    ticks_in,
    wait_until,
)

from cryptotech.api.app import create_app
from cryptotech.supervisor import Supervisor

ERRORS = [ValueError("valor inesperado"), RuntimeError("estado inesperado"), KeyError("btc")]


def ticks(n: int):
    a, b = random_walk(n, "btc", seed=3), random_walk(n, "eth", seed=4, price=3000)
    return sorted(a + b, key=lambda t: (t.ts, t.coin))


def break_once(obj, name: str, exc: BaseException, after: bool = False) -> dict:
    """Make ``obj.name`` raise ``exc`` on its next call only (``after``: once it has run)."""
    original = getattr(obj, name)
    calls = {"n": 0}

    def broken(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            if after:
                original(*args, **kwargs)
            raise exc
        return original(*args, **kwargs)

    setattr(obj, name, broken)
    return calls


def logged_at_once(caplog, exc: BaseException) -> logging.LogRecord:
    """The ERROR record carrying ``exc``'s traceback (waits for it, bounded)."""
    found: list[logging.LogRecord] = []

    def seen() -> bool:
        found[:] = [r for r in caplog.records if r.levelno >= logging.ERROR and r.exc_info
                    and r.exc_info[1] is exc]
        return bool(found)

    wait_until(seen, timeout=10)
    return found[0]


def processed(server, n: int) -> None:
    wait_until(lambda: server.state.engine.ticks_processed >= n, timeout=30)


@pytest.mark.parametrize("exc", ERRORS, ids=lambda e: type(e).__name__)
@pytest.mark.parametrize("where", ["store", "store_after_commit", "learner", "hub"])
def test_an_unexpected_error_in_a_tick_is_logged_counted_shown_and_learning_goes_on(
        tmp_path, caplog, where, exc):
    s = api_settings(tmp_path)
    feed = ticks(30)
    source = FeedSource()
    app = create_app(s, source, status_every=3600)
    with caplog.at_level(logging.INFO), LiveServer(app) as server, \
            httpx.Client(base_url=server.url, timeout=10) as http:
        source.feed(feed[:20])
        processed(server, 20)
        assert http.get("/saude").status_code == 200
        state = server.state
        if where == "store":
            calls = break_once(state.store, "commit_tick", exc)
        elif where == "store_after_commit":  # the tick is stored, then an error surfaces
            calls = break_once(state.store, "commit_tick", exc, after=True)
        elif where == "learner":
            calls = break_once(state.engine.learners["btc"], "process", exc)
        else:
            calls = break_once(state.hub, "publish", exc)
        failed = feed[20]
        assert failed.coin == "btc"
        source.feed([failed])
        record = logged_at_once(caplog, exc)  # before anything else happens
        assert record.name == "cryptotech.engine" and "fonte" in record.getMessage()
        assert calls["n"] >= 1

        status = http.get("/status").json()
        fonte = status["motor"]["tarefas"]["fonte"]
        assert fonte["erros"] == 1 and fonte["estado"] == "ok"
        assert fonte["ultimo_erro"].startswith(type(exc).__name__)
        assert fonte["erro_em"] is not None

        source.feed(feed[21:])
        lost = 1 if where in ("store", "learner") else 0  # the failed tick, not stored
        wait_until(lambda: ticks_in(s.store.path) == len(feed) - lost, timeout=30)
        processed(server, len(feed) - (0 if where == "hub" else 1))  # learned from: not hub
        status = http.get("/status").json()
        assert status["motor"]["aprendendo"] is True
        assert status["motor"]["tarefas"]["fonte"]["erros"] == 1
        health = http.get("/saude")
        assert health.status_code == 200 and health.json()["aprendendo"] is True
    # the learners hold exactly what the store holds: the same predictions as a run that
    # only ever saw the stored ticks, and every tick stored once
    kept = [t for t in feed if t is not failed or where in ("store_after_commit", "hub")]
    assert ticks_in(s.store.path) == len(kept)
    ref = api_settings(tmp_path / "ref")
    (tmp_path / "ref").mkdir()
    run_engine(ref, kept)
    assert stored_predictions(s.store.path) == stored_predictions(ref.store.path)


class BreakableSource(FeedSource):
    """The test's feed source whose stream raises an exception it is fed (then ends)."""

    async def stream(self):
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self.status.change("live", "ticks fed by the test")
        self._ready.set()
        while True:
            tick = await self._queue.get()
            if isinstance(tick, BaseException):
                raise tick
            yield tick


@pytest.mark.parametrize("exc", ERRORS, ids=lambda e: type(e).__name__)
def test_a_dead_source_task_is_shown_then_restarted_with_backoff(tmp_path, caplog, exc):
    s = api_settings(tmp_path)
    feed = ticks(20)
    source = BreakableSource()
    app = create_app(s, source, status_every=3600)
    with caplog.at_level(logging.INFO), LiveServer(app) as server, \
            httpx.Client(base_url=server.url, timeout=10) as http:
        supervisor = server.state.engine.supervisor
        waits: list[float] = []
        gate = asyncio.Event()

        async def held_sleep(seconds: float) -> None:  # the restart waits for the test
            waits.append(seconds)
            await gate.wait()

        supervisor.sleep = held_sleep
        source.feed(feed[:10])
        processed(server, 10)
        old_queue = source._queue
        source.feed([exc])
        logged_at_once(caplog, exc)
        wait_until(lambda: waits)

        status = http.get("/status").json()
        fonte = status["motor"]["tarefas"]["fonte"]
        assert fonte["estado"] == "reiniciando" and fonte["erros"] == 1
        assert fonte["ultimo_erro"].startswith(type(exc).__name__)
        assert status["motor"]["aprendendo"] is False and status["situacao"] == "atencao"
        health = http.get("/saude")
        assert health.status_code == 503
        assert "fonte reiniciando" in health.json()["detalhe"]
        assert supervisor.base / 2 <= waits[0] <= supervisor.base

        server.call(gate.set)
        wait_until(lambda: source._queue is not old_queue and supervisor.running("fonte"))
        source.feed(feed[10:])
        processed(server, len(feed))
        assert http.get("/saude").status_code == 200
        status = http.get("/status").json()
        assert status["motor"]["tarefas"]["fonte"] == fonte | {"estado": "ok"}
        assert any("task restarted" in r.getMessage() for r in caplog.records)
    assert ticks_in(s.store.path) == len(feed)


# -- the supervisor alone ------------------------------------------------------------------


def test_restarts_back_off_exponentially_and_fail_after_repeated_deaths(caplog):
    waits: list[tuple[float, str]] = []
    sup = Supervisor(base=1.0, cap=8.0, fail_after=3, rng=random.Random(1))

    async def no_wait(seconds: float) -> None:  # records each restart's wait and state
        waits.append((seconds, sup.health["t"].estado))

    sup.sleep = no_wait

    async def go():
        runs = {"n": 0}
        done = asyncio.Event()

        async def work():
            runs["n"] += 1
            if runs["n"] <= 5:
                raise RuntimeError(f"falha {runs['n']}")
            sup.succeeded("t")
            done.set()
            await asyncio.Event().wait()

        sup.start("t", work)
        await asyncio.wait_for(done.wait(), 10)
        snapshot = sup.snapshot()["t"]
        await sup.stop()
        return runs["n"], snapshot

    with caplog.at_level(logging.INFO, logger="cryptotech.engine"):
        runs, snapshot = asyncio.run(go())
    assert runs == 6
    for (wait, _), ceiling in zip(waits, [1, 2, 4, 8, 8], strict=True):
        assert ceiling / 2 <= wait <= ceiling
    assert [state for _, state in waits] == ["reiniciando"] * 2 + ["falhou"] * 3
    assert snapshot["estado"] == "ok" and snapshot["erros"] == 5
    assert snapshot["ultimo_erro"] == "RuntimeError: falha 5"
    died = [r for r in caplog.records if "task died" in r.getMessage()]
    assert len(died) == 5 and all(r.exc_info for r in died)


def test_failed_units_count_and_turn_the_state_to_falhou_until_a_success(caplog):
    sup = Supervisor(fail_after=2, clean=lambda text: text.replace("segredo", "***"))
    with caplog.at_level(logging.ERROR, logger="cryptotech.engine"):
        sup.failed("t", KeyError("chave segredo"), "one unit")
        assert sup.snapshot()["t"] == {"estado": "ok", "erros": 1,
                                       "ultimo_erro": "KeyError: 'chave ***'",
                                       "erro_em": sup.health["t"].erro_em}
        sup.failed("t", ValueError("x" * 500), "another unit")
    assert sup.health["t"].estado == "falhou"
    assert len(sup.health["t"].ultimo_erro or "") == 200
    assert len(caplog.records) == 2 and all(r.exc_info for r in caplog.records)
    sup.succeeded("t")
    assert sup.snapshot()["t"]["estado"] == "ok" and sup.snapshot()["t"]["erros"] == 2
