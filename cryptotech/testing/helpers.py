"""Small helpers for tests that drive a price source against the fakes.

:func:`settings_for` builds :class:`~cryptotech.config.Settings` pointing at a running
:class:`~cryptotech.testing.fake_coingecko.FakeCoinGecko` (and stream fake) with a fast poll
interval; :func:`take` and :func:`run_for` consume a source's ``stream()`` within a time bound
and close it properly (so no socket is left open).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from contextlib import aclosing
from typing import Any

from cryptotech.config import Settings
from cryptotech.domain import Tick


def settings_for(
    rest: Any = None,
    stream: Any = None,
    *,
    coins: Mapping[str, str] | None = None,
    key: str | None = None,
    **source: Any,
) -> Settings:
    """Settings for a source talking to the fakes: 50 ms polls, 2 s timeout unless overridden.

    ``rest`` and ``stream`` are running fakes (their URLs become ``source.base_url`` and
    ``source.websocket_url``); ``source`` overrides any ``[source]`` key; ``key`` is the API
    key (as ``CRYPTOTECH_COINGECKO_API_KEY`` would give it).
    """
    values: dict[str, Any] = {"poll_interval": "50ms", "timeout": "2s"}
    if rest is not None:
        values["base_url"] = rest.url
    if stream is not None:
        values["websocket_url"] = stream.url
    values.update(source)
    data: dict[str, Any] = {"source": values, "coingecko_api_key": key}
    if coins is not None:
        data["coins"] = dict(coins)
    return Settings(**data)


async def take(stream: AsyncIterator[Tick], n: int, timeout: float = 5.0) -> list[Tick]:
    """The first ``n`` ticks of ``stream`` (raises TimeoutError after ``timeout`` s)."""
    out: list[Tick] = []

    async def consume() -> None:
        async with aclosing(stream) as ticks:  # type: ignore[type-var]
            async for tick in ticks:
                out.append(tick)
                if len(out) >= n:
                    return

    await asyncio.wait_for(consume(), timeout)
    return out


async def run_for(stream: AsyncIterator[Tick], seconds: float) -> list[Tick]:
    """Every tick ``stream`` yields in ``seconds``, then the stream is cancelled."""
    out: list[Tick] = []

    async def consume() -> None:
        async with aclosing(stream) as ticks:  # type: ignore[type-var]
            async for tick in ticks:
                out.append(tick)

    task = asyncio.create_task(consume())
    try:
        await asyncio.sleep(seconds)
    finally:
        task.cancel()
        (outcome,) = await asyncio.gather(task, return_exceptions=True)
    if isinstance(outcome, Exception):  # the stream failed: do not hide it
        raise outcome
    return out
