"""The dashboard at ``/painel/``, in a real headless Chromium.

Debian's ``chromium`` is driven by Playwright through ``executable_path`` (no browser is ever
downloaded); without it, or without Playwright, the browser tests skip and say why. The
server is a real uvicorn on 127.0.0.1 (:class:`conftest.LiveServer`, ticks fed by hand), and,
for the restart test, the real ``cryptotech demo`` process stopped and started again on the
same port and database. Every wait is bounded. Screenshots go to ``test-artifacts/``.

No timing is asserted here: the tick-to-chart latency is measured by
``benchmarks/bench_dashboard.py``.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest
from conftest import (
    FeedSource,
    LiveServer,
    api_settings,
    cli_env,
    free_port,
    random_walk,
    start_cli,
    wait_until,
)

from cryptotech.api.app import create_app
from cryptotech.api.routes import CSV_COLUMNS
from cryptotech.api.timefmt import local_iso
from cryptotech.dashboard import mount_dashboard
from cryptotech.dashboard.app import history_params
from cryptotech.store import Store

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
COINS = {"btc": "bitcoin", "eth": "ethereum", "sol": "solana"}
PRICES = {"btc": 100_000.0, "eth": 3_000.0, "sol": 150.0}
N = 240  # 20 h of 5-minute ticks per coin, inside the default 24 h window
SPARE = 30  # ticks per coin kept back, fed live by the tests
LAPTOP = {"width": 1440, "height": 900}
PHONE = {"width": 390, "height": 844}
WAIT_MS = 20_000
GRAPHS = ("grafico-preco", "grafico-variacao", "grafico-evolucao", "grafico-comparador")


def chromium_path() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


# -- fixtures --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    yield from launch_chromium()


def launch_chromium():
    """Debian's Chromium through Playwright (skips the test when either is missing)."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install -e '.[test]')")
    exe = chromium_path()
    if exe is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium): "
                    "the dashboard's browser tests need a real browser")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def recent(ticks: list, newest_index: int) -> list:
    """``ticks`` moved in time so that ``ticks[newest_index]`` is the current minute: a page
    showing them is live, not late."""
    now = datetime.now(timezone.utc).replace(second=0, microsecond=0)
    shift = now - ticks[newest_index].ts
    return [dataclasses.replace(t, ts=t.ts + shift) for t in ticks]


@pytest.fixture(scope="module")
def painel(tmp_path_factory):
    """btc, eth and sol with N ticks each learned, the newest at the current minute; SPARE
    more per coin (after it) in ``server.spare``."""
    # a source polled every 10 min: its prices count as late after 50 min, so the page stays
    # live however long the module's tests take (the threshold follows the poll interval)
    settings = api_settings(tmp_path_factory.mktemp("painel"), coins=COINS,
                            source={"poll_interval": "10m"})
    source = FeedSource()
    walks = {c: recent(random_walk(N + SPARE, c, seed=i + 1, price=PRICES[c]), N - 1)
             for i, c in enumerate(COINS)}
    history = sorted((t for w in walks.values() for t in w[:N]), key=lambda t: (t.ts, t.coin))
    with LiveServer(create_app(settings, source, extensions=[mount_dashboard])) as server:
        source.feed(history)
        wait_until(lambda: server.state.engine.ticks_processed == len(history), timeout=60)
        server.source, server.settings = source, settings
        server.spare = {c: list(w[N:]) for c, w in walks.items()}
        yield server


class Page:
    """One page of the dashboard, with what it logged and every URL it requested."""

    def __init__(self, browser, url: str, viewport=None, timezone: str = "Asia/Tokyo",
                 status: dict | None = None):
        # a browser zone far from the configured one: times must follow the configuration
        self.context = browser.new_context(viewport=viewport or LAPTOP, locale="pt-BR",
                                           timezone_id=timezone, accept_downloads=True)
        self.page = self.context.new_page()
        if status is not None:  # GET /status answers this JSON instead of the server's
            self.page.route(re.compile(r".*/status$"), lambda route: route.fulfill(
                status=200, content_type="application/json", body=json.dumps(status)))
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"exceção: {e}"))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(url + "/painel/")

    def js(self, expression: str, arg=None):
        return self.page.evaluate(expression, arg)

    def traces(self, graph: str) -> list[dict]:
        return self.js("id => window.cryptotechPainel.pontos(id)", graph)

    def trace(self, graph: str, name: str) -> dict:
        return next(t for t in self.traces(graph) if t["nome"] == name)

    def wait(self, expression: str, arg=None, timeout: int = WAIT_MS) -> None:
        self.page.wait_for_function(expression, arg=arg, timeout=timeout)

    def wait_for_data(self) -> None:
        """Every chart drawn with its history, the stream open."""
        self.wait("""ids => window.cryptotechPainel && ids.every(id =>
                       window.cryptotechPainel.pontos(id).some(t => t.n > 0))
                     && window.cryptotechPainel.estado.conexao === 'aberta'""", list(GRAPHS))

    def count(self, graph: str, name: str) -> int:
        return self.trace(graph, name)["n"]

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def page(browser, painel):
    p = Page(browser, painel.url)
    try:
        yield p
    finally:
        p.close()


