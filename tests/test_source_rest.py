"""The CoinGecko REST source: the real SDK client against the fake CoinGecko on 127.0.0.1."""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
import random
from datetime import datetime, timedelta, timezone

import pytest
from conftest import VirtualClock, run_until

from cryptotech.errors import ConfigError
from cryptotech.sources import PriceSource, live_source
from cryptotech.sources.base import Backoff
from cryptotech.sources.coingecko import CoinGeckoRestSource, next_month
from cryptotech.testing.fake_coingecko import FakeCoinGecko, load_history
from cryptotech.testing.helpers import settings_for, take

KEY = "CG-planted-4f7a9c21e0b8d3"
TWO = {"btc": "bitcoin", "eth": "ethereum"}


@pytest.fixture
def fake():
    with FakeCoinGecko() as server:
        yield server


def source_logs(caplog) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "cryptotech.source"]


def test_one_call_for_all_coins_yields_the_served_prices(fake):
    source = CoinGeckoRestSource(settings_for(fake))
    assert isinstance(source, PriceSource)
    ticks = asyncio.run(take(source.stream(), 12))
    calls = fake.requests_to("simple/price")
    assert len(calls) == 2
    assert calls[0].query == {
        "ids": "bitcoin,ethereum,cardano,solana,ripple,dogecoin",
        "vs_currencies": "usd",
        "include_market_cap": "true",
        "include_24hr_vol": "true",
        "include_24hr_change": "true",
        "include_last_updated_at": "true",
    }
    assert {t.coin for t in ticks} == {"btc", "eth", "ada", "sol", "xrp", "doge"}
    btc = [t for t in ticks if t.coin == "btc"]
    history = load_history("btc")
    for tick, k in zip(btc, (288, 289)):
        point = history.point(k)
        assert (tick.ts.timestamp(), tick.price) == (point["ts"], point["price"])
        assert tick.ts.tzinfo is not None
        assert tick.market_cap == pytest.approx(point["market_cap"])
        assert tick.volume_24h == pytest.approx(point["volume_24h"])
        assert tick.change_24h == pytest.approx(point["change_24h"])
    status = source.status
    assert (status.state, status.polls, status.errors, status.credits_used_month) == (
        "live", 2, 0, 2)
    assert status.last_tick_at["btc"] == btc[-1].ts
    assert json.loads(json.dumps(status.to_dict()))["state"] == "live"


def test_vs_currency_is_configurable(fake):
    settings = settings_for(fake, coins=TWO).model_copy(update={"vs_currency": "brl"})
    ticks = asyncio.run(take(CoinGeckoRestSource(settings).stream(), 2))
    assert fake.requests[0].query["vs_currencies"] == "brl"
    assert [t.coin for t in ticks] == ["btc", "eth"] and ticks[0].market_cap is not None


def test_cadence_subtracts_the_time_a_poll_took(fake):
    clock = VirtualClock()
    source = CoinGeckoRestSource(settings_for(fake, coins=TWO, poll_interval="400ms"),
                                 **clock.source_options())
    fetch = source._fetch

    async def slow_fetch(call):  # every answer takes 0.25 s on the source's clock
        body = await fetch(call)
        clock.advance(0.25)
        return body

    source._fetch = slow_fetch
    asyncio.run(take(source.stream(), 8, timeout=10))
    # Each poll took 0.25 s; the next one still starts 0.4 s after it began (not 0.65 s).
    assert len(fake.requests_to("simple/price")) == 4
    assert clock.waits == pytest.approx([0.15] * 3)


