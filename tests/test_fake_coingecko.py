"""The fake CoinGecko answers like the real one (recorded bodies, official spec) and misbehaves
on demand. Real sockets throughout: httpx and websockets clients against the running fakes."""

from __future__ import annotations

import asyncio
import csv
import gzip
import json
import math
import signal
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

import cryptotech
from cryptotech.testing.fake_coingecko import FAULT_KINDS, FakeCoinGecko, FakeCoinGeckoStream, Fault

FIXTURES = Path(__file__).parent / "fixtures" / "coingecko"
DATA = Path(cryptotech.__file__).parent / "data"
ALL_FLAGS = {
    "include_market_cap": "true",
    "include_24hr_vol": "true",
    "include_24hr_change": "true",
    "include_last_updated_at": "true",
}


def closes(symbol: str) -> list[tuple[int, float]]:
    """(UNIX seconds, close) of the bundled file, read independently of the fake."""
    with gzip.open(DATA / f"{symbol.upper()}USDT_5m.csv.gz", "rt", newline="") as handle:
        return [
            (int(datetime.fromisoformat(r["timestamp"]).timestamp()), float(r["close"]))
            for r in csv.DictReader(handle)
        ]


def simple_price(client: httpx.Client, fake: FakeCoinGecko, ids: str = "bitcoin",
                 **flags: str) -> httpx.Response:
    params = {"ids": ids, "vs_currencies": "usd", **(flags or ALL_FLAGS)}
    return client.get(fake.url + "/simple/price", params=params)


@pytest.fixture
def fake():
    with FakeCoinGecko() as server:
        yield server


@pytest.fixture
def client():
    with httpx.Client(timeout=5.0) as c:
        yield c


def test_ping_matches_the_recorded_body(fake, client):
    recorded = json.loads((FIXTURES / "ping.json").read_text())
    assert client.get(fake.url + "/ping").json() == recorded
    # The SDK's base_url carries /api/v3; a bare host works as well.
    assert client.get(fake.url.removesuffix("/api/v3") + "/ping").json() == recorded


def test_simple_price_has_the_recorded_shape_and_walks_real_history(fake, client):
    recorded = json.loads((FIXTURES / "simple_price.json").read_text())["bitcoin"]
    history = closes("btc")
    bodies = [simple_price(client, fake, "bitcoin,ethereum,not-a-coin").json() for _ in range(3)]
    for i, body in enumerate(bodies):
        assert sorted(body) == ["bitcoin", "ethereum"]  # unknown ids are left out
        entry = body["bitcoin"]
        assert list(entry) == list(recorded)  # same keys, same order as the real answer
        assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in entry.values())
        ts, close = history[288 + i]
        assert (entry["last_updated_at"], entry["usd"]) == (ts, close)
    stamps = [b["bitcoin"]["last_updated_at"] for b in bodies]
    assert [b - a for a, b in zip(stamps, stamps[1:])] == [300, 300]


def test_simple_price_includes_only_what_was_asked(fake, client):
    body = client.get(
        fake.url + "/simple/price", params={"ids": "solana", "vs_currencies": "brl,eur"}
    ).json()
    assert set(body["solana"]) == {"brl", "eur"}
    assert client.get(fake.url + "/simple/price", params={"ids": "solana"}).status_code == 400


def test_step_and_offset_shape_the_walk(client):
    with FakeCoinGecko(step=3, start=10, time_offset=1000) as fake:
        a, b = (simple_price(client, fake).json()["bitcoin"] for _ in range(2))
    history = closes("btc")
    assert a["last_updated_at"] == history[10][0] + 1000
    assert b["last_updated_at"] - a["last_updated_at"] == 900
    assert b["usd"] == history[13][1]


def test_market_chart_day_is_288_five_minute_points_plus_the_request_time(fake, client):
    recorded = json.loads((FIXTURES / "coins_id_market_chart.json").read_text())
    simple_price(client, fake)  # serves point 288; the chart ends before point 289
    body = client.get(fake.url + "/coins/bitcoin/market_chart",
                      params={"vs_currency": "usd", "days": "1"}).json()
    assert set(body) == set(recorded)
    prices = body["prices"]
    assert len(prices) == 289
    assert [len(body[k]) for k in recorded] == [289, 289, 289]
    assert [p[0] for p in body["market_caps"]] == [p[0] for p in prices]
    gaps = [b[0] - a[0] for a, b in zip(prices, prices[1:])]
    assert set(gaps[:-1]) == {300_000}
    assert 0 < gaps[-1] < 300_000  # the last point is off the grid
    history = closes("btc")
    assert [p[1] for p in prices[:-1]] == [c for _, c in history[1:289]]
    assert prices[-2][0] == history[288][0] * 1000  # the day before the current point


