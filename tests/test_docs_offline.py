"""``/docs`` and ``/redoc`` in Debian's Chromium: the operations render, nothing leaves 127.0.0.1.

Swagger UI and ReDoc come from the installed ``fastapi-offline`` package (served under
``/docs-arquivos/``), never from a CDN or a font host, so the docs work on a laptop without
internet. Every request the page makes is recorded; its host must be the test server's.
"""

from __future__ import annotations

import re
import shutil

import httpx
import pytest
from conftest import LiveServer, api_settings

from cryptotech.api.app import create_app
from cryptotech.api.delivery import DOCS_ASSETS

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
SUMMARIES = ["Previsão atual para daqui a um horizonte",
             "Histórico de previsões (filtros, páginas e CSV)", "Eventos ao vivo (SSE)"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with LiveServer(create_app(api_settings(tmp_path_factory.mktemp("docs")))) as live:
        yield live


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="Playwright is not installed (pip install -e '.[test]')")
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("Debian's chromium is not installed (apt-get install chromium): "
                    "the docs' browser tests need a real browser")
    with sync_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def open_page(browser, url: str):
    context = browser.new_context()
    page = context.new_page()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(url)
    return context, page, requests


def hosts(requests: list[str]) -> set[str]:
    return {re.sub(r"^\w+://([^/]+)(/.*)?$", r"\1", u) for u in requests
            if u.startswith(("http:", "https:", "ws:", "wss:"))}


def test_docs_pages_name_no_outside_host(server):
    for path in ("/docs", "/redoc"):
        html = httpx.get(server.url + path, timeout=10).text
        links = re.findall(r'(?:src|href)=["\']([^"\']+)', html)
        assert links and all(link.startswith(DOCS_ASSETS + "/") for link in links), links
        assert "fonts.googleapis" not in html and "cdn." not in html


@pytest.mark.browser
def test_swagger_ui_renders_every_operation_offline(browser, server):
    schema = httpx.get(server.url + "/openapi.json", timeout=10).json()
    operations = sum(len(ops) for ops in schema["paths"].values())
    context, page, requests = open_page(browser, server.url + "/docs")
    try:
        # locators, not wait_for_function: the page's CSP forbids eval (as it should)
        page.locator(".opblock").nth(operations - 1).wait_for(timeout=30_000)
        assert page.locator(".opblock").count() == operations
        for summary in SUMMARIES:
            page.get_by_text(summary, exact=True).first.wait_for(timeout=10_000)
        page.wait_for_load_state("networkidle")
    finally:
        context.close()
    assert hosts(requests) == {server.url.split("//")[1]}, requests


@pytest.mark.browser
def test_redoc_renders_every_operation_offline(browser, server):
    context, page, requests = open_page(browser, server.url + "/redoc")
    try:
        for summary in SUMMARIES:  # each operation's heading in the middle panel
            page.locator("h2", has_text=summary).first.wait_for(timeout=30_000)
        page.wait_for_load_state("networkidle")
    finally:
        context.close()
    assert hosts(requests) == {server.url.split("//")[1]}, requests