@pytest.mark.parametrize("plan", ["demo", "pro"])
def test_key_travels_only_as_a_header_and_never_reaches_logs_or_status(fake, caplog, plan):
    caplog.set_level(logging.DEBUG)
    header = {"demo": "x-cg-demo-api-key", "pro": "x-cg-pro-api-key"}[plan]
    other = {"demo": "x-cg-pro-api-key", "pro": "x-cg-demo-api-key"}[plan]
    source = CoinGeckoRestSource(
        settings_for(fake, coins=TWO, key=KEY, plan=plan), auth_retry_after=0.05
    )
    fake.fail_next("401", code=10010)
    fake.fail_next("429", retry_after=0)
    fake.fail_next("500")

    async def scenario():
        await source.backfill()
        return await take(source.stream(), 4, timeout=10)

    asyncio.run(scenario())
    assert len(fake.requests) >= 7
    for request in fake.requests:
        assert request.headers[header] == KEY
        assert other not in request.headers
        assert KEY not in request.path and KEY not in json.dumps(request.query)
    logged = [r.getMessage() for r in caplog.records] + [str(r.args) for r in caplog.records]
    assert any(r.name.startswith("coingecko_sdk") for r in caplog.records)  # SDK debug lines too
    assert any("10010" in line for line in logged)  # the auth error was logged ...
    assert not any(KEY in line for line in logged)  # ... without the key
    assert KEY not in json.dumps(source.status.to_dict())
    assert KEY not in repr(source.status) and KEY not in repr(vars(source.status))


def test_keyless_sends_no_key_even_if_the_sdk_environment_has_one(fake, monkeypatch):
    monkeypatch.setenv("COINGECKO_PRO_API_KEY", "from-env-pro")
    monkeypatch.setenv("COINGECKO_DEMO_API_KEY", "from-env-demo")
    asyncio.run(take(CoinGeckoRestSource(settings_for(fake, coins=TWO)).stream(), 2))
    headers = fake.requests[0].headers
    assert "x-cg-pro-api-key" not in headers and "x-cg-demo-api-key" not in headers


def test_a_paid_plan_without_a_key_is_a_config_error(fake):
    with pytest.raises(ConfigError, match="CRYPTOTECH_COINGECKO_API_KEY"):
        CoinGeckoRestSource(settings_for(fake, plan="demo"))


def test_429_honours_retry_after_in_seconds(fake, caplog):
    fake.fail_next("429", retry_after=1)
    clock = VirtualClock()
    source = CoinGeckoRestSource(settings_for(fake, coins=TWO), **clock.source_options())
    ticks = asyncio.run(take(source.stream(), 2))
    assert [t.coin for t in ticks] == ["btc", "eth"]
    assert [r.status for r in fake.requests_to("simple/price")] == [429, 200]
    assert clock.waits == pytest.approx([1.0])  # waited what Retry-After asked, then polled
    assert source.status.errors == 1
    rate_lines = [r for r in source_logs(caplog) if "rate_limited" in r.getMessage()]
    assert len(rate_lines) == 1 and "Retry-After 1 s" in rate_lines[0].getMessage()


def test_429_honours_an_http_date_with_an_html_body(fake):
    fixed = datetime(2025, 6, 10, 12, 0, 0, tzinfo=timezone.utc)
    when = email.utils.format_datetime(fixed + timedelta(seconds=1), usegmt=True)
    fake.fail_next("429", retry_after=when, body="html")
    clock = VirtualClock(start=fixed)
    source = CoinGeckoRestSource(settings_for(fake, coins=TWO), **clock.source_options())
    asyncio.run(take(source.stream(), 2))
    assert [r.status for r in fake.requests_to("simple/price")] == [429, 200]
    assert clock.waits == pytest.approx([1.0])  # until the date Retry-After named


def test_429_without_retry_after_backs_off_with_seeded_jitter(fake):
    fake.fail_next("429", times=2, body="html")
    clock = VirtualClock()
    source = CoinGeckoRestSource(settings_for(fake, coins=TWO, poll_interval="100ms"),
                                 rng=random.Random(7), **clock.source_options())
    asyncio.run(take(source.stream(), 2))
    expected = Backoff(base=0.1, cap=3600, rng=random.Random(7))
    backoff = [expected.next(), expected.next()]
    assert backoff[1] > backoff[0]
    # never sooner than the 0.1 s poll interval
    assert clock.waits == pytest.approx([max(0.1, backoff[0]), backoff[1]])


