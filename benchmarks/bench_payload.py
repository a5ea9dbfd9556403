"""Bytes on the wire: ``/previsoes?limite=10000``, the CSV export and the first load of ``/painel/``.

The app with the dashboard runs under a real uvicorn on 127.0.0.1 (the tests' ``LiveServer``
and ``FeedSource``, imported from ``tests/conftest.py``) with two coins and ``TICKS`` 5-minute
ticks each learned (so ``/previsoes/btc?limite=10000`` has 10,000 forecasts). Measured:

* ``/previsoes/btc?limite=10000`` (JSON) and ``...&exportar_csv=true`` (CSV): the bytes
  received (``Content-Length``, or the chunked body as it came) with and without
  ``Accept-Encoding: gzip``;
* ``/painel/``, first load in Debian's Chromium (Playwright, ``executable_path``, headless,
  an empty cache): the sum of every response's encoded bytes on the wire
  (``Network.loadingFinished.encodedDataLength`` through the DevTools protocol), until every
  chart has its data; then a reload with the cache, which shows what the cache headers save.

Run: ``python benchmarks/bench_payload.py`` (about a minute). Prints one line per figure.
"""

from __future__ import annotations

import random
import shutil
import sys
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

TICKS = 10_300  # per coin: 10,000 forecasts of btc and more
COINS = {"btc": "bitcoin", "eth": "ethereum"}
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def _ticks():
    from cryptotech.domain import Tick

    rng = random.Random(7)
    start = datetime.now(timezone.utc) - timedelta(minutes=5 * TICKS)
    prices = {"btc": 100_000.0, "eth": 3_000.0}
    out = []
    for i in range(TICKS):
        for coin in COINS:
            prices[coin] *= 1 + rng.gauss(0, 0.002)
            out.append(Tick(coin, start + timedelta(minutes=5 * i), prices[coin]))
    return out


def wire_bytes(url: str, gzip: bool) -> tuple[int, str]:
    """Bytes of the body as sent (compressed if the server compressed), and its encoding."""
    headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
    with httpx.stream("GET", url, headers=headers, timeout=120) as r:
        size = sum(len(chunk) for chunk in r.iter_raw())
        return size, r.headers.get("content-encoding", "-")


def painel_bytes(base: str) -> tuple[int, int, int, int]:
    """(first load bytes, responses, reload bytes, reload responses) in Chromium."""
    from playwright.sync_api import sync_playwright

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        raise SystemExit("Debian's chromium is needed (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            page = browser.new_context().new_page()
            cdp = page.context.new_cdp_session(page)
            cdp.send("Network.enable")
            sizes: list[float] = []
            cdp.on("Network.loadingFinished", lambda e: sizes.append(e["encodedDataLength"]))
            ready = """() => window.cryptotechPainel && ['grafico-preco'].every(id =>
                         window.cryptotechPainel.pontos(id).some(t => t.n > 0))"""
            page.goto(base + "/painel/")
            page.wait_for_function(ready, timeout=60_000)
            page.wait_for_load_state("networkidle")
            first, first_n = int(sum(sizes)), len(sizes)
            sizes.clear()
            page.reload()
            page.wait_for_function(ready, timeout=60_000)
            page.wait_for_load_state("networkidle")
            return first, first_n, int(sum(sizes)), len(sizes)
        finally:
            browser.close()


def main() -> None:
    from conftest import FeedSource, LiveServer, api_settings, wait_until

    from cryptotech.api.app import create_app
    from cryptotech.dashboard import mount_dashboard

    with tempfile.TemporaryDirectory() as tmp:
        settings = api_settings(Path(tmp), coins=COINS)
        source = FeedSource()
        ticks = _ticks()
        with LiveServer(create_app(settings, source, extensions=[mount_dashboard])) as server:
            source.feed(ticks)
            wait_until(lambda: server.state.engine.ticks_processed == len(ticks), timeout=600)
            url = f"{server.url}/previsoes/btc?limite=10000"
            for label, target in (("JSON", url), ("CSV", url + "&exportar_csv=true")):
                for gzip in (False, True):
                    size, enc = wire_bytes(target, gzip)
                    print(f"/previsoes/btc?limite=10000 {label:4} Accept-Encoding: "
                          f"{'gzip    ' if gzip else 'identity'} -> {size:>10,} bytes "
                          f"(Content-Encoding: {enc})")
            first, n, again, m = painel_bytes(server.url)
            print(f"/painel/ first load (empty cache): {first:>10,} bytes in {n} responses")
            print(f"/painel/ reload (with cache):      {again:>10,} bytes in {m} responses")


if __name__ == "__main__":
    main()
