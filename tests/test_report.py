"""The backtest's HTML report: Portuguese, a phone's width, a candidates table, under 2 MB for
30 days of one coin, and the realised price drawn above the forecast. Built from a real
backtest over the bundled 30 days of BTC (one fast candidate, so the test stays short)."""

from __future__ import annotations

import base64
import json
import re
import shutil
from html.parser import HTMLParser

import numpy as np
import pytest

from cryptotech.backtest import run_backtest
from cryptotech.config import ModelSettings, Settings
from cryptotech.report import EXPERT_NAMES, render, write_report
from cryptotech.sources.replay import Replay, bundled_inputs

MAX_BYTES = 2_000_000


class Page(HTMLParser):
    """Headings, meta tags and table rows of a page, as a reader sees them."""

    def __init__(self) -> None:
        super().__init__()
        self.meta: list[dict[str, str | None]] = []
        self.headings: list[str] = []
        self.tables: dict[str, list[list[str]]] = {}
        self.lang: str | None = None
        self._heading = False
        self._table: str | None = None
        self._row: list[str] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "html":
            self.lang = a.get("lang")
        elif tag == "meta":
            self.meta.append(a)
        elif tag in ("h1", "h2"):
            self._heading = True
            self.headings.append("")
        elif tag == "table":
            self._table = a.get("id") or ""
            self.tables[self._table] = []
        elif tag == "tr" and self._table is not None:
            self._row = []
        elif tag in ("td", "th") and self._row is not None:
            self._cell = []

    def handle_endtag(self, tag):
        if tag in ("h1", "h2"):
            self._heading = False
        elif tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row.append("".join(self._cell).strip())
            self._cell = None
        elif tag == "tr" and self._row is not None and self._table is not None:
            self.tables[self._table].append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        if self._heading:
            self.headings[-1] += data
        if self._cell is not None:
            self._cell.append(data)


def figure(text: str, coin: str) -> tuple[list[dict], dict]:
    """The traces and layout Plotly draws in the coin's chart."""
    found = re.search(rf'Plotly\.newPlot\(\s*"grafico-{coin}",\s*(\[.*?\]),\s*(\{{.*?\}}),'
                      r'\s*\{"responsive"', text, re.S)
    assert found is not None
    return json.loads(found.group(1)), json.loads(found.group(2))


@pytest.fixture(scope="module")
def btc_results():
    settings = Settings(model=ModelSettings(candidates=["bayes_linear"]))
    replay = Replay(bundled_inputs(["btc"]))
    results = run_backtest(iter(replay), settings.model, total=len(replay))
    return settings, results


def test_thirty_days_of_one_coin_fit_in_2_mb_with_a_phone_viewport(btc_results, tmp_path):
    settings, results = btc_results
    outcomes = results["btc"].outcomes
    days = (outcomes[-1].prediction.target_at - outcomes[0].prediction.target_at).days
    assert days >= 29
    path = tmp_path / "relatorio.html"
    size = write_report(results, path, settings)
    assert size == path.stat().st_size <= MAX_BYTES
    page = Page()
    page.feed(path.read_text(encoding="utf-8"))
    assert page.lang == "pt-BR"
    viewport = [m for m in page.meta if m.get("name") == "viewport"]
    assert viewport and "width=device-width" in (viewport[0].get("content") or "")
    assert page.headings[0] == "CryptoTech: backtest" and "BTC" in page.headings
    text = path.read_text(encoding="utf-8")
    assert "Candidatos lado a lado" in text and "fuso de São Paulo" in text
    traces, layout = figure(text, "btc")
    titles = [a["text"] for a in layout["annotations"]]
    assert titles[0].startswith("BTC: previsão e preço real")
    assert titles[1].startswith("Skill móvel") and titles[2].startswith("Cobertura móvel")
    assert {t.get("name") for t in traces} >= {"previsão", "preço real", "skill", "cobertura"}
    # plotly's bundle is on the page exactly once, whatever the number of figures
    assert text.count("Plotly, Inc.") == 1


def test_candidates_table_has_a_row_per_candidate_with_its_scores(btc_results):
    settings, results = btc_results
    page = Page()
    page.feed(render(results, settings))
    header, *rows = page.tables["candidatos-btc"]
    assert header[:4] == ["Horizonte", "Candidato", "Skill", "Erro médio"]
    first, metrics = next(iter(results["btc"].learner.metrics().items()))
    by_name = {row[1]: row[1:] for row in rows if row[0] == first}
    assert set(by_name) == {EXPERT_NAMES.get(name, name) for name in metrics}
    for name, m in metrics.items():
        row = by_name[EXPERT_NAMES.get(name, name)]
        assert row[1] == f"{m['skill']:+.4f}".replace("-", "−")
        assert row[-1] == str(m["n"])
    summary_header, summary = page.tables["resumo"]
    assert summary_header[:3] == ["Moeda", "Skill", "Cobertura (90%)"] and summary[0] == "BTC"
    plotted = results["btc"].by_horizon()[first]
    assert summary[summary_header.index("Resultados")] == str(len(plotted))
    mae = sum(abs(o.error) for o in plotted)
    mae_p = sum(abs(o.prediction.price - o.actual) for o in plotted)
    assert summary[1] == f"{1 - mae / mae_p:+.4f}".replace("-", "−")


def test_realised_price_is_drawn_last_and_solid_above_the_forecast(btc_results):
    settings, results = btc_results
    traces, _ = figure(render(results, settings, max_points=300), "btc")
    names = [t.get("name") for t in traces]
    forecast, realised = names.index("previsão"), names.index("preço real")
    assert forecast < realised  # later traces are drawn on top
    assert traces[forecast]["line"].get("dash") == "dash" and traces[forecast]["opacity"] < 1
    assert "dash" not in traces[realised]["line"] and traces[realised].get("opacity", 1) == 1
    # each plotted series thinned to the bound (numbers travel as typed arrays)
    assert [len(np.frombuffer(base64.b64decode(t["y"]["bdata"]), dtype=t["y"]["dtype"]))
            for t in traces] == [300] * len(traces)


def test_report_draws_in_a_real_browser_at_a_phone_width(btc_results, tmp_path):
    """Debian's chromium (no download) opens the file offline at 390 px: every chart drawn,
    no script error, and the page itself no wider than the phone (tables scroll inside)."""
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install -e '.[test]')")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium)")
    settings, results = btc_results
    path = tmp_path / "relatorio.html"
    write_report(results, path, settings)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--headless", "--no-sandbox",
                                                               "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            outside: list[str] = []
            page.route("**/*", lambda route: (outside.append(route.request.url)
                                              if not route.request.url.startswith("file:") else None,
                                              route.continue_()))
            page.goto(path.as_uri())
            page.wait_for_selector("#grafico-btc .main-svg", timeout=20_000)
            width = page.evaluate("document.documentElement.scrollWidth")
            ticks = page.evaluate("[...document.querySelectorAll('#grafico-btc .xaxislayer-above text')]"
                                  ".map(t => t.textContent).join(' ')")
        finally:
            browser.close()
    assert errors == [] and outside == []
    assert width <= 390
    assert "jun" in ticks.lower() and "Jun" not in ticks  # months in Portuguese (lower case)
