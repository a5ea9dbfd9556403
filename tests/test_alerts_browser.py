"""An alert fired by the real ``cryptotech demo`` shows on an open ``/painel/`` without reload.

The demo runs as its own process with a ``[[alertas]]`` rule from a config file (the README's
``fora_do_intervalo`` example, with a short cooldown); Debian's Chromium (Playwright,
``executable_path``) keeps the page open while the replay goes on. With the operator's token
typed in the page, a rule is created and deleted from it.
"""

from __future__ import annotations

import signal
import subprocess

import httpx
import pytest
from conftest import cli_env, free_port, start_cli, wait_until
from test_dashboard import browser  # noqa: F401  (the module's Chromium fixture)

CONFIG = """
[coins]
btc = "bitcoin"

[model]
candidates = ["bayes_linear"]

[[alertas]]
nome = "BTC fora do intervalo previsto"
tipo = "fora_do_intervalo"
moeda = "btc"
intervalo_minimo = "2h"
"""


@pytest.mark.browser
def test_an_alert_of_the_demo_appears_on_the_open_page(browser, tmp_path):  # noqa: F811
    (tmp_path / "config.toml").write_text(CONFIG, encoding="utf-8")
    port = free_port()
    proc = start_cli(["demo", "--db", tmp_path / "demo.db", "--port", port, "--speed", "1200",
                      "--config", tmp_path / "config.toml"],
                     cli_env(CRYPTOTECH_ALERTAS_TOKEN="token-do-teste"), tmp_path,
                     tmp_path / "log.txt", stdout=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        def up() -> bool:
            try:
                return httpx.get(base + "/alertas/regras", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, 60)
        context = browser.new_context(locale="pt-BR")
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(base + "/painel/")
        page.wait_for_selector("#alertas-lista", timeout=20_000)
        page.evaluate("window.__semRecarga = true")
        before = {a["id"] for a in page.evaluate("window.cryptotechAlertas.itens()")}
        # a new alert arrives live: in the list and as a toast, same page (no reload)
        page.wait_for_function(
            "known => window.cryptotechAlertas.itens().some(a => !known.includes(a.id))",
            arg=sorted(before), timeout=60_000)
        page.wait_for_selector(".alerta-toast", timeout=10_000)
        assert page.evaluate("window.__semRecarga") is True
        shown = page.evaluate("window.cryptotechAlertas.itens()")
        new = [a for a in shown if a["id"] not in before]
        assert new[0]["tipo"] == "fora_do_intervalo" and new[0]["moeda"] == "btc"
        stored = httpx.get(base + "/alertas?moeda=btc&limite=100", timeout=10).json()
        assert new[0]["id"] in {a["id"] for a in stored["itens"]}
        toast = page.inner_text(".alerta-toast")
        assert "BTC fora do intervalo previsto" in toast
        assert "Regras" in page.inner_text("#alertas")
        assert "fora do intervalo" in page.inner_text("#alertas-regras")
        # with the operator's token typed in the page: create a rule, then delete it (plain
        # clicks, as a user's: a toast still showing over the form must not take them)
        page.wait_for_selector("#alertas-form:not([hidden])", timeout=10_000)
        page.fill("#alertas-token", "token-do-teste")
        page.fill("#alertas-regra", '{"tipo": "preco_abaixo", "moeda": "btc", "preco": 1000}')
        page.click("#alertas-form button")
        page.wait_for_function("document.getElementById('alertas-regras').innerText"
                               ".includes('api:1')", timeout=10_000)
        rules = httpx.get(base + "/alertas/regras", timeout=10).json()["regras"]
        assert [r["id"] for r in rules] == ["config:1", "api:1"]
        page.click("#alertas-regras li:has-text('api:1') button")
        page.wait_for_function("!document.getElementById('alertas-regras').innerText"
                               ".includes('api:1')", timeout=10_000)
        assert [r["id"] for r in httpx.get(base + "/alertas/regras", timeout=10).json()[
            "regras"]] == ["config:1"]
        assert not errors
        context.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
