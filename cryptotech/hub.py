"""The hub: fans engine events out to SSE subscribers without ever waiting for one.

Each subscriber has a bounded queue. ``publish`` never blocks: a subscriber whose queue is
full is evicted (its stream ends; the client reconnects with ``Last-Event-ID`` and is replayed
from the store). In-process by design; a multi-process deployment would put Redis Streams
behind the same three calls (``publish``, ``subscribe``, ``unsubscribe``).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Event:
    """One event for subscribers. ``id`` is set for stored events (resumable), else None."""

    kind: str
    data: dict[str, Any]
    coin: str | None = None
    id: int | None = None


@dataclass(eq=False)
class Subscription:
    """One subscriber's queue and filter."""

    queue: asyncio.Queue
    coins: frozenset[str] | None
    number: int
    evicted: bool = False
    delivered: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)

    def wants(self, event: Event) -> bool:
        return self.coins is None or event.coin is None or event.coin in self.coins


class Hub:
    """In-process publish/subscribe with bounded per-subscriber queues."""

    def __init__(self, max_subscribers: int = 1000, queue_size: int = 1000):
        self.max_subscribers = max_subscribers
        self.queue_size = queue_size
        self._subs: set[Subscription] = set()
        self._numbers = itertools.count(1)
        self.evicted_total = 0
        self.published_total = 0
        self.last_id = 0

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def full(self) -> bool:
        return len(self._subs) >= self.max_subscribers

    def subscribe(self, coins: Iterable[str] | None = None) -> Subscription:
        """Register a subscriber; raises ``OverflowError`` past ``max_subscribers``."""
        if self.full():
            raise OverflowError("too many subscribers")
        sub = Subscription(asyncio.Queue(self.queue_size),
                           frozenset(coins) if coins is not None else None, next(self._numbers))
        self._subs.add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        self._subs.discard(sub)
        sub.closed.set()

    def publish(self, event: Event) -> None:
        """Offer ``event`` to every subscriber that wants it; evict those that are full.

        Must be called from the event loop's thread.
        """
        self.published_total += 1
        if event.id is not None:
            self.last_id = max(self.last_id, event.id)
        for sub in list(self._subs):
            if not sub.wants(event):
                continue
            try:
                sub.queue.put_nowait(event)
            except asyncio.QueueFull:
                sub.evicted = True
                self.evicted_total += 1
                self.unsubscribe(sub)

    def close_all(self, farewell: Event | None = None) -> None:
        """Say goodbye to everyone and end their streams.

        What is still queued is dropped so that the farewell is next: stored events are
        replayed to the client when it reconnects with ``Last-Event-ID``.
        """
        for sub in list(self._subs):
            if farewell is not None:
                while not sub.queue.empty():
                    sub.queue.get_nowait()
                sub.queue.put_nowait(farewell)
            self.unsubscribe(sub)