def iso(tick, settings) -> str:
    """A tick's time as the API and the charts write it."""
    return local_iso(tick.epoch, settings.zone)


def feed(painel, coin: str, n: int) -> list:
    ticks, painel.spare[coin] = painel.spare[coin][:n], painel.spare[coin][n:]
    done = painel.state.engine.ticks_processed + len(ticks)
    painel.source.feed(ticks)
    wait_until(lambda: painel.state.engine.ticks_processed >= done, timeout=30)
    return ticks


def increasing(xs: list[str]) -> bool:
    times = [datetime.fromisoformat(x) for x in xs]
    return all(a < b for a, b in zip(times, times[1:]))


# -- without a browser -------------------------------------------------------------------------


def test_mount_serves_the_page_locally_and_keeps_the_api_404s(tmp_path):
    settings = api_settings(tmp_path)
    app = create_app(settings, extensions=[mount_dashboard])
    with LiveServer(app) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        r = client.get("/painel/")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        assert '<html lang="pt-BR">' in r.text
        assert "<title>CryptoTech · Painel ao vivo</title>" in r.text
        assets = re.findall(r'(?:src|href)="([^"]+)"', r.text)
        assert assets and all(a.startswith("/painel/") for a in assets), assets
        assert "/painel/assets/painel.js" in "".join(assets)
        assert '"websocket"' not in r.text  # the page uses SSE only
        assert client.get("/painel/assets/painel.css").status_code == 200
        # Dash's catch-all route is not installed: unknown paths stay the API's 404
        missing = client.get("/naoexiste")
        assert missing.status_code == 404 and "detalhe" in missing.json()
        assert client.get("/painel/naoexiste").status_code == 404
        assert client.get("/moedas").json()["moedas"] == ["btc", "eth"]
    assert app.state.painel.config.requests_pathname_prefix == "/painel/"


# -- in Chromium -------------------------------------------------------------------------------


@pytest.mark.browser
def test_page_loads_offline_without_console_errors(page, painel):
    page.wait_for_data()
    assert page.errors == []
    hosts = {re.sub(r"^\w+://([^/]+)/.*$", r"\1", u) for u in page.requests
             if u.startswith(("http:", "https:", "ws:", "wss:"))}
    assert hosts == {painel.url.split("//")[1]}, hosts  # nothing from the internet
    assert page.js("document.documentElement.lang") == "pt-BR"
    assert page.page.title() == "CryptoTech · Painel ao vivo"


@pytest.mark.browser
def test_charts_hold_the_history_and_cards_show_metrics(page, painel):
    page.wait_for_data()
    settings, store = painel.settings, painel.state.store
    prices = store.recent_ticks("btc", 0, 10_000)
    price = page.trace("grafico-preco", "Preço")
    assert price["x"][-len(prices):] == [local_iso(ts, settings.zone) for ts, _ in prices]
    assert price["y"][-len(prices):] == [p for _, p in prices]
    settled = [r for r in store.predictions("btc") if r["actual"] is not None]
    realised = page.trace("grafico-evolucao", "Realizado")
    assert realised["n"] == len(settled) > 100
    assert realised["y"] == pytest.approx([r["actual"] for r in settled])
    for graph in GRAPHS:
        for trace in page.traces(graph):
            if trace["nome"] != "Fora da faixa":
                assert trace["n"] > 0, (graph, trace["nome"])
            assert increasing(trace["x"]), (graph, trace["nome"])
    bars = page.trace("grafico-variacao", "Variação real em 1 h")
    first = settled[0]
    assert bars["y"][0] == pytest.approx((first["actual"] / first["price"] - 1) * 100)

    page.wait("() => document.querySelector('#cartao-cobertura .cartao-valor').textContent !== '—'")
    text = page.page.text_content("#cartoes")
    for label in ("Preço agora", "Faixa provável em 1 h", "Chance de subir",
                  "Volatilidade prevista", "Cobertura da faixa",
                  "Faixa vs referência EWMA (skill)",
                  "Meio da faixa vs “preço fica igual” (skill)", "Modelo em uso"):
        assert label in text
    assert ", persistência: US$" in page.page.text_content("#cartao-skill")
    assert re.search(r"\d+,\d%", page.page.text_content("#cartao-cobertura"))
    table = page.page.text_content("#tabela-modelos")
    assert "Persistência (“preço fica igual”)" in table and "Linear bayesiana" in table

    # the newest price is this minute's: live, with its age and its time in the configured
    # zone (São Paulo), not the browser's (Tokyo)
    page.wait("() => document.querySelector('#selo-fonte').textContent === 'Ao vivo'")
    banner = page.page.text_content("#faixa")
    newest = max(store.recent_ticks(c, 0, 10_000)[-1][0] for c in COINS)
    shown = datetime.fromtimestamp(newest, settings.zone).strftime("%H:%M:%S")
    assert re.search(rf"Último preço (agora mesmo|há \d+ s|há \d+ min) \(às {shown}, "
                     r"horário de São Paulo\)", banner), banner
    assert "America/Sao_Paulo" not in page.page.text_content("body")


