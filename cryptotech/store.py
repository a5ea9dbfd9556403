"""The SQLite store: ticks, predictions, outcomes, events and learner checkpoints.

One writer connection (owned by the engine's worker thread) and short-lived read
connections. WAL, ``synchronous=NORMAL``, ``busy_timeout``. Everything one tick causes is
written in ONE transaction (:meth:`Store.commit_tick`), so a crash leaves either all of it or
none of it. Times are UNIX seconds (UTC) in REAL columns: ``datetime(ts, 'unixepoch')`` shows
them in SQL. No SQLite-specific SQL lives outside this module.

Tables (documented for users in the README):

* ``ticks(id, coin, ts, price, market_cap, volume_24h, change_24h)``, unique ``(coin, ts)``;
* ``events(id, kind, coin, ts, data)``: every stored SSE event (``tick``, ``previsao``,
  ``resultado``), ``id`` only grows and is the SSE event id;
* ``predictions(id, coin, made_at, target_at, price, forecast, lower, upper, model, tick_id,
  horizon, q05, q10, q25, q50, q75, q90, q95, p_up, vol)``: ``id`` is the id of its ``previsao``
  event; one row per coin, horizon (label such as ``"1h"``) and ``made_at``;
* ``outcomes(prediction_id, actual, error, covered, settled_at, event_id)``;
* ``pending_labels``: a view of the predictions whose target time is still ahead;
* ``checkpoints(id, coin, created_at, last_tick_id, river_version, python_version, size, blob)``;
* ``kv(key, value)``: small values kept across restarts (e.g. the CoinGecko credits used
  this month);
* alerts (migration 4, see "alerts" below): ``alerts(id, coin, rule, tipo, ts, tick_id, data)``
  (``id`` is its ``alerta`` event), ``alert_state(rule, coin, data)``, ``alert_outbox(id,
  alert_id, channel, state, attempts, next_at, last_error, sent_at)``,
  ``alert_deliveries(id, outbox_id, alert_id, channel, at, result, reason)`` and
  ``alert_rules(id, definition, paused, created_at)``;
* ``schema_version(version)``.

Every error of the database (``sqlite3``) and of serialising a payload (``json``: a NaN, a
value that is not JSON, a number SQLite cannot hold) becomes a :class:`StoreError` at one
boundary, :func:`store_errors`, used by :meth:`Store.transaction` and :meth:`Store.reading`.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptotech.domain import Outcome, Prediction, Tick, from_epoch
from cryptotech.errors import StoreError

SCHEMA_VERSION = 4

MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE ticks (
        id INTEGER PRIMARY KEY,
        coin TEXT NOT NULL,
        ts REAL NOT NULL,
        price REAL NOT NULL CHECK (price > 0),
        market_cap REAL,
        volume_24h REAL,
        change_24h REAL,
        UNIQUE (coin, ts)
    );
    CREATE TABLE events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        coin TEXT,
        ts REAL NOT NULL,
        data TEXT NOT NULL
    );
    CREATE TABLE predictions (
        id INTEGER PRIMARY KEY REFERENCES events (id),
        coin TEXT NOT NULL,
        made_at REAL NOT NULL,
        target_at REAL NOT NULL,
        price REAL NOT NULL,
        forecast REAL NOT NULL,
        lower REAL NOT NULL,
        upper REAL NOT NULL,
        model TEXT NOT NULL,
        tick_id INTEGER NOT NULL REFERENCES ticks (id)
    );
    CREATE INDEX predictions_coin_made_at ON predictions (coin, made_at);
    CREATE TABLE outcomes (
        prediction_id INTEGER PRIMARY KEY REFERENCES predictions (id),
        actual REAL NOT NULL,
        error REAL NOT NULL,
        covered INTEGER NOT NULL,
        settled_at REAL NOT NULL,
        event_id INTEGER NOT NULL REFERENCES events (id)
    );
    CREATE TABLE checkpoints (
        id INTEGER PRIMARY KEY,
        coin TEXT NOT NULL,
        created_at REAL NOT NULL,
        last_tick_id INTEGER NOT NULL,
        river_version TEXT NOT NULL,
        python_version TEXT NOT NULL,
        size INTEGER NOT NULL,
        blob BLOB NOT NULL
    );
    CREATE INDEX checkpoints_coin ON checkpoints (coin, id);
    CREATE VIEW pending_labels AS
        SELECT p.id AS prediction_id, p.coin, p.made_at, p.target_at, p.price, p.forecast
        FROM predictions p
        WHERE NOT EXISTS (SELECT 1 FROM outcomes o WHERE o.prediction_id = p.id)
          AND p.target_at > (SELECT MAX(t.ts) FROM ticks t WHERE t.coin = p.coin);
    """,
    # several horizons per coin and the forecast distribution (PROB-INTERFACE); rows from
    # before it are one-horizon forecasts of the then default horizon, "1h"
    2: """
    ALTER TABLE predictions ADD COLUMN horizon TEXT NOT NULL DEFAULT '1h';
    ALTER TABLE predictions ADD COLUMN q05 REAL;
    ALTER TABLE predictions ADD COLUMN q10 REAL;
    ALTER TABLE predictions ADD COLUMN q25 REAL;
    ALTER TABLE predictions ADD COLUMN q50 REAL;
    ALTER TABLE predictions ADD COLUMN q75 REAL;
    ALTER TABLE predictions ADD COLUMN q90 REAL;
    ALTER TABLE predictions ADD COLUMN q95 REAL;
    ALTER TABLE predictions ADD COLUMN p_up REAL;
    ALTER TABLE predictions ADD COLUMN vol REAL;
    CREATE INDEX predictions_coin_horizon_made_at ON predictions (coin, horizon, made_at);
    """,
    # engine state kept across restarts (e.g. the month's CoinGecko credits)
    3: """
    CREATE TABLE kv (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    );
    """,
    # alert rules, fired alerts, their outbox and delivery log (cryptotech.alerts)
    4: """
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY REFERENCES events (id),
        coin TEXT,
        rule TEXT NOT NULL,
        tipo TEXT NOT NULL,
        ts REAL NOT NULL,
        tick_id INTEGER,
        data TEXT NOT NULL
    );
    CREATE INDEX alerts_ts ON alerts (ts);
    CREATE INDEX alerts_coin_ts ON alerts (coin, ts);
    CREATE TABLE alert_state (
        rule TEXT NOT NULL,
        coin TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (rule, coin)
    );
    CREATE TABLE alert_outbox (
        id INTEGER PRIMARY KEY,
        alert_id INTEGER NOT NULL REFERENCES alerts (id),
        channel TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pendente',
        attempts INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,
        last_error TEXT,
        sent_at REAL,
        UNIQUE (alert_id, channel)
    );
    CREATE INDEX alert_outbox_due ON alert_outbox (channel, state, next_at, id);
    CREATE TABLE alert_deliveries (
        id INTEGER PRIMARY KEY,
        outbox_id INTEGER NOT NULL,
        alert_id INTEGER NOT NULL,
        channel TEXT NOT NULL,
        at REAL NOT NULL,
        result TEXT NOT NULL,
        reason TEXT
    );
    CREATE TABLE alert_rules (
        id INTEGER PRIMARY KEY,
        definition TEXT NOT NULL,
        paused INTEGER NOT NULL DEFAULT 0,
        created_at REAL NOT NULL
    );
    """,
}

