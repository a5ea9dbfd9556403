import logging
import pickle

import pytest
from conftest import random_walk, run_engine, two_coins
from conftest import stored_predictions as predictions

from cryptotech.config import Settings, parse_duration
from cryptotech.store import Store


def settings(tmp_path) -> Settings:
    return Settings(coins={"btc": "bitcoin", "eth": "ethereum"},
                    model={"candidates": ["bayes_linear", "hoeffding_tree"]},
                    store={"path": str(tmp_path / "e.db")})


def test_events_are_published_after_they_are_stored(tmp_path):
    s = settings(tmp_path)
    engine, received = run_engine(s, two_coins(30))
    stored = [e for e in received if e.id is not None]
    assert {e.kind for e in stored} == {"tick", "previsao", "resultado"}
    assert [e.id for e in stored] == sorted(e.id for e in stored)
    with Store(s.store.path) as store:
        assert [e.id for e in store.events_after(0)] == [e.id for e in stored]
    assert any(e.kind == "metricas" and e.id is None for e in received)


def test_restart_from_checkpoint_and_stored_ticks_equals_uninterrupted(tmp_path):
    ticks = two_coins(400)
    ref = settings(tmp_path / "ref")
    (tmp_path / "ref").mkdir()
    run_engine(ref, ticks)
    s = settings(tmp_path)
    first, _ = run_engine(s, ticks[:500], checkpoint_at={300})
    second, _ = run_engine(s, ticks[500:])
    assert second.recovery["btc"].startswith("checkpoint")
    assert "; 99 preços guardados reprocessados" in second.recovery["btc"]  # btc ticks 151..249
    assert predictions(s.store.path) == predictions(ref.store.path)


@pytest.mark.parametrize("damage", ["corrupt", "other_river", "other_coin"])
def test_unreadable_checkpoint_falls_back_to_an_older_one(tmp_path, caplog, damage):
    ticks = two_coins(300)
    ref = settings(tmp_path / "ref")
    (tmp_path / "ref").mkdir()
    run_engine(ref, ticks)
    s = settings(tmp_path)
    run_engine(s, ticks[:400], checkpoint_at={200, 350})
    with Store(s.store.path) as store:
        newest = store.checkpoints("btc")[0]
        if damage == "corrupt":
            blob = newest.blob[:100]
        elif damage == "other_coin":  # e.g. checkpoints moved between workers, mixed up
            blob = store.checkpoints("eth")[0].blob
        else:
            meta, learner = pickle.loads(newest.blob)
            blob = pickle.dumps((meta | {"river": "0.1.0"}, learner))
        store._conn.execute("UPDATE checkpoints SET blob = ? WHERE id = ?", (blob, newest.id))
    with caplog.at_level(logging.INFO, logger="cryptotech.engine"):
        second, _ = run_engine(s, ticks[400:])
    assert "not usable" in caplog.text and "trying an older one" in caplog.text
    assert second.recovery["btc"].startswith("checkpoint")
    assert predictions(s.store.path) == predictions(ref.store.path)


def test_no_readable_checkpoint_rebuilds_from_stored_ticks(tmp_path, caplog):
    ticks = two_coins(200)
    ref = settings(tmp_path / "ref")
    (tmp_path / "ref").mkdir()
    run_engine(ref, ticks)
    s = settings(tmp_path)
    run_engine(s, ticks[:300], checkpoint_at={250})
    with Store(s.store.path) as store:
        store._conn.execute("UPDATE checkpoints SET blob = x'00'")
    with caplog.at_level(logging.INFO, logger="cryptotech.engine"):
        second, _ = run_engine(s, ticks[300:])
    assert second.recovery["btc"] == ("reconstruído a partir dos preços guardados; 150 preços "
                                      "guardados reprocessados")
    assert "rebuilt from stored ticks" in caplog.text
    assert predictions(s.store.path) == predictions(ref.store.path)


def test_ticks_of_unknown_coins_and_duplicates_are_counted_not_stored(tmp_path):
    s = settings(tmp_path)
    ticks = two_coins(20)
    doge = random_walk(3, "doge")
    engine, _ = run_engine(s, ticks + doge + ticks[-4:])
    assert engine.ignored["unknown_coin"] == 3
    counts = engine.learners["btc"].counts
    assert counts["duplicate"] == 1 and counts["out_of_order"] == 1
    with Store(s.store.path) as store:
        assert store.counts()["ticks"] == 40