@pytest.mark.browser
def test_a_new_tick_reaches_the_charts_without_reload_or_polling(page, painel):
    page.wait_for_data()
    before = page.count("grafico-preco", "Preço")
    page.js("window.__mesmaPagina = true")
    requests_before = len(page.requests)
    ticks = feed(painel, "btc", 3)
    page.wait("([n]) => window.cryptotechPainel.pontos('grafico-preco')"
              ".find(t => t.nome === 'Preço').n >= n", [before + 3])
    price = page.trace("grafico-preco", "Preço")
    assert price["x"][-3:] == [iso(t, painel.settings) for t in ticks]
    assert price["y"][-3:] == [t.price for t in ticks]
    assert price["n"] == before + 3 and increasing(price["x"])
    # the forecast made at the last tick is drawn one horizon later
    forecast = page.trace("grafico-preco", "Meio da faixa (+1 h)")
    assert forecast["x"][-1] == local_iso(ticks[-1].epoch + 3600, painel.settings.zone)
    # the comparator follows the same tick
    page.wait("([x]) => window.cryptotechPainel.pontos('grafico-comparador')"
              ".find(t => t.nome === 'BTC').x.slice(-1)[0] === x",
              [iso(ticks[-1], painel.settings)])
    assert page.js("window.__mesmaPagina") is True
    assert page.js("performance.getEntriesByType('navigation').length") == 1
    # no polling: the open stream brought it (GET /status, for the engine's state, is read
    # at most every 30 s on the status heartbeat, never for prices)
    assert [u for u in page.requests[requests_before:] if not u.endswith("/status")] == []
    assert page.errors == []


@pytest.mark.browser
def test_comparator_shows_the_chosen_coins_from_a_common_start(page, painel):
    page.wait_for_data()
    assert [t["nome"] for t in page.traces("grafico-comparador")] == ["BTC", "ETH", "SOL"]
    page.page.click("#comparar")
    page.page.click('.dash-dropdown-option:has(input[value="sol"])')
    page.page.keyboard.press("Escape")
    page.wait("() => window.cryptotechPainel.pontos('grafico-comparador')"
              ".map(t => t.nome).join() === 'BTC,ETH'")
    page.wait("() => window.cryptotechPainel.pontos('grafico-comparador').every(t => t.n > 0)")
    traces = page.traces("grafico-comparador")
    starts = {t["x"][0] for t in traces}
    assert len(starts) == 1  # a common start
    store, zone = painel.state.store, painel.settings.zone
    for trace in traces:
        coin = trace["meta"]["moeda"]
        stored = {local_iso(ts, zone): p for ts, p in store.recent_ticks(coin, 0, 10_000)}
        raw = [stored[x] for x in trace["x"]]
        assert trace["y"][0] == 0
        assert trace["y"] == pytest.approx([(p / raw[0] - 1) * 100 for p in raw])
    assert page.errors == []


def download_csv(page, tmp_path) -> list[str]:
    with page.page.expect_download(timeout=WAIT_MS) as info:
        page.page.click("#exportar")
    download = info.value
    target = tmp_path / download.suggested_filename
    download.save_as(target)
    return target.read_text(encoding="utf-8").splitlines()


