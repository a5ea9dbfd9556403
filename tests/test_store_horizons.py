"""The store's side of several horizons: the migration, one row per horizon, lookups."""

import sqlite3
from datetime import timedelta

from conftest import model_settings, random_walk

from cryptotech.learning.learner import CoinLearner
from cryptotech.store import MIGRATIONS, QUANTILE_COLUMNS, Store


def feed(store, ticks, learner):
    for tick in ticks:
        store.commit_tick(tick, *learner.process(tick))


def test_every_horizon_is_stored_with_its_distribution_and_settled_by_horizon(tmp_path):
    learner = CoinLearner("btc", model_settings(horizons=["15m", "1h"]))
    ticks = random_walk(40, step=timedelta(minutes=5))
    with Store(tmp_path / "a.db") as store:
        feed(store, ticks, learner)
        quarter = list(store.predictions("btc", horizon="15m"))
        hour = list(store.predictions("btc", horizon="1h"))
        assert len(quarter) == len(hour) == 39
        assert [r["made_at"] for r in quarter] == [r["made_at"] for r in hour]
        # each horizon's outcome found its own prediction (same coin and made_at)
        assert sum(r["actual"] is not None for r in quarter) == 39 - 3
        assert sum(r["actual"] is not None for r in hour) == 39 - 12
        row = hour[-1]
        assert row["horizon"] == "1h" and row["target_at"] - row["made_at"] == 3600
        qs = [row[c] for c in QUANTILE_COLUMNS]
        assert qs == sorted(qs) and row["q50"] == row["forecast"]
        assert 0 <= row["p_up"] <= 1 and row["vol"] > 0
        assert store.latest_prediction("btc", "15m")["horizon"] == "15m"
        assert store.latest_prediction("btc")["horizon"] == "1h"  # the store's default
        events = store.events_after(0)
        previsao = [e.data for e in events if e.kind == "previsao"]
        assert {d["horizon"] for d in previsao} == {"15m", "1h"}
        resultado = [e.data for e in events if e.kind == "resultado"]
        for d in resultado[:5] + previsao[:5]:
            assert len(d["quantiles"]) == 7 and d["vol"] > 0 and 0 <= d["p_up"] <= 1
            assert [x for x, _ in d["p_move"]] == [0.02, 0.05]
    with Store(tmp_path / "a.db", default_horizon="15m") as store:
        assert store.latest_prediction("btc")["horizon"] == "15m"


def test_a_one_horizon_database_is_migrated_its_rows_being_1h(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:  # a database as schema 1 left it
        conn.executescript(MIGRATIONS[1])
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute("INSERT INTO ticks (id, coin, ts, price) VALUES (1, 'btc', 1000, 10)")
        conn.execute("INSERT INTO events (id, kind, coin, ts, data) VALUES (1, 'previsao',"
                     " 'btc', 1000, '{}')")
        conn.execute("INSERT INTO predictions VALUES (1, 'btc', 1000, 4600, 10, 10, 9, 11,"
                     " 'persistence', 1)")
    with Store(path) as store:
        (row,) = store.predictions("btc")
        assert row["horizon"] == "1h" and row["q05"] is None and row["p_up"] is None
        assert store.latest_prediction("btc", "4h") is None
        indexes = {r[0] for r in store._conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'index'")}
        assert "predictions_coin_horizon_made_at" in indexes
