"""A stop that beats the shutdown watcher's poll must still end the watcher.

uvicorn's shutdown can set ``closing`` and cancel the watcher in the same loop iteration. On
Python 3.11, ``asyncio.wait_for`` swallows a cancellation that lands as the awaited event is
set (CPython gh-86296); the watcher then waited forever and so did the server's stop.
"""

from __future__ import annotations

import asyncio
import types

from cryptotech.api import app as app_module


def test_the_shutdown_watcher_ends_when_cancelled_as_the_stop_begins():
    async def scenario() -> bool:
        state = types.SimpleNamespace(
            closing=asyncio.Event(), stopping_at=None,
            engine=types.SimpleNamespace(halt=lambda: None),
            hub=types.SimpleNamespace(subscribers=0, close_all=lambda farewell: None))
        fake_app = types.SimpleNamespace(state=state)
        watcher = asyncio.create_task(app_module._watch_shutdown(fake_app))  # type: ignore[arg-type]
        for _ in range(5):  # let it reach its wait
            await asyncio.sleep(0)
        app_module._begin_stopping(fake_app, "the server stops")  # type: ignore[arg-type]
        watcher.cancel()  # the supervisor's stop, in the same iteration
        done, _ = await asyncio.wait({watcher}, timeout=5)
        return bool(done) and watcher.cancelled()

    assert asyncio.run(scenario())