QUANTILE_COLUMNS = ("q05", "q10", "q25", "q50", "q75", "q90", "q95")
"""The ``predictions`` columns of the quantiles at :data:`~cryptotech.domain.QUANTILE_LEVELS`."""

KEEP_CHECKPOINTS = 3
ALERT_OUTBOX_MAX = 10_000  # pending alert deliveries kept at most (older ones are dropped)
ALERT_LOG_KEEP = 5_000  # delivery log rows kept
OUTBOX_FULL = "fila de envio cheia: alerta descartado"


@dataclass(frozen=True)
class StoredEvent:
    """One stored SSE event."""

    id: int
    kind: str
    coin: str | None
    data: dict[str, Any]


@dataclass(frozen=True)
class AlertRows:
    """What alerts write with the tick (or the outage check) that caused them.

    ``fired``: the data of each ``alerta`` event; ``channels``: the delivery channels each
    alert is queued for (one outbox row per alert and channel); ``state``: ``(rule, coin,
    json)`` rows of rule state to upsert.
    """

    fired: Sequence[dict[str, Any]] = ()
    channels: Sequence[str] = ()
    state: Sequence[tuple[str, str, str]] = ()


@dataclass(frozen=True)
class Checkpoint:
    id: int
    coin: str
    created_at: float
    last_tick_id: int
    river_version: str
    python_version: str
    size: int
    blob: bytes