def test_a_failed_checkpoint_is_logged_counted_and_the_next_one_is_written(tmp_path, caplog):
    import asyncio

    from cryptotech.engine import Engine
    from cryptotech.hub import Hub

    s = settings(tmp_path).model_copy(update={"store": settings(tmp_path).store.model_copy(
        update={"checkpoint_every": parse_duration("20ms")})})
    ticks = two_coins(10)

    async def go():
        with Store(s.store.path) as store:
            engine = Engine(s, store, Hub(), None)
            await engine.start()
            for tick in ticks[:10]:
                await engine.handle(tick)
            original = engine.checkpoint
            calls = {"n": 0}

            def broken(*args):
                calls["n"] += 1
                if calls["n"] == 1:
                    raise KeyError("learner")
                return original(*args)

            engine.checkpoint = broken
            while not store.checkpoints("btc"):  # the next run writes it (bounded by pytest)
                await asyncio.sleep(0.01)
            health = engine.supervisor.snapshot()["checkpoints"]
            await engine.stop()
            return health

    with caplog.at_level(logging.ERROR, logger="cryptotech.engine"):
        health = asyncio.run(asyncio.wait_for(go(), 30))
    assert health["erros"] == 1 and health["estado"] == "ok"
    assert health["ultimo_erro"] == "KeyError: 'learner'"
    assert [r for r in caplog.records if r.exc_info and isinstance(r.exc_info[1], KeyError)]


def test_a_recovery_interrupted_by_a_stop_loses_nothing(tmp_path):
    import asyncio

    from cryptotech.engine import Engine
    from cryptotech.hub import Hub

    ticks = two_coins(120)
    ref = settings(tmp_path / "ref")
    (tmp_path / "ref").mkdir()
    run_engine(ref, ticks)
    s = settings(tmp_path)
    run_engine(s, ticks[:200])  # no checkpoint: the next start replays 100 ticks per coin

    async def interrupted():
        with Store(s.store.path) as store:
            engine = Engine(s, store, Hub(), None)
            replayed = {"n": 0}
            ticks_after = store.ticks_after

            def counting(coin, tick_id):
                for item in ticks_after(coin, tick_id):
                    replayed["n"] += 1
                    if replayed["n"] == 30:  # the signal comes in the middle of btc
                        engine.halt()
                    yield item

            store.ticks_after = counting
            await engine.start()
            assert not engine.ready and not engine._tasks  # nothing started after a halt
            said = await engine.stop()
            return engine, said

    engine, said = asyncio.run(interrupted())
    assert list(engine.learners) == ["btc"] and said == "final checkpoint of 1 coin(s)"
    with Store(s.store.path) as store:
        assert store.checkpoints("btc")[0].last_tick_id > 0 and not store.checkpoints("eth")
    second, _ = run_engine(s, ticks[200:])
    assert "checkpoint" in second.recovery["btc"]
    assert predictions(s.store.path) == predictions(ref.store.path)


def test_a_final_checkpoint_out_of_time_is_skipped_and_replayed_at_the_next_start(tmp_path):
    import asyncio
    import time

    from cryptotech.engine import Engine
    from cryptotech.hub import Hub

    ticks = two_coins(100)
    ref = settings(tmp_path / "ref")
    (tmp_path / "ref").mkdir()
    run_engine(ref, ticks)
    s = settings(tmp_path)

    async def first():
        with Store(s.store.path) as store:
            engine = Engine(s, store, Hub(), None)
            await engine.start()
            for tick in ticks[:120]:
                await engine.handle(tick)
            assert await engine.run_in_worker(engine.checkpoint, False,
                                              time.monotonic() - 1) == {}
            return engine.unsaved(), await engine.stop(budget=0)

    unsaved, said = asyncio.run(first())
    assert sorted(unsaved) == ["btc", "eth"]
    assert said == ("final checkpoint of 0 coin(s); btc, eth not checkpointed in time (their "
                    "stored ticks replay at the next start)")
    second, _ = run_engine(s, ticks[120:])
    assert second.recovery["btc"] == "aprendiz novo; 60 preços guardados reprocessados"
    assert predictions(s.store.path) == predictions(ref.store.path)
