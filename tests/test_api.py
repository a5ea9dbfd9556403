"""The REST API against a real uvicorn on 127.0.0.1: every seed endpoint, in Portuguese."""

from __future__ import annotations

import csv
import io
import math
import re
from datetime import datetime, timedelta

import httpx
import pytest
import river
from conftest import START, FeedSource, LiveServer, api_settings, random_walk, wait_until

import cryptotech
from cryptotech.api import routes
from cryptotech.api.app import create_app
from cryptotech.api.present import Presenter
from cryptotech.api.routes import csv_chunks
from cryptotech.api.timefmt import parse_instant
from cryptotech.hub import Event

SECRET = "CG-teste-segredo-0123456789"
N = 60  # ticks per coin, 5 minutes apart: 5 hours, so 1 h outcomes exist


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """btc and eth with 60 ticks each, sol with one (warming up), ada with none."""
    tmp = tmp_path_factory.mktemp("api")
    settings = api_settings(tmp, coins={"btc": "bitcoin", "eth": "ethereum", "sol": "solana",
                                        "ada": "cardano"},
                            coingecko_api_key=SECRET)
    source = FeedSource()
    ticks = sorted(random_walk(N, "btc", seed=1, price=100_000.0)
                   + random_walk(N, "eth", seed=2, price=3_000.0)
                   + random_walk(1, "sol", seed=3, price=150.0), key=lambda t: (t.ts, t.coin))
    with LiveServer(create_app(settings, source)) as server:
        source.feed(ticks)
        wait_until(lambda: server.state.engine.ticks_processed == len(ticks))
        with httpx.Client(base_url=server.url, timeout=10) as client:
            server.client = client
            yield server


def no_trace(response: httpx.Response) -> None:
    assert "Traceback" not in response.text and "File \"" not in response.text


def test_home_page_links_everything(api):
    r = api.client.get("/")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    for link in ("/docs", "/redoc", "/painel/", "/status", "/moedas", "/stream",
                 "/prever/btc", "/previsoes/eth", "/metricas/sol"):
        assert f'href="{link}' in r.text
    assert 'lang="pt-BR"' in r.text


def test_moedas_lists_the_configured_coins(api):
    body = api.client.get("/moedas").json()
    assert body["moedas"] == ["btc", "eth", "sol", "ada"]
    assert body["detalhes"][0] == {"simbolo": "btc", "id_coingecko": "bitcoin"}
    assert body["moeda_cotacao"] == "usd"


def test_status_heartbeat(api):
    body = api.client.get("/status").json()
    assert body["situacao"] == "ok"
    assert body["fonte"]["estado"] == "live"
    assert body["ticks_processados"] == 2 * N + 1
    assert set(body["moedas"]) == {"btc", "eth", "sol", "ada"}
    btc = body["moedas"]["btc"]
    last = START + (N - 1) * timedelta(minutes=5)
    assert datetime.fromisoformat(btc["ultimo_preco_em"]) == last
    assert btc["ultimo_preco_em"].endswith("-03:00")
    assert btc["modelo_em_uso"] == "persistence"
    assert body["moedas"]["ada"]["ultimo_preco_em"] is None
    assert body["banco"]["ticks"] == 2 * N + 1
    assert body["assinantes_max"] == 1000
    assert body["fuso_horario"] == "America/Sao_Paulo"
    assert body["versao"] == cryptotech.__version__ and body["versao_river"] == river.__version__


