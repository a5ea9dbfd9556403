"""An ordered event log on Redis Streams: publish, resume from an id, follow live.

The building block of the distributed mode (issue 12): several processes append events to one
stream, and any reader resumes from the last id it saw with nothing skipped or repeated,
because Redis gives stream ids that only grow (unlike a PostgreSQL sequence, whose values
several writers commit out of order). Not wired into the app yet: today's product runs the
in-process hub.

* :meth:`RedisEventLog.publish`: ``XADD key MAXLEN ~ n * kind .. coin .. data ..``; the log
  keeps about the newest ``maxlen`` entries (approximate trimming, cheap for Redis);
* :meth:`RedisEventLog.resume`: ``XRANGE key (after +``, one page at a time;
* :meth:`RedisEventLog.live`: ``XREAD BLOCK`` from the last id seen, forever;
* :meth:`RedisEventLog.complete_after`: whether a reader that last saw ``after`` can resume
  without a gap (else it must be sent the existing ``reset``).

Keys are ``{prefix}:{stream}``: one prefix per deployment (or per test). Every Redis error
(and a payload that is not JSON) becomes a :class:`BusError` at one boundary,
:func:`bus_errors`; a password in the URL never appears in a message.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from cryptotech.errors import CryptoTechError
from cryptotech.storage import redact_url


class BusError(CryptoTechError):
    """The event bus (Redis) cannot be reached, read or written."""


@dataclass(frozen=True)
class BusEvent:
    """One entry of the log: its stream id (``"1733050000000-0"``), kind, coin and data."""

    id: str
    kind: str
    coin: str | None
    data: dict[str, Any]


def stream_id(text: str) -> tuple[int, int]:
    """A stream id as a pair that sorts like Redis sorts ids.

    >>> stream_id("1733050000000-2") < stream_id("1733050000001-0"), stream_id("5")
    (True, (5, 0))
    """
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)


@contextmanager
def bus_errors(shown: str, secret: str | None = None) -> Iterator[None]:
    """Convert Redis, connection and payload errors raised inside into a :class:`BusError`.

    >>> with bus_errors("redis://127.0.0.1:6379/0"):  # doctest: +ELLIPSIS
    ...     json.dumps({"x": float("nan")}, allow_nan=False)
    Traceback (most recent call last):
    ...
    cryptotech.bus_redis.BusError: bus redis://127.0.0.1:6379/0: ValueError: Out of range float ...
    """
    try:
        yield
    except BusError:
        raise
    except (RedisError, OSError, ValueError, TypeError) as exc:
        message = " ".join(str(exc).split())
        if secret:
            message = message.replace(secret, "***")
        raise BusError(f"bus {shown}: {type(exc).__name__}: {message}") from None


def _event(entry_id: str, fields: dict[str, str]) -> BusEvent:
    return BusEvent(entry_id, fields["kind"], fields.get("coin") or None, json.loads(fields["data"]))


class RedisEventLog:
    """One Redis stream used as an ordered, resumable, bounded event log."""

    def __init__(self, url: str, prefix: str, *, stream: str = "events", maxlen: int = 100_000,
                 connect_timeout: float = 5.0):
        self.url = redact_url(url)
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise BusError(f"not a Redis URL: {self.url!r} (expected redis://host:6379/0)")
        if not prefix or any(c.isspace() for c in prefix):
            raise BusError(f"invalid key prefix {prefix!r}")
        self.key = f"{prefix}:{stream}"
        self.maxlen = maxlen
        try:
            self._secret = urlsplit(url).password
        except ValueError:
            self._secret = None
        with self._errors():
            # Any: redis-py's stubs type every reply as bytes | str | None, whatever
            # decode_responses says; the replies are str here
            self._redis: Any = aioredis.Redis.from_url(
                url, decode_responses=True, socket_connect_timeout=connect_timeout)

    def _errors(self) -> Any:
        return bus_errors(self.url, self._secret)

    async def __aenter__(self) -> RedisEventLog:
        await self.ping()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def ping(self) -> None:
        """Fail now (one line, no password) if the server cannot be reached or refuses us."""
        with self._errors():
            await self._redis.ping()

    async def close(self) -> None:
        await self._redis.aclose()

    async def publish(self, kind: str, data: dict[str, Any], coin: str | None = None) -> str:
        """Append one event; returns its id (greater than every id before it)."""
        with self._errors():
            fields = {"kind": kind, "coin": coin or "",
                      "data": json.dumps(data, allow_nan=False)}
            entry_id: str = await self._redis.xadd(self.key, fields, maxlen=self.maxlen,
                                                   approximate=True)
        return entry_id

    async def resume(self, after: str = "0-0", count: int = 1000) -> list[BusEvent]:
        """Up to ``count`` events with an id above ``after``, oldest first."""
        with self._errors():
            rows = await self._redis.xrange(self.key, min=f"({after}", max="+", count=count)
        return [_event(i, f) for i, f in rows]

    async def last_id(self) -> str:
        """The newest id in the log (``"0-0"`` when it is empty)."""
        with self._errors():
            rows = await self._redis.xrevrange(self.key, max="+", min="-", count=1)
        return rows[0][0] if rows else "0-0"

    async def live(self, after: str | None = None, block: float = 1.0,
                   count: int = 1000) -> AsyncIterator[BusEvent]:
        """Every event with an id above ``after`` (``None``: from now on), as it arrives;
        never ends by itself (cancel it, or stop iterating)."""
        last = after if after is not None else await self.last_id()
        while True:
            with self._errors():
                reply = await self._redis.xread({self.key: last}, count=count,
                                                block=max(1, int(block * 1000)))
            for _, entries in reply or ():
                for entry_id, fields in entries:
                    last = entry_id
                    yield _event(entry_id, fields)

    async def complete_after(self, after: str) -> bool:
        """True when resuming after ``after`` misses nothing; False when trimming may have
        dropped events above it (the reader then needs a ``reset``).

        Conservative: trimming drops a prefix of the log, so nothing is missed when nothing
        was trimmed or ``after`` is at or above the oldest retained id; a reader exactly at
        the last trimmed entry is also told to reset.
        """
        with self._errors():
            info = await self._redis.xinfo_stream(self.key) if await self._redis.exists(
                self.key) else None
        if info is None or info["entries-added"] == info["length"]:
            return True
        first = info.get("first-entry")
        return first is not None and stream_id(after) >= stream_id(first[0])

    async def delete(self) -> None:
        """Remove the log (tests, and a deployment being torn down)."""
        with self._errors():
            await self._redis.delete(self.key)