#: What the store turns into :class:`StoreError`: the database's errors and those of
#: serialising a payload (``json.dumps`` raises ValueError on NaN and TypeError on a value
#: it cannot encode; binding an int too large for SQLite raises OverflowError).
MAPPED_ERRORS = (sqlite3.Error, ValueError, TypeError, OverflowError)


@contextmanager
def store_errors(path: Path, doing: str = "") -> Iterator[None]:
    """Convert every database or serialisation error raised inside into a :class:`StoreError`.

    The one place where third-party errors become the store's own (httpx's
    ``map_exceptions``). Errors that are already a ``StoreError`` pass unchanged.

    >>> import json
    >>> with store_errors(Path("a.db")):
    ...     json.dumps({"price": float("nan")}, allow_nan=False)
    Traceback (most recent call last):
    ...
    cryptotech.errors.StoreError: database a.db: ValueError: Out of range float values are not JSON compliant
    """
    try:
        yield
    except StoreError:
        raise
    except MAPPED_ERRORS as exc:
        what = f"{doing} " if doing else ""
        raise StoreError(f"{what}database {path}: {type(exc).__name__}: {exc}") from exc


def _connect(path: Path, readonly: bool = False) -> sqlite3.Connection:
    try:
        if readonly:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                                   check_same_thread=False, timeout=10)
        else:
            conn = sqlite3.connect(path, check_same_thread=False, timeout=10,
                                   isolation_level=None)
        conn.execute("PRAGMA busy_timeout = 10000")
        conn.execute("PRAGMA foreign_keys = ON")
        return conn
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from None


def _rowid(cur: sqlite3.Cursor) -> int:
    """The id of the row an INSERT just added."""
    if cur.lastrowid is None:
        raise StoreError("the database returned no id for an inserted row")
    return cur.lastrowid


def _finite(value: float | None) -> float | None:
    return value if value is None or math.isfinite(value) else None


def prediction_json(p: Prediction) -> dict[str, Any]:
    """The stored (UTC, language-neutral) form of a prediction, used in event data."""
    return {
        "coin": p.coin, "made_at": p.made_at.timestamp(), "target_at": p.target_at.timestamp(),
        "price": p.price, "forecast": p.forecast, "lower": p.lower, "upper": p.upper,
        "model": p.model, "horizon": p.horizon, "quantiles": [_finite(q) for q in p.quantiles],
        "p_up": _finite(p.p_up), "vol": _finite(p.vol),
        "p_move": [[x, _finite(prob)] for x, prob in p.p_move],
    }


def _quantile_values(p: Prediction) -> tuple[float | None, ...]:
    if len(p.quantiles) == len(QUANTILE_COLUMNS):
        return tuple(_finite(q) for q in p.quantiles)
    return (None,) * len(QUANTILE_COLUMNS)