def test_a_failure_never_brings_the_next_call_sooner_than_the_poll_interval(fake):
    # Rate limited (even when told "Retry-After: 0") or a server error: calling again sooner
    # than the normal cadence would exceed the rate the interval was chosen for.
    fake.fail_next("429", retry_after=0)
    fake.fail_next("429")
    fake.fail_next("503")
    clock = VirtualClock()
    source = CoinGeckoRestSource(settings_for(fake, coins=TWO, poll_interval="300ms"),
                                 rng=random.Random(0), **clock.source_options())
    asyncio.run(take(source.stream(), 2, timeout=10))
    calls = fake.requests_to("simple/price")
    assert [r.status for r in calls] == [429, 429, 503, 200]
    assert len(clock.waits) == 3 and all(w > 0.3 - 1e-9 for w in clock.waits), clock.waits


def test_server_errors_back_off_exponentially_and_log_once(fake, caplog):
    caplog.set_level(logging.INFO)
    fake.fail_next("503", times=4)
    clock = VirtualClock()
    source = CoinGeckoRestSource(settings_for(fake, coins=TWO), rng=random.Random(3),
                                 **clock.source_options())
    asyncio.run(take(source.stream(), 2, timeout=10))
    expected = Backoff(base=0.05, cap=3600, rng=random.Random(3))
    backoff = [expected.next() for _ in range(4)]
    assert len(fake.requests_to("simple/price")) == 5
    assert clock.waits == pytest.approx([max(0.05, b) for b in backoff])  # never sooner than the interval
    assert clock.waits[3] > clock.waits[0] * 2  # it really grows
    lines = [r.getMessage() for r in source_logs(caplog)]
    assert sum("unreachable" in line for line in lines) == 1
    assert sum(": live (" in line for line in lines) == 1
    assert all(r.exc_info is None for r in caplog.records)  # no traceback per poll
    assert source.status.errors == 4 and source.status.state == "live"


def test_timeouts_are_retried_and_explained(fake):
    fake.fail_next("timeout")
    clock = VirtualClock(hold_after=1)
    source = CoinGeckoRestSource(settings_for(fake, coins=TWO, timeout="200ms"),
                                 **clock.source_options())
    asyncio.run(run_until(source.stream(), lambda: clock.waits))  # held in the backoff wait
    assert source.status.state == "unreachable"
    assert "não respondeu em 0.2 s" in source.status.message
    clock.hold_after = None
    ticks = asyncio.run(take(source.stream(), 2, timeout=10))
    assert len(ticks) == 2 and source.status.state == "live"


def test_unreachable_host_is_reported_once(caplog):
    with FakeCoinGecko() as gone:
        url = gone.url
    settings = settings_for(None, coins=TWO, base_url=url)
    clock = VirtualClock(hold_after=3)
    source = CoinGeckoRestSource(settings, rng=random.Random(1), **clock.source_options())
    asyncio.run(run_until(source.stream(), lambda: len(clock.waits) == 3))
    assert source.status.state == "unreachable"
    assert source.status.polls == 3 and source.status.errors == 3
    assert clock.waits[2] > clock.waits[0]  # backing off
    assert "não foi possível acessar o CoinGecko em 127.0.0.1:" in source.status.message
    assert len([r for r in source_logs(caplog) if "unreachable" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        (10002, "defina CRYPTOTECH_COINGECKO_API_KEY"),
        (10005, "não faz parte do seu plano"),
        (10010, 'source.plan = "pro"'),
        (10011, 'source.plan = "demo"'),
        (None, "confira CRYPTOTECH_COINGECKO_API_KEY"),
    ],
)
def test_auth_errors_give_one_actionable_message_and_no_hammering(fake, caplog, code, hint):
    if code is None:
        fake.fail_next("401", body="html")
    else:
        fake.fail_next("401", code=code)
    clock = VirtualClock(hold_after=1)
    source = CoinGeckoRestSource(settings_for(fake, coins=TWO, key=KEY, plan="demo"),
                                 **clock.source_options())
    ticks = asyncio.run(run_until(source.stream(), lambda: clock.waits))
    assert ticks == []
    assert len(fake.requests) == 1  # one call, then a long wait (10 minutes by default)
    assert clock.waits == pytest.approx([600.0])
    assert source.status.state == "auth_error"
    assert hint in source.status.message
    assert source.status.next_poll_at - clock.now() == timedelta(minutes=10)
    errors = [r for r in source_logs(caplog) if r.levelno == logging.ERROR]
    assert len(errors) == 1 and hint in errors[0].getMessage()