def test_market_chart_hourly_beyond_a_day_and_errors(fake, client):
    url = fake.url + "/coins/ethereum/market_chart"
    week = client.get(url, params={"vs_currency": "usd", "days": "7"}).json()["prices"]
    gaps = {b[0] - a[0] for a, b in zip(week[:-2], week[1:-1])}
    assert gaps == {3_600_000}
    missing = client.get(fake.url + "/coins/nope/market_chart",
                         params={"vs_currency": "usd", "days": "1"})
    assert (missing.status_code, missing.json()) == (404, {"error": "coin not found"})
    assert client.get(url, params={"days": "1"}).status_code == 400


def test_429_json_is_the_exact_recorded_body_with_retry_after(fake, client):
    fake.fail_next("429", retry_after=119)
    answer = simple_price(client, fake)
    assert answer.status_code == 429
    assert answer.headers["retry-after"] == "119"
    assert answer.headers["content-type"].startswith("application/json")
    assert answer.content == (FIXTURES / "429_rate_limit.json").read_bytes().strip()
    assert len(answer.content) == 187


def test_429_html_without_retry_after(fake, client):
    fake.fail_next("429", body="html")
    answer = simple_price(client, fake)
    assert answer.status_code == 429
    assert "retry-after" not in answer.headers
    assert answer.headers["content-type"].startswith("text/html")
    with pytest.raises(ValueError):
        answer.json()
    assert simple_price(client, fake).status_code == 200  # the fault was used up


@pytest.mark.parametrize("code", [10002, 10005, 10010, 10011])
def test_401_bodies_have_coingeckos_error_shape(fake, client, code):
    fake.fail_next("401", code=code)
    answer = simple_price(client, fake)
    assert answer.status_code == 401
    status = answer.json()["status"]
    assert set(status) == {"timestamp", "error_code", "error_message"}
    assert status["error_code"] == code
    datetime.fromisoformat(status["timestamp"])


@pytest.mark.parametrize("kind", ["500", "502", "503"])
def test_server_errors(fake, client, kind):
    fake.fail_next(kind, body="html")
    fake.fail_next(kind)
    first, second = simple_price(client, fake), simple_price(client, fake)
    assert first.status_code == second.status_code == int(kind)
    assert first.text.startswith("<!DOCTYPE html>")
    assert "error" in second.json()


def test_error_answers_do_not_advance_the_walk(fake, client):
    fake.fail_next("503")
    simple_price(client, fake)
    assert simple_price(client, fake).json()["bitcoin"]["usd"] == closes("btc")[288][1]


@pytest.mark.parametrize(
    ("kind", "check"),
    [
        ("nan", lambda v: isinstance(v, float) and math.isnan(v)),
        ("inf", lambda v: v == math.inf),
        ("negative", lambda v: v < 0),
        ("zero", lambda v: v == 0),
        ("string", lambda v: isinstance(v, str) and float(v) > 0),
        ("null", lambda v: v is None),
        ("absurd", lambda v: v == closes("btc")[288][1] * 10),
    ],
)
def test_value_faults_spoil_only_the_chosen_coin(fake, client, kind, check):
    fake.fail_next(kind, coins=["bitcoin"])
    body = json.loads(simple_price(client, fake, "bitcoin,ethereum").text)  # NaN tokens allowed
    assert check(body["bitcoin"]["usd"])
    assert body["ethereum"]["usd"] == closes("eth")[288][1]


def test_missing_repeat_and_malformed(fake, client):
    fake.fail_next("missing", coins=["ethereum"])
    assert list(simple_price(client, fake, "bitcoin,ethereum").json()) == ["bitcoin"]
    fake.fail_next("repeat")
    again = simple_price(client, fake, "bitcoin,ethereum").json()
    assert again["bitcoin"]["last_updated_at"] == closes("btc")[288][0]
    fake.fail_next("malformed")
    broken = simple_price(client, fake)
    assert broken.status_code == 200
    with pytest.raises(ValueError):
        json.loads(broken.text)
    fake.fail_next("malformed", body="html")
    assert simple_price(client, fake).text.lstrip().startswith("<!DOCTYPE html>")


def test_slow_and_timeout(fake, client):
    fake.fail_next("slow", delay=0.3)
    started = time.monotonic()
    assert simple_price(client, fake).status_code == 200
    assert time.monotonic() - started >= 0.3
    fake.fail_next("timeout")
    with pytest.raises(httpx.TimeoutException):
        client.get(fake.url + "/simple/price", params={"ids": "bitcoin", "vs_currencies": "usd"},
                   timeout=0.2)


