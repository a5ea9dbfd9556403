"""The CoinGecko WebSocket source against a local websockets server speaking CGSimplePrice."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import socket

import pytest
from conftest import VirtualClock

from cryptotech.errors import ConfigError
from cryptotech.sources import PriceSource, live_source
from cryptotech.sources.base import Backoff
from cryptotech.sources.coingecko_ws import CoinGeckoStreamSource
from cryptotech.testing.fake_coingecko import FakeCoinGecko, FakeCoinGeckoStream, load_history
from cryptotech.testing.helpers import settings_for, take

KEY = "CG-pro-planted-7d1e5b93aa"
TWO = {"btc": "bitcoin", "eth": "ethereum"}


def ws_settings(rest, stream, **source):
    return settings_for(rest, stream, coins=TWO, key=KEY, plan="pro", **source)


def source_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "cryptotech.source"]


@pytest.fixture
def rest():
    with FakeCoinGecko() as server:
        yield server


def test_subscribes_as_documented_and_yields_the_updates(rest):
    with FakeCoinGeckoStream(api_key=KEY, interval=0.01) as stream:
        source = CoinGeckoStreamSource(ws_settings(rest, stream))
        assert isinstance(source, PriceSource)
        ticks = asyncio.run(take(source.stream(), 6))
    subscribe, set_tokens = stream.received[:2]
    assert subscribe == {"command": "subscribe", "identifier": '{"channel":"CGSimplePrice"}'}
    assert set_tokens["command"] == "message"
    assert set_tokens["identifier"] == '{"channel":"CGSimplePrice"}'
    assert isinstance(set_tokens["data"], str)  # a JSON-encoded string, ActionCable-style
    assert json.loads(set_tokens["data"]) == {
        "coin_id": ["bitcoin", "ethereum"], "vs_currencies": ["usd"], "action": "set_tokens"}
    (handshake,) = stream.connections
    assert handshake.path == "/v1" and handshake.headers["x-cg-pro-api-key"] == KEY
    for coin in TWO:
        history = load_history(coin)
        got = [t for t in ticks if t.coin == coin]
        assert len(got) == 3
        for tick, k in zip(got, range(288, 291)):
            point = history.point(k)
            assert (tick.ts.timestamp(), tick.price) == (point["ts"], point["price"])
            assert tick.market_cap == pytest.approx(point["market_cap"])
            assert tick.change_24h == pytest.approx(point["change_24h"])
    assert rest.requests == []  # no REST call while the stream works
    assert (source.status.state, source.status.source, source.status.fallback) == (
        "live", "websocket", False)


def test_parses_nulls_any_key_order_float_times_and_old_field_names(rest):
    messages = [
        {"t": 1750000000.5, "vs": "usd", "p": 105000.0, "i": "bitcoin", "c": "C1",
         "m": None, "v": None, "pp": None},
        {"c": "C1", "i": "ethereum", "usd_price": 2500.0, "usd_market_cap": 3.0e11,
         "usd_24h_vol": 1.2e10, "usd_price_change_percentage_24h": -1.5,
         "last_updated_at": 1750000000},
        {"i": "bitcoin", "c": "C1", "p": None, "t": 1750000060.0},
        {"c": "C1", "i": "bitcoin", "p": 105100.0, "t": None},
        {"c": "C1", "i": "bitcoin", "p": 105000.0, "t": 1750000000.5},
        {"c": "C1", "i": "dogecoin", "p": 0.2, "t": 1750000000},
        {"c": "C1", "i": "bitcoin", "vs": "eur", "p": 90000.0, "t": 1750000120},
        {"c": "G1", "i": "bitcoin", "p": 1.0, "t": 1750000120},
        {"code": 2000, "message": "Subscription is successful for bitcoin"},
        '{"c":"C1","i":"bitcoin","p":NaN,"t":1750000180}',
        "not json",
        {"c": "C1", "i": "bitcoin", "p": -5, "t": 1750000200},
        {"identifier": '{"channel":"CGSimplePrice"}',
         "message": {"c": "C1", "i": "bitcoin", "p": 105200.0, "t": 1750000240}},
        {"pp": 0.4, "t": 1750000300, "v": 1.1e10, "m": 3.01e11, "p": 2510.0, "i": "ethereum",
         "c": "C1", "vs": "usd"},
    ]
    with FakeCoinGeckoStream(api_key=KEY, interval=0.005, walk=False) as stream:
        stream.push(*messages)
        source = CoinGeckoStreamSource(ws_settings(rest, stream))
        ticks = asyncio.run(take(source.stream(), 4))
    got = [(t.coin, t.ts.timestamp(), t.price, t.market_cap, t.volume_24h, t.change_24h)
           for t in ticks]
    assert got == [
        ("btc", 1750000000.5, 105000.0, None, None, None),
        ("eth", 1750000000.0, 2500.0, 3.0e11, 1.2e10, -1.5),
        ("btc", 1750000240.0, 105200.0, None, None, None),
        ("eth", 1750000300.0, 2510.0, 3.01e11, 1.1e10, 0.4),
    ]
    assert dict(source.status.rejected) == {
        "missing_price": 1, "bad_timestamp": 1, "unknown_coin": 1, "nan": 1, "malformed": 1,
        "non_positive": 1,
    }
    assert source.status.duplicates == 1


def test_reconnects_after_a_disconnect_mid_stream_without_duplicates(rest, caplog):
    caplog.set_level(logging.INFO)
    with FakeCoinGeckoStream(api_key=KEY, interval=0.01) as stream:
        stream.drop_after(5)  # the TCP connection is cut, no close frame
        clock = VirtualClock()
        source = CoinGeckoStreamSource(ws_settings(rest, stream), rng=random.Random(4),
                                       **clock.source_options())
        ticks = asyncio.run(take(source.stream(), 12))
    assert [c.status for c in stream.connections] == [101, 101]
    keys = [(t.coin, t.ts) for t in ticks]
    assert len(set(keys)) == len(keys)
    for coin in TWO:
        stamps = [t.ts for t in ticks if t.coin == coin]
        assert stamps == sorted(stamps)
    assert source.status.errors == 1 and source.status.state == "live"
    assert clock.waits == [Backoff(base=0.05, cap=60, rng=random.Random(4)).next()]
    assert not source.fell_back and rest.requests == []
    lines = source_lines(caplog)
    assert sum(": unreachable (" in line for line in lines) == 1
    assert "reconectando" in next(line for line in lines if "unreachable" in line)


def test_falls_back_to_rest_after_repeated_failures_and_says_so(rest, caplog):
    caplog.set_level(logging.INFO)
    with FakeCoinGeckoStream(api_key=KEY) as stream:
        stream.refuse_next(3, status=503)
        clock = VirtualClock()
        source = CoinGeckoStreamSource(ws_settings(rest, stream), max_failures=3,
                                       rng=random.Random(4), **clock.source_options())
        ticks = asyncio.run(take(source.stream(), 4, timeout=10))
    assert [c.status for c in stream.connections] == [503, 503, 503]
    assert source.fell_back
    backoff = Backoff(base=0.05, cap=60, rng=random.Random(4))
    # two reconnects with backoff, then one REST poll interval (0.05 s) between the two polls
    assert clock.waits == pytest.approx([backoff.next(), backoff.next(), 0.05])
    assert (source.status.source, source.status.fallback) == ("rest", True)
    calls = rest.requests_to("simple/price")
    assert len(calls) == 2 and calls[0].headers["x-cg-pro-api-key"] == KEY
    history = load_history("btc")
    assert [t.price for t in ticks if t.coin == "btc"] == [
        history.point(288)["price"], history.point(289)["price"]]
    lines = source_lines(caplog)
    assert sum("consultando por REST até reiniciar" in line for line in lines) == 1
    assert "HTTP 503" in next(line for line in lines if "por REST até" in line)


def test_an_unreachable_websocket_host_falls_back_too(rest):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = settings_for(rest, coins=TWO, key=KEY, plan="pro",
                            websocket_url=f"ws://127.0.0.1:{port}/v1")
    source = CoinGeckoStreamSource(settings, max_failures=2)
    ticks = asyncio.run(take(source.stream(), 2, timeout=10))
    assert source.fell_back and len(ticks) == 2
    assert source.status.errors == 2


def test_the_key_is_only_in_the_handshake_header_and_never_logged(rest, caplog):
    caplog.set_level(logging.DEBUG)
    with FakeCoinGeckoStream(api_key=KEY, interval=0.01) as stream:
        source = CoinGeckoStreamSource(ws_settings(rest, stream))
        asyncio.run(take(source.stream(), 2))
    assert stream.connections[0].headers["x-cg-pro-api-key"] == KEY
    assert "x_cg_pro_api_key" not in stream.connections[0].path  # not in the URL
    handshake = [r.getMessage() for r in caplog.records
                 if r.name == "cryptotech.source.websocket"]
    assert any("x-cg-pro-api-key: ***" in line for line in handshake)  # logged, redacted
    assert not any(KEY in r.getMessage() or KEY in str(r.args) for r in caplog.records)
    assert KEY not in json.dumps(source.status.to_dict())


def test_silence_is_reported_as_stale_then_live_again(rest, caplog):
    caplog.set_level(logging.INFO)
    with FakeCoinGeckoStream(api_key=KEY, interval=0.01, walk=False) as stream:
        source = CoinGeckoStreamSource(ws_settings(rest, stream, stale_after_polls=2))

        async def scenario():
            task = asyncio.ensure_future(take(source.stream(), 1, timeout=10))
            while source.status.state != "stale":
                await asyncio.sleep(0.01)
            stream.push({"c": "C1", "i": "bitcoin", "p": 1.5, "t": 1750000000})
            return await task

        ticks = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert [t.price for t in ticks] == [1.5]
    assert source.status.state == "live"
    assert sum(": stale (" in line for line in source_lines(caplog)) == 1


def test_backfill_goes_through_rest_with_the_pro_header(rest):
    with FakeCoinGeckoStream(api_key=KEY) as stream:
        source = CoinGeckoStreamSource(ws_settings(rest, stream))
        history = asyncio.run(source.backfill())
    assert len(history) == 2 * 289
    assert all(r.headers["x-cg-pro-api-key"] == KEY for r in rest.requests_to("market_chart"))


@pytest.mark.parametrize(("plan", "key"), [("demo", KEY), ("pro", None), ("keyless", None)])
def test_the_websocket_needs_a_pro_plan_and_key(rest, plan, key):
    settings = settings_for(rest, coins=TWO, key=key, plan=plan)
    with pytest.raises(ConfigError, match="paid plan"):
        CoinGeckoStreamSource(settings)


def test_live_source_builds_the_websocket_source(rest):
    settings = settings_for(rest, coins=TWO, key=KEY, plan="pro", kind="websocket")
    assert isinstance(live_source(settings), CoinGeckoStreamSource)