class Store:
    """The SQLite database of one engine. Thread-safe: writes are serialised by a lock."""

    def __init__(self, path: Path | str, readonly: bool = False,
                 default_horizon: str = "1h"):
        self.path = Path(path)
        self.readonly = readonly
        self.default_horizon = default_horizon
        if not readonly:
            if not self.path.parent.exists():
                raise StoreError(
                    f"cannot open database {self.path}: folder {self.path.parent} does not exist"
                )
        elif not self.path.exists():
            raise StoreError(f"cannot open database {self.path}: no such file")
        self._lock = threading.RLock()
        self._conn = _connect(self.path, readonly)
        if not readonly:
            try:
                self._conn.execute("PRAGMA journal_mode = WAL")
                self._conn.execute("PRAGMA synchronous = NORMAL")
                self._migrate()
                self._probe_write()
            except StoreError:
                self._conn.close()
                raise
            except sqlite3.Error as exc:
                self._conn.close()
                raise StoreError(f"cannot use database {self.path}: {exc}") from None

    # -- lifecycle -----------------------------------------------------------------------

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _migrate(self) -> None:
        conn = self._conn
        conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
        current = row[0] or 0
        if current > SCHEMA_VERSION:
            raise StoreError(
                f"database {self.path} has schema {current}; this CryptoTech knows up to "
                f"{SCHEMA_VERSION}: upgrade CryptoTech"
            )
        for version in range(current + 1, SCHEMA_VERSION + 1):
            with self.transaction() as tx:
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        tx.execute(statement)
                tx.execute("INSERT INTO schema_version (version) VALUES (?)", (version,))

    def _probe_write(self) -> None:
        """Fail now if the file cannot be written (SQLite opens a read-only or immutable file
        read-only without a word, and every tick would then fail): a write, rolled back."""
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute("UPDATE schema_version SET version = version")
        finally:
            conn.execute("ROLLBACK")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (or ``ROLLBACK`` on any error); database and
        serialisation errors inside become :class:`StoreError` (:func:`store_errors`)."""
        with self._lock, store_errors(self.path):
            conn = self._conn
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise

    @contextmanager
    def reading(self) -> Iterator[sqlite3.Connection]:
        """A short-lived read-only connection (safe to use from any thread); errors inside
        become :class:`StoreError` (:func:`store_errors`)."""
        conn = _connect(self.path, readonly=True)
        try:
            with store_errors(self.path):
                yield conn
        finally:
            conn.close()

    @contextmanager
    def _writer(self) -> Iterator[sqlite3.Connection]:
        """The writer connection outside a transaction (a read of the engine's own state)."""
        with self._lock, store_errors(self.path):
            yield self._conn

    # -- writing -------------------------------------------------------------------------

    def commit_tick(self, tick: Tick, predictions: Sequence[Prediction],
                    outcomes: Sequence[Outcome], extra_events: Sequence[tuple[str, dict]] = (),
                    alerts: AlertRows | None = None) -> tuple[int, list[StoredEvent]] | None:
        """Store a tick and everything it caused in one transaction: its forecasts (one per
        horizon), the outcomes it settled and any extra events.

        ``alerts``: the alerts the tick fired, their outbox rows and the rules' new state,
        committed with it (see :meth:`_write_alerts`).

        Returns the tick id and the stored events in id order, or ``None`` when the tick is
        already stored (same coin and timestamp): it is then a duplicate and nothing changes.
        """
        now = time.time()
        events: list[StoredEvent] = []
        with self.transaction() as tx:
            cur = tx.execute(
                "INSERT OR IGNORE INTO ticks (coin, ts, price, market_cap, volume_24h, change_24h)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (tick.coin, tick.epoch, tick.price, _finite(tick.market_cap),
                 _finite(tick.volume_24h), _finite(tick.change_24h)),
            )
            if cur.rowcount == 0:
                return None
            tick_id = _rowid(cur)

            def event(kind: str, coin: str | None, data: dict) -> int:
                c = tx.execute("INSERT INTO events (kind, coin, ts, data) VALUES (?, ?, ?, ?)",
                               (kind, coin, now, json.dumps(data, allow_nan=False)))
                events.append(StoredEvent(_rowid(c), kind, coin, data))
                return _rowid(c)

            event("tick", tick.coin, {"coin": tick.coin, "ts": tick.epoch, "price": tick.price,
                                      "market_cap": _finite(tick.market_cap),
                                      "volume_24h": _finite(tick.volume_24h),
                                      "change_24h": _finite(tick.change_24h)})
            for outcome in outcomes:
                p = outcome.prediction
                row = tx.execute("SELECT id FROM predictions WHERE coin = ? AND horizon = ?"
                                 " AND made_at = ?",
                                 (p.coin, p.horizon, p.made_at.timestamp())).fetchone()
                if row is None:  # its prediction predates the retained history
                    continue
                data = prediction_json(p) | {"prediction_id": row[0], "actual": outcome.actual,
                                             "error": outcome.error, "covered": outcome.covered}
                eid = event("resultado", p.coin, data)
                tx.execute("INSERT INTO outcomes (prediction_id, actual, error, covered,"
                           " settled_at, event_id) VALUES (?, ?, ?, ?, ?, ?)",
                           (row[0], outcome.actual, outcome.error, int(outcome.covered),
                            tick.epoch, eid))
            for p in predictions:
                pid = event("previsao", p.coin, prediction_json(p))
                tx.execute("INSERT INTO predictions (id, coin, made_at, target_at, price,"
                           " forecast, lower, upper, model, tick_id, horizon, q05, q10, q25, q50,"
                           " q75, q90, q95, p_up, vol)"
                           " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (pid, p.coin, p.made_at.timestamp(), p.target_at.timestamp(),
                            p.price, p.forecast, p.lower, p.upper, p.model, tick_id, p.horizon,
                            *_quantile_values(p), _finite(p.p_up), _finite(p.vol)))
            for kind, data in extra_events:
                event(kind, tick.coin, data)
            if alerts is not None:
                self._write_alerts(tx, event, tick_id, alerts)
        return tick_id, events

    def save_checkpoint(self, coin: str, last_tick_id: int, blob: bytes, river_version: str,
                        python_version: str, keep: int = KEEP_CHECKPOINTS) -> int:
        """Store a learner checkpoint and keep only the newest ``keep`` of that coin."""
        with self.transaction() as tx:
            cur = tx.execute(
                "INSERT INTO checkpoints (coin, created_at, last_tick_id, river_version,"
                " python_version, size, blob) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (coin, time.time(), last_tick_id, river_version, python_version, len(blob), blob),
            )
            tx.execute("DELETE FROM checkpoints WHERE coin = ? AND id NOT IN (SELECT id FROM"
                       " checkpoints WHERE coin = ? ORDER BY id DESC LIMIT ?)", (coin, coin, keep))
            return _rowid(cur)

    def prune(self, before_ts: float) -> int:
        """Delete raw ticks (and their stored events) older than ``before_ts``.

        Never deletes a tick that recovery needs: every tick after the oldest kept checkpoint
        of its coin stays, and so does each coin's newest tick.
        """
        with self.transaction() as tx:
            cur = tx.execute(
                """DELETE FROM ticks WHERE ts < ?
                   AND id <= COALESCE((SELECT MIN(c.last_tick_id) FROM checkpoints c
                                       WHERE c.coin = ticks.coin), -1)
                   AND id < (SELECT MAX(t2.id) FROM ticks t2 WHERE t2.coin = ticks.coin)
                   AND id NOT IN (SELECT tick_id FROM predictions)""",
                (before_ts,),
            )
            # by the ticks' own time (event time: a replay is far from the wall clock that
            # events.ts holds), and only a prefix in id order, so no hole opens above the
            # oldest tick event kept (replay_floor)
            tx.execute("DELETE FROM events WHERE kind = 'tick' AND id < COALESCE((SELECT id"
                       " FROM events WHERE kind = 'tick' AND json_extract(data, '$.ts') >= ?"
                       " ORDER BY id LIMIT 1), (SELECT MAX(id) + 1 FROM events))", (before_ts,))
            return cur.rowcount

    # -- reading -------------------------------------------------------------------------

    def checkpoints(self, coin: str) -> list[Checkpoint]:
        """Checkpoints of ``coin``, newest first."""
        with self._writer() as conn:
            rows = conn.execute(
                "SELECT id, coin, created_at, last_tick_id, river_version, python_version, size,"
                " blob FROM checkpoints WHERE coin = ? ORDER BY id DESC", (coin,)).fetchall()
        return [Checkpoint(*row) for row in rows]

    def ticks_after(self, coin: str, tick_id: int) -> Iterator[tuple[int, Tick]]:
        """Stored ticks of ``coin`` with an id above ``tick_id``, in id order."""
        with self.reading() as conn:
            cur = conn.execute(
                "SELECT id, ts, price, market_cap, volume_24h, change_24h FROM ticks"
                " WHERE coin = ? AND id > ? ORDER BY id", (coin, tick_id))
            for row in cur:
                yield row[0], Tick(coin, from_epoch(row[1]), row[2], row[3], row[4], row[5])

    def last_ticks(self) -> dict[str, tuple[int, float]]:
        """Per coin: (id, ts) of the newest stored tick."""
        with self.reading() as conn:
            rows = conn.execute("SELECT coin, MAX(id), MAX(ts) FROM ticks GROUP BY coin")
            return {coin: (tid, ts) for coin, tid, ts in rows}

    def counts(self) -> dict[str, int]:
        with self.reading() as conn:
            return {table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
                    for table in ("ticks", "predictions", "outcomes", "events", "checkpoints")}

    def _horizon(self, horizon: str | None) -> str:
        """``horizon``, or the first configured one (the caller's; else "1h", the old default)."""
        return horizon if horizon is not None else self.default_horizon

    def latest_prediction(self, coin: str, horizon: str | None = None) -> dict[str, Any] | None:
        """The newest prediction of ``coin`` at ``horizon`` (``None``: the first configured)."""
        with self.reading() as conn:
            conn.row_factory = sqlite3.Row
            row = conn.execute("SELECT * FROM predictions WHERE coin = ? AND horizon = ?"
                               " ORDER BY id DESC LIMIT 1",
                               (coin, self._horizon(horizon))).fetchone()
            return dict(row) if row else None

    def predictions(self, coin: str, start: float | None = None, end: float | None = None,
                    after_id: int = 0, limit: int | None = None, horizon: str | None = None,
                    *, before_id: int | None = None,
                    newest_first: bool = False) -> Iterator[dict[str, Any]]:
        """Predictions of ``coin`` at ``horizon`` (``None``: the first configured; made_at in
        [start, end], id in (after_id, before_id)) with their outcome if settled, in id order
        (newest first if asked), streamed row by row."""
        sql = ("SELECT p.id, p.coin, p.made_at, p.target_at, p.price, p.forecast, p.lower,"
               " p.upper, p.model, p.horizon, p.q05, p.q10, p.q25, p.q50, p.q75, p.q90, p.q95,"
               " p.p_up, p.vol, o.actual, o.error, o.covered FROM predictions p"
               " LEFT JOIN outcomes o ON o.prediction_id = p.id"
               " WHERE p.coin = ? AND p.horizon = ? AND p.id > ?")
        args: list[Any] = [coin, self._horizon(horizon), after_id]
        if start is not None:
            sql += " AND p.made_at >= ?"
            args.append(start)
        if end is not None:
            sql += " AND p.made_at <= ?"
            args.append(end)
        if before_id is not None:
            sql += " AND p.id < ?"
            args.append(before_id)
        sql += " ORDER BY p.id DESC" if newest_first else " ORDER BY p.id"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        with self.reading() as conn:
            conn.row_factory = sqlite3.Row
            for row in conn.execute(sql, args):
                yield dict(row)

    def events_after(self, event_id: int, coins: set[str] | None = None,
                     limit: int = 10_000) -> list[StoredEvent]:
        """Stored events with an id above ``event_id`` (optionally of some coins), in order."""
        sql = "SELECT id, kind, coin, data FROM events WHERE id > ?"
        args: list[Any] = [event_id]
        if coins is not None:
            sql += f" AND (coin IS NULL OR coin IN ({', '.join('?' * len(coins))}))"
            args += sorted(coins)
        with self.reading() as conn:
            rows = conn.execute(sql + " ORDER BY id LIMIT ?", [*args, limit]).fetchall()
            return [StoredEvent(i, k, c, json.loads(d)) for i, k, c, d in rows]

    def event_id_range(self) -> tuple[int, int]:
        """(oldest, newest) stored event id; (0, 0) when there is none."""
        with self.reading() as conn:
            lo, hi = conn.execute("SELECT MIN(id), MAX(id) FROM events").fetchone()
        return lo or 0, hi or 0

    def replay_floor(self) -> int:
        """The lowest event id a client may resume after and still get every later event.

        Every tick starts the group of events it causes, and pruning deletes old ``tick``
        events only, so the history is complete after the oldest stored ``tick`` event. A
        client whose last id is below this floor missed events that are gone. 0 when nothing
        was pruned (or nothing is stored).
        """
        with self.reading() as conn:
            first_tick, newest = conn.execute(
                "SELECT (SELECT MIN(id) FROM events WHERE kind = 'tick'),"
                " (SELECT MAX(id) FROM events)").fetchone()
        if newest is None:
            return 0
        if first_tick is None:  # every tick event was pruned
            return newest
        return first_tick - 1

    def recent_ticks(self, coin: str, since: float | None = None,
                     limit: int = 5000) -> list[tuple[float, float]]:
        """(ts, price) of ``coin`` at or after ``since``, oldest first, at most ``limit``."""
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT ts, price FROM (SELECT ts, price FROM ticks WHERE coin = ? AND ts >= ?"
                " ORDER BY ts DESC LIMIT ?) ORDER BY ts", (coin, since or 0.0, limit)).fetchall()
        return rows

    def integrity_check(self) -> str:
        with self._writer() as conn:
            return conn.execute("PRAGMA integrity_check").fetchone()[0]

    # -- small values kept across restarts ---------------------------------------------------

    def get_value(self, key: str) -> str | None:
        """The value stored under ``key`` in ``kv``, or None."""
        with self._writer() as conn:
            row = conn.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_value(self, key: str, value: str) -> None:
        """Store ``value`` under ``key`` (replacing any previous one)."""
        with self.transaction() as tx:
            tx.execute("INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE"
                       " SET value = excluded.value", (key, value))

    # -- alerts (cryptotech.alerts) ------------------------------------------------------
    #
    # An alert is an ``alerta`` event plus an ``alerts`` row, written in the transaction of
    # the tick that fired it together with its outbox rows and the rules' state, so a crash
    # keeps all of it or none. The sender then moves each outbox row from ``pendente`` to
    # ``enviado`` or ``falhou`` (logged in ``alert_deliveries``); at most
    # ``ALERT_OUTBOX_MAX`` rows wait (older ones are dropped, logged as ``descartado``).

    def _write_alerts(self, tx: sqlite3.Connection, event: Any, tick_id: int | None,
                      rows: AlertRows) -> None:
        now = time.time()
        for data in rows.fired:
            eid = event("alerta", data.get("coin"), data)
            tx.execute("INSERT INTO alerts (id, coin, rule, tipo, ts, tick_id, data)"
                       " VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (eid, data.get("coin"), data["rule"], data["tipo"], data["ts"], tick_id,
                        json.dumps(data, allow_nan=False)))
            for channel in rows.channels:
                tx.execute("INSERT INTO alert_outbox (alert_id, channel, next_at)"
                           " VALUES (?, ?, ?)", (eid, channel, now))
        if rows.fired and rows.channels:
            over = tx.execute("SELECT id, alert_id, channel FROM alert_outbox WHERE state ="
                              " 'pendente' ORDER BY id DESC LIMIT -1 OFFSET ?",
                              (ALERT_OUTBOX_MAX,)).fetchall()
            for oid, aid, channel in over:
                tx.execute("UPDATE alert_outbox SET state = 'descartado', last_error = ?"
                           " WHERE id = ?", (OUTBOX_FULL, oid))
                tx.execute("INSERT INTO alert_deliveries (outbox_id, alert_id, channel, at,"
                           " result, reason) VALUES (?, ?, ?, ?, 'descartado', ?)",
                           (oid, aid, channel, now, OUTBOX_FULL))
        tx.executemany("INSERT INTO alert_state (rule, coin, data) VALUES (?, ?, ?)"
                       " ON CONFLICT (rule, coin) DO UPDATE SET data = excluded.data",
                       rows.state)

    def commit_alerts(self, rows: AlertRows) -> list[StoredEvent]:
        """Store alerts that no tick caused (outages), in one transaction."""
        events: list[StoredEvent] = []
        now = time.time()
        with self.transaction() as tx:
            def event(kind: str, coin: str | None, data: dict) -> int:
                c = tx.execute("INSERT INTO events (kind, coin, ts, data) VALUES (?, ?, ?, ?)",
                               (kind, coin, now, json.dumps(data, allow_nan=False)))
                assert c.lastrowid is not None
                events.append(StoredEvent(c.lastrowid, kind, coin, data))
                return c.lastrowid

            self._write_alerts(tx, event, None, rows)
        return events

    def alert_state(self) -> dict[tuple[str, str], dict[str, Any]]:
        """Every rule's stored state, by (rule key, coin)."""
        with self._writer() as conn:
            rows = conn.execute("SELECT rule, coin, data FROM alert_state").fetchall()
        return {(rule, coin): json.loads(data) for rule, coin, data in rows}

    def last_alert_at(self) -> dict[str, float]:
        """Per rule key: the time of its newest alert."""
        with self.reading() as conn:
            return dict(conn.execute("SELECT rule, MAX(ts) FROM alerts GROUP BY rule"))

    def alerts(self, coin: str | None = None, start: float | None = None,
               end: float | None = None, limit: int = 100) -> list[dict[str, Any]]:
        """Fired alerts (``coin`` also matches alerts of no coin), newest first."""
        sql, args = "SELECT id, data FROM alerts WHERE 1 = 1", list[Any]()
        if coin is not None:
            sql += " AND (coin = ? OR coin IS NULL)"
            args.append(coin)
        if start is not None:
            sql += " AND ts >= ?"
            args.append(start)
        if end is not None:
            sql += " AND ts <= ?"
            args.append(end)
        with self.reading() as conn:
            rows = conn.execute(sql + " ORDER BY id DESC LIMIT ?", [*args, limit]).fetchall()
        return [json.loads(data) | {"id": aid} for aid, data in rows]

    def outbox_due(self, channel: str, now: float, limit: int = 50) -> list[dict[str, Any]]:
        """Pending deliveries of ``channel`` due at ``now``, oldest alert first."""
        with self.reading() as conn:
            rows = conn.execute(
                "SELECT o.id, o.alert_id, o.attempts, a.data FROM alert_outbox o"
                " JOIN alerts a ON a.id = o.alert_id WHERE o.channel = ? AND o.state ="
                " 'pendente' AND o.next_at <= ? ORDER BY o.id LIMIT ?",
                (channel, now, limit)).fetchall()
        return [{"id": oid, "alert_id": aid, "attempts": n, "alert": json.loads(data) | {"id": aid}}
                for oid, aid, n, data in rows]

    def outbox_next_due(self, channel: str) -> float | None:
        """When the next pending delivery of ``channel`` is due (None: nothing pending)."""
        with self.reading() as conn:
            return conn.execute("SELECT MIN(next_at) FROM alert_outbox WHERE channel = ? AND"
                                " state = 'pendente'", (channel,)).fetchone()[0]

    def outbox_result(self, outbox_id: int, result: str, reason: str | None = None,
                      next_at: float | None = None) -> None:
        """Record one delivery attempt: ``enviado``, ``nova_tentativa`` (due again at
        ``next_at``) or ``falhou``; also for channels no longer configured."""
        now = time.time()
        state = {"enviado": "enviado", "nova_tentativa": "pendente"}.get(result, "falhou")
        with self.transaction() as tx:
            row = tx.execute("UPDATE alert_outbox SET state = ?, attempts = attempts + 1,"
                             " next_at = COALESCE(?, next_at), last_error = ?,"
                             " sent_at = CASE WHEN ? = 'enviado' THEN ? ELSE sent_at END"
                             " WHERE id = ? AND state = 'pendente' RETURNING alert_id, channel",
                             (state, next_at, reason, state, now, outbox_id)).fetchone()
            if row is None:
                return
            tx.execute("INSERT INTO alert_deliveries (outbox_id, alert_id, channel, at, result,"
                       " reason) VALUES (?, ?, ?, ?, ?, ?)", (outbox_id, *row, now, result, reason))
            tx.execute("DELETE FROM alert_deliveries WHERE id <= (SELECT MAX(id) FROM"
                       " alert_deliveries) - ?", (ALERT_LOG_KEEP,))

    def outbox_channels(self) -> list[str]:
        """Channels with pending deliveries."""
        with self.reading() as conn:
            return [c for (c,) in conn.execute("SELECT DISTINCT channel FROM alert_outbox"
                                                " WHERE state = 'pendente'")]

    def alert_summary(self, recent: int = 10) -> dict[str, Any]:
        """Counts for ``/status``: alerts, outbox rows by state, log results, recent log."""
        with self.reading() as conn:
            fired = conn.execute("SELECT COUNT(*) FROM alerts").fetchone()[0]
            outbox = dict(conn.execute("SELECT state, COUNT(*) FROM alert_outbox GROUP BY state"))
            results = dict(conn.execute("SELECT result, COUNT(*) FROM alert_deliveries"
                                        " GROUP BY result"))
            log = conn.execute("SELECT alert_id, channel, at, result, reason FROM"
                               " alert_deliveries ORDER BY id DESC LIMIT ?", (recent,)).fetchall()
        return {"fired": fired, "outbox": outbox, "log_counts": results,
                "log": [dict(zip(("alert_id", "channel", "at", "result", "reason"), r))
                        for r in log]}

    def alert_rules(self) -> list[tuple[int, str, bool]]:
        """Rules created through the API: (id, definition JSON, paused), in id order."""
        with self.reading() as conn:
            return [(i, d, bool(p)) for i, d, p in conn.execute(
                "SELECT id, definition, paused FROM alert_rules ORDER BY id")]

    def add_alert_rule(self, definition: str) -> int:
        with self.transaction() as tx:
            rule_id = tx.execute("INSERT INTO alert_rules (definition, created_at) VALUES (?, ?)",
                                 (definition, time.time())).lastrowid
        assert rule_id is not None
        return rule_id

    def set_alert_rule_paused(self, rule_id: int, paused: bool) -> bool:
        with self.transaction() as tx:
            return tx.execute("UPDATE alert_rules SET paused = ? WHERE id = ?",
                              (int(paused), rule_id)).rowcount > 0

    def delete_alert_rule(self, rule_id: int) -> bool:
        with self.transaction() as tx:
            return tx.execute("DELETE FROM alert_rules WHERE id = ?", (rule_id,)).rowcount > 0
