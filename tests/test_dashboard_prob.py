"""The dashboard's probabilistic forecast (issue 10), in a real headless Chromium.

Two horizons (1 h and 4 h) learned on 26 h of 5-minute ticks per coin, the newest at the
current minute; the page must lead with the likely range at the chosen horizon, the chance of a
rise and the forecast volatility beside the realised one, draw the fan (90 % and 50 % bands)
and the calibration of each quantile, and switch all of it when another horizon is picked,
without reloading. Every figure is compared with the store or the learner it comes from.
"""

from __future__ import annotations

import math
from datetime import datetime

import pytest
from conftest import FeedSource, LiveServer, api_settings, random_walk, wait_until
from test_dashboard import ARTIFACTS, PHONE, Page, launch_chromium, recent

from cryptotech.api.app import create_app
from cryptotech.api.timefmt import local_iso
from cryptotech.dashboard import mount_dashboard

COINS = {"btc": "bitcoin", "eth": "ethereum"}
PRICES = {"btc": 100_000.0, "eth": 3_000.0}
HORIZONS = ["1h", "4h"]
N = 312  # 26 h of 5-minute ticks: the 4 h forecasts of the last day are settled
SPARE = 12
QUANTILES = ("q05", "q10", "q25", "q50", "q75", "q90", "q95")


@pytest.fixture(scope="module")
def browser():
    yield from launch_chromium()


@pytest.fixture(scope="module")
def prob(tmp_path_factory):
    settings = api_settings(tmp_path_factory.mktemp("prob"), coins=COINS,
                            model={"candidates": [], "horizons": HORIZONS},
                            source={"poll_interval": "10m"})
    source = FeedSource()
    walks = {c: recent(random_walk(N + SPARE, c, seed=i + 11, price=PRICES[c]), N - 1)
             for i, c in enumerate(COINS)}
    history = sorted((t for w in walks.values() for t in w[:N]), key=lambda t: (t.ts, t.coin))
    with LiveServer(create_app(settings, source, extensions=[mount_dashboard])) as server:
        source.feed(history)
        wait_until(lambda: server.state.engine.ticks_processed == len(history), timeout=90)
        server.source, server.settings = source, settings
        server.spare = {c: list(w[N:]) for c, w in walks.items()}
        yield server


def money(value: float) -> str:
    """``US$ 1.234,56`` as the page writes it (two decimals above 10)."""
    return f"{value:,.2f}".replace(",", "_").replace(".", ",").replace("_", ".")


def pct(value: float, digits: int) -> str:
    return f"{value:.{digits}f}".replace(".", ",")


def signed(value: float, digits: int = 1) -> str:
    """``+1,2%``, ``−0,4%`` or ``0,0%``, as the page writes a signed percentage."""
    rounded = round(value, digits)
    sign = "+" if rounded > 0 else "−" if rounded < 0 else ""
    return f"{sign}{pct(abs(rounded), digits)}%"


def window_forecasts(prob, coin: str, horizon: str, hours: float = 24) -> list[dict]:
    """The stored forecasts the page's history holds: from one horizon before the window."""
    store = prob.state.store
    newest = store.recent_ticks(coin, 0, 100_000)[-1][0]
    ahead = {"1h": 3600, "4h": 4 * 3600}[horizon]
    return list(store.predictions(coin, start=newest - hours * 3600 - ahead, horizon=horizon))


def in_view(rows: list[dict], hours: float = 24) -> list[dict]:
    """The rows a chart keeps: x (the target time) within the window of its newest x."""
    if not rows:
        return rows
    newest = max(r["target_at"] for r in rows)
    return [r for r in rows if r["target_at"] >= newest - hours * 3600]


def open_page(browser, prob, **kw) -> Page:
    page = Page(browser, prob.url, **kw)
    page.wait_for_data()
    page.wait("() => document.querySelector('#cartao-faixa .cartao-valor').textContent"
              ".startsWith('US$')")
    return page


def choose(page: Page, label: str) -> None:
    drawn = page.js("window.cryptotechPainel.estado.preenchidas['grafico-preco']")
    page.page.click(f"#horizonte label:has-text('{label}')")
    page.wait("([v]) => { const e = window.cryptotechPainel.estado;"
              " return e.preenchidas['grafico-preco'] && e.preenchidas['grafico-preco'] !== v }",
              [drawn])


