"""Alert rules on the bundled real BTC prices, through the real engine and a real SQLite file.

Every expectation is recomputed here from the stored ticks and outcomes, independently of
the evaluator: thresholds, hysteresis, cooldown, surprises and runs of surprises.
"""

from __future__ import annotations

import sqlite3

import pytest
from conftest import api_settings, run_engine

from cryptotech.alerts.rules import Regra
from cryptotech.sources.replay import Replay, bundled_inputs

N_TICKS = 2500


@pytest.fixture(scope="module")
def btc_ticks():
    return list(Replay([(c, p) for c, p in bundled_inputs() if c == "btc"]))[:N_TICKS]


def stored_alerts(db) -> list[tuple[str, float]]:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT rule, ts FROM alerts ORDER BY id").fetchall()


def by_rule(db, rule_id: str) -> list[float]:
    return [ts for rule, ts in stored_alerts(db) if rule.startswith(rule_id + ":")]


def test_price_threshold_fires_once_per_crossing_with_hysteresis_and_cooldown(tmp_path, btc_ticks):
    prices = sorted(t.price for t in btc_ticks)
    level = prices[len(prices) // 2]  # the median: the price hovers around it
    s = api_settings(tmp_path, coins={"btc": "bitcoin"}, alertas=[
        {"tipo": "preco_acima", "moeda": "btc", "preco": level, "intervalo_minimo": "2h"},
        {"tipo": "preco_acima", "moeda": "btc", "preco": level, "intervalo_minimo": "1s",
         "rearme_pct": 0},
    ])
    run_engine(s, btc_ticks)
    fired = by_rule(s.store.path, "config:1")
    raw = by_rule(s.store.path, "config:2")

    # recomputed from the ticks: armed -> fire when above (cooldown passed) -> re-arm when
    # back below level * (1 - 0.5 %)
    want, armed, last = [], True, None
    for t in btc_ticks:
        if not armed:
            armed = t.price <= level * 0.995
        elif t.price > level and (last is None or t.epoch - last >= 7200):
            want.append(t.epoch)
            armed, last = False, t.epoch
    assert fired == want
    crossings = sum(1 for a, b in zip(btc_ticks, btc_ticks[1:]) if a.price <= level < b.price)
    assert len(raw) == crossings + (btc_ticks[0].price > level)  # no margin: every crossing
    assert 0 < len(fired) < len(raw)  # hysteresis and cooldown fold the hovering
    assert all(b - a >= 7200 for a, b in zip(fired, fired[1:]))


def _outcomes(db) -> list[tuple[float, bool]]:
    with sqlite3.connect(db) as conn:
        return [(ts, bool(c)) for ts, c in conn.execute(
            "SELECT settled_at, covered FROM outcomes ORDER BY settled_at, prediction_id")]


def test_surprises_and_runs_of_surprises_match_the_stored_outcomes(tmp_path, btc_ticks):
    s = api_settings(tmp_path, coins={"btc": "bitcoin"}, alertas=[
        {"tipo": "fora_do_intervalo", "moeda": "btc", "intervalo_minimo": "1s"},
        {"tipo": "surpresas_seguidas", "moeda": "btc", "quantidade": 3,
         "intervalo_minimo": "1s"},
        {"tipo": "fora_do_intervalo", "moeda": "btc", "intervalo_minimo": "3h"},
    ])
    run_engine(s, btc_ticks)
    outcomes = _outcomes(s.store.path)
    assert sum(not c for _, c in outcomes) > 10, "the data must hold surprises"

    def replay(cooldown: float, streak_of: int | None) -> list[float]:
        want, armed, last, streak = [], True, None, 0
        for ts, covered in outcomes:
            streak = 0 if covered else streak + 1
            cond = (streak >= streak_of) if streak_of else not covered
            clear = streak == 0
            if not armed:
                armed = clear
            elif cond and (last is None or ts - last >= cooldown):
                want.append(ts)
                armed, last = False, ts
        return want

    assert by_rule(s.store.path, "config:1") == replay(1, None)
    assert by_rule(s.store.path, "config:2") == replay(1, 3)
    assert by_rule(s.store.path, "config:3") == replay(3 * 3600, None)
    assert len(by_rule(s.store.path, "config:3")) < len(by_rule(s.store.path, "config:1"))


RULES = [
    {"tipo": "fora_do_intervalo", "moeda": "btc"},
    {"tipo": "variacao", "percentual": 1.0, "janela": "1h"},
    {"tipo": "surpresas_seguidas", "quantidade": 2},
    {"tipo": "tempestade", "fator": 1.5, "janela": "6h"},
    {"tipo": "prob_subir", "probabilidade": 0.6},  # silent until forecasts carry p_up
]


def test_a_restart_neither_repeats_nor_loses_an_alert(tmp_path, btc_ticks):
    whole = api_settings(tmp_path / "a", coins={"btc": "bitcoin"}, alertas=RULES)
    (tmp_path / "a").mkdir()
    run_engine(whole, btc_ticks)

    split = api_settings(tmp_path / "b", coins={"btc": "bitcoin"}, alertas=RULES)
    (tmp_path / "b").mkdir()
    half = len(btc_ticks) // 2
    run_engine(split, btc_ticks[:half], checkpoint_at={half // 2})
    run_engine(split, btc_ticks[half:])  # a new engine: state from the store

    want, got = stored_alerts(whole.store.path), stored_alerts(split.store.path)
    kinds = {rule.split(":")[1] for rule, _ in want}
    assert {"1", "2", "3", "4"} <= kinds  # every market rule with data fired
    assert "5" not in kinds
    assert got == want


def test_variation_is_measured_over_its_window(tmp_path, btc_ticks):
    s = api_settings(tmp_path, coins={"btc": "bitcoin"}, alertas=[
        {"tipo": "variacao", "moeda": "btc", "percentual": 1.0, "janela": "1h",
         "intervalo_minimo": "1s", "rearme_pct": 0}])
    run_engine(s, btc_ticks)
    with sqlite3.connect(s.store.path) as conn:
        rows = conn.execute("SELECT ts, json_extract(data, '$.value') FROM alerts").fetchall()
    assert rows
    price = {t.epoch: t.price for t in btc_ticks}
    for ts, change in rows:
        ref = price[ts - 3600]  # 5-minute data without gaps: the tick one hour before
        assert change == pytest.approx((price[ts] / ref - 1) * 100)
        assert abs(change) >= 1.0


@pytest.mark.parametrize("bad, words", [
    ({"tipo": "preco_acima"}, "precisa de: preco"),
    ({"tipo": "variacao", "percentual": 2, "preco": 3}, "não usa: preco"),
    ({"tipo": "variacao", "percentual": 2, "janela": "logo"}, "duração inválida"),
    ({"tipo": "fonte_fora", "moeda": "btc"}, "moeda = 'todas'"),
])
def test_bad_rules_are_refused_in_portuguese(bad, words):
    with pytest.raises(ValueError, match=words):
        Regra(**bad)


def test_outage_rules_fire_after_their_duration_and_rearm_when_it_clears(tmp_path):

    from conftest import FeedSource

    from cryptotech.engine import Engine
    from cryptotech.hub import Hub
    from cryptotech.store import Store

    s = api_settings(tmp_path, alertas=[
        {"tipo": "fonte_fora", "duracao": "10m", "intervalo_minimo": "1s"},
        {"tipo": "motor_parado", "duracao": "5m", "intervalo_minimo": "1s"}])
    source = FeedSource()
    with Store(s.store.path) as store:
        engine = Engine(s, store, Hub(), source)
        check = engine.alerts.check_outages

        def kinds(now):
            return [a["tipo"] for a in check(engine, now)]

        t0 = 1_000_000.0
        assert kinds(t0) == []  # "starting" is not an outage
        source.status.change("unreachable", "connection refused")
        assert kinds(t0 + 1) == [] and kinds(t0 + 600) == []
        assert kinds(t0 + 601) == ["fonte_fora"]
        assert kinds(t0 + 5000) == []  # not re-armed while still down
        source.status.change("live", "prices arrive")
        assert kinds(t0 + 5001) == []
        source.status.change("rate_limited", "429")
        assert kinds(t0 + 5002) == [] and kinds(t0 + 5603) == ["fonte_fora"]

        for _ in range(engine.supervisor.fail_after):  # every tick fails: the task has failed
            engine.supervisor.failed("fonte", RuntimeError("learner crashed"), "tick skipped")
        assert kinds(t0 + 6000) == []
        assert kinds(t0 + 6300) == ["motor_parado"]
        engine._executor.shutdown()


def test_probability_rules_use_p_up_with_hysteresis_and_stay_silent_without_it():
    from datetime import timedelta

    from conftest import START

    from cryptotech.alerts.evaluate import MarketRules
    from cryptotech.alerts.rules import RegraAtiva
    from cryptotech.domain import Prediction, Tick

    rules = [RegraAtiva(id="config:1", regra=Regra(tipo="prob_subir", probabilidade=0.6,
                                                    intervalo_minimo="1s")),
             RegraAtiva(id="config:2", regra=Regra(tipo="prob_cair", probabilidade=0.6,
                                                    intervalo_minimo="1s", horizonte="4h"))]
    market = MarketRules(rules)
    fired = []
    for i, p_up in enumerate([None, 0.5, 0.65, 0.7, 0.58, 0.53, 0.7, 0.3]):
        t = START + timedelta(minutes=5 * i)
        preds = [Prediction("btc", t, t + timedelta(hours=h), 100.0, 100.0, 99.0, 101.0, "x",
                            horizon=f"{h}h", p_up=p_up) for h in (1, 4)]
        fired += [(i, a["rule_id"]) for a in market.step(Tick("btc", t, 100.0), preds, [])]
    # rises: fires at 0.65, re-arms only at <= 0.54 (10 % under 0.6), fires again at 0.7;
    # falls (1 - p_up at 4h): 0.7 at the last step
    assert fired == [(2, "config:1"), (6, "config:1"), (7, "config:2")]


def test_backtest_alertas_counts_what_the_live_engine_fires(tmp_path, btc_ticks, capsys):
    import gzip

    from cryptotech.alerts.rules import config_rules
    from cryptotech.cli import main

    rules = [{"tipo": "fora_do_intervalo", "moeda": "btc"},
             {"tipo": "variacao", "percentual": 1.0, "janela": "1h"},
             {"tipo": "fonte_fora"}]
    data = tmp_path / "BTCUSDT_5m.csv"
    src = [p for c, p in bundled_inputs() if c == "btc"][0]
    with gzip.open(src, "rt") as fh:
        data.write_text("".join(line for _, line in zip(range(1501), fh)))
    config = tmp_path / "config.toml"
    config.write_text('[coins]\nbtc = "bitcoin"\n[model]\ncandidates = ["bayes_linear"]\n'
                      + "".join("[[alertas]]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"')
                                                          for k, v in r.items())
                                for r in rules))
    assert main(["backtest", str(data), "--alertas", "--config", str(config),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    s = api_settings(tmp_path, coins={"btc": "bitcoin"}, alertas=rules)
    run_engine(s, btc_ticks[:1500])
    for rule in config_rules(list(s.alertas))[:2]:
        n = len(by_rule(s.store.path, rule.id))
        assert n > 0
        assert f"{rule.id:>10}  {n:>6}  {rule.regra.describe()}" in out
    assert "fonte de preços fora do ar por 10m (live only)" in out
