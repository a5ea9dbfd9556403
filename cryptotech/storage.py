"""What the engine, the API and the alerts need from a store, and the choice of backend.

:class:`StoreBackend` is the one interface both backends offer: the SQLite
:class:`~cryptotech.store.Store` (the embedded default, a file path) and the PostgreSQL
:class:`~cryptotech.pgstore.PostgresStore` (a ``postgresql://`` URL). :func:`open_store`
picks one from the ``--store`` / ``--db`` target, so callers never know which one runs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from cryptotech.domain import Outcome, Prediction, Tick
from cryptotech.store import AlertRows, Checkpoint, StoredEvent

if TYPE_CHECKING:
    from cryptotech.config import Settings

_PASSWORD_PARAM = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


class StoreBackend(Protocol):
    """The store's public methods (same semantics and return types on every backend)."""

    default_horizon: str

    def close(self) -> None: ...
    def __enter__(self) -> StoreBackend: ...
    def __exit__(self, *exc: object) -> None: ...

    # writing: everything one tick causes in one transaction
    def commit_tick(self, tick: Tick, predictions: Sequence[Prediction],
                    outcomes: Sequence[Outcome], extra_events: Sequence[tuple[str, dict]] = (),
                    alerts: AlertRows | None = None) -> tuple[int, list[StoredEvent]] | None: ...
    def save_checkpoint(self, coin: str, last_tick_id: int, blob: bytes, river_version: str,
                        python_version: str, keep: int = ...) -> int: ...
    def prune(self, before_ts: float) -> int: ...

    # reading
    def checkpoints(self, coin: str) -> list[Checkpoint]: ...
    def ticks_after(self, coin: str, tick_id: int) -> Iterator[tuple[int, Tick]]: ...
    def last_ticks(self) -> dict[str, tuple[int, float]]: ...
    def counts(self) -> dict[str, int]: ...
    def latest_prediction(self, coin: str, horizon: str | None = None) -> dict[str, Any] | None: ...
    def predictions(self, coin: str, start: float | None = None, end: float | None = None,
                    after_id: int = 0, limit: int | None = None, horizon: str | None = None
                    ) -> Iterator[dict[str, Any]]: ...
    def events_after(self, event_id: int, coins: set[str] | None = None,
                     limit: int = 10_000) -> list[StoredEvent]: ...
    def event_id_range(self) -> tuple[int, int]: ...
    def replay_floor(self) -> int: ...
    def recent_ticks(self, coin: str, since: float | None = None,
                     limit: int = 5000) -> list[tuple[float, float]]: ...
    def integrity_check(self) -> str: ...

    # small values kept across restarts
    def get_value(self, key: str) -> str | None: ...
    def set_value(self, key: str, value: str) -> None: ...

    # alerts
    def commit_alerts(self, rows: AlertRows) -> list[StoredEvent]: ...
    def alert_state(self) -> dict[tuple[str, str], dict[str, Any]]: ...
    def last_alert_at(self) -> dict[str, float]: ...
    def alerts(self, coin: str | None = None, start: float | None = None,
               end: float | None = None, limit: int = 100) -> list[dict[str, Any]]: ...
    def outbox_due(self, channel: str, now: float, limit: int = 50) -> list[dict[str, Any]]: ...
    def outbox_next_due(self, channel: str) -> float | None: ...
    def outbox_result(self, outbox_id: int, result: str, reason: str | None = None,
                      next_at: float | None = None) -> None: ...
    def outbox_channels(self) -> list[str]: ...
    def alert_summary(self, recent: int = 10) -> dict[str, Any]: ...
    def alert_rules(self) -> list[tuple[int, str, bool]]: ...
    def add_alert_rule(self, definition: str) -> int: ...
    def set_alert_rule_paused(self, rule_id: int, paused: bool) -> bool: ...
    def delete_alert_rule(self, rule_id: int) -> bool: ...


def is_postgres_url(target: object) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL.

    >>> is_postgres_url("postgresql://me@db/cryptotech"), is_postgres_url(Path("cryptotech.db"))
    (True, False)
    """
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def redact_url(url: str) -> str:
    """``url`` (a database or Redis URL) with its password as ``***`` (in the user part or a
    ``password=`` parameter).

    >>> redact_url("postgresql://bob:s3cret@db.local:5432/ct?sslmode=require")
    'postgresql://bob:***@db.local:5432/ct?sslmode=require'
    >>> redact_url("postgresql://db/ct?user=bob&password=s3cret")
    'postgresql://db/ct?user=bob&password=***'
    """
    try:
        parts = urlsplit(url)
        if parts.password is not None:
            user, _, host = parts.netloc.rpartition("@")
            name = user.partition(":")[0]
            parts = parts._replace(netloc=f"{name}:***@{host}")
        url = urlunsplit(parts)
    except ValueError:  # not even a URL: show nothing of what follows the scheme's user part
        url = url.split("@")[-1]
    return _PASSWORD_PARAM.sub(r"\1***", url)


def describe_target(target: str | Path) -> str:
    """The store as shown to operators: the file, or the URL with its password hidden.

    >>> describe_target("postgresql://bob:s3cret@db/ct")
    'postgresql://bob:***@db/ct'
    """
    return redact_url(str(target)) if is_postgres_url(target) else str(target)


def store_target(settings: Settings) -> str | Path:
    """Where the store is: ``[store] url`` when set (PostgreSQL), else the SQLite ``path``."""
    return settings.store.url or settings.store.path


def open_store(target: str | Path, default_horizon: str = "1h") -> StoreBackend:
    """The store at ``target``: PostgreSQL for a ``postgresql://`` URL, else the SQLite file.

    Raises :class:`~cryptotech.errors.StoreError` (one line, no password) when it cannot be
    opened, migrated or written.
    """
    if is_postgres_url(target):
        from cryptotech.pgstore import PostgresStore  # psycopg is only imported when used

        return PostgresStore(str(target), default_horizon=default_horizon)
    from cryptotech.store import Store

    return Store(target, default_horizon=default_horizon)
