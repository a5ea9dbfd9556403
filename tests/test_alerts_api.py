"""``/alertas`` and the token-protected ``/alertas/regras``, on a real uvicorn and SQLite file.

Also schemathesis over the new endpoints (with and without the token), and the token's
absence from every log line, response and the database file.
"""

from __future__ import annotations

import logging

import httpx
import pytest
import schemathesis
from conftest import FeedSource, LiveServer, api_settings, random_walk, wait_until
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from cryptotech.api.app import create_app

TOKEN = "s3gredo-do-operador-7f1c9a"
RULE = {"tipo": "preco_acima", "moeda": "btc", "preco": 100.0, "intervalo_minimo": "1s",
        "rearme_pct": 0, "nome": "acima de 100"}


def server_with(tmp_path, monkeypatch, token: str | None, **changes):
    if token is None:
        monkeypatch.delenv("CRYPTOTECH_ALERTAS_TOKEN", raising=False)
    else:
        monkeypatch.setenv("CRYPTOTECH_ALERTAS_TOKEN", token)
    monkeypatch.delenv("CRYPTOTECH_ALERTAS_URLS", raising=False)
    source = FeedSource()
    s = api_settings(tmp_path, **changes)
    return LiveServer(create_app(s, source)), source


def auth(token=TOKEN):
    return {"Authorization": f"Bearer {token}"}


def test_rules_need_the_token_persist_and_fire(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.DEBUG)
    texts = []
    server, source = server_with(tmp_path, monkeypatch, TOKEN,
                                 alertas=[{"tipo": "fora_do_intervalo", "moeda": "btc"}])
    with server:
        url = server.url + "/alertas/regras"
        for headers in ({}, auth("errado"), {"Authorization": TOKEN}):
            r = httpx.post(url, json=RULE, headers=headers, timeout=10)
            texts.append(r.text)
            assert r.status_code == 401, r.text
            assert "token ausente ou inválido" in r.json()["detalhe"]
        r = httpx.post(url, json=RULE, headers=auth(), timeout=10)
        texts.append(r.text)
        assert r.status_code == 201, r.text
        created = r.json()
        assert created["id"].startswith("api:") and created["origem"] == "api"
        listed = httpx.get(url, timeout=10).json()
        texts.append(str(listed))
        assert listed["escrita_habilitada"] is True
        assert [x["id"] for x in listed["regras"]] == ["config:1", created["id"]]
        # config rules are read-only here
        r = httpx.delete(url + "/config:1", headers=auth(), timeout=10)
        assert r.status_code == 403 and "config.toml" in r.json()["detalhe"]
        # the new rule fires on the next ticks (read-only history)
        source.feed(random_walk(60, "btc", sigma=0.004))
        wait_until(lambda: server.state.engine.ticks_processed == 60)
        page = httpx.get(server.url + "/alertas?moeda=btc&limite=50", timeout=10).json()
        texts.append(str(page))
        assert 0 < page["quantidade"] <= 50
        ids = [a["id"] for a in page["itens"]]
        assert ids == sorted(ids, reverse=True)
        assert "acima de 100" in {a["regra"] for a in page["itens"]}
        csv = httpx.get(server.url + "/alertas?exportar_csv=true", timeout=10)
        assert csv.headers["content-type"].startswith("text/csv")
        assert csv.text.splitlines()[0].startswith("id,moeda,horario,regra_id")
        # pause, then delete
        r = httpx.patch(f"{url}/{created['id']}", json={"pausada": True}, headers=auth(),
                        timeout=10)
        assert r.status_code == 200 and r.json()["pausada"] is True
    server2, _ = server_with(tmp_path, monkeypatch, TOKEN,
                             alertas=[{"tipo": "fora_do_intervalo", "moeda": "btc"}])
    with server2:  # a restart on the same database: the rule is still there, still paused
        listed = httpx.get(server2.url + "/alertas/regras", timeout=10).json()
        mine = [x for x in listed["regras"] if x["id"] == created["id"]]
        assert mine and mine[0]["pausada"] is True
        r = httpx.delete(f"{server2.url}/alertas/regras/{created['id']}", headers=auth(),
                         timeout=10)
        assert r.status_code == 204
        r = httpx.delete(f"{server2.url}/alertas/regras/{created['id']}", headers=auth(),
                         timeout=10)
        assert r.status_code == 404 and "não encontrada" in r.json()["detalhe"]
        texts.append(httpx.get(server2.url + "/status", timeout=10).text)
    assert not any(TOKEN in t for t in texts)
    assert TOKEN not in caplog.text
    for path in tmp_path.glob("api.db*"):
        assert TOKEN.encode() not in path.read_bytes()