@pytest.mark.browser
def test_csv_export_downloads_the_chosen_coin_and_window(page, painel, tmp_path):
    page.wait_for_data()
    page.page.click("#moeda")
    page.page.click('.dash-dropdown-option:has(input[value="eth"])')
    page.wait("() => window.cryptotechPainel.estado.moeda === 'eth'")
    page.wait("() => document.querySelector('#exportar').getAttribute('href')"
              ".includes('/previsoes/eth')")
    store = painel.state.store
    newest = store.recent_ticks("eth", 0, 10_000)[-1][0]
    for label, hours in (("24 h", 24), ("6 h", 6)):
        page.page.click(f"#janela label:has-text('{label}')")
        start = newest - hours * 3600
        query = {"exportar_csv": "true",
                 "inicio": datetime.fromtimestamp(start, timezone.utc).strftime(
                     "%Y-%m-%dT%H:%M:%SZ"),
                 "fim": datetime.fromtimestamp(newest, timezone.utc).strftime(
                     "%Y-%m-%dT%H:%M:%SZ")}
        known = history_params(painel.app)
        href = "/previsoes/eth?" + str(httpx.QueryParams(query)) + (
            "&ordem=desc" if "ordem" in known else "") + (
            "&horizonte=1h" if "horizonte" in known else "")
        page.wait("([h]) => document.querySelector('#exportar').getAttribute('href') === h",
                  [href])
        lines = download_csv(page, tmp_path)
        assert lines[0].split(",") == CSV_COLUMNS
        made = [r["made_at"] for r in store.predictions("eth", start=start, end=newest)]
        assert len(lines) - 1 == len(made) and made, (label, len(lines))
        assert min(made) >= start and max(made) <= newest
        assert all(line.split(",")[1] == "eth" for line in lines[1:])
        if hours == 6:  # a shorter window, fewer rows than all the coin's forecasts
            assert len(made) < len(list(store.predictions("eth")))
    response = page.page.request.get(painel.url + href)
    assert response.headers["content-type"].startswith("text/csv")
    assert page.errors == []


def test_csv_link_carries_only_parameters_the_api_takes():
    from fastapi import FastAPI, Query

    newer = FastAPI()

    @newer.get("/previsoes/{moeda}")
    def previsoes(moeda: str, ordem: str = Query("asc"), horizonte: str | None = None):
        return {}

    older = FastAPI()

    @older.get("/previsoes/{moeda}")
    def antigas(moeda: str, limite: int = 10):
        return {}

    assert {"ordem", "horizonte"} <= history_params(newer)
    assert history_params(older) == {"limite"} and history_params(FastAPI()) == set()


@pytest.mark.browser
def test_a_page_opened_before_any_price_fills_as_they_arrive(browser, tmp_path):
    settings = api_settings(tmp_path)
    source = FeedSource()
    with LiveServer(create_app(settings, source, extensions=[mount_dashboard])) as server:
        page = Page(browser, server.url)
        try:
            page.wait("() => document.querySelectorAll('#grafico-preco .annotation-text')"
                      ".length === 1")
            assert "Aguardando os primeiros preços" in page.page.text_content("#grafico-preco")
            assert "cada previsão é conferida 1 h depois" in \
                page.page.text_content("#grafico-evolucao")
            assert page.page.text_content("#cartao-faixa .cartao-valor") == "—"
            # the explanation of the numbers is the page's own, not the metrics events'
            assert "1 − MAE da previsão ÷ MAE da persistência" in \
                page.page.text_content("#como-ler")
            ticks = sorted(random_walk(30, "btc", seed=5, price=100_000.0)
                           + random_walk(30, "eth", seed=6, price=3_000.0),
                           key=lambda t: (t.ts, t.coin))
            source.feed(ticks)
            page.wait("() => window.cryptotechPainel.pontos('grafico-preco')"
                      ".find(t => t.nome === 'Preço').n === 30")
            page.wait("() => document.querySelectorAll('.annotation-text').length === 0")
            for graph in GRAPHS:
                assert any(t["n"] for t in page.traces(graph)), graph
            page.wait("() => document.querySelector('#cartao-faixa .cartao-valor')"
                      ".textContent.startsWith('US$')")
            # prices of January 2025 from a source that answers: late, not live
            page.wait(f"() => {SELO}() === 'Dados atrasados'")
            assert re.match(r"Último preço há \d+ meses \(31/12/2024 23:25, horário de São "
                            r"Paulo\)$", page.page.text_content("#idade-preco"))
            assert page.errors == []
        finally:
            page.close()


@pytest.mark.browser
def test_source_banner_follows_the_source(browser, painel):
    status = painel.source.status
    status.credits_used_month, status.credit_budget = 1440, 10_000
    page = Page(browser, painel.url)
    try:
        page.wait_for_data()
        assert page.page.text_content("#orcamento") == \
            "Orçamento: restam 8.560 de 10.000 créditos no mês"
        selo = "() => document.querySelector('#selo-fonte').textContent"
        for state, label in (("stale", "Sem dados novos"),
                             ("rate_limited", "Limite de requisições atingido"),
                             ("unreachable", "Fonte inacessível"), ("live", "Ao vivo")):
            painel.call(status.change, state, "mudança feita pelo teste")
            page.wait(f"([t]) => ({selo})() === t", [label])  # the next `status` event
        assert page.errors == []
    finally:
        painel.call(status.change, "live", "ticks fed by the test")
        status.credits_used_month = status.credit_budget = 0
        page.close()


SELO = "() => document.querySelector('#selo-fonte').textContent"


