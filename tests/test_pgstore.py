"""What is particular to the PostgreSQL store: schema, migrations under a lock, clear errors
with the password hidden. The shared behaviour is in ``test_store_backends.py``."""

from __future__ import annotations

import threading

import psycopg
import pytest
from pgserver import database_url, fresh_database, require_server

from cryptotech.errors import StoreError
from cryptotech.pgstore import PG_MIGRATIONS, PostgresStore, redact_url
from cryptotech.store import MIGRATIONS, SCHEMA_VERSION, Store


def test_every_sqlite_migration_has_its_postgresql_twin():
    assert sorted(PG_MIGRATIONS) == sorted(MIGRATIONS) == list(range(1, SCHEMA_VERSION + 1))


def test_tables_and_columns_are_named_as_in_sqlite(tmp_path):
    with Store(tmp_path / "a.db") as lite:
        tables = [r[0] for r in lite._conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view')"
            " AND name NOT LIKE 'sqlite_%'")]
        sqlite_columns = {t: [r[1] for r in lite._conn.execute(f"PRAGMA table_info({t})")]
                          for t in tables}
    with fresh_database() as url, PostgresStore(url), psycopg.connect(url) as conn:
        pg_columns = {t: [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s"
            " ORDER BY ordinal_position", (t,))] for t in tables}
    assert pg_columns == sqlite_columns


def test_concurrent_starts_migrate_once():
    with fresh_database() as url:
        errors: list[BaseException] = []

        def start() -> None:
            try:
                PostgresStore(url).close()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=start) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert errors == []
        with psycopg.connect(url) as conn:
            versions = conn.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
        assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]
        with PostgresStore(url) as store:  # reopening migrates nothing twice
            store.set_value("k", "v")
            assert store.get_value("k") == "v"


def test_a_newer_schema_is_refused_with_a_clear_error():
    with fresh_database() as url:
        PostgresStore(url).close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("INSERT INTO schema_version VALUES (99)")
        with pytest.raises(StoreError, match="schema 99.*upgrade"):
            PostgresStore(url)


@pytest.mark.parametrize(("url", "words"), [
    ("postgresql://nobody_here:s3cret@127.0.0.1:5432/postgres", "nobody_here"),
    ("postgresql://postgres:s3cret@127.0.0.1:5432/no_such_database_xyz", "no_such_database_xyz"),
    ("postgresql://postgres:s3cret@127.0.0.1:1/postgres", "port 1"),
    ("postgresql://postgres:s3cret@127.0.0.1:5432/postgres?sslmode=nonsense", "sslmode"),
])
def test_refused_connections_are_one_line_without_the_password(url, words):
    require_server()
    with pytest.raises(StoreError) as caught:
        PostgresStore(url, connect_timeout=3)
    message = str(caught.value)
    assert "s3cret" not in message and "\n" not in message
    assert words in message and ":***@127.0.0.1" in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_a_password_is_hidden_wherever_it_is_written():
    assert redact_url("postgresql://u:p%40ss@h/db") == "postgresql://u:***@h/db"
    assert redact_url("postgres://u:pw@h:5/db?password=pw2") == "postgres://u:***@h:5/db?password=***"
    assert redact_url("postgresql://h/db") == "postgresql://h/db"


def test_a_role_that_cannot_write_is_refused_when_opened():
    with fresh_database() as url:
        PostgresStore(url).close()
        name = url.rsplit("/", 1)[1]
        reader = f"{name}_ro"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'CREATE ROLE "{reader}" LOGIN')
            conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{reader}"')
        try:
            ro_url = database_url(name).replace("postgres@", f"{reader}@", 1)
            with pytest.raises(StoreError, match="permission denied"):
                PostgresStore(ro_url)
        finally:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute(f'DROP OWNED BY "{reader}"')
                conn.execute(f'DROP ROLE "{reader}"')



def test_connections_the_server_dropped_are_replaced_without_an_error():
    from conftest import random_walk

    ticks = random_walk(4)
    with fresh_database() as url, PostgresStore(url) as store:
        store.commit_tick(ticks[0], [], [])
        assert store.events_after(0)  # the pool holds idle connections now
        name = url.rsplit("/", 1)[1]
        with psycopg.connect(url, autocommit=True) as admin:
            killed = admin.execute(
                "SELECT COUNT(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE datname = %s AND pid <> pg_backend_pid()", (name,)).fetchone()[0]
        assert killed >= 1
        assert store.commit_tick(ticks[1], [], []) is not None  # a new connection, no error
        assert len(store.events_after(0)) == 2 and store.counts()["ticks"] == 2