def test_invalid_values_are_rejected_counted_and_never_yielded(fake):
    for kind in ("nan", "inf", "negative", "zero", "string", "null", "missing"):
        fake.fail_next(kind, coins=["bitcoin"])
    fake.fail_next("malformed")
    fake.fail_next("malformed", body="html")
    source = CoinGeckoRestSource(settings_for(fake, coins=TWO))
    ticks = asyncio.run(take(source.stream(), 10, timeout=10))
    # 7 polls spoil bitcoin only, 2 polls are unreadable, the next ones are clean.
    assert [t.coin for t in ticks] == ["eth"] * 7 + ["btc", "eth", "btc"]
    assert all(math.isfinite(t.price) and t.price > 0 for t in ticks)
    # Unreadable answers did not advance the fake's walk: the 8th good poll serves point 295.
    assert ticks[7].price == load_history("btc").point(288 + 7)["price"]
    assert dict(source.status.rejected) == {
        "nan": 1, "infinite": 1, "non_positive": 2, "non_numeric": 1, "missing_price": 1,
        "missing_coin": 1, "malformed": 2,
    }


def test_absurd_jumps_are_rejected(fake):
    source = CoinGeckoRestSource(settings_for(fake, coins=TWO))

    async def scenario():
        first = await take(source.stream(), 2)  # the reference prices
        fake.fail_next("absurd", coins=["bitcoin"], factor=3.0)
        fake.fail_next("absurd", coins=["ethereum"], factor=0.2)
        return first + await take(source.stream(), 4, timeout=10)

    ticks = asyncio.run(scenario())
    assert [t.coin for t in ticks] == ["btc", "eth", "eth", "btc", "btc", "eth"]
    assert source.status.rejected["absurd_jump"] == 2
    assert max(t.price for t in ticks if t.coin == "btc") < 200_000


def test_a_repeated_last_updated_at_is_a_duplicate_not_a_tick(fake):
    source = CoinGeckoRestSource(settings_for(fake, coins=TWO))

    async def scenario():
        await take(source.stream(), 2)  # first poll
        fake.fail_next("repeat")
        return await take(source.stream(), 2)

    ticks = asyncio.run(scenario())
    assert source.status.duplicates == 2
    assert not source.status.rejected
    assert {(t.coin, t.ts.timestamp()) for t in ticks} == {
        (coin, load_history(coin).point(289)["ts"]) for coin in TWO}
    assert len(fake.requests_to("simple/price")) == 3


def test_no_new_data_for_several_polls_is_stale_then_live_again(caplog):
    caplog.set_level(logging.INFO)
    with FakeCoinGecko(step=0) as fake:
        source = CoinGeckoRestSource(settings_for(fake, coins=TWO, stale_after_polls=3))

        async def scenario():
            stream = source.stream()
            task = asyncio.ensure_future(take(stream, 4, timeout=10))
            while source.status.state != "stale":
                await asyncio.sleep(0.01)
            fake.step = 1
            return await task

        ticks = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert len(ticks) == 4 and source.status.state == "live"
    assert source.status.duplicates >= 6  # 3 quiet polls x 2 coins
    lines = [r.getMessage() for r in source_logs(caplog)]
    assert sum(": stale (" in line for line in lines) == 1
    assert [": live (" in line for line in lines].count(True) == 2


def test_a_monthly_credit_budget_is_never_exceeded(fake):
    # 0.3 s before the month ends (and the clock stopped there): the 3 credits are spread
    # over what is left of the month, then no call at all.
    end_of_june = datetime(2025, 6, 30, 23, 59, 59, 700_000, tzinfo=timezone.utc)
    clock = VirtualClock(hold_after=5)
    source = CoinGeckoRestSource(
        settings_for(fake, coins=TWO, poll_interval="10ms", monthly_credit_budget=3),
        **(clock.source_options() | {"now": lambda: end_of_june}),
    )
    asyncio.run(run_until(source.stream(), lambda: len(clock.waits) == 5))
    assert len(fake.requests) == 3
    status = source.status
    assert (status.state, status.credits_used_month, status.credit_budget) == (
        "budget_exhausted", 3, 3)
    assert "30/06/2025 às 21:00 (horário de São Paulo)" in status.message  # 00:00 UTC
    # 0.3 s / 2 credits left, then 0.3 s / 1, then the time to the next month: not every 10 ms
    assert clock.waits == pytest.approx([0.15, 0.3, 0.3, 0.3, 0.3])