class Clock:
    """UNIX seconds that move only when the test moves them."""

    def __init__(self, t: float = 1_780_000_000.0):
        self.t = t

    def __call__(self) -> float:
        return self.t


def test_faults_apply_to_their_endpoint_only_and_for_a_duration(client):
    clock = Clock()
    with FakeCoinGecko(clock=clock) as fake:
        fake.fail_next("503", endpoint="market_chart")
        assert simple_price(client, fake).status_code == 200
        assert fake.pending_faults == 1
        chart = client.get(fake.url + "/coins/bitcoin/market_chart",
                           params={"vs_currency": "usd", "days": "1"})
        assert chart.status_code == 503
        fake.fail_for(0.3, "502", endpoint="*")
        assert client.get(fake.url + "/ping").status_code == 502
        clock.t += 0.29
        assert simple_price(client, fake).status_code == 502
        clock.t += 0.02  # the 0.3 s are over
        assert simple_price(client, fake).status_code == 200
    with pytest.raises(ValueError):
        Fault("418")
    assert "timeout" in FAULT_KINDS


def test_requests_are_recorded_with_headers_and_query(fake, client):
    client.get(fake.url + "/ping", headers={"x-cg-demo-api-key": "demo-key"})
    fake.fail_next("429")
    simple_price(client, fake)
    first, second = fake.requests
    assert (first.path, first.status, first.headers["x-cg-demo-api-key"]) == (
        "/api/v3/ping", 200, "demo-key")
    assert second.query == {"ids": "bitcoin", "vs_currencies": "usd", **ALL_FLAGS}
    assert second.status == 429
    assert fake.requests_to("simple/price") == [second]


def test_key_checks_like_the_real_hosts(client):
    with FakeCoinGecko(api_key="k-1", host="pro") as pro:
        codes = [
            client.get(pro.url + "/ping", headers=h).json().get("status", {}).get("error_code")
            for h in ({}, {"x-cg-demo-api-key": "k-1"}, {"x-cg-pro-api-key": "k-1"})
        ]
        assert codes == [10002, 10011, None]
    with FakeCoinGecko(api_key="k-2", host="public") as public:
        answer = client.get(public.url + "/ping", headers={"x-cg-pro-api-key": "k-2"})
        assert answer.json()["status"]["error_code"] == 10010
        assert client.get(public.url + "/ping").status_code == 200  # keyless is allowed


def test_stop_frees_the_port():
    with FakeCoinGecko() as fake:
        port = fake.port
    with socket.socket() as probe, pytest.raises(OSError):
        probe.settimeout(1)
        probe.connect(("127.0.0.1", port))


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_runs_by_hand_as_a_module_and_stops_on_ctrl_c():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "cryptotech.testing.fake_coingecko", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}/api/v3" in line
        answer = httpx.get(f"http://127.0.0.1:{port}/api/v3/ping", timeout=5)
        assert answer.json()["gecko_says"]
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=10)
    assert proc.returncode == 0, err
    assert "stopping" in out and "Traceback" not in err


async def _stream_session(stream: FakeCoinGeckoStream, messages: int) -> list[dict]:
    identifier = json.dumps({"channel": "CGSimplePrice"}, separators=(",", ":"))
    data = json.dumps({"coin_id": ["bitcoin", "ethereum"], "vs_currencies": ["usd"],
                       "action": "set_tokens"})
    got = []
    async with connect(stream.url) as ws:
        await ws.send(json.dumps({"command": "subscribe", "identifier": identifier}))
        await ws.send(json.dumps({"command": "message", "identifier": identifier, "data": data}))
        while len(got) < messages:
            got.append(json.loads(await asyncio.wait_for(ws.recv(), 5)))
    return got


def test_stream_speaks_the_documented_protocol():
    with FakeCoinGeckoStream(interval=0.01) as stream:
        got = asyncio.run(_stream_session(stream, 9))
    assert got[0] == {"type": "welcome"}
    assert got[1]["type"] == "confirm_subscription"
    assert got[2]["code"] == 2000
    updates = got[3:]
    assert {u["i"] for u in updates} == {"bitcoin", "ethereum"}
    assert all(set(u) == {"c", "i", "vs", "p", "pp", "m", "v", "t"} for u in updates)
    assert all(u["c"] == "C1" and isinstance(u["t"], float) for u in updates)
    assert len({tuple(u) for u in updates}) > 1  # keys come in varying order
    btc = [u for u in updates if u["i"] == "bitcoin"]
    history = closes("btc")
    served = history[288:288 + len(btc)]
    assert [(u["t"], u["p"]) for u in btc] == [(float(t), p) for t, p in served]


