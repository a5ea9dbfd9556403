"""The engine with several horizons: events, metrics payload, checkpoints of the old format."""

import pickle

from conftest import run_engine, two_coins
from conftest import stored_predictions as predictions

from cryptotech.config import Settings
from cryptotech.learning.learner import CHECKPOINT_FORMAT
from cryptotech.store import Store


def settings(tmp_path) -> Settings:
    return Settings(coins={"btc": "bitcoin", "eth": "ethereum"},
                    model={"horizons": ["15m", "1h"]}, store={"path": str(tmp_path / "e.db")})


def test_every_horizon_is_forecast_stored_published_and_scored(tmp_path):
    s = settings(tmp_path)
    engine, received = run_engine(s, two_coins(40))
    previsao = [e.data for e in received if e.kind == "previsao" and e.coin == "btc"]
    assert [d["horizon"] for d in previsao[:4]] == ["15m", "1h", "15m", "1h"]
    resultado = [e.data for e in received if e.kind == "resultado" and e.coin == "btc"]
    assert {d["horizon"] for d in resultado} == {"15m", "1h"}
    payload = engine.metrics_payload("btc")
    assert payload["horizon"] == "15m" and list(payload["by_horizon"]) == ["15m", "1h"]
    assert payload["metrics"] == payload["by_horizon"]["15m"]["metrics"]
    assert payload["model_in_use"] == "persistence"
    assert payload["metrics"]["published"]["n"] == 40 - 1 - 3
    assert payload["by_horizon"]["1h"]["metrics"]["published"]["n"] == 40 - 1 - 12
    metricas = [e.data for e in received if e.kind == "metricas" and e.coin == "btc"]
    assert metricas and "by_horizon" in metricas[-1]
    assert engine.status()["coins"]["btc"]["pending_labels"] == 3 + 12


def test_a_checkpoint_of_the_one_horizon_format_is_refused_and_rebuilt(tmp_path, caplog):
    ticks = two_coins(60)
    ref = settings(tmp_path / "ref")
    (tmp_path / "ref").mkdir()
    run_engine(ref, ticks)
    s = settings(tmp_path)
    run_engine(s, ticks[:80], checkpoint_at={70})
    with Store(s.store.path) as store:
        for cp in store.checkpoints("btc") + store.checkpoints("eth"):
            meta, learner = pickle.loads(cp.blob)
            assert meta["format"] == CHECKPOINT_FORMAT
            old = pickle.dumps((meta | {"format": 1}, learner))
            store._conn.execute("UPDATE checkpoints SET blob = ? WHERE id = ?", (old, cp.id))
    second, _ = run_engine(s, ticks[80:])
    assert second.recovery["btc"] == ("reconstruído a partir dos preços guardados; 40 preços "
                                      "guardados reprocessados")
    assert "format 1" in caplog.text
    assert predictions(s.store.path) == predictions(ref.store.path)