def test_prever_gives_the_latest_forecast_with_honest_context(api):
    r = api.client.get("/prever/btc")
    assert r.status_code == 200
    p = r.json()
    made = datetime.fromisoformat(p["feita_em"])
    assert p["feita_em"].endswith("-03:00") and p["alvo_em"].endswith("-03:00")
    assert made == START + (N - 1) * timedelta(minutes=5)
    assert datetime.fromisoformat(p["alvo_em"]) - made == timedelta(hours=1)
    assert p["limite_inferior"] <= p["previsao"] <= p["limite_superior"]
    assert p["horizonte"] == "1h" and p["horizonte_segundos"] == 3600
    assert p["nivel_intervalo"] == 0.9 and p["moeda_cotacao"] == "usd"
    assert p["situacao"] == "pendente" and p["preco_real"] is None
    metrics = api.call(lambda: api.state.engine.learners["btc"].horizon_metrics())
    ctx = p["contexto"]
    assert ctx["resultados"] == metrics["published"]["n"] > 0
    assert ctx["cobertura"] == pytest.approx(metrics["published"]["coverage"])
    assert ctx["skill_vs_persistencia"] == pytest.approx(metrics["published"]["skill"])
    assert ctx["mae_persistencia"] == pytest.approx(metrics["persistence"]["mae"])
    assert "persistência" in ctx["resumo"] and f"Em {ctx['resultados']} resultados" in ctx["resumo"]
    stored = api.state.store.latest_prediction("btc")
    assert p["id"] == stored["id"] and p["previsao"] == pytest.approx(stored["forecast"])


@pytest.mark.parametrize("coin", ["xyz", "b%20tc", "btcx"])
def test_unknown_coin_is_404_in_portuguese(api, coin):
    for path in (f"/prever/{coin}", f"/previsoes/{coin}", f"/metricas/{coin}"):
        r = api.client.get(path)
        assert r.status_code == 404, path
        assert "não encontrada" in r.json()["detalhe"] and "btc, eth, sol, ada" in r.json()["detalhe"]
        no_trace(r)


def test_coins_in_any_case_are_the_lowercase_coin(api):
    """One rule everywhere: any case is accepted and normalised to lowercase."""
    for path in ("/prever/{}", "/previsoes/{}?limite=3", "/metricas/{}"):
        lower = api.client.get(path.format("btc"))
        for spelling in ("BTC", "Btc"):
            r = api.client.get(path.format(spelling))
            assert r.status_code == 200, (path, spelling)
            assert r.json() == lower.json()
    assert api.client.head("/stream?moedas=BTC,Eth").status_code == 200


@pytest.mark.parametrize("path", ["/prever/{}", "/previsoes/{}", "/metricas/{}",
                                  "/{}", "/previsoes/btc/{}"])
def test_unknown_ids_are_echoed_as_a_short_prefix(api, path):
    r = api.client.get(path.format("a" * 60_000))  # httpx refuses longer URLs
    assert r.status_code == 404
    assert len(r.content) < 500
    detail = r.json()["detalhe"]
    assert "a" * 16 in detail and "a" * 33 not in detail and "…" in detail


@pytest.mark.parametrize("path", ["/", "/status", "/moedas", "/prever/btc", "/previsoes/btc",
                                  "/previsoes/btc?exportar_csv=true", "/metricas/btc",
                                  "/openapi.json", "/docs", "/redoc"])
def test_unknown_query_parameters_are_ignored(api, path):
    """A browser cache-buster (``?_=123``) or a tracking tag never breaks a call."""
    sep = "&" if "?" in path else "?"
    r = api.client.get(f"{path}{sep}_=123&utm_source=x&inico=2025-01-01")
    assert r.status_code == 200, r.text
    if path == "/previsoes/btc":
        assert r.json() == api.client.get(path).json()


def test_prever_warming_up_is_503_with_reason_and_when(api):
    r = api.client.get("/prever/sol")
    assert r.status_code == 503
    body = r.json()
    assert body["motivo"] == "aquecendo" and body["precos_recebidos"] == 1
    assert "aquecendo" in body["detalhe"]
    assert int(r.headers["retry-after"]) == body["tentar_novamente_em_segundos"] >= 1
    assert datetime.fromisoformat(body["previsao_esperada_em"]).utcoffset() == timedelta(hours=-3)
    r = api.client.get("/prever/ada")
    assert r.status_code == 503 and r.json()["motivo"] == "sem_dados"
    assert "nenhum preço" in r.json()["detalhe"]


def test_warm_up_names_the_source_state_in_portuguese(api, monkeypatch):
    status = api.state.engine.source.status
    monkeypatch.setattr(status, "state", "starting")
    monkeypatch.setattr(status, "message", "starting")
    detail = api.client.get("/prever/ada").json()["detalhe"]
    assert detail == "ada: nenhum preço recebido ainda; fonte: iniciando"


