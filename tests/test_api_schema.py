"""Schemathesis over the live OpenAPI schema: no server error, no answer outside the schema.

The API runs under a real uvicorn with data (two coins with forecasts and outcomes, one
warming up, one without prices). ``/stream`` is excluded (an endless response); its
parameters are covered by ``test_stream.py``.
"""

from __future__ import annotations

import httpx
import pytest
import schemathesis
from conftest import FeedSource, LiveServer, api_settings, random_walk, wait_until
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cryptotech.api.app import create_app


@pytest.fixture(scope="module")
def live_api(tmp_path_factory):
    settings_ = api_settings(tmp_path_factory.mktemp("schema"),
                             coins={"btc": "bitcoin", "eth": "ethereum", "sol": "solana",
                                    "ada": "cardano"})
    source = FeedSource()
    ticks = sorted(random_walk(40, "btc", seed=1, price=90_000.0)
                   + random_walk(40, "eth", seed=2, price=2_000.0)
                   + random_walk(1, "sol", seed=3), key=lambda t: (t.ts, t.coin))
    with LiveServer(create_app(settings_, source)) as server:
        source.feed(ticks)
        wait_until(lambda: server.state.engine.ticks_processed == len(ticks))
        yield server


OPERATIONS = ["/", "/status", "/saude", "/moedas", "/prever/{moeda}", "/previsoes/{moeda}",
              "/metricas/{moeda}"]
WITH_PARAMETERS = ["/prever/{moeda}", "/previsoes/{moeda}", "/metricas/{moeda}"]


def no_server_error(ctx, response, case):
    """No 5xx, except the documented 503 of /prever while a coin warms up."""
    if response.status_code == 503 and case.operation.path == "/prever/{moeda}":
        assert response.json()["motivo"] in ("sem_dados", "aquecendo", "sem_dados_na_fonte")
    else:
        assert response.status_code < 500, f"{response.status_code}: {response.text[:300]}"


def valid_input_accepted(ctx, response, case):
    """Schema-valid input is answered, not refused: 2xx (or the warm-up 503 above).

    The one exception: a date that matches the documented pattern but does not exist on
    the calendar (30 February) is a 422 that says so.
    """
    status = response.status_code
    if status == 422:
        assert "data inexistente" in response.json()["detalhe"], response.text
    elif status != 503:  # 503: checked by no_server_error
        assert 200 <= status < 300, f"{status}: {response.text[:300]}"


CHECKS = [no_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


@pytest.fixture(scope="module")
def api_schema(live_api):
    return schemathesis.openapi.from_url(f"{live_api.url}/openapi.json")


def test_every_operation_but_the_stream_is_fuzzed(api_schema):
    paths = {op.ok().path for op in api_schema.get_all_operations()}
    # the /alertas endpoints are fuzzed by test_alerts_api.py
    assert paths == {*OPERATIONS, "/stream", "/alertas", "/alertas/regras",
                     "/alertas/regras/{regra_id}"}


@pytest.mark.parametrize("path, mode", [
    *((p, GenerationMode.POSITIVE) for p in OPERATIONS),
    *((p, GenerationMode.NEGATIVE) for p in WITH_PARAMETERS),
], ids=str)
def test_no_server_error_and_no_schema_violation(live_api, api_schema, path, mode):
    operation = api_schema[path]["GET"]
    extra = [valid_input_accepted] if mode is GenerationMode.POSITIVE else [negative_data_rejection]

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=60, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def check(case):
        case.call_and_validate(base_url=live_api.url, checks=CHECKS + extra, timeout=10)

    check()


def test_the_schema_is_served_and_valid(live_api):
    body = httpx.get(f"{live_api.url}/openapi.json", timeout=10).json()
    assert body["openapi"].startswith("3.")
    assert body["info"]["title"] == "CryptoTech"
