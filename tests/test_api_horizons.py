"""Several horizons through the API, on a real uvicorn: ``/prever?horizonte=``, the predictive
distribution in Portuguese, ``/previsoes`` (JSON and CSV) by horizon, ``/metricas`` with proper
scores per horizon, and ``horizonte`` on every SSE ``previsao`` / ``resultado``."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime

import httpx
import pytest
from conftest import FeedSource, LiveServer, api_settings, random_walk, wait_until
from httpx_sse import connect_sse

from cryptotech.api.app import create_app
from cryptotech.api.routes import CSV_COLUMNS
from cryptotech.domain import QUANTILE_LEVELS

HORIZONS = ["15m", "1h", "4h"]
N = 80  # 5-minute ticks: 6 h 40 min, so even 4 h forecasts have outcomes
QKEYS = ["q05", "q10", "q25", "q50", "q75", "q90", "q95"]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    settings = api_settings(tmp_path_factory.mktemp("horizons"),
                            model={"horizons": HORIZONS, "move_thresholds": [0.01, 0.03]})
    source = FeedSource()
    ticks = sorted(random_walk(N, "btc", seed=1, price=100_000.0)
                   + random_walk(N, "eth", seed=2, price=3_000.0), key=lambda t: (t.ts, t.coin))
    with LiveServer(create_app(settings, source)) as server:
        source.feed(ticks[:-2])
        wait_until(lambda: server.state.engine.ticks_processed == len(ticks) - 2)
        server.source, server.spare = source, ticks[-2:]
        with httpx.Client(base_url=server.url, timeout=10) as client:
            server.client = client
            yield server


@pytest.mark.parametrize("horizon", HORIZONS)
def test_prever_gives_the_distribution_at_each_horizon(api, horizon):
    body = api.client.get("/prever/btc", params={"horizonte": horizon}).json()
    stored = api.state.store.latest_prediction("btc", horizon)
    assert body["id"] == stored["id"] and body["horizonte"] == horizon
    made, target = (datetime.fromisoformat(body[k]) for k in ("feita_em", "alvo_em"))
    assert (target - made).total_seconds() == body["horizonte_segundos"]
    assert body["horizontes_disponiveis"] == HORIZONS
    d = body["distribuicao"]
    assert [q["nivel"] for q in d["quantis"]] == list(QUANTILE_LEVELS)
    prices = [q["preco"] for q in d["quantis"]]
    assert prices == sorted(prices) and prices == pytest.approx([stored[k] for k in QKEYS])
    assert d["intervalo"] == {"nivel": 0.9, "inferior": body["limite_inferior"],
                              "superior": body["limite_superior"]}
    assert d["prob_subir"] == pytest.approx(stored["p_up"])
    assert d["volatilidade_prevista"] == pytest.approx(stored["vol"]) and d["volatilidade_prevista"] > 0
    moves = d["prob_movimento"]
    assert [m["limiar"] for m in moves] == [0.01, 0.03]
    own = api.call(lambda: api.state.engine.learners["btc"].horizon(horizon).last_prediction)
    assert own.made_at.timestamp() == stored["made_at"]  # the forecast's own probabilities
    assert [m["probabilidade"] for m in moves] == pytest.approx([p for _, p in own.p_move])
    assert 1 > moves[0]["probabilidade"] >= moves[1]["probabilidade"] >= 0
    assert d["resumo"].startswith(f"Faixa provável em {horizon}:") and "chance de subir" in d["resumo"]
    assert body["modelo"] == "persistence" and "sem mudança" in d["nota"]
    assert body["quantis"] == {k: pytest.approx(stored[k]) for k in QKEYS}


def test_prever_default_is_the_first_horizon_and_unknown_lists_them(api):
    default = api.client.get("/prever/btc").json()
    assert default["horizonte"] == HORIZONS[0]
    assert default == api.client.get(f"/prever/btc?horizonte={HORIZONS[0]}").json()
    r = api.client.get("/prever/btc", params={"horizonte": "2h"})
    assert r.status_code == 422
    error = r.json()["erros"][0]
    assert error["parametro"] == "horizonte"
    assert all(h in error["mensagem"] for h in HORIZONS) and " or " not in error["mensagem"]


def test_prever_cache_keeps_each_horizon_apart(api):
    bodies = {h: api.client.get("/prever/eth", params={"horizonte": h}).json() for h in HORIZONS}
    again = {h: api.client.get("/prever/eth", params={"horizonte": h}).json() for h in HORIZONS}
    assert bodies == again and len({b["id"] for b in bodies.values()}) == len(HORIZONS)


def test_previsoes_filter_by_horizon_json_and_csv(api):
    for horizon in HORIZONS:
        stored = [row["id"] for row in api.state.store.predictions("btc", horizon=horizon)]
        body = api.client.get("/previsoes/btc", params={"horizonte": horizon}).json()
        assert body["horizonte"] == horizon
        assert [i["id"] for i in body["itens"]] == stored
        assert {i["horizonte"] for i in body["itens"]} == {horizon}
        assert all(set(i["quantis"]) == set(QKEYS) and i["prob_subir"] is not None
                   for i in body["itens"])
        text = api.client.get("/previsoes/btc", params={"horizonte": horizon,
                                                        "exportar_csv": "true"}).text
        rows = list(csv.DictReader(io.StringIO(text)))
        assert list(rows[0]) == CSV_COLUMNS
        assert [int(r["id"]) for r in rows] == stored and {r["horizonte"] for r in rows} == {horizon}
        first = body["itens"][0]
        assert float(rows[0]["q95"]) == pytest.approx(first["quantis"]["q95"])
        assert float(rows[0]["volatilidade_prevista"]) == pytest.approx(first["volatilidade_prevista"])
    default = api.client.get("/previsoes/btc").json()
    assert default["horizonte"] == HORIZONS[0]


def test_metricas_proper_scores_per_horizon_against_the_ewma_baseline(api):
    learner_metrics = api.call(lambda: api.state.engine.learners["btc"].metrics())
    for horizon in HORIZONS:
        body = api.client.get("/metricas/btc", params={"horizonte": horizon}).json()
        raw = learner_metrics[horizon]
        assert body["horizonte"] == horizon and body["horizontes_disponiveis"] == HORIZONS
        pub, ewma = body["publicado"], body["ewma"]
        assert pub["resultados"] == raw["published"]["n"] > 0
        assert pub["escore_intervalo_bps"] == pytest.approx(raw["published"]["interval_score"])
        assert pub["skill_escore_intervalo"] == pytest.approx(raw["published"]["interval_score_skill"])
        assert pub["pinball_medio_bps"] == pytest.approx(raw["published"]["pinball"])
        assert pub["skill_pinball"] == pytest.approx(raw["published"]["pinball_skill"])
        assert pub["brier"] == pytest.approx(raw["published"]["brier"])
        assert pub["skill_brier"] == pytest.approx(raw["published"]["brier_skill"])
        assert pub["logverossimilhanca_vol"] == pytest.approx(raw["published"]["vol_loglik"])
        assert set(pub["cobertura_quantis"]) == set(QKEYS)
        assert pub["skill_vs_persistencia"] == pytest.approx(raw["published"]["skill"])
        assert ewma["brier"] == pytest.approx(0.25, abs=0.25) and ewma["skill_brier"] == 0
        assert set(body["por_horizonte"]) == set(HORIZONS)
        assert body["por_horizonte"][horizon]["publicado"] == pub
    text = api.client.get("/metricas/btc").json()["explicacao"]
    for words in ("escore_intervalo_bps", "pinball", "brier", "referência ewma", "skill_"):
        assert words in text, words


def test_every_sse_forecast_and_outcome_carries_its_horizon(api):
    got: list = []
    with httpx.Client(base_url=api.url, timeout=httpx.Timeout(10, read=30)) as client:
        with connect_sse(client, "GET", "/stream", params={"moedas": "btc"}) as source:
            wait_until(lambda: api.state.hub.subscribers >= 1)
            api.source.feed([t for t in api.spare if t.coin == "btc"])
            for event in source.iter_sse():
                got.append(event)
                kinds = [e.event for e in got]
                if kinds.count("previsao") >= len(HORIZONS) and "metricas" in kinds:
                    break
    forecasts = [json.loads(e.data) for e in got if e.event == "previsao"]
    outcomes = [json.loads(e.data) for e in got if e.event == "resultado"]
    assert {p["horizonte"] for p in forecasts} == set(HORIZONS)
    assert outcomes and all(o["horizonte"] in HORIZONS for o in outcomes)
    assert all(set(p["quantis"]) == set(QKEYS) and p["volatilidade_prevista"] > 0
               for p in forecasts)
    metricas = json.loads(next(e for e in got if e.event == "metricas").data)
    assert set(metricas["por_horizonte"]) == set(HORIZONS) and "explicacao" not in metricas
    assert all(set(m) == {"horizonte", "modelo_em_uso", "publicado", "ewma"}
               for m in metricas["por_horizonte"].values())