def test_previsoes_pages_cover_the_history_exactly_once(api):
    stored = [row["id"] for row in api.state.store.predictions("btc")]
    assert len(stored) > 20
    seen, url, pages = [], "/previsoes/btc?limite=7", 0
    while url is not None and pages < 50:
        body = api.client.get(url).json()
        assert body["quantidade"] == len(body["itens"]) <= 7
        seen += [item["id"] for item in body["itens"]]
        url = body["proxima_pagina"]
        pages += 1
        if url is not None:
            assert body["proximo_apos_id"] == body["itens"][-1]["id"]
    assert seen == stored
    body = api.client.get("/previsoes/btc").json()
    assert body["limite"] == 1000 and body["quantidade"] == len(stored)
    settled = [i for i in body["itens"] if i["situacao"] == "realizada"]
    assert settled and all(i["preco_real"] is not None and isinstance(i["dentro_do_intervalo"], bool)
                           for i in settled)
    first = settled[0]
    assert first["erro"] == pytest.approx(first["previsao"] - first["preco_real"])


def test_previsoes_time_filter_naive_means_the_configured_zone(api):
    # 01:00 UTC on START is 22:00 of the previous day in Sao Paulo
    naive = {"inicio": "2024-12-31T22:00", "fim": "2024-12-31T23:00"}
    offset = {"inicio": "2024-12-31T22:00-03:00", "fim": "2024-12-31T23:00:00-0300"}
    utc = {"inicio": "2025-01-01T01:00Z", "fim": "2025-01-01T02:00:00Z"}
    results = []
    for params in (naive, offset, utc):
        r = api.client.get("/previsoes/btc", params=params)
        assert r.status_code == 200, r.text
        results.append([i["id"] for i in r.json()["itens"]])
        body = r.json()
        assert datetime.fromisoformat(body["inicio"]) == START + timedelta(hours=1)
    assert results[0] == results[1] == results[2]
    assert len(results[0]) == 13  # 01:00 to 02:00 inclusive, every 5 minutes
    items = api.client.get("/previsoes/btc", params=naive).json()["itens"]
    times = [datetime.fromisoformat(i["feita_em"]) for i in items]
    assert min(times) == START + timedelta(hours=1) and max(times) == START + timedelta(hours=2)


@pytest.mark.parametrize("query, parametro, words", [
    ("inicio=ontem", "inicio", "formato inválido"),
    ("inicio=2025-02-30T10:00", "inicio", "data inexistente"),
    ("inicio=2025-01-02&fim=2025-01-01", "fim", "posterior a inicio"),
    ("limite=0", "limite", "maior ou igual a 1"),
    ("limite=10001", "limite", "menor ou igual a 10000"),
    ("limite=dez", "limite", "número inteiro"),
    ("apos_id=-1", "apos_id", "maior ou igual a 0"),
    ("apos_id=99999999999999999999999", "apos_id", "menor ou igual"),
    ("exportar_csv=talvez", "exportar_csv", "true ou false"),
    ("limite=1&limite=2", "limite", "mais de uma vez"),
    ("_=1&limite=0", "limite", "maior ou igual a 1"),  # unknown ignored, known still checked
])
def test_bad_query_is_422_in_portuguese(api, query, parametro, words):
    r = api.client.get(f"/previsoes/btc?{query}")
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["detalhe"].startswith("parâmetro inválido")
    assert body["erros"][0]["parametro"] == parametro and body["erros"][0]["local"] == "query"
    assert words in body["erros"][0]["mensagem"]
    no_trace(r)


@pytest.mark.parametrize("query", [
    "inicio=9999-12-31T23:59", "inicio=9999-12-31T21:00&limite=1",
    "fim=9999-12-31T23:59&exportar_csv=true", "inicio=0001-01-01T00:00Z&limite=1",
    "inicio=0001-01-01T00:00%2B23:59", "fim=9999-12-31T12:00-23:59&exportar_csv=true",
])
def test_dates_beyond_year_9999_or_before_year_1_are_422(api, query):
    """Valid-looking dates that fall outside 0001..9999 in UTC or in the configured zone."""
    r = api.client.get(f"/previsoes/btc?{query}")
    assert r.status_code == 422, r.text
    assert "fora do intervalo aceito" in r.json()["erros"][0]["mensagem"]
    no_trace(r)


