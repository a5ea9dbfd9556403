"""CoinGecko credits: only calls CoinGecko answered are counted, and the month's count is kept
in the store across restarts (issue 11, item 11). Real SDK client against the fake CoinGecko;
a real SQLite store under the real engine."""

from __future__ import annotations

import asyncio
import json
import random
import time
from datetime import datetime, timezone

from cryptotech.engine import CREDITS_KEY, Engine
from cryptotech.hub import Hub
from cryptotech.sources.coingecko import CoinGeckoRestSource
from cryptotech.store import Store
from cryptotech.testing.fake_coingecko import FakeCoinGecko
from cryptotech.testing.helpers import settings_for, take

TWO = {"btc": "bitcoin", "eth": "ethereum"}


async def failures_until(source: CoinGeckoRestSource, n: int, timeout: float = 20) -> None:
    """Run the source's stream until ``n`` of its calls have failed (bounded)."""
    stream = source.stream()

    async def consume() -> None:
        async for _ in stream:
            pass

    task = asyncio.create_task(consume())
    deadline = time.monotonic() + timeout
    try:
        while source.status.errors < n:
            assert time.monotonic() < deadline, f"only {source.status.errors} failed calls"
            await asyncio.sleep(0.01)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await stream.aclose()


def test_calls_that_never_reached_coingecko_spend_no_credit():
    with FakeCoinGecko() as gone:
        url = gone.url  # nothing listens there any more: connection refused
    source = CoinGeckoRestSource(settings_for(None, coins=TWO, base_url=url, poll_interval="10ms",
                                              monthly_credit_budget=100), rng=random.Random(1),
                                 max_wait=0.05)
    asyncio.run(failures_until(source, 3))
    assert source.status.state == "unreachable" and source.status.errors >= 3
    assert source.status.credits_used_month == 0 and source.budget.used == 0


def test_every_answered_call_spends_a_credit_error_answers_included_timeouts_not():
    with FakeCoinGecko() as fake:
        fake.fail_next("503")
        fake.fail_next("429")
        fake.fail_next("timeout")
        source = CoinGeckoRestSource(settings_for(fake, coins=TWO, timeout="200ms"),
                                     rng=random.Random(2), max_wait=0.1)
        asyncio.run(take(source.stream(), 2, timeout=20))
        calls = fake.requests_to("simple/price")
    assert len(calls) == 4  # 503, 429, a timeout, then prices
    assert source.status.credits_used_month == 3  # the timed-out call got no answer


def _engine_run(settings, polls: int) -> tuple[int, int]:
    """Run the real engine with a REST source until ``polls`` more answered calls; (credits
    at start, credits at the end)."""

    async def go() -> tuple[int, int]:
        source = CoinGeckoRestSource(settings, rng=random.Random(3))
        with Store(settings.store.path) as store:
            engine = Engine(settings, store, Hub(), source)
            await engine.start()
            at_start = source.status.credits_used_month
            deadline = time.monotonic() + 20
            while source.status.credits_used_month < at_start + polls:  # answered calls
                assert time.monotonic() < deadline
                await asyncio.sleep(0.01)
            await engine.stop()
            return at_start, source.status.credits_used_month

    return asyncio.run(go())


def test_the_months_credit_count_survives_a_restart(tmp_path):
    with FakeCoinGecko() as fake:
        # the engine stops right after an answer, well before the next call is due (0.5 s)
        settings = settings_for(fake, coins=TWO, backfill=False, poll_interval="500ms"
                                ).model_copy(update={"store": settings_for(fake).store.model_copy(
                                    update={"path": tmp_path / "c.db"})})
        first_start, first_end = _engine_run(settings, 3)
        assert first_start == 0 and first_end >= 3
        second_start, second_end = _engine_run(settings, 2)
        answered = len(fake.requests_to("simple/price"))
    assert second_start == first_end
    assert second_end == answered  # every answered call, across both runs
    with Store(tmp_path / "c.db") as store:
        saved = json.loads(store.get_value(CREDITS_KEY) or "{}")
    now = datetime.now(timezone.utc)
    assert saved == {"month": f"{now.year:04d}-{now.month:02d}", "used": answered}


def test_a_count_from_another_month_starts_the_month_at_zero(tmp_path):
    with Store(tmp_path / "c.db") as store:
        store.set_value(CREDITS_KEY, json.dumps({"month": "1999-12", "used": 9000}))
    with FakeCoinGecko() as fake:
        settings = settings_for(fake, coins=TWO, backfill=False).model_copy(
            update={"store": settings_for(fake).store.model_copy(
                update={"path": tmp_path / "c.db"})})
        at_start, at_end = _engine_run(settings, 1)
    assert at_start == 0 and at_end >= 1
