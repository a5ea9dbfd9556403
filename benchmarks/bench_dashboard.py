"""Section: the dashboard. From a new tick in the engine to its point on the chart, in Chromium.

The app with the dashboard runs under a real uvicorn on 127.0.0.1 (the tests' ``LiveServer``,
imported from ``tests/conftest.py`` rather than copied); Debian's Chromium, driven by Playwright
through ``executable_path`` (headless, nothing downloaded), opens ``/painel/`` on BTC (the
comparator shows BTC and ETH). This process then hands ticks of both coins to the engine at a
steady rate (``Engine.handle`` on the server's loop: learn, commit, publish), alternating
coins, each tick 5 minutes of market after the previous one.

For every BTC tick:

* **published**: ``time.time()`` when the hub publishes its ``tick`` event (a hub listener, so
  the engine's learning and commit are before it, not in the figure);
* **received**: when the page's ``EventSource`` handler got it;
* **drawn**: when ``Plotly.extendTraces`` resolved for the price chart with that point (the
  browser's ``performance.timeOrigin + performance.now()``, kept by ``assets/painel.js`` in
  ``window.cryptotechPainel.medidas``).

Latency = drawn − published, split into publish → received (SSE: render, fan-out, uvicorn,
the browser's network stack) and received → drawn (the page's coalescing, a drawing round at
most every 100 ms, then Plotly's redraw of the price chart, the first of the round). The
browser clock is compared with ``time.time()`` before each phase (the offset, a fraction of a
millisecond on one machine, is subtracted).

Before the latency phases, the first load of ``/painel/`` is weighed: every response's bytes
as Chromium received them (``Network.loadingFinished``'s ``encodedDataLength``, through CDP)
and its decoded body, summed, in a fresh context with the cache off.

Two paces: 2 ticks/s (each tick alone, like a live source that brings one price per coin a
minute) and 40 ticks/s (the demo's pace, where redraws are coalesced).

Run alone: ``python benchmarks/bench_dashboard.py [--quick]``. Needs the ``[test]`` extra
(Playwright) and Debian's ``chromium``; without them the section reports why it did not run.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import common
from bench_api import percentile
from common import fmt

NAME = "dashboard"
TITLE = "Dashboard: tick to chart in a real browser (Chromium)"
COINS = {"btc": "bitcoin", "eth": "ethereum"}
HISTORY = 200  # ticks per coin learned before the page opens
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
STEP = timedelta(minutes=5)


def plan(quick: bool) -> list[tuple[float, int]]:
    """(ticks per second, ticks) per phase; half of the ticks are BTC's."""
    return [(2.0, 20), (40.0, 200)] if quick else [(2.0, 60), (40.0, 1200)]