@pytest.mark.browser
def test_headline_is_the_likely_range_with_chance_of_rise_and_volatility(browser, prob):
    page = open_page(browser, prob)
    try:
        latest = prob.state.store.latest_prediction("btc", "1h")
        assert page.page.text_content("#cartao-faixa .cartao-titulo") == "Faixa provável em 1 h"
        assert page.page.text_content("#cartao-faixa .cartao-valor") == \
            f"US$ {money(latest['lower'])} – {money(latest['upper'])}"
        detail = page.page.text_content("#cartao-faixa .cartao-detalhe")
        assert detail.startswith(f"(90%) · meio da faixa: US$ {money(latest['forecast'])}")
        if latest["model"] == "persistence":  # the honest note
            assert "(sem mudança)" in detail
            assert "o meio é “sem mudança” enquanto nenhum modelo erra menos que a " \
                   "persistência" in detail
        assert page.page.text_content("#cartao-subir .cartao-valor") == \
            f"{pct(latest['p_up'] * 100, 0)}%"
        assert page.page.text_content("#cartao-volatilidade .cartao-valor") == \
            f"±{pct(latest['vol'] * 100, 2)}%"
        settled = [r for r in window_forecasts(prob, "btc", "1h") if r["actual"] is not None]
        realised = math.sqrt(sum(math.log(r["actual"] / r["price"]) ** 2 for r in settled)
                             / len(settled))
        predicted = math.sqrt(sum(r["vol"] ** 2 for r in settled) / len(settled))
        assert page.page.text_content("#cartao-volatilidade .cartao-detalhe") == \
            f"em 1 h · realizada: ±{pct(realised * 100, 2)}%, prevista para as mesmas: " \
            f"±{pct(predicted * 100, 2)}% ({len(settled)} conferidas)"
        metrics = prob.call(lambda: prob.state.engine.learners["btc"].horizon_metrics("1h"))
        skill = metrics["published"]["interval_score_skill"]
        assert page.page.text_content("#cartao-intervalo .cartao-valor") == signed(skill * 100)
        for card in ("faixa", "subir", "volatilidade", "intervalo"):
            assert len(page.page.get_attribute(f"#cartao-{card}", "title")) > 80, card
        glossary = page.page.text_content("#como-ler")
        for term in ("Faixa provável", "Chance de subir", "Volatilidade prevista",
                     "Pontuação do intervalo (interval score)", "Perda pinball", "Calibração"):
            assert term in glossary
        assert page.errors == []
    finally:
        page.close()


@pytest.mark.browser
def test_price_chart_is_a_fan_of_the_quantiles(browser, prob):
    page = open_page(browser, prob)
    try:
        zone = prob.settings.zone
        rows = in_view(window_forecasts(prob, "btc", "1h"))
        x = [local_iso(r["target_at"], zone) for r in rows]
        for name, column in (("Faixa de 90% (sup.)", "upper"), ("Faixa de 90%", "lower"),
                             ("Faixa de 50% (sup.)", "q75"), ("Faixa de 50%", "q25"),
                             ("Meio da faixa (+1 h)", "forecast")):
            trace = page.trace("grafico-preco", name)
            assert trace["x"] == x, name
            assert trace["y"] == pytest.approx([r[column] for r in rows]), name
            assert trace["meta"]["horizonte"] == "1h"
        fifty, ninety = page.trace("grafico-preco", "Faixa de 50%"), \
            page.trace("grafico-preco", "Faixa de 90%")
        assert all(lo90 <= lo50 for lo90, lo50 in zip(ninety["y"], fifty["y"]))
        ARTIFACTS.mkdir(exist_ok=True)
        page.page.locator("#grafico-preco").screenshot(path=str(ARTIFACTS / "leque.png"))
        assert page.errors == []
    finally:
        page.close()


def calibration(page: Page) -> dict[str, list]:
    return {t["nome"]: t for t in page.js(
        "() => document.querySelector('#grafico-calibracao .js-plotly-plot').data"
        ".map(t => ({nome: t.name, x: t.x, y: t.y}))")}


@pytest.mark.browser
def test_calibration_chart_shows_each_quantile_against_its_level(browser, prob):
    page = open_page(browser, prob)
    try:
        page.wait("() => { const g = document.querySelector('#grafico-calibracao .js-plotly-plot');"
                  " return g && g.data && g.data.length === 3 }")
        metrics = prob.call(lambda: prob.state.engine.learners["btc"].horizon_metrics("1h"))
        traces = calibration(page)
        assert traces["Calibrado (diagonal)"]["y"] == [0, 100]
        for name, expert in (("Publicado", "published"), ("Referência EWMA", "ewma")):
            coverage = metrics[expert]["quantile_coverage"]
            assert traces[name]["x"] == [5, 10, 25, 50, 75, 90, 95]
            assert traces[name]["y"] == pytest.approx([coverage[q] * 100 for q in QUANTILES])
        ARTIFACTS.mkdir(exist_ok=True)
        page.page.locator("#grafico-calibracao").screenshot(
            path=str(ARTIFACTS / "calibracao.png"))
        assert page.errors == []
    finally:
        page.close()


