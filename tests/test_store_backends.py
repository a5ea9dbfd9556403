"""The same store scenarios on both backends: SQLite (a real file) and PostgreSQL (a real
server, a fresh database per test). See ``tests/pgserver.py`` for when PostgreSQL tests skip."""

from __future__ import annotations

import pytest
from conftest import model_settings, random_walk
from pgserver import fresh_database

from cryptotech.domain import Outcome
from cryptotech.errors import StoreError
from cryptotech.learning.learner import CoinLearner
from cryptotech.storage import StoreBackend, open_store
from cryptotech.store import AlertRows, Store

HORIZONS = ["15m", "1h"]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        with Store(tmp_path / "a.db", default_horizon=HORIZONS[0]) as s:
            yield s
    else:
        with fresh_database() as url, open_store(url, default_horizon=HORIZONS[0]) as s:
            yield s


def feed(store: StoreBackend, ticks, learner=None):
    learner = learner or CoinLearner(ticks[0].coin, model_settings(horizons=HORIZONS))
    results = []
    for tick in ticks:
        p, o = learner.process(tick)
        results.append(store.commit_tick(tick, p, o))
    return learner, results


def test_a_tick_with_several_horizons_and_outcomes_is_one_transaction(store):
    ticks = random_walk(40)
    _, results = feed(store, ticks)
    counts = store.counts()
    assert counts["ticks"] == 40
    assert counts["predictions"] == 2 * 39  # two horizons; the first tick has no volatility yet
    assert counts["outcomes"] == (40 - 1 - 3) + (40 - 1 - 12)  # 15 min = 3 ticks, 1 h = 12
    kinds = [e.kind for e in results[13][1]]
    assert kinds == ["tick", "resultado", "resultado", "previsao", "previsao"]
    ids = [e.id for _, evs in results for e in evs]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert [tid for tid, _ in results] == list(range(1, 41))
    for horizon in HORIZONS:
        last = store.latest_prediction("btc", horizon)
        made = [e for e in results[-1][1] if e.kind == "previsao" and e.data["horizon"] == horizon]
        assert last["id"] == made[0].id and last["horizon"] == horizon
        assert last["q50"] == pytest.approx(made[0].data["quantiles"][3])
        assert last["tick_id"] == 40 and isinstance(last["made_at"], float)
    assert store.latest_prediction("btc")["horizon"] == HORIZONS[0]  # None: the first configured
    rows = list(store.predictions("btc", horizon="1h"))
    assert len(rows) == 39 and sum(r["actual"] is not None for r in rows) == 40 - 1 - 12
    assert {type(r["covered"]) for r in rows if r["actual"] is not None} == {int}
    assert len(list(store.predictions("btc", horizon="1h", after_id=rows[10]["id"], limit=5))) == 5
    assert store.last_ticks() == {"btc": (40, ticks[-1].epoch)}
    assert store.recent_ticks("btc", since=ticks[35].epoch) == [(t.epoch, t.price) for t in ticks[35:]]
    assert store.integrity_check() == "ok"


def test_a_duplicate_tick_changes_nothing(store):
    ticks = random_walk(5)
    feed(store, ticks)
    before = store.counts()
    assert store.commit_tick(ticks[2], [], []) is None
    assert store.counts() == before


def test_a_failed_transaction_leaves_nothing_behind(store):
    ticks = random_walk(20)
    learner, _ = feed(store, ticks[:19])
    before, newest = store.counts(), store.event_id_range()
    p, o = learner.process(ticks[19])
    broken = [Outcome(o[0].prediction, float("nan"))]
    with pytest.raises(StoreError, match="ValueError: Out of range float"):
        store.commit_tick(ticks[19], p, broken)
    assert store.counts() == before and store.event_id_range() == newest
    assert store.commit_tick(ticks[19], p, o) is not None  # and the store still works


def test_checkpoints_keep_the_newest_three(store):
    for i in range(5):
        store.save_checkpoint("btc", i, bytes(range(i * 50)), "r", "p")
    store.save_checkpoint("eth", 9, b"\x00eth", "r", "p")
    kept = store.checkpoints("btc")
    assert [c.last_tick_id for c in kept] == [4, 3, 2]
    assert kept[0].blob == bytes(range(200)) and kept[0].size == 200
    assert isinstance(kept[0].blob, bytes)
    assert [c.blob for c in store.checkpoints("eth")] == [b"\x00eth"]


def test_events_after_resumes_from_any_id(store):
    _, results = feed(store, random_walk(10))
    _, eth = feed(store, random_walk(5, coin="eth"))
    every = store.events_after(0)
    assert [e.id for e in every] == sorted(e.id for _, evs in results + eth for e in evs)
    assert store.event_id_range() == (every[0].id, every[-1].id)
    middle = every[7].id
    assert store.events_after(middle) == every[8:]
    assert store.events_after(middle, limit=3) == every[8:11]
    only_eth = store.events_after(0, coins={"eth"})
    assert only_eth and {e.coin for e in only_eth} == {"eth"}
    assert store.events_after(every[-1].id) == []
    assert store.replay_floor() == 0
    assert every[0].kind == "tick" and every[0].data["ts"] == random_walk(1)[0].epoch


