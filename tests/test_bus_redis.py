"""The Redis Streams event log against the real Redis on 127.0.0.1:6379 (``TEST_REDIS_URL``):
each test has its own key prefix, deleted afterwards. Without a server the tests skip with the
reason, except under ``CI=true``, where a missing server is a failure."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from cryptotech.bus_redis import BusError, RedisEventLog, stream_id

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def require_redis() -> None:
    import redis

    try:
        with redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3) as client:
            client.ping()
    except redis.RedisError as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true needs Redis at {REDIS_URL}: {exc}")
        pytest.skip(f"no Redis at {REDIS_URL}: {exc}")


def with_log(test, **options):
    """Run ``await test(log)`` on a log under a fresh prefix; delete its keys afterwards."""
    require_redis()
    prefix = f"cryptotech-test-{uuid.uuid4().hex[:12]}"

    async def go():
        async with RedisEventLog(REDIS_URL, prefix, **options) as log:
            try:
                return await test(log)
            finally:
                await log.delete()
                keys = await log._redis.keys(f"{prefix}:*")
                assert keys == []

    return asyncio.run(go())


def test_published_events_resume_in_order_from_any_id():
    async def test(log: RedisEventLog):
        ids = [await log.publish("tick", {"coin": "btc", "price": 100.0 + i}, "btc")
               for i in range(5)]
        ids.append(await log.publish("status", {"ok": True}))
        assert [stream_id(i) for i in ids] == sorted({stream_id(i) for i in ids})
        every = await log.resume()
        assert [e.id for e in every] == ids
        assert [e.data.get("price") for e in every] == [100.0, 101.0, 102.0, 103.0, 104.0, None]
        assert every[0].kind == "tick" and every[0].coin == "btc" and every[-1].coin is None
        assert await log.resume(ids[1]) == every[2:]
        assert await log.resume(ids[1], count=2) == every[2:4]
        assert await log.resume(ids[-1]) == []
        assert await log.last_id() == ids[-1]
        assert await log.complete_after("0-0")  # nothing trimmed

    with_log(test)


def test_live_follows_new_events_after_an_id_without_gaps_or_repeats():
    async def test(log: RedisEventLog):
        before = await log.publish("tick", {"n": 0})
        seen: list = []

        async def follow():
            async for event in log.live(after=before, block=0.1):
                seen.append(event)
                if len(seen) == 20:
                    return

        reader = asyncio.create_task(follow())
        for n in range(1, 21):
            await log.publish("tick", {"n": n})
        await asyncio.wait_for(reader, timeout=10)
        assert [e.data["n"] for e in seen] == list(range(1, 21))

    with_log(test)


def test_live_from_now_skips_the_past():
    async def test(log: RedisEventLog):
        await log.publish("tick", {"n": 0})
        stream = log.live(block=0.1)
        first = asyncio.ensure_future(stream.__anext__())
        await asyncio.sleep(0)  # let it resolve "now" before the next publish
        for _ in range(50):  # publish until the reader (already past "now") sees one
            await log.publish("tick", {"n": 1})
            await asyncio.wait([first], timeout=0.2)
            if first.done():
                break
        assert first.result().data == {"n": 1}
        await stream.aclose()

    with_log(test)


def test_the_log_is_trimmed_to_about_maxlen_and_says_when_a_resume_has_a_gap():
    async def test(log: RedisEventLog):
        ids = [await log.publish("tick", {"n": n}) for n in range(600)]
        kept = await log.resume(count=10_000)
        assert 50 <= len(kept) < 600  # approximate trimming keeps at least maxlen
        assert [e.data["n"] for e in kept] == list(range(600 - len(kept), 600))
        assert not await log.complete_after("0-0")  # the oldest ones are gone: reset
        assert not await log.complete_after(ids[0])
        assert await log.complete_after(kept[0].id) and await log.complete_after(ids[-1])

    with_log(test, maxlen=50)


def test_a_payload_that_is_not_json_is_refused_and_nothing_is_added():
    async def test(log: RedisEventLog):
        with pytest.raises(BusError, match="ValueError: Out of range float"):
            await log.publish("tick", {"price": float("nan")})
        assert await log.resume() == []

    with_log(test)


@pytest.mark.parametrize(("url", "words"), [
    ("redis://:hunter2@127.0.0.1:1/0", "ConnectionError"),
    ("redis://nobody_here:hunter2@127.0.0.1:6379/0", "AuthenticationError"),
    ("http://me:hunter2@127.0.0.1:6379/0", "not a Redis URL"),
])
def test_bad_urls_and_refused_credentials_are_one_line_without_the_password(url, words):
    require_redis()

    async def go():
        log = RedisEventLog(url, "cryptotech-test-refused", connect_timeout=3)
        try:
            await log.ping()
        finally:
            await log.close()

    with pytest.raises(BusError) as caught:
        asyncio.run(go())
    message = str(caught.value)
    assert words in message and "hunter2" not in message and "\n" not in message
    assert ":***@127.0.0.1" in message