@pytest.mark.browser
def test_horizon_picker_switches_cards_and_charts_live(browser, prob):
    page = open_page(browser, prob)
    try:
        assert page.js("[...document.querySelectorAll('#horizonte label')]"
                       ".map(l => l.textContent)") == ["1 h", "4 h"]
        page.js("window.__mesmaPagina = true")
        choose(page, "4 h")
        page.wait("() => document.querySelector('#cartao-faixa .cartao-titulo').textContent"
                  " === 'Faixa provável em 4 h'")
        assert page.page.text_content("#titulo-preco") == "Preço e faixa provável em 4 h"
        latest = prob.state.store.latest_prediction("btc", "4h")
        page.wait("([t]) => document.querySelector('#cartao-faixa .cartao-valor').textContent"
                  " === t", [f"US$ {money(latest['lower'])} – {money(latest['upper'])}"])
        zone = prob.settings.zone
        rows = in_view(window_forecasts(prob, "btc", "4h"))
        fan = page.trace("grafico-preco", "Faixa de 50% (sup.)")
        assert fan["meta"]["horizonte"] == "4h"
        assert fan["x"] == [local_iso(r["target_at"], zone) for r in rows]
        assert fan["y"] == pytest.approx([r["q75"] for r in rows])
        settled = page.trace("grafico-evolucao", "Realizado")
        assert settled["y"] == pytest.approx(
            [r["actual"] for r in in_view([r for r in window_forecasts(prob, "btc", "4h")
                                           if r["actual"] is not None])])
        metrics = prob.call(lambda: prob.state.engine.learners["btc"].horizon_metrics("4h"))
        page.wait("([y]) => { const g = document.querySelector('#grafico-calibracao "
                  ".js-plotly-plot'); const p = g.data.find(t => t.name === 'Publicado');"
                  " return p && p.y.every((v, i) => Math.abs(v - y[i]) < 1e-6) }",
                  [[metrics["published"]["quantile_coverage"][q] * 100 for q in QUANTILES]])

        # a live tick: its 4 h forecast joins the fan at +4 h; its 1 h forecast stays out
        def settled_4h() -> int:
            return prob.call(
                lambda: prob.state.engine.learners["btc"].horizon_metrics("4h")["published"]["n"])

        before_n = settled_4h()
        tick = prob.spare["btc"].pop(0)
        done = prob.state.engine.ticks_processed + 1
        prob.source.feed([tick])
        wait_until(lambda: prob.state.engine.ticks_processed >= done, timeout=30)
        target = local_iso(tick.epoch + 4 * 3600, zone)
        page.wait("([x]) => window.cryptotechPainel.pontos('grafico-preco')"
                  ".find(t => t.nome === 'Faixa de 50% (sup.)').x.slice(-1)[0] === x", [target])
        middle = page.trace("grafico-preco", "Meio da faixa (+4 h)")
        rows = in_view(window_forecasts(prob, "btc", "4h"))  # 4 h forecasts only, the new one
        assert middle["x"] == [local_iso(r["target_at"], zone) for r in rows]  # included
        assert middle["y"] == pytest.approx([r["forecast"] for r in rows])
        # the 4 h scores follow live too (the metricas event's por_horizonte)
        settled_n = settled_4h()
        assert settled_n > before_n  # the tick settled a 4 h forecast made 4 h before
        page.wait("([n]) => document.querySelector('#cartao-modelo .cartao-detalhe')"
                  ".textContent.startsWith(n + ' resultados')", [f"{settled_n:,}".replace(",", ".")])
        live = prob.state.store.latest_prediction("btc", "4h")
        page.wait("([t]) => document.querySelector('#cartao-faixa .cartao-valor').textContent"
                  " === t", [f"US$ {money(live['lower'])} – {money(live['upper'])}"])
        assert page.js("window.__mesmaPagina") is True
        assert page.js("performance.getEntriesByType('navigation').length") == 1

        choose(page, "1 h")  # and back
        page.wait("() => document.querySelector('#cartao-faixa .cartao-titulo').textContent"
                  " === 'Faixa provável em 1 h'")
        assert page.trace("grafico-preco", "Faixa de 50% (sup.)")["meta"]["horizonte"] == "1h"
        assert page.errors == []
    finally:
        page.close()


@pytest.mark.browser
def test_phone_shows_the_range_first(browser, prob):
    page = open_page(browser, prob, viewport=PHONE)
    try:
        assert page.js("document.documentElement.scrollWidth <= window.innerWidth")
        order = page.js("[...document.querySelectorAll('#cartoes .cartao')].map(c => c.id)")
        assert order[:4] == ["cartao-preco", "cartao-faixa", "cartao-subir",
                             "cartao-volatilidade"]
        ARTIFACTS.mkdir(exist_ok=True)
        page.page.screenshot(path=str(ARTIFACTS / "painel-prob-celular.png"), full_page=True)
        page.page.screenshot(path=str(ARTIFACTS / "painel-prob-celular-topo.png"))
        assert page.errors == []
    finally:
        page.close()


def test_window_forecasts_helper_reads_one_horizon(prob):
    """The comparison above reads one horizon's rows (the store keeps them apart)."""
    one, four = window_forecasts(prob, "btc", "1h"), window_forecasts(prob, "btc", "4h")
    assert {r["horizon"] for r in one} == {"1h"} and {r["horizon"] for r in four} == {"4h"}
    made = [datetime.fromtimestamp(r["made_at"]) for r in one]
    assert made == sorted(made)
