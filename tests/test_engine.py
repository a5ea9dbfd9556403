import logging
import pickle

import pytest
from conftest import random_walk, run_engine, two_coins
from conftest import stored_predictions as predictions

from cryptotech.config import Settings
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
