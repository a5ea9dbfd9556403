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
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from cryptotech.api.app import create_app
from cryptotech.api.timefmt import INSTANT_PATTERN, local, parse_instant


@pytest.fixture(scope="module")
def live_api(tmp_path_factory):
    settings_ = api_settings(tmp_path_factory.mktemp("schema"),
                             coins={"btc": "bitcoin", "eth": "ethereum", "sol": "solana",
                                    "ada": "cardano"},
                             model={"horizons": ["1h", "4h"]})  # ?horizonte= has a choice
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

    The exceptions (:data:`RULES`): a date that matches the documented pattern but does not
    exist on the calendar (30 February) or cannot be shown (year 10000 once in UTC), and
    `fim` before `inicio`, are a 422 that says so.
    """
    status = response.status_code
    if status == 422:
        assert any(words in response.json()["detalhe"] for words in RULES), response.text
    elif status != 503:  # 503: checked by no_server_error
        assert 200 <= status < 300, f"{status}: {response.text[:300]}"


#: The only 422s a date matching the documented pattern may get: not on the calendar
#: (30 February), or outside the years 0001..9999 in UTC or in the configured zone.
DATE_REFUSALS = ("data inexistente", "fora do intervalo aceito")
#: Every documented rule a schema cannot express: those dates, and fim before inicio.
RULES = (*DATE_REFUSALS, "posterior a inicio")

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


# -- dates: no instant the pattern accepts can reach a 500 -------------------------------------

instants = st.from_regex(INSTANT_PATTERN, fullmatch=True)
edges = st.sampled_from(["0001-01-01", "0001-01-01T00:00", "9999-12-31", "9999-12-31T23:59",
                         "1970-01-01T00:00", "2038-01-19T03:14"])
offsets = st.sampled_from(["", "Z", "+23:59", "-23:59", "+14:00", "-1200", "+00:00"])
extreme_instants = st.builds(lambda d, o: d + (o if "T" in d else ""), edges, offsets)
ZONES = ["America/Sao_Paulo", "UTC", "Pacific/Kiritimati", "Etc/GMT+12", "Asia/Kolkata"]


@given(text=st.one_of(instants, extreme_instants), zone=st.sampled_from(ZONES))
@settings(max_examples=400, deadline=None, database=None, derandomize=True)
def test_parse_instant_gives_a_time_that_can_be_shown_or_a_portuguese_refusal(text, zone):
    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    try:
        epoch = parse_instant(text, tz)
    except ValueError as exc:
        assert any(words in str(exc) for words in DATE_REFUSALS), exc
        return
    shown = local(epoch, tz)
    assert shown is not None and shown.isoformat() and shown.strftime("%Y%m%dT%H%M")


@given(text=st.one_of(instants, extreme_instants), which=st.sampled_from(["inicio", "fim"]),
       csv=st.booleans(), limit=st.sampled_from([None, 1]))
@example(text="9999-12-31T23:59", which="inicio", csv=False, limit=None)
@example(text="9999-12-31T21:00", which="inicio", csv=False, limit=1)
@example(text="9999-12-31T23:59", which="fim", csv=True, limit=None)
@example(text="0001-01-01T00:00Z", which="inicio", csv=False, limit=1)
@example(text="0001-01-01T00:00+23:59", which="inicio", csv=False, limit=None)
@settings(max_examples=150, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
def test_no_date_reaches_a_server_error(live_api, text, which, csv, limit):
    params = {which: text}
    if csv:
        params["exportar_csv"] = "true"
    if limit is not None:
        params["limite"] = str(limit)
    r = httpx.get(f"{live_api.url}/previsoes/btc", params=params, timeout=10)
    if r.status_code == 422:
        assert any(words in r.json()["detalhe"] for words in DATE_REFUSALS), r.text
    else:
        assert r.status_code == 200, r.text
