import os
import sqlite3
import stat

import pytest
from conftest import model_settings, random_walk

from cryptotech.domain import Outcome
from cryptotech.errors import StoreError
from cryptotech.learning.learner import CoinLearner
from cryptotech.store import MIGRATIONS, SCHEMA_VERSION, Store


def feed(store, ticks, learner=None):
    learner = learner or CoinLearner(ticks[0].coin, model_settings())
    results = []
    for tick in ticks:
        p, o = learner.process(tick)
        results.append(store.commit_tick(tick, p, o))
    return learner, results


def test_schema_pragmas_and_version(tmp_path):
    with Store(tmp_path / "a.db") as store:
        conn = store._conn
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
        assert {"ticks", "predictions", "outcomes", "events", "checkpoints",
                "pending_labels", "kv", "schema_version"} <= tables
    with Store(tmp_path / "a.db") as store:  # reopening migrates nothing twice
        rows = store._conn.execute("SELECT version FROM schema_version").fetchall()
        assert rows == [(v,) for v in range(1, SCHEMA_VERSION + 1)]  # one per migration


def test_newer_schema_is_refused_with_a_clear_error(tmp_path):
    Store(tmp_path / "a.db").close()
    with sqlite3.connect(tmp_path / "a.db") as conn:
        conn.execute("INSERT INTO schema_version VALUES (99)")
    with pytest.raises(StoreError, match="schema 99.*upgrade"):
        Store(tmp_path / "a.db")


def test_a_tick_and_everything_it_caused_share_one_transaction(tmp_path):
    ticks = random_walk(40)
    with Store(tmp_path / "a.db") as store:
        _, results = feed(store, ticks)
        counts = store.counts()
        assert counts["ticks"] == 40
        assert counts["predictions"] == 39  # the first tick has no volatility yet
        assert counts["outcomes"] == 40 - 1 - 12
        kinds = [e.kind for _, evs in results[13:14] for e in evs]
        assert kinds == ["tick", "resultado", "previsao"]
        ids = [e.id for _, evs in results for e in evs]
        assert ids == sorted(ids) and len(set(ids)) == len(ids)
        # predictions.id is the id of its `previsao` event
        last = store.latest_prediction("btc")
        assert last["id"] == [e.id for e in results[-1][1] if e.kind == "previsao"][0]
        pending = store._conn.execute("SELECT COUNT(*) FROM pending_labels").fetchone()[0]
        assert pending == 12


def test_failed_transaction_leaves_nothing_behind(tmp_path):
    ticks = random_walk(20)
    with Store(tmp_path / "a.db") as store:
        learner, _ = feed(store, ticks[:19])
        before = store.counts()
        p, o = learner.process(ticks[19])
        broken = [Outcome(o[0].prediction, float("nan"))] if o else []
        with pytest.raises(StoreError, match="ValueError: Out of range float"):
            store.commit_tick(ticks[19], p, broken or [Outcome(p[0], float("nan"))])
        assert store.counts() == before


def test_duplicate_tick_changes_nothing(tmp_path):
    ticks = random_walk(5)
    with Store(tmp_path / "a.db") as store:
        feed(store, ticks)
        before = store.counts()
        assert store.commit_tick(ticks[2], [], []) is None
        assert store.counts() == before


def test_checkpoints_keep_the_newest_three(tmp_path):
    with Store(tmp_path / "a.db") as store:
        for i in range(5):
            store.save_checkpoint("btc", i, b"x" * i, "r", "p")
        assert [c.last_tick_id for c in store.checkpoints("btc")] == [4, 3, 2]


def test_retention_never_deletes_what_recovery_needs(tmp_path):
    ticks = random_walk(300)
    with Store(tmp_path / "a.db") as store:
        learner, results = feed(store, ticks)
        store.save_checkpoint("btc", results[150][0], b"cp", "r", "p")
        cutoff = ticks[250].epoch
        store.prune(cutoff)
        kept = [tid for tid, _ in store.ticks_after("btc", 0)]
        # ticks after the checkpoint all stay, whatever their age
        assert all(r[0] in kept for r in results[151:])
        # and ticks that predictions point to stay (foreign keys hold)
        assert store.integrity_check() == "ok"
        assert store._conn.execute("PRAGMA foreign_key_check").fetchall() == []


def test_tick_events_are_pruned_by_the_ticks_own_time(tmp_path):
    # Event time, never the wall clock: a replay runs far behind it (or, at 3600x, passes it
    # within hours), and its tick events must go and stay by the ticks' time, in id order,
    # so that the history above replay_floor stays complete.
    ticks = random_walk(300)  # 2025: the wall clock is later
    with Store(tmp_path / "a.db") as store:
        _, results = feed(store, ticks)
        store.save_checkpoint("btc", results[-1][0], b"cp", "r", "p")
        store.prune(ticks[250].epoch)
        kept = [e for e in store.events_after(0, None, 10**6) if e.kind == "tick"]
        assert [e.data["ts"] for e in kept] == [t.epoch for t in ticks[250:]]
        assert store.replay_floor() == kept[0].id - 1