@pytest.mark.browser
def test_source_kinds_have_one_portuguese_label(browser, painel):
    page = Page(browser, painel.url)
    status = painel.source.status
    try:
        page.wait_for_data()
        labels = page.js("""() => ['rest', 'coingecko-rest', 'websocket', 'coingecko-ws',
            'replay', 'coingecko-rest (fallback from websocket)']
            .map(window.cryptotechFormatos.tipoFonte)""")
        assert labels[0] == labels[1] == "CoinGecko (consulta periódica)"
        assert labels[2] == labels[3] == "CoinGecko (transmissão contínua)"
        assert labels[4] == "Reprodução de dados reais (demo)"
        assert labels[5].startswith("CoinGecko (consulta periódica)")
        assert page.page.text_content("#tipo-fonte") == "teste"  # unknown kinds as they are
    finally:
        page.close()
    for kind in ("coingecko-rest", "rest"):  # `run` mode's source, before and after h-cli
        status.source = kind
        page = Page(browser, painel.url)
        try:
            page.wait_for_data()
            assert page.page.text_content("#tipo-fonte") == "CoinGecko (consulta periódica)"
            assert page.errors == []
        finally:
            status.source = "teste"
            page.close()


MOTOR_OK = {"aprendendo": True, "tarefas": {
    "fonte": {"estado": "ok", "erros": 0, "ultimo_erro": None, "erro_em": None},
    "checkpoints": {"estado": "ok", "erros": 0, "ultimo_erro": None, "erro_em": None}}}


@pytest.mark.browser
@pytest.mark.parametrize("motor, label, detail", [
    (None, None, None),
    (MOTOR_OK, "Motor aprendendo", None),
    ({"aprendendo": False, "motivo": "a fonte ainda não começou", "tarefas": {}},
     "Motor parado: a fonte ainda não começou", None),
    ({"aprendendo": True, "tarefas": {**MOTOR_OK["tarefas"], "checkpoints": {
        "estado": "reiniciando", "erros": 2, "ultimo_erro": "RuntimeError: disco cheio",
        "erro_em": "2026-12-01T18:04:05-03:00"}}},
     "Motor reiniciando: salvamento do modelo",
     "salvamento do modelo: reiniciando — RuntimeError: disco cheio (01/12/2026 18:04) · 2 erros"),
    ({"aprendendo": False, "tarefas": {**MOTOR_OK["tarefas"], "fonte": {
        "estado": "falhou", "erros": 1, "ultimo_erro": "ValueError: Out of range float values "
        "are not JSON compliant", "erro_em": "2026-12-01T18:00:00-03:00"}}},
     "Motor parado: fonte de preços falhou",
     "fonte de preços: falhou — ValueError: Out of range float values are not JSON compliant"
     " (01/12/2026 18:00) · 1 erro"),
], ids=["sem-motor", "ok", "parado", "reiniciando", "falhou"])
def test_banner_shows_the_engine_state_from_status(browser, painel, motor, label, detail):
    real = httpx.get(painel.url + "/status", timeout=10).json()
    served = {k: v for k, v in real.items() if k != "motor"}
    if motor is not None:
        served["motor"] = motor
    page = Page(browser, painel.url, status=served)
    try:
        page.wait_for_data()
        page.wait(f"() => {SELO}() === 'Ao vivo'")
        if label is None:  # an API without `motor`: nothing is claimed about the engine
            page.wait("() => window.cryptotechPainel.estado.statusRecebidos > 0")
            assert page.page.query_selector("#selo-motor") is None
        else:
            page.wait("([t]) => (document.querySelector('#selo-motor') || {}).textContent === t",
                      [label])
            shown = page.page.query_selector("#motor-erro")
            assert (shown.text_content() if shown else None) == detail
            if detail:
                assert detail in page.page.get_attribute("#selo-motor", "title")
        assert page.errors == []
    finally:
        page.close()


@pytest.mark.browser
def test_replay_speed_is_measured_or_taken_from_the_source(browser, painel):
    page = Page(browser, painel.url)
    try:
        page.wait_for_data()
        # 37 min of market per second: ticks 5 min apart arriving every 0.135 s
        samples = [{"chegada": 1000 + i * 135, "mercado": i * 300_000} for i in range(40)]
        speed = page.js("s => window.cryptotechPainel.velocidade(s)", samples)
        assert speed == pytest.approx(39 * 300 / (39 * 0.135))
        assert page.js("s => window.cryptotechPainel.velocidade(s)", samples[:1]) is None
        assert page.js("s => window.cryptotechPainel.velocidade(s)", samples[:10]) is None  # < 2 s
        texts = page.js("xs => xs.map(window.cryptotechFormatos.velocidade)",
                        [2220, 3600 * 3, 45.0, 0])
        assert texts == ["37 min de mercado por segundo (2.220×)",
                         "3,0 h de mercado por segundo (10.800×)",
                         "45 s de mercado por segundo (45×)", None]
    finally:
        page.close()
    status = painel.source.status
    status.source = "replay"
    real = httpx.get(painel.url + "/status", timeout=10).json()
    real["fonte"] = {**(real.get("fonte") or {}), "velocidade_real": 2220.0}
    page = Page(browser, painel.url, status=real)
    try:
        page.wait_for_data()
        page.wait(f"() => {SELO}() === 'Reproduzindo o histórico'")  # not "Ao vivo"
        page.wait("() => document.querySelector('#velocidade').textContent === "
                  "'Velocidade real: 37 min de mercado por segundo (2.220×)'")
        assert page.page.text_content("#idade-preco").startswith("Mercado em ")
        assert page.errors == []
    finally:
        status.source = "teste"
        page.close()