def test_a_used_up_budget_waits_for_the_next_month(fake):
    clock = VirtualClock(start=datetime(2025, 6, 30, 12, tzinfo=timezone.utc), hold_after=1)
    source = CoinGeckoRestSource(
        settings_for(fake, coins=TWO, monthly_credit_budget=3), credits_used_month=3,
        max_wait=86400, **clock.source_options(),
    )
    asyncio.run(run_until(source.stream(), lambda: clock.waits))
    assert fake.requests == [] and source.status.state == "budget_exhausted"
    assert clock.waits == [pytest.approx(12 * 3600)]  # no call until midnight UTC, July 1st
    assert source.status.next_poll_at == datetime(2025, 7, 1, tzinfo=timezone.utc)

    clock.advance(clock.waits[0])  # that wait is over: a new month
    clock.hold_after = 2
    asyncio.run(run_until(source.stream(), lambda: len(clock.waits) == 2))
    assert len(fake.requests) == 1 and source.status.credits_used_month == 1
    assert source.status.state == "live"


def test_credits_already_spent_count_and_polls_are_spread_over_the_month(fake):
    clock = VirtualClock(hold_after=1)
    source = CoinGeckoRestSource(
        settings_for(fake, coins=TWO, monthly_credit_budget=1000), credits_used_month=400,
        **clock.source_options(),
    )
    asyncio.run(run_until(source.stream(), lambda: clock.waits))
    assert source.status.credits_used_month == 401
    # 599 credits left for the rest of the month: (time left)/599 between calls.
    spread = (next_month(clock.start) - clock.start).total_seconds() / 599
    assert clock.waits == [pytest.approx(spread)]
    assert source.status.next_poll_at == clock.start + timedelta(seconds=clock.waits[0])


def test_backfill_is_a_day_of_five_minute_points_per_coin_in_time_order(fake):
    source = CoinGeckoRestSource(settings_for(fake, coins=TWO))

    async def scenario():
        history = await source.backfill()
        live = await take(source.stream(), 2)
        return history, live

    history, live = asyncio.run(scenario())
    charts = fake.requests_to("market_chart")
    assert [r.path for r in charts] == ["/api/v3/coins/bitcoin/market_chart",
                                        "/api/v3/coins/ethereum/market_chart"]
    assert all(r.query == {"vs_currency": "usd", "days": "1"} for r in charts)
    assert len(history) == 2 * 289
    assert [t.ts for t in history] == sorted(t.ts for t in history)
    btc = [t for t in history if t.coin == "btc"]
    assert {(b.ts - a.ts).total_seconds() for a, b in zip(btc[:-2], btc[1:-1])} == {300.0}
    assert btc[-1].ts.timestamp() % 300 != 0  # the request-time point is kept
    assert btc[0].price == load_history("btc").point(0)["price"]
    assert source.status.credits_used_month == 3
    # The first live point comes after the backfill: nothing is refused as out of order.
    assert [t.coin for t in live] == ["btc", "eth"] and not source.status.rejected


def test_backfill_rejects_bad_points_and_respects_the_budget(fake):
    fake.fail_next("nan", endpoint="market_chart")
    source = CoinGeckoRestSource(settings_for(fake, monthly_credit_budget=20))
    history = asyncio.run(source.backfill())
    assert len(fake.requests) == 2  # 10 % of 20 credits: two of six coins
    assert len(history) == 2 * 289 - 1 and source.status.rejected == {"nan": 1}
    assert all(math.isfinite(t.price) for t in history)


def test_backfill_stops_at_the_first_failure(fake):
    fake.fail_next("503", endpoint="market_chart")
    source = CoinGeckoRestSource(settings_for(fake))
    assert asyncio.run(source.backfill()) == []
    assert len(fake.requests) == 1
    assert source.status.state == "unreachable" and "HTTP 503" in source.status.message


def test_live_source_picks_the_configured_kind(fake):
    assert isinstance(live_source(settings_for(fake)), CoinGeckoRestSource)