def test_stream_scripts_drops_and_refusals():
    async def scenario(stream: FakeCoinGeckoStream) -> tuple[list, int]:
        from websockets.exceptions import ConnectionClosed, InvalidStatus

        with pytest.raises(InvalidStatus):
            async with connect(stream.url):
                pass
        stream.push({"c": "C1", "i": "bitcoin", "p": None}, "not json")
        stream.drop_after(2)
        got = []
        with pytest.raises(ConnectionClosed):
            async with connect(stream.url) as ws:
                identifier = json.dumps({"channel": "CGSimplePrice"})
                await ws.send(json.dumps({"command": "subscribe", "identifier": identifier}))
                await ws.send(json.dumps({"command": "message", "identifier": identifier,
                                          "data": json.dumps({"coin_id": ["bitcoin"],
                                                              "action": "set_tokens"})}))
                while True:
                    got.append(await asyncio.wait_for(ws.recv(), 5))
        return got, len(stream.connections)

    with FakeCoinGeckoStream(interval=0.01, walk=False) as stream:
        stream.refuse_next(1)
        got, connections = asyncio.run(scenario(stream))
    assert got[-2:] == ['{"c": "C1", "i": "bitcoin", "p": null}', "not json"]
    assert connections == 2
    assert [c.status for c in stream.connections] == [503, 101]


def test_stream_checks_the_pro_key():
    async def handshake(url: str, headers: dict) -> int:
        from websockets.exceptions import InvalidStatus

        try:
            async with connect(url, additional_headers=headers):
                return 101
        except InvalidStatus as exc:
            return exc.response.status_code

    with FakeCoinGeckoStream(api_key="pro-k") as stream:
        assert asyncio.run(handshake(stream.url, {})) == 401
        assert asyncio.run(handshake(stream.url, {"x-cg-pro-api-key": "pro-k"})) == 101
        assert stream.connections[-1].headers["x-cg-pro-api-key"] == "pro-k"


def test_live_walk_serves_current_timestamps_and_moving_prices(client):
    clock = Clock(1_780_000_000.4)
    history = closes("btc")
    with FakeCoinGecko(live=True, clock=clock) as fake:
        first = simple_price(client, fake).json()["bitcoin"]
        assert (first["last_updated_at"], first["usd"]) == (1_780_000_000, history[288][1])
        clock.t += 150  # half-way to the next 5-minute point: the price moves half-way
        half = simple_price(client, fake).json()["bitcoin"]
        assert half["last_updated_at"] == 1_780_000_150
        assert half["usd"] == pytest.approx((history[288][1] + history[289][1]) / 2)
        clock.t += 600
        later = simple_price(client, fake).json()["bitcoin"]
        assert (later["last_updated_at"], later["usd"]) == (1_780_000_750, pytest.approx(
            (history[290][1] + history[291][1]) / 2))
        chart = client.get(fake.url + "/coins/bitcoin/market_chart",
                           params={"vs_currency": "usd", "days": "1"}).json()["prices"]
    # the last day up to now, 5 minutes apart, then the request time itself
    assert chart[-1] == [pytest.approx(1_780_000_750_400), pytest.approx(later["usd"])]
    times = [ms for ms, _ in chart[:-1]]
    assert times[-1] == 1_780_000_600_000 and times[-1] - times[0] == 287 * 300_000
    assert {b - a for a, b in zip(times, times[1:])} == {300_000}


def test_now_flag_starts_a_live_fake_from_the_command_line(client):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "cryptotech.testing.fake_coingecko", "--now",
                             "--port", str(port)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("fake CoinGecko REST: ")  # it is serving
        before = time.time()
        body = client.get(f"http://127.0.0.1:{port}/api/v3/simple/price",
                          params={"ids": "bitcoin", "vs_currencies": "usd",
                                  "include_last_updated_at": "true"}).json()
        assert int(before) - 1 <= body["bitcoin"]["last_updated_at"] <= time.time() + 1
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def test_live_stream_updates_carry_the_clock_time():
    clock = Clock(1_780_000_000.0)
    history = closes("btc")
    with FakeCoinGeckoStream(interval=0.01, live=True, clock=clock) as stream:
        got = asyncio.run(_stream_session(stream, 5))
    btc = [u for u in got[3:] if u.get("i") == "bitcoin"]
    assert btc and all((u["t"], u["p"]) == (1_780_000_000.0, history[288][1]) for u in btc)