@pytest.mark.parametrize("body, words", [
    ({"tipo": "preco_acima", "moeda": "btc"}, "precisa de: preco"),
    ({"tipo": "explodir"}, "valor inválido"),
    ({"tipo": "preco_acima", "moeda": "lua", "preco": 1}, "moeda desconhecida"),
    ({"tipo": "variacao", "percentual": -2}, "maior que 0"),
])
def test_bad_rules_get_422_in_portuguese(tmp_path, monkeypatch, body, words):
    server, _ = server_with(tmp_path, monkeypatch, TOKEN)
    with server:
        r = httpx.post(server.url + "/alertas/regras", json=body, headers=auth(), timeout=10)
    assert r.status_code == 422
    assert words in r.json()["detalhe"]


def test_without_a_token_the_api_stays_read_only(tmp_path, monkeypatch):
    server, _ = server_with(tmp_path, monkeypatch, None)
    with server:
        url = server.url + "/alertas/regras"
        assert httpx.get(url, timeout=10).json()["escrita_habilitada"] is False
        for r in (httpx.post(url, json=RULE, headers=auth(), timeout=10),
                  httpx.delete(url + "/api:1", headers=auth(), timeout=10)):
            assert r.status_code == 403
            assert "somente leitura" in r.json()["detalhe"]
        r = httpx.get(server.url + "/alertas?moeda=lua", timeout=10)
        assert r.status_code == 422 and "moeda desconhecida" in r.json()["detalhe"]


# -- schemathesis over the new endpoints ---------------------------------------------------


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("CRYPTOTECH_ALERTAS_TOKEN", TOKEN)
    mp.delenv("CRYPTOTECH_ALERTAS_URLS", raising=False)
    s = api_settings(tmp_path_factory.mktemp("alert-schema"), alertas=[RULE])
    source = FeedSource()
    with LiveServer(create_app(s, source)) as server:
        source.feed(random_walk(40, "btc", sigma=0.004))
        wait_until(lambda: server.state.engine.ticks_processed == 40)
        yield server
    mp.undo()


def no_server_error(ctx, response, case):
    assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"


@pytest.mark.parametrize("path, method, mode", [
    ("/alertas", "GET", GenerationMode.POSITIVE), ("/alertas", "GET", GenerationMode.NEGATIVE),
    ("/alertas/regras", "GET", GenerationMode.POSITIVE),
    ("/alertas/regras", "POST", GenerationMode.POSITIVE),
    ("/alertas/regras", "POST", GenerationMode.NEGATIVE),
    ("/alertas/regras/{regra_id}", "PATCH", GenerationMode.POSITIVE),
    ("/alertas/regras/{regra_id}", "DELETE", GenerationMode.POSITIVE),
], ids=str)
def test_schemathesis_over_the_alert_endpoints(live, path, method, mode):
    schema = schemathesis.openapi.from_url(f"{live.url}/openapi.json")
    operation = schema[path][method]
    checks = [no_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance]
    if mode is GenerationMode.NEGATIVE:
        checks.append(negative_data_rejection)

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=40, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def check(case):
        headers = auth() if method != "GET" else None
        response = case.call(base_url=live.url, headers=headers, timeout=10)
        case.validate_response(response, checks=checks)
        assert TOKEN not in response.text

    check()


def test_a_body_that_is_not_json_gets_a_portuguese_400(tmp_path, monkeypatch):
    server, _ = server_with(tmp_path, monkeypatch, TOKEN)
    with server:
        r = httpx.post(server.url + "/alertas/regras", content=b"\x80{}",
                       headers={**auth(), "Content-Type": "application/json"}, timeout=10)
    assert r.status_code == 400 and "JSON" in r.json()["detalhe"]