@pytest.mark.browser
def test_models_table_keeps_skill_and_coverage_in_view(browser, painel):
    columns = """() => { const box = document.querySelector('#tabela-modelos');
        const r = box.getBoundingClientRect();
        return {box: [r.left, r.right], scroll: box.scrollWidth, client: box.clientWidth,
                viewport: window.innerWidth,
                hint: getComputedStyle(document.querySelector('.dica-rolagem')).display,
                th: [...box.querySelectorAll('th')].map(th => {
                    const b = th.getBoundingClientRect();
                    return [th.textContent, b.left, b.right, th.title]; })}; }"""
    for viewport in ({"width": 1400, "height": 900}, PHONE):
        page = Page(browser, painel.url, viewport=viewport)
        try:
            page.wait_for_data()
            page.wait("() => document.querySelectorAll('#tabela-modelos th').length === 7")
            page.page.locator("#tabela-modelos").scroll_into_view_if_needed()
            got = page.js(columns)
            names = [t[0] for t in got["th"]]
            assert names == ["Modelo", "Skill (%)", "Cobertura (%)", "Faixa (%)", "MAE (US$)",
                             "Direção (%)", "Resultados"]
            visible = {t[0] for t in got["th"]
                       if t[2] <= min(got["box"][1], got["viewport"]) + 0.5}
            if viewport["width"] == 1400:  # every column, nothing to scroll
                assert got["scroll"] <= got["client"], got
                assert visible == set(names), got
            else:  # a phone: skill and coverage in view, the rest behind a scroll hint
                assert {"Modelo", "Skill (%)", "Cobertura (%)"} <= visible, got
                assert got["scroll"] <= got["client"] or got["hint"] == "block", got
            assert all(t[3] for t in got["th"][1:]), got  # each figure explained
            ARTIFACTS.mkdir(exist_ok=True)
            page.page.locator(".modelos").screenshot(
                path=str(ARTIFACTS / f"tabela-{viewport['width']}.png"))
            assert page.errors == []
        finally:
            page.close()


ENGLISH = re.compile(r"\b(the|and|price|prices|loading|source|error|live|waiting|model|"
                     r"forecast|skill score|replaying|polling|starting)\b", re.IGNORECASE)


@pytest.mark.browser
def test_every_figure_is_explained_in_portuguese(page, painel):
    page.wait_for_data()
    page.wait("() => document.querySelector('#cartao-cobertura .cartao-valor').textContent !== '—'")
    text = page.js("document.body.innerText")
    assert not ENGLISH.findall(text), ENGLISH.findall(text)
    assert "America/Sao_Paulo" not in text and "Horários de São Paulo." in text
    titles = page.js("[...document.querySelectorAll('#cartoes .cartao')]"
                     ".map(c => [c.id, c.title])")
    assert len(titles) == 8 and all(t for _, t in titles), titles
    explained = dict(titles)
    mae = page.page.get_attribute("#tabela-modelos th:has-text('MAE')", "title")
    assert "erro absoluto médio" in mae and "US$" in mae
    assert "1 − MAE da previsão ÷ MAE da persistência, em %" in explained["cartao-skill"]
    assert "1 bp = 0,01% do preço" in explained["cartao-cobertura"]
    assert re.search(r"largura média \d+,\d\d% do preço \(\d+ bps\)",
                     page.page.text_content("#cartao-cobertura"))
    glossary = page.page.text_content("#como-ler")
    for term in ("MAE (erro absoluto médio)", "Skill (ganho sobre a persistência)",
                 "bps (pontos-base)", "R² (coeficiente de determinação)", "US$"):
        assert term in glossary
    assert page.errors == []


@pytest.mark.browser
def test_page_loads_plotly_basic_bundle_not_the_full_one(page, painel):
    page.wait_for_data()
    plotly = [u for u in page.requests if "plotly" in u]
    assert plotly == [painel.url + "/painel/assets/plotly-basic.min.js" + plotly[0][
        len(painel.url + "/painel/assets/plotly-basic.min.js"):]], plotly
    assert page.js("window.Plotly.version") == "4.1.1"
    # every chart kind the page draws exists in the bundle
    assert page.js("['scatter', 'bar'].every(t => window.Plotly.PlotSchema.get()"
                   ".traces[t] !== undefined)")