def test_csv_export_is_a_streamed_download(api):
    with api.client.stream("GET", "/previsoes/btc", params={"exportar_csv": "true"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"] == "text/csv; charset=utf-8"
        assert r.headers["content-disposition"] == 'attachment; filename="previsoes_btc.csv"'
        assert r.headers.get("transfer-encoding") == "chunked" and "content-length" not in r.headers
        text = r.read().decode("utf-8")
    rows = list(csv.DictReader(io.StringIO(text)))
    stored = list(api.state.store.predictions("btc"))
    assert [int(row["id"]) for row in rows] == [p["id"] for p in stored]
    assert rows[0]["feita_em"].endswith("-03:00") and rows[0]["moeda"] == "btc"
    assert {r["dentro_do_intervalo"] for r in rows} == {"true", "false", ""}  # as in the JSON
    assert rows[-1]["preco_real"] == "" and rows[-1]["situacao"] == "pendente"
    r = api.client.get("/previsoes/eth", params={"exportar_csv": "true", "inicio": "2024-12-31T22:00",
                                                  "fim": "2025-01-01T00:00-03:00"})
    assert r.headers["content-disposition"] == (
        'attachment; filename="previsoes_eth_20241231T2200_20250101T0000.csv"')
    assert len(r.text.strip().splitlines()) == 1 + 25


def test_previsoes_newest_first_pages_and_csv(api):
    stored = [row["id"] for row in api.state.store.predictions("btc")]
    seen, url = [], "/previsoes/btc?ordem=desc&limite=7"
    for _ in range(50):
        body = api.client.get(url).json()
        assert body["ordem"] == "desc" and body["proximo_apos_id"] is None
        seen += [item["id"] for item in body["itens"]]
        url = body["proxima_pagina"]
        if url is None:
            break
        assert "antes_id=" in url and body["proximo_antes_id"] == body["itens"][-1]["id"]
    assert seen == stored[::-1]
    r = api.client.get("/previsoes/btc", params={"ordem": "desc", "exportar_csv": "true"})
    assert [int(row["id"]) for row in csv.DictReader(io.StringIO(r.text))] == stored[::-1]
    r = api.client.get("/previsoes/btc", params={"ordem": "nova"})
    assert r.status_code == 422 and r.json()["erros"][0]["parametro"] == "ordem"


def test_home_page_history_link_shows_recent_forecasts(api):
    page = api.client.get("/").text
    href = re.search(r'href="(/previsoes/btc\?[^"]*)">histórico', page).group(1)
    body = api.client.get(href.replace("&amp;", "&")).json()
    newest = max(row["id"] for row in api.state.store.predictions("btc"))
    assert body["itens"][0]["id"] == newest
    assert "Sao Paulo" in page


def test_csv_chunks_are_lazy(api, monkeypatch):
    """A long range is written in chunks as rows are read, never loaded whole."""
    monkeypatch.setattr(routes, "CSV_FLUSH_ROWS", 5)
    pulled = []

    class CountingStore:
        def predictions(self, *args):
            for row in api.state.store.predictions("btc"):
                pulled.append(row["id"])
                yield row

    chunks = csv_chunks(CountingStore(), Presenter(api.state.settings), "btc", None, None, 0, None)
    first = next(chunks)
    assert len(pulled) == 5 and first.count("\r\n") == 6  # header + 5 rows
    rest = list(chunks)
    assert len(rest) >= 2 and len(pulled) == len(list(api.state.store.predictions("btc")))


def test_metricas_beside_persistence(api):
    body = api.client.get("/metricas/eth").json()
    learner_metrics = api.call(lambda: api.state.engine.learners["eth"].horizon_metrics())
    assert body["moeda"] == "eth" and body["modelo_em_uso"] == "persistence"
    assert set(body["candidatos"]) == {"bayes_linear", "har"}  # the EWMA baseline has its own block
    assert body["ewma"]["resultados"] == learner_metrics["ewma"]["n"] > 0
    assert body["publicado"]["resultados"] == learner_metrics["published"]["n"] > 0
    assert body["persistencia"]["mae"] == pytest.approx(learner_metrics["persistence"]["mae"])
    assert body["candidatos"]["bayes_linear"]["skill_vs_persistencia"] == pytest.approx(
        learner_metrics["bayes_linear"]["skill"])
    assert "persistência" in body["explicacao"]
    for words in ("MAE", "R²", "pontos-base", "bps", "frações", "habilidade"):
        assert words in body["explicacao"], words
    # every rate is a fraction: mape too (River gives it in %)
    assert body["publicado"]["mape"] == pytest.approx(learner_metrics["published"]["mape"] / 100)
    assert 0 < body["publicado"]["mape"] < 0.1
    empty = api.client.get("/metricas/ada").json()
    assert empty["publicado"]["resultados"] == 0 and empty["publicado"]["mae"] is None


def test_read_only_and_head(api):
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        for path in ("/", "/status", "/prever/btc", "/previsoes/btc", "/stream"):
            r = api.client.request(method, path)
            assert r.status_code == 405, (method, path)
            assert "somente leitura" in r.json()["detalhe"]
    for path in ("/", "/status", "/moedas", "/prever/btc", "/previsoes/btc", "/metricas/btc"):
        r = api.client.head(path)
        assert r.status_code == 200 and r.content == b"", path
    r = api.client.head("/stream")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")


def test_unknown_path_is_404_in_portuguese(api):
    r = api.client.get("/previsao/btc")
    assert r.status_code == 404 and "não encontrado" in r.json()["detalhe"]


def test_docs_redoc_and_a_coin_dropdown(api):
    assert api.client.get("/docs").status_code == 200
    assert api.client.get("/redoc").status_code == 200
    schema = api.client.get("/openapi.json").json()
    param = next(p for p in schema["paths"]["/prever/{moeda}"]["get"]["parameters"]
                 if p["name"] == "moeda")
    ref = param["schema"]["$ref"].rsplit("/", 1)[-1]
    assert schema["components"]["schemas"][ref]["enum"] == ["btc", "eth", "sol", "ada"]
    prediction = schema["components"]["schemas"]["PrevisaoAtual"]
    assert all("examples" in field or "$ref" in field for field in prediction["properties"].values())
    responses = schema["paths"]["/prever/{moeda}"]["get"]["responses"]
    assert set(responses) == {"200", "404", "422", "503"}
    assert "text/csv" in schema["paths"]["/previsoes/{moeda}"]["get"]["responses"]["200"]["content"]
    alerts = {"/alertas", "/alertas/regras", "/alertas/regras/{regra_id}"}  # test_alerts_api
    assert set(schema["paths"]) - alerts == {"/", "/status", "/saude", "/moedas", "/prever/{moeda}",
                                             "/previsoes/{moeda}", "/metricas/{moeda}", "/stream"}
    assert all(set(ops) == {"get"} for p, ops in schema["paths"].items() if p not in alerts)


def test_the_api_key_never_appears(api):
    bodies = [api.client.get(path).text for path in (
        "/", "/status", "/moedas", "/prever/btc", "/prever/sol", "/previsoes/btc",
        "/previsoes/btc?exportar_csv=true", "/metricas/btc", "/openapi.json", "/docs",
        "/prever/nada", "/previsoes/btc?limite=x", "/previsoes/btc?_=1")]
    with api.client.stream("GET", "/stream?ultimo_id=0") as r:
        chunk = b""
        for part in r.iter_bytes():
            chunk += part
            if len(chunk) > 20_000:
                break
    bodies.append(chunk.decode("utf-8", "replace"))
    assert all(SECRET not in body for body in bodies)
    assert api.state.settings.coingecko_api_key.get_secret_value() == SECRET


def test_internal_errors_are_portuguese_without_trace(api, monkeypatch):
    from cryptotech.errors import StoreError

    store = api.state.store

    def broken(coin, horizon=None):
        raise RuntimeError("boom /secret/path.py line 3")

    def unavailable(coin, horizon=None):
        raise StoreError("database is locked")

    monkeypatch.setattr(store, "latest_prediction", broken)
    api.call(api.state.forecasts.changed, Event("previsao", {}, "btc"))  # not from the cache
    r = api.client.get("/prever/btc")
    assert r.status_code == 500
    assert r.json() == {"detalhe": "erro interno do servidor; o problema foi registrado no log"}
    monkeypatch.setattr(store, "latest_prediction", unavailable)
    r = api.client.get("/prever/btc")
    assert r.status_code == 503 and "banco de dados indisponível" in r.json()["detalhe"]
    assert "locked" not in r.text


def test_cors_is_off_by_default_and_an_allow_list_when_set(tmp_path, api):
    r = api.client.get("/moedas", headers={"Origin": "http://evil.example"})
    assert "access-control-allow-origin" not in r.headers
    r = api.client.options("/moedas", headers={"Origin": "http://evil.example",
                                               "Access-Control-Request-Method": "GET"})
    assert r.status_code == 405
    settings = api_settings(tmp_path, api={"cors_origins": ["http://painel.exemplo"]})
    with LiveServer(create_app(settings)) as server, httpx.Client(base_url=server.url) as client:
        ok = client.get("/moedas", headers={"Origin": "http://painel.exemplo"})
        assert ok.headers["access-control-allow-origin"] == "http://painel.exemplo"
        other = client.get("/moedas", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        pre = client.options("/prever/btc", headers={"Origin": "http://painel.exemplo",
                                                      "Access-Control-Request-Method": "POST"})
        assert pre.status_code == 400


def test_json_never_carries_nan_or_infinity(api):
    presenter = Presenter(api.state.settings)
    bad = {"n": 3, "mae": math.nan, "rmse": math.inf, "mape": -math.inf, "r2": None,
           "skill": math.nan, "direction_hit_rate": 0.5, "coverage": 1.0, "mean_width_bps": 10.0}
    m = presenter.metrics("btc", "persistence", {"published": bad, "persistence": bad,
                                                  "bayes_linear": bad})
    text = m.model_dump_json()
    assert "NaN" not in text and "Infinity" not in text
    assert m.publicado.mae is None and m.publicado.rmse is None and m.publicado.mape is None
    row = {"id": 1, "coin": "btc", "made_at": 0.0, "target_at": 3600.0, "price": math.inf,
           "forecast": math.nan, "lower": 1.0, "upper": 2.0, "model": "x", "actual": None,
           "error": None, "covered": None}
    assert "NaN" not in presenter.prediction(row).model_dump_json()


def test_prices_carry_no_float_noise(api):
    presenter = Presenter(api.state.settings)
    row = {"id": 1, "coin": "btc", "made_at": 0.0, "target_at": 3600.0,
           "price": 104238.49999999993, "forecast": 104238.49999999993,
           "lower": 0.16912345678901234, "upper": 2.0000000000000004, "model": "x",
           "actual": 0.000012345678912345, "error": 208.30000000000291, "covered": 1}
    p = presenter.prediction(row)
    assert p.previsao == 104238.5  # computed: rounded to 10 significant digits
    assert p.preco_atual == 104238.49999999993  # the source's own price: as received
    assert p.limite_inferior == 0.1691234568 and p.limite_superior == 2.0  # DOGE keeps digits
    assert p.preco_real == 1.234567891e-05 and p.erro == 208.3
    items = api.client.get("/previsoes/btc?limite=1000").json()["itens"]
    numbers = [v for item in items for k, v in item.items()
               if isinstance(v, float) and k != "preco_atual"]
    assert numbers and all(float(f"{v:.10g}") == v for v in numbers)


def test_status_reasons_and_warm_up_are_portuguese(api):
    body = api.client.get("/status").json()
    keys = set(body["ignorados"]) | {k for c in body["moedas"].values() for k in c["ignorados"]}
    assert "aquecendo" in keys
    english = {"warming_up", "duplicate", "out_of_order", "unknown_coin", "already_stored"}
    assert not keys & english


def test_parse_instant_matches_the_documented_pattern():
    from zoneinfo import ZoneInfo

    kolkata = ZoneInfo("Asia/Kolkata")
    assert parse_instant("2025-01-01T05:30", kolkata) == parse_instant("2025-01-01T00:00Z", kolkata)
    assert parse_instant("2025-01-01 05:30:00.5+05:30", kolkata) == 1735689600.5
    with pytest.raises(ValueError, match="data/hora inválida"):
        parse_instant("2025-W01", kolkata)