def test_missing_folder_and_read_only_file_give_clear_errors(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "nope" / "a.db")
    path = tmp_path / "ro.db"
    Store(path).close()
    if os.geteuid() == 0:
        # root ignores file permissions; a read-only open is the closest honest check
        with Store(path, readonly=True) as store:
            with pytest.raises(StoreError):
                feed(store, random_walk(3))
    else:  # pragma: no cover - depends on the user running the tests
        path.chmod(stat.S_IRUSR)
        with pytest.raises(StoreError):
            with Store(path) as store:
                feed(store, random_walk(3))


def _unwritable(path):
    """Make ``path`` unwritable for this process; returns the undo, or None if impossible."""
    import shutil
    import subprocess

    if os.name == "nt" or os.geteuid() != 0:
        path.chmod(stat.S_IRUSR)
        return lambda: path.chmod(stat.S_IRUSR | stat.S_IWUSR)
    # root ignores permissions, not an immutable file
    if shutil.which("chattr") and subprocess.run(["chattr", "+i", str(path)],
                                                 capture_output=True).returncode == 0:
        return lambda: subprocess.run(["chattr", "-i", str(path)], capture_output=True)
    return None


def test_a_database_file_that_cannot_be_written_is_refused_when_opened(tmp_path):
    # SQLite opens such a file read-only without a word; every tick would then fail.
    path = tmp_path / "ro.db"
    with Store(path) as store:
        feed(store, random_walk(3))
    undo = _unwritable(path)
    if undo is None:
        pytest.skip("running as root without chattr: no way to make a file read-only")
    try:
        with pytest.raises(StoreError, match=f"cannot use database {path}.*readonly"):
            Store(path)
        with Store(path, readonly=True) as store:  # reading it is still fine
            assert store.counts()["ticks"] == 3
    finally:
        undo()


@pytest.mark.parametrize("command", ["run", "demo"])
def test_the_server_commands_refuse_a_store_they_cannot_use_in_one_line(tmp_path, command):
    # The store used to be opened first in the server's start-up: uvicorn's traceback.
    import subprocess
    import sys

    Store(tmp_path / "a.db").close()
    with sqlite3.connect(tmp_path / "a.db") as conn:
        conn.execute("INSERT INTO schema_version VALUES (99)")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOTECH_")}
    env["CRYPTOTECH_SOURCE__BASE_URL"] = "http://127.0.0.1:9/api/v3"  # never the internet
    proc = subprocess.run([sys.executable, "-m", "cryptotech.cli", command, "--db", "a.db",
                           "--port", "0"], cwd=tmp_path, env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "schema 99" in errors[0] and "upgrade" in errors[0]


def test_full_disk_is_a_clear_error_and_no_corruption(tmp_path):
    path = tmp_path / "full.db"
    with Store(path) as store:
        store._conn.execute("PRAGMA max_page_count = 40")
        with pytest.raises(StoreError, match="full"):
            feed(store, random_walk(2000))
        assert store.integrity_check() == "ok"
        n = store.counts()["ticks"]
    with Store(path) as store:
        assert store.counts()["ticks"] == n > 0


@pytest.mark.parametrize("payload, error", [
    ({"x": float("nan")}, "ValueError"),          # json.dumps(allow_nan=False)
    ({"x": object()}, "TypeError"),               # not JSON
    ({"x": float("inf")}, "ValueError"),
])
def test_payload_errors_become_store_errors_and_roll_back(tmp_path, payload, error):
    ticks = random_walk(3)
    with Store(tmp_path / "a.db") as store:
        feed(store, ticks[:2])
        before = store.counts()
        with pytest.raises(StoreError, match=error) as raised:
            store.commit_tick(ticks[2], [], [], extra_events=[("extra", payload)])
        assert isinstance(raised.value.__cause__, (ValueError, TypeError))
        assert store.counts() == before


def test_sqlite_and_binding_errors_become_store_errors(tmp_path):
    with Store(tmp_path / "a.db") as store:
        with pytest.raises(StoreError, match="OverflowError"):
            store.set_value("big", 2**70)  # type: ignore[arg-type]
        with pytest.raises(StoreError, match="OperationalError"), store.transaction() as tx:
            tx.execute("SELECT * FROM no_such_table")
        with pytest.raises(StoreError, match="OperationalError"), store.reading() as conn:
            conn.execute("INSERT INTO kv VALUES ('a', 'b')")  # a read-only connection
        assert store.get_value("big") is None


def test_unreadable_stored_event_is_a_store_error(tmp_path):
    ticks = random_walk(2)
    with Store(tmp_path / "a.db") as store:
        feed(store, ticks)
        store._conn.execute("UPDATE events SET data = 'not json' WHERE id = 1")
        with pytest.raises(StoreError, match="JSONDecodeError"):
            store.events_after(0)


def test_values_are_kept_across_reopening(tmp_path):
    with Store(tmp_path / "a.db") as store:
        assert store.get_value("k") is None
        store.set_value("k", "1")
        store.set_value("k", "2")
    with Store(tmp_path / "a.db") as store:
        assert store.get_value("k") == "2"


def test_a_schema_1_database_is_migrated_keeping_its_rows(tmp_path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.executescript(MIGRATIONS[1])
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute("INSERT INTO ticks (coin, ts, price) VALUES ('btc', 1.0, 10.0)")
    conn.close()
    with Store(path) as store:
        assert store.counts()["ticks"] == 1
        store.set_value("k", "v")
        assert store.get_value("k") == "v"