def test_pruning_keeps_what_recovery_and_resuming_need(store):
    ticks = random_walk(300)
    _, results = feed(store, ticks)
    store.save_checkpoint("btc", results[150][0], b"cp", "r", "p")
    store.prune(ticks[250].epoch)
    kept = [tid for tid, _ in store.ticks_after("btc", 0)]
    assert all(r[0] in kept for r in results[151:])  # recovery replays these
    assert len(kept) < 300
    tick_events = [e for e in store.events_after(0, None, 10**6) if e.kind == "tick"]
    assert [e.data["ts"] for e in tick_events] == [t.epoch for t in ticks[250:]]
    assert store.replay_floor() == tick_events[0].id - 1
    assert store.integrity_check() == "ok"


def test_values_are_kept(store):
    assert store.get_value("k") is None
    store.set_value("k", "1")
    store.set_value("k", "2")
    assert store.get_value("k") == "2"


def test_alerts_outbox_round_trip(store):
    ticks = random_walk(3)
    fired = {"coin": "btc", "rule": "preco-btc", "tipo": "preco_acima", "ts": ticks[1].epoch,
             "mensagem": "BTC acima de 100"}
    store.commit_tick(ticks[0], [], [])
    tick_id, events = store.commit_tick(
        ticks[1], [], [], alerts=AlertRows(fired=[fired], channels=["ntfy", "discord"],
                                           state=[("preco-btc", "btc", '{"acima": true}')]))
    alert_event = [e for e in events if e.kind == "alerta"]
    assert len(alert_event) == 1 and alert_event[0].data == fired
    aid = alert_event[0].id
    assert store.alerts("btc") == [fired | {"id": aid}]
    assert store.alert_state() == {("preco-btc", "btc"): {"acima": True}}
    assert store.last_alert_at() == {"preco-btc": ticks[1].epoch}
    assert sorted(store.outbox_channels()) == ["discord", "ntfy"]
    due = store.outbox_due("ntfy", now=10**12)
    assert [(d["alert_id"], d["attempts"], d["alert"]) for d in due] == [(aid, 0, fired | {"id": aid})]
    assert store.outbox_next_due("ntfy") is not None
    store.outbox_result(due[0]["id"], "nova_tentativa", "timeout", next_at=10**11)
    assert store.outbox_due("ntfy", now=10**10) == []
    store.outbox_result(due[0]["id"], "enviado")
    store.outbox_result(due[0]["id"], "enviado")  # not pending any more: nothing changes
    assert store.outbox_channels() == ["discord"] and store.outbox_next_due("ntfy") is None
    summary = store.alert_summary()
    assert summary["fired"] == 1
    assert summary["outbox"] == {"enviado": 1, "pendente": 1}
    assert summary["log_counts"] == {"nova_tentativa": 1, "enviado": 1}
    assert [r["result"] for r in summary["log"]] == ["enviado", "nova_tentativa"]
    outage = {"coin": None, "rule": "fonte", "tipo": "fonte_fora", "ts": ticks[2].epoch}
    (stored,) = store.commit_alerts(AlertRows(fired=[outage], channels=["ntfy"]))
    assert stored.kind == "alerta" and stored.id > aid
    assert [a["id"] for a in store.alerts("btc")] == [stored.id, aid]  # no coin matches any
    rule = store.add_alert_rule('{"moeda": "btc"}')
    assert store.set_alert_rule_paused(rule, True) is True
    assert store.alert_rules() == [(rule, '{"moeda": "btc"}', True)]
    assert store.delete_alert_rule(rule) is True and store.delete_alert_rule(rule) is False
    assert store.set_alert_rule_paused(rule, False) is False and store.alert_rules() == []


def test_both_backends_store_the_same_rows(tmp_path):
    """Same ticks in, the same predictions, outcomes and events out (ids included: both
    start from an empty database)."""
    ticks = random_walk(60) + random_walk(30, coin="eth", seed=2)
    ticks.sort(key=lambda t: (t.ts, t.coin))
    learners = {}
    with fresh_database() as url, open_store(url) as pg, Store(tmp_path / "a.db") as lite:
        for tick in ticks:
            learner = learners.setdefault(tick.coin, CoinLearner(tick.coin, model_settings(
                horizons=HORIZONS)))
            p, o = learner.process(tick)
            assert pg.commit_tick(tick, p, o) == lite.commit_tick(tick, p, o)
        for coin in ("btc", "eth"):
            for horizon in HORIZONS:
                assert list(pg.predictions(coin, horizon=horizon)) == \
                    list(lite.predictions(coin, horizon=horizon))
                assert pg.latest_prediction(coin, horizon) == lite.latest_prediction(coin, horizon)
        assert pg.events_after(0, limit=10**6) == lite.events_after(0, limit=10**6)
        assert pg.counts() == lite.counts() and pg.last_ticks() == lite.last_ticks()
