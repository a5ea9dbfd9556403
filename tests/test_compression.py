"""Gzip and cache headers on a real uvicorn: JSON, CSV, HTML, JS and CSS compressed when the
client asks; the SSE stream never compressed and still live; static files cacheable."""

from __future__ import annotations

import gzip
import json
import queue
import threading

import httpx
import pytest
from conftest import FeedSource, LiveServer, api_settings, random_walk, wait_until
from httpx_sse import connect_sse

from cryptotech.api.app import create_app
from cryptotech.api.delivery import DOCS_ASSETS
from cryptotech.dashboard import mount_dashboard

GZIP = {"Accept-Encoding": "gzip"}
IDENTITY = {"Accept-Encoding": "identity"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    settings = api_settings(tmp_path_factory.mktemp("gzip"))
    source = FeedSource()
    ticks = sorted(random_walk(60, "btc", seed=1) + random_walk(60, "eth", seed=2),
                   key=lambda t: (t.ts, t.coin))
    with LiveServer(create_app(settings, source, extensions=[mount_dashboard])) as live:
        source.feed(ticks[:100])
        wait_until(lambda: live.state.engine.ticks_processed == 100)
        live.source, live.spare = source, ticks[100:]
        yield live


def raw(url: str, headers: dict) -> tuple[httpx.Response, bytes]:
    """The answer and its body exactly as it came over the wire (not decoded)."""
    with httpx.stream("GET", url, headers=headers, timeout=10) as r:
        return r, b"".join(r.iter_raw())


def painel_files(server) -> list[str]:
    html = httpx.get(f"{server.url}/painel/", timeout=10).text
    import re

    return re.findall(r'(?:src|href)="(/painel/(?:assets|_dash-component-suites)/[^"]+)"', html)


@pytest.mark.parametrize("path, kind", [
    ("/previsoes/btc", "application/json"),
    ("/previsoes/btc?exportar_csv=true", "text/csv"),
    ("/status", "application/json"),
    ("/openapi.json", "application/json"),
    ("/", "text/html"),
    ("/painel/", "text/html"),
    (f"{DOCS_ASSETS}/swagger-ui-bundle.js", "javascript"),
    (f"{DOCS_ASSETS}/swagger-ui.css", "text/css"),
])
def test_answers_are_gzipped_when_asked(server, path, kind):
    plain, plain_body = raw(server.url + path, IDENTITY)
    packed, packed_body = raw(server.url + path, GZIP)
    assert kind in packed.headers["content-type"]
    assert "content-encoding" not in plain.headers
    assert packed.headers["content-encoding"] == "gzip"
    assert "accept-encoding" in packed.headers.get("vary", "").lower()
    assert len(packed_body) < len(plain_body) * 0.6
    if path.startswith(("/previsoes", "/openapi")):
        assert gzip.decompress(packed_body) == plain_body


def test_dashboard_files_are_gzipped_and_cached(server):
    files = painel_files(server)
    assert any("/assets/" in f for f in files) and any("_dash-component-suites" in f for f in files)
    for path in files:
        r, body = raw(server.url + path, GZIP)
        assert r.status_code == 200, path
        assert "max-age=31536000" in r.headers["cache-control"], path
        if len(body) > 2000:
            assert r.headers.get("content-encoding") == "gzip", path


def test_docs_files_are_cached_for_a_day(server):
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.js", "favicon.png"):
        r = httpx.get(f"{server.url}{DOCS_ASSETS}/{name}", timeout=10)
        assert r.status_code == 200 and r.headers["cache-control"] == "public, max-age=86400"
    api = httpx.get(f"{server.url}/prever/btc", timeout=10)
    assert "cache-control" not in api.headers  # answers that change are not cached


def test_the_stream_is_never_compressed_and_flows_live(server):
    """Asked for gzip, /stream answers plain text/event-stream, event by event."""
    events: queue.Queue = queue.Queue()
    opened = threading.Event()
    headers: dict = {}

    def read() -> None:
        with httpx.Client(base_url=server.url, timeout=httpx.Timeout(10, read=30)) as client:
            with connect_sse(client, "GET", "/stream", headers=GZIP) as source:
                headers.update(source.response.headers)
                opened.set()
                for event in source.iter_sse():
                    events.put(event)
                    if event.event == "previsao":
                        return

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    assert opened.wait(10)
    assert headers["content-type"].startswith("text/event-stream")
    assert "content-encoding" not in headers
    wait_until(lambda: server.state.hub.subscribers >= 1)
    server.source.feed(server.spare[:1])  # one tick, after the stream opened
    got = []
    while not any(e.event == "previsao" for e in got):
        got.append(events.get(timeout=10))  # live: it arrives without more traffic
    thread.join(10)
    tick = next(e for e in got if e.event == "tick")
    assert json.loads(tick.data)["preco"] == pytest.approx(server.spare[0].price)
