"""What every price source shares: its status for ``/status``, its protocol, and its backoff.

A source turns some upstream (CoinGecko REST, CoinGecko WebSocket, a replayed file) into
valid :class:`~cryptotech.domain.Tick` values. The engine only needs three things from it::

    async for tick in source.stream():   # valid ticks, forever, until cancelled
        ...
    ticks = await source.backfill()      # recent history, ordered by time (may be empty)
    source.status.to_dict()              # health for /status

State changes are logged once per change on the ``cryptotech.source`` logger, so a source
that stays unreachable for a day writes one line, not one traceback per poll.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from cryptotech.domain import Tick

LOG = logging.getLogger("cryptotech.source")

State = Literal[
    "starting", "live", "stale", "unreachable", "rate_limited", "auth_error", "budget_exhausted"
]
STATES: tuple[str, ...] = State.__args__  # type: ignore[attr-defined]

_LEVEL = {
    "starting": logging.INFO,
    "live": logging.INFO,
    "stale": logging.WARNING,
    "unreachable": logging.WARNING,
    "rate_limited": logging.WARNING,
    "auth_error": logging.ERROR,
    "budget_exhausted": logging.WARNING,
}


def _iso(dt: datetime | None) -> str | None:
    return None if dt is None else dt.isoformat()


@dataclass
class SourceStatus:
    """Health of a price source, as shown by ``/status``.

    ``rejected`` counts invalid upstream values by reason (``nan``, ``infinite``,
    ``non_positive``, ``non_numeric``, ``missing_price``, ``missing_coin``, ``bad_timestamp``,
    ``out_of_order``, ``absurd_jump``, ``malformed``); ``duplicates`` counts repeated source
    timestamps, which are normal (CoinGecko caches prices) and therefore not "rejected".
    ``source`` is the kind of source delivering prices (``rest``, ``websocket``, ``replay``);
    ``fallback`` is true while REST polling stands in for a WebSocket that kept failing.
    ``message`` is read by users: Portuguese, one line.

    >>> status = SourceStatus(source="rest")
    >>> status.change("live", "prices arrive")
    True
    >>> status.change("live", "prices arrive")
    False
    >>> status.to_dict()["state"]
    'live'
    """

    state: State = "starting"
    message: str = "iniciando"
    source: str = ""
    fallback: bool = False
    last_ok_at: datetime | None = None
    last_tick_at: dict[str, datetime] = field(default_factory=dict)
    polls: int = 0
    errors: int = 0
    rejected: Counter = field(default_factory=Counter)
    duplicates: int = 0
    credits_used_month: int = 0
    credit_budget: int = 0
    next_poll_at: datetime | None = None
    no_data: dict[str, str] = field(default_factory=dict)

    def note_no_data(self, missing: dict[str, str], present: Iterable[str] = ()) -> None:
        """Record the configured coins the source has no data for (coin -> Portuguese reason)
        and those it has data for again; one WARNING line when coins are newly without data.

        >>> status = SourceStatus(source="rest")
        >>> status.note_no_data({"zzz": "sem dados na fonte"}, present=["btc"])
        >>> status.note_no_data({"zzz": "sem dados na fonte"})   # no new line
        >>> status.to_dict()["no_data"]
        {'zzz': 'sem dados na fonte'}
        >>> status.note_no_data({}, present=["zzz"]); status.no_data
        {}
        """
        new = sorted(set(missing) - set(self.no_data))
        self.no_data.update(missing)
        back = sorted(c for c in present if self.no_data.pop(c, None) is not None)
        if new:
            LOG.warning("source %s has no data for %s", self.source or "?",
                        "; ".join(f"{c} ({missing[c]})" for c in new))
        if back:
            LOG.info("source %s has data again for %s", self.source or "?", ", ".join(back))

    def change(self, state: State, message: str) -> bool:
        """Set ``state`` and ``message``; log one line if the state changed.

        ``message`` must be one line of plain text and must never carry a secret: the
        sources build it from their own words and pass server text through their redaction.
        Returns whether the state changed.
        """
        if state not in _LEVEL:
            raise ValueError(f"unknown source state {state!r}")
        message = " ".join(message.split())
        changed = state != self.state
        self.state = state
        self.message = message
        if changed:
            LOG.log(_LEVEL[state], "source %s: %s (%s)", self.source or "?", state, message)
        return changed

    def to_dict(self) -> dict[str, object]:
        """JSON-ready view (ISO-8601 times, plain dicts)."""
        return {
            "state": self.state,
            "message": self.message,
            "source": self.source,
            "fallback": self.fallback,
            "last_ok_at": _iso(self.last_ok_at),
            "last_tick_at": {coin: _iso(ts) for coin, ts in sorted(self.last_tick_at.items())},
            "polls": self.polls,
            "errors": self.errors,
            "rejected": dict(sorted(self.rejected.items())),
            "duplicates": self.duplicates,
            "credits_used_month": self.credits_used_month,
            "credit_budget": self.credit_budget,
            "next_poll_at": _iso(self.next_poll_at),
            "no_data": dict(sorted(self.no_data.items())),
        }


@runtime_checkable
class PriceSource(Protocol):
    """What the engine needs from a source of ticks."""

    status: SourceStatus

    def stream(self) -> AsyncIterator[Tick]:
        """Yield valid ticks, in source-time order per coin, until cancelled."""
        ...

    async def backfill(self) -> list[Tick]:
        """Recent history as valid ticks ordered by time; empty if the source has none."""
        ...


class Backoff:
    """Exponential delays with jitter: the n-th failure waits in ``[d/2, d]``, ``d = base·2^(n-1)``.

    ``d`` is capped at ``cap`` seconds. ``rng`` makes the jitter reproducible in tests.

    >>> backoff = Backoff(base=1.0, cap=5.0, rng=random.Random(0))
    >>> [round(backoff.next(), 2) for _ in range(5)]
    [0.92, 1.76, 2.84, 3.15, 3.78]
    >>> backoff.failures
    5
    >>> backoff.reset(); backoff.failures
    0
    """

    def __init__(self, base: float, cap: float, rng: random.Random | None = None):
        if base <= 0 or cap < base:
            raise ValueError("need 0 < base <= cap")
        self.base = base
        self.cap = cap
        self.rng = rng if rng is not None else random.Random()
        self.failures = 0

    def next(self) -> float:
        """Record one more failure and return how long to wait before the next attempt."""
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** min(self.failures - 1, 62))
        return ceiling / 2 + self.rng.uniform(0, ceiling / 2)

    def reset(self) -> None:
        """Forget past failures (call after a success)."""
        self.failures = 0


def redact(text: str, secret: str | None, limit: int = 300) -> str:
    """``text`` as one line of at most ``limit`` characters with ``secret`` blanked out.

    >>> redact("key abc123 refused\\nsecond line", "abc123")
    'key *** refused second line'
    """
    if secret:
        text = text.replace(secret, "***")
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