@pytest.mark.browser
def test_phone_layout_fits_the_screen(browser, painel):
    phone = Page(browser, painel.url, viewport=PHONE)
    try:
        phone.wait_for_data()
        assert phone.js("document.documentElement.scrollWidth <= window.innerWidth")
        widths = phone.js("""() => ['grafico-preco', 'grafico-comparador'].map(id =>
                             document.getElementById(id).getBoundingClientRect().width)""")
        assert all(300 < w <= PHONE["width"] for w in widths), widths
        assert phone.errors == []
    finally:
        phone.close()


# -- the real product: `cryptotech run` on the fake CoinGecko ----------------------------------


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(180)
@pytest.mark.parametrize("shift", [False, True], ids=["precos-de-2025", "agora"])
def test_run_mode_banner_names_the_source_and_tells_late_data(browser, tmp_path, shift):
    """``cryptotech run`` on the bundled fake CoinGecko: its prices are real history (2025), so
    unless the fake shifts them to now (``--now``) the page must not look live."""
    from cryptotech.testing.fake_coingecko import FakeCoinGecko, offset_to_now

    port = free_port()
    with FakeCoinGecko(time_offset=offset_to_now() if shift else 0) as fake:
        env = cli_env(CRYPTOTECH_COINS="btc=bitcoin",
                      CRYPTOTECH_MODEL__CANDIDATES='["bayes_linear"]',
                      CRYPTOTECH_SOURCE__BASE_URL=fake.url,
                      CRYPTOTECH_SOURCE__BACKFILL="false")
        proc = start_cli(["run", "--db", tmp_path / "run.db", "--port", port], env, tmp_path,
                         tmp_path / "run.log")
        page = None
        try:
            url = f"http://127.0.0.1:{port}"

            def first_price() -> bool:
                assert proc.poll() is None, (tmp_path / "run.log").read_text()
                try:
                    return bool(httpx.get(url + "/status", timeout=2).json()["ticks_processados"])
                except (httpx.HTTPError, ValueError, KeyError):
                    return False

            wait_until(first_price, timeout=90, interval=0.2)
            page = Page(browser, url)
            page.wait("() => document.querySelector('#idade-preco') !== null")
            assert page.page.text_content("#tipo-fonte") == "CoinGecko (consulta periódica)"
            age = page.page.text_content("#idade-preco")
            if shift:
                page.wait(f"() => {SELO}() === 'Ao vivo'")
                assert re.match(r"Último preço (agora mesmo|há \d+ s|há [1-5] min) ", age), age
            else:
                page.wait(f"() => {SELO}() === 'Dados atrasados'")
                assert re.match(r"Último preço há \d+ (meses|anos) \(\d\d/\d\d/2025 \d\d:\d\d, "
                                r"horário de São Paulo\)$", age), age
                assert "não são recentes" in page.page.get_attribute("#selo-fonte", "title")
            ARTIFACTS.mkdir(exist_ok=True)
            page.page.locator(".topo").screenshot(
                path=str(ARTIFACTS / f"faixa-run-{'agora' if shift else '2025'}.png"))
            assert not [e for e in page.errors if e.startswith("exceção")]
        finally:
            if page is not None:
                page.close()
            proc.terminate()
            try:
                proc.wait(30)
            except Exception:
                proc.kill()
                proc.wait(10)


# -- the real product: `cryptotech demo`, stopped and started again ----------------------------