def _ticks(n: int, start: datetime, prices: dict[str, float]):
    """``n`` ticks alternating coins, 5 minutes apart per coin, a small random walk."""
    import random

    from cryptotech.domain import Tick

    rng = random.Random(7)
    coins = list(COINS)
    out = []
    for i in range(n):
        coin = coins[i % len(coins)]
        prices[coin] *= 1.0 + rng.gauss(0.0, 0.002)
        out.append(Tick(coin=coin, ts=start + (i // len(coins)) * STEP, price=prices[coin],
                        volume_24h=1e6))
    return out


class _Bench:
    """The server, the page and the clocks of one run."""

    def __init__(self, folder: Path, page, server):
        self.folder, self.page, self.server = folder, page, server
        self.published: dict[tuple[str, float], float] = {}
        self.next_ts = None
        self.prices = {"btc": 100_000.0, "eth": 3_000.0}

    def listen(self, event) -> None:
        if event.kind == "tick":
            self.published[(event.data["coin"], float(event.data["ts"]))] = time.time()

    def handle(self, tick) -> None:
        async def go():
            await self.server.state.engine.handle(tick)

        import concurrent.futures

        fut = asyncio.run_coroutine_threadsafe(go(), self.server.loop)
        try:
            fut.result(30)
        except concurrent.futures.TimeoutError:
            raise RuntimeError("the engine did not take a tick within 30 s") from None

    def feed(self, n: int, rate: float) -> list:
        ticks = _ticks(n, self.next_ts, self.prices)
        self.next_ts = ticks[-1].ts + STEP
        gap = 1.0 / rate
        next_at = time.perf_counter()
        for tick in ticks:
            next_at += gap
            time.sleep(max(0.0, next_at - time.perf_counter()))
            self.handle(tick)
        return ticks

    def clock_offset(self) -> float:
        """Browser clock − time.time(), in seconds (median of a few round trips)."""
        samples = []
        for _ in range(7):
            t0 = time.time()
            browser = self.page.evaluate("performance.timeOrigin + performance.now()") / 1000
            t1 = time.time()
            samples.append(browser - (t0 + t1) / 2)
        return sorted(samples)[len(samples) // 2]

    def drawn(self) -> list[dict]:
        return self.page.evaluate("window.cryptotechPainel.medidas()")


def _phase(bench: _Bench, rate: float, n: int) -> dict:
    offset = bench.clock_offset()
    already = len(bench.drawn())
    ticks = bench.feed(n, rate)
    btc = [t for t in ticks if t.coin == "btc"]
    last = btc[-1].ts.isoformat()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        shown = bench.page.evaluate(
            "() => window.cryptotechPainel.pontos('grafico-preco')"
            ".find(t => t.nome === 'Preço').x.slice(-1)[0]")
        if shown and datetime.fromisoformat(shown) >= datetime.fromisoformat(last):
            break
        time.sleep(0.05)
    wanted = {t.epoch for t in btc}
    total, network, page = [], [], []
    for m in bench.drawn()[already:]:
        if m["grafico"] != "grafico-preco" or m["moeda"] != "btc":
            continue
        ts = datetime.fromisoformat(m["horario"]).timestamp()
        published = bench.published.get(("btc", ts))
        if ts not in wanted or published is None:
            continue
        drawn, received = m["desenhado"] / 1000 - offset, m["chegada"] / 1000 - offset
        total.append(drawn - published)
        network.append(received - published)
        page.append(drawn - received)

    def ms(values, q):
        v = percentile(values, q)
        return None if v is None else v * 1e3

    return {"rate": rate, "ticks": n, "btc_ticks": len(btc), "drawn": len(total),
            "clock_offset_ms": offset * 1e3,
            "p50_ms": ms(total, 50), "p99_ms": ms(total, 99), "max_ms": ms(total, 100),
            "sse_p50_ms": ms(network, 50), "sse_p99_ms": ms(network, 99),
            "page_p50_ms": ms(page, 50), "page_p99_ms": ms(page, 99)}


def page_weight(browser, url: str) -> dict:
    """First load of ``url`` in a fresh context (empty cache): every response's bytes as
    received (``encodedDataLength``: headers and body as sent, compressed if it was) and its
    body decoded, summed over the page's requests (Chromium's own network events, through
    CDP), once the page shows its charts and the stream is open."""
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    page = context.new_page()
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    cdp.send("Network.setCacheDisabled", {"cacheDisabled": True})
    urls: dict[str, str] = {}
    body: dict[str, int] = {}
    wire: dict[str, int] = {}
    cdp.on("Network.responseReceived",
           lambda e: urls.__setitem__(e["requestId"], e["response"]["url"]))
    cdp.on("Network.dataReceived",
           lambda e: body.__setitem__(e["requestId"],
                                      body.get(e["requestId"], 0) + e["dataLength"]))
    cdp.on("Network.loadingFinished",
           lambda e: wire.__setitem__(e["requestId"], int(e["encodedDataLength"])))
    try:
        page.goto(url + "/painel/")
        page.wait_for_function(
            "() => window.cryptotechPainel && window.cryptotechPainel.estado.conexao === "
            "'aberta' && window.cryptotechPainel.pontos('grafico-preco').some(t => t.n > 0)",
            timeout=30_000)
        page.wait_for_load_state("networkidle")  # the stream is not counted: it never ends
        files = sorted(((urls.get(r, "?").split("/painel/")[-1].split("?")[0], n, body.get(r, 0))
                        for r, n in wire.items()), key=lambda f: -f[1])
        return {"requests": len(wire), "wire_bytes": sum(n for _, n, _ in files),
                "body_bytes": sum(b for _, _, b in files), "largest": files[:5]}
    finally:
        context.close()


def measure(quick: bool) -> dict:
    """Everything above; raises RuntimeError with the reason when it cannot run."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise RuntimeError("Playwright is not installed (pip install -e '.[test]')") from None
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise RuntimeError("Debian's chromium is not installed (apt-get install chromium)")
    sys.path.insert(0, str(common.REPO / "tests"))
    from conftest import LiveServer

    from cryptotech.api.app import create_app
    from cryptotech.config import Settings
    from cryptotech.dashboard import mount_dashboard

    folder = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    settings = Settings(coins=COINS, model={"candidates": ["bayes_linear"]},
                        store={"path": str(folder / "painel.db")}, source={"backfill": False})
    app = create_app(settings, None, extensions=[mount_dashboard])
    with LiveServer(app) as server, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            bench = _Bench(folder, None, server)
            server.call(server.state.hub.listeners.append, bench.listen)
            bench.next_ts = datetime.fromisoformat("2025-01-01T00:00:00+00:00")
            for tick in _ticks(2 * HISTORY, bench.next_ts, bench.prices):
                bench.handle(tick)
            bench.next_ts += HISTORY * STEP
            common.log("dashboard: first-load weight")
            weight = page_weight(browser, server.url)
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            page.goto(server.url + "/painel/")
            page.wait_for_function(
                "() => window.cryptotechPainel && window.cryptotechPainel.estado.conexao === "
                "'aberta' && window.cryptotechPainel.pontos('grafico-preco').some(t => t.n > 0)",
                timeout=30_000)
            bench.page = page  # the comparator shows both coins by default
            phases = []
            for rate, n in plan(quick):
                common.log(f"dashboard: {n} ticks at {rate:g}/s")
                phases.append(_phase(bench, rate, n))
            return {"phases": phases, "chromium": browser.version, "weight": weight}
        finally:
            browser.close()
            shutil.rmtree(folder, ignore_errors=True)


def run(ctx) -> dict:
    """``ctx``: the suite's context (``ctx.quick``), or just a bool for quick mode."""
    quick = ctx if isinstance(ctx, bool) else bool(getattr(ctx, "quick", False))
    try:
        out = measure(quick)
    except RuntimeError as exc:
        return {"tables": [], "data": {}, "notes": [f"not run: {exc}"]}
    rows = [[f"{r['rate']:g}", f"{r['drawn']}/{r['btc_ticks']}", fmt(r["p50_ms"], "{:.1f}"),
             fmt(r["p99_ms"], "{:.1f}"), fmt(r["max_ms"], "{:.1f}"),
             fmt(r["sse_p50_ms"], "{:.1f}"), fmt(r["page_p50_ms"], "{:.1f}"),
             fmt(r["page_p99_ms"], "{:.1f}")] for r in out["phases"]]
    table = common.table(
        "Tick to chart: engine publish → point on the price chart (headless Chromium "
        f"{out['chromium']}, same machine)",
        ["ticks/s (2 coins)", "BTC ticks drawn", "p50 ms", "p99 ms", "max ms",
         "publish→page p50", "page→drawn p50", "page→drawn p99"],
        rows,
        ["published: the hub's `tick` event (after learning and commit); drawn: "
         "Plotly.extendTraces resolved in the page for that point; browser clock calibrated "
         "against time.time() (offset "
         + ", ".join(fmt(r["clock_offset_ms"], "{:.2f}") for r in out["phases"]) + " ms)",
         "the page starts a drawing round at most every 100 ms, one chart per task, the price "
         "chart first (events in between are drawn together); at 2 ticks/s each tick is drawn "
         "alone",
         "server, engine and browser share the machine's CPUs"])
    weight = out["weight"]
    mb = 1024 * 1024
    first_load = common.table(
        "First load of /painel/ (fresh browser context, cache off; the SSE stream excluded)",
        ["requests", "bytes received (MB)", "bodies decoded (MB)", "largest responses"],
        [[str(weight["requests"]), f"{weight['wire_bytes'] / mb:.2f}",
          f"{weight['body_bytes'] / mb:.2f}",
          "; ".join(f"{name.rsplit('/', 1)[-1]} {n / 1024:.0f} KB"
                    for name, n, _ in weight["largest"][:3])]],
        [f"{HISTORY} ticks per coin of history in the page's first callback; bytes received "
         "are Chromium's encodedDataLength (headers and body as sent, compressed if the "
         "server compressed it)"])
    return {"tables": [first_load, table], "data": out, "notes": []}


if __name__ == "__main__":
    sys.exit(common.main_single(sys.modules[__name__]))