class Demo:
    """``cryptotech demo`` on a fixed port and database, started and stopped at will.

    At ``speed`` 900 a 5-minute tick arrives every third of a second per coin. Each start
    replays the first 24 h of market after the stored ticks at once (the demo's warm start),
    so the page gets a burst of events right after the restart.
    """

    def __init__(self, tmp: Path, port: int, speed: float = 900):
        self.tmp, self.port, self.speed = tmp, port, speed
        self.url = f"http://127.0.0.1:{port}"
        self.db = tmp / "demo.db"
        self.proc = None

    def start(self) -> None:
        env = cli_env(CRYPTOTECH_COINS="btc=bitcoin,eth=ethereum",
                      CRYPTOTECH_MODEL__CANDIDATES='["bayes_linear"]')
        self.proc = start_cli(["demo", "--db", self.db, "--port", self.port,
                               "--speed", self.speed], env, self.tmp, self.tmp / "demo.log")

        def ready() -> bool:
            assert self.proc.poll() is None, (self.tmp / "demo.log").read_text()
            try:
                return httpx.get(self.url + "/painel/", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(ready, timeout=90, interval=0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except Exception:
                self.proc.kill()
                self.proc.wait(10)
        self.proc = None


def screenshot(browser, url: str, name: str, viewport) -> Path:
    shot = Page(browser, url, viewport=viewport)
    try:
        shot.wait_for_data()
        shot.wait("() => document.querySelector('#cartao-cobertura .cartao-valor').textContent !== '—'")
        # a few live ticks on the charts, and the replay's speed measured from them
        last = shot.trace("grafico-preco", "Preço")["x"][-1]
        shot.wait("([x]) => window.cryptotechPainel.pontos('grafico-preco')"
                  ".find(t => t.nome === 'Preço').x.slice(-1)[0] > x", [last])
        shot.wait("() => !document.querySelector('#velocidade') || !document.querySelector("
                  "'#velocidade').textContent.includes('medindo')")
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        shot.page.screenshot(path=str(path), full_page=True)
        shot.page.screenshot(path=str(path.with_name(path.stem + "-topo.png")))  # first screen
        assert shot.errors == []
        return path
    finally:
        shot.close()


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.timeout(300)
def test_demo_moves_and_the_page_recovers_after_a_server_restart(browser, tmp_path):
    demo = Demo(tmp_path, free_port())
    page = None
    try:
        demo.start()
        page = Page(browser, demo.url)
        page.wait_for_data()
        first = page.trace("grafico-preco", "Preço")["x"][-1]
        page.wait("([x]) => window.cryptotechPainel.pontos('grafico-preco')"
                  ".find(t => t.nome === 'Preço').x.slice(-1)[0] !== x", [first], timeout=10_000)
        # a replay is not "Ao vivo": its banner says so, with the speed measured in the page
        page.wait(f"() => {SELO}() === 'Reproduzindo o histórico'")
        page.wait("() => /^Velocidade real: [0-9.,]+ (s|min|h) de mercado por segundo \\([0-9.,]+×\\)$/"
                  ".test((document.querySelector('#velocidade') || {}).textContent)")
        assert page.page.text_content("#tipo-fonte") == "Reprodução de dados reais (demo)"
        for name, viewport in (("painel.png", LAPTOP), ("painel-celular.png", PHONE)):
            assert screenshot(browser, demo.url, name, viewport).stat().st_size > 10_000
        # a 3-day window keeps the restart in view despite the 24 h burst that follows it
        drawn = page.js("window.cryptotechPainel.estado.preenchidas['grafico-preco']")
        page.page.click("#janela label:has-text('3 dias')")
        page.wait("([v]) => { const e = window.cryptotechPainel.estado;"
                  " return e.preenchidas['grafico-preco'] && e.preenchidas['grafico-preco'] !== v"
                  " && window.cryptotechPainel.pontos('grafico-preco')[3].n > 0 }", [drawn])

        demo.stop()
        page.wait("() => window.cryptotechPainel.estado.conexao === 'reconectando'")
        page.wait("() => document.querySelector('#selo-fonte').textContent"
                  ".startsWith('Reconectando')")
        stopped = page.trace("grafico-preco", "Preço")["x"][-1]
        reloads = page.js("performance.getEntriesByType('navigation').length")

        demo.start()  # same port, same database
        page.wait("([x]) => window.cryptotechPainel.pontos('grafico-preco')"
                  ".find(t => t.nome === 'Preço').x.slice(-1)[0] > x", [stopped], timeout=60_000)
        page.wait("() => window.cryptotechPainel.estado.conexao === 'aberta'")
        # live ticks drawn after the reconnect, on top of the replayed ones
        reopened = page.trace("grafico-preco", "Preço")["x"][-1]
        page.wait("([x]) => window.cryptotechPainel.pontos('grafico-preco')"
                  ".find(t => t.nome === 'Preço').x.slice(-1)[0] > x", [reopened])
        assert page.js("performance.getEntriesByType('navigation').length") == reloads == 1
        for graph in GRAPHS:
            for trace in page.traces(graph):
                assert increasing(trace["x"]), (graph, trace["nome"])  # no duplicate point
        # every stored tick in the span the chart shows, exactly once: no gap, no duplicate
        price = page.trace("grafico-preco", "Preço")
        zone = ZoneInfo("America/Sao_Paulo")  # the demo's configured zone (the default)
        since = datetime.fromisoformat(price["x"][0]).timestamp()
        until = datetime.fromisoformat(price["x"][-1]).timestamp()
        with Store(demo.db, readonly=True) as store:
            stored = [(ts, p) for ts, p in store.recent_ticks("btc", since, 100_000)
                      if ts <= until]
        assert price["x"] == [local_iso(ts, zone) for ts, _ in stored]
        assert price["y"] == [p for _, p in stored]
        assert since < datetime.fromisoformat(stopped).timestamp() < until
        assert not [e for e in page.errors if e.startswith("exceção")]
    finally:
        if page is not None:
            page.close()
        demo.stop()
