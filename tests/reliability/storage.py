"""3. Storage trouble: bad checkpoints, a missing folder, a read-only file, a full disk.

Each case must end in a clear error (one line naming the problem, no traceback) or a clean
fallback, and never in a damaged database:

* checkpoints: the newest one truncated, made by another River version, made with other
  model settings, holding another coin's learner or something that is not a learner, and
  every one unreadable. The engine must fall back to an older checkpoint (or rebuild from the
  stored ticks), say so in the log, and end with exactly the predictions of a run that never
  had a bad checkpoint;
* a missing database folder: the store and the real ``cryptotech demo/run/backfill``
  processes refuse with one line naming the folder, and create nothing;
* a read-only database file: opened read-only by SQLite (``mode=ro``); made immutable
  (``chattr +i``, which stops root too); and, when this runs as root, the real ``cryptotech``
  process run as the unprivileged user ``nobody`` (``setpriv``) on a file it may only read
  (as root, ``chmod`` stops nothing). Not run as root, the file is ``chmod 444``. The file
  must be unchanged afterwards;
* a full disk (SQLite ``max_page_count``): the engine keeps running, every refused tick is
  a clear error, nothing half-written stays, and once space is back the state equals a run
  that only ever saw the ticks that were stored.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import pickle
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

from conftest import random_walk, run_engine, stored_predictions, two_coins

from cryptotech.config import Settings
from cryptotech.engine import Engine
from cryptotech.errors import StoreError
from cryptotech.hub import Hub
from cryptotech.learning.learner import CoinLearner
from cryptotech.store import Store
from reliability.core import Context, Row

NOBODY = 65534


class Lines(logging.Handler):
    """Collects the messages of one logger while a block runs."""

    def __init__(self, name: str):
        super().__init__(logging.DEBUG)
        self.logger = logging.getLogger(name)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())

    def __enter__(self) -> Lines:
        self.logger.addHandler(self)
        self._level = self.logger.level
        self.logger.setLevel(logging.DEBUG)
        return self

    def __exit__(self, *exc: object) -> None:
        self.logger.removeHandler(self)
        self.logger.setLevel(self._level)


def _settings(folder: Path, candidates: list[str]) -> Settings:
    folder.mkdir(parents=True, exist_ok=True)
    return Settings(coins={"btc": "bitcoin", "eth": "ethereum"},
                    model={"candidates": candidates}, store={"path": str(folder / "e.db")})


def _healthy(path: Path) -> tuple[bool, str]:
    conn = sqlite3.connect(path)
    try:
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
        fk = conn.execute("PRAGMA foreign_key_check").fetchall()
    finally:
        conn.close()
    return integrity == "ok" and not fk, f"integrity {integrity}, {len(fk)} foreign-key errors"


# -- checkpoints ------------------------------------------------------------------------------


def _damages(candidates: list[str]) -> dict[str, Callable[[bytes, bytes], bytes]]:
    """name -> f(newest btc blob, newest eth blob) -> the bad blob put in its place."""

    def other_river(blob: bytes, _: bytes) -> bytes:
        meta, learner = pickle.loads(blob)
        return pickle.dumps((meta | {"river": "0.1.0"}, learner))

    def other_settings(blob: bytes, _: bytes) -> bytes:
        meta, learner = pickle.loads(blob)
        other = learner.settings.model_copy(update={"interval_level": 0.8})
        return pickle.dumps((meta, CoinLearner("btc", other)))

    def not_a_learner(blob: bytes, _: bytes) -> bytes:
        meta, _ = pickle.loads(blob)
        return pickle.dumps((meta, {"coin": "btc", "weights": [1.0, 2.0]}))

    return {
        "truncated (corrupt)": lambda blob, _: blob[: len(blob) // 3],
        "made by another River version": other_river,
        "made with other model settings": other_settings,
        "holding another coin's learner": lambda _, eth: eth,
        "holding something that is not a learner": not_a_learner,
        "not a pickle at all": lambda *_: b'{"format": 1, "learner": "json?"}',
    }


def _checkpoints(ctx: Context, candidates: list[str]) -> Row:
    row = Row("3a. corrupt or foreign checkpoint", "faults", lost=0)
    base = ctx.folder("storage")
    ticks = two_coins(ctx.pick(300, 200))
    cut = len(ticks) * 2 // 3
    ref = _settings(base / "reference", candidates)
    run_engine(ref, ticks)
    want = stored_predictions(ref.store.path)
    cases: list[tuple[str, Callable | None]] = list(_damages(candidates).items())
    cases.append(("every checkpoint unreadable", None))
    for i, (name, damage) in enumerate(cases):
        try:
            _checkpoint_case(row, base / f"cp{i}", candidates, ticks, cut, want, name, damage)
        except Exception as exc:  # noqa: BLE001 - e.g. the engine cannot start at all
            row.count(False, f"checkpoint {name}: {type(exc).__name__}: {exc}")
    row.notes.append("each: fell back to the older checkpoint (or rebuilt from the stored "
                     "ticks), said so in the log, final predictions equal to a run without "
                     "the bad checkpoint; integrity ok")
    return row


def _checkpoint_case(row: Row, folder: Path, candidates: list[str], ticks: list, cut: int,
                     want: list, name: str, damage: Callable | None) -> None:
    s = _settings(folder, candidates)
    run_engine(s, ticks[:cut], checkpoint_at={cut // 2, cut - 20})
    with Store(s.store.path) as store:
        newest = store.checkpoints("btc")[0]
        if damage is None:
            store._conn.execute("UPDATE checkpoints SET blob = x'00'")
        else:
            blob = damage(newest.blob, store.checkpoints("eth")[0].blob)
            store._conn.execute("UPDATE checkpoints SET blob = ? WHERE id = ?",
                                (blob, newest.id))
    with Lines("cryptotech.engine") as log:
        engine, _ = run_engine(s, ticks[cut:])
    said = " | ".join(log.lines)
    # the recovery as /status reports it (Portuguese): rebuilt from the stored ticks when no
    # checkpoint is readable, else an older checkpoint than the damaged newest one
    said_recovery = engine.recovery["btc"]
    fell_back = (said_recovery.startswith("reconstruído a partir dos preços guardados; ")
                 if damage is None else
                 (said_recovery.startswith("checkpoint ")
                  and not said_recovery.startswith(f"checkpoint {newest.id};")))
    fell_back = fell_back and said_recovery.endswith(" preços guardados reprocessados")
    explained = ("rebuilt from stored ticks" in said if damage is None
                 else "trying an older one" in said)
    same = stored_predictions(s.store.path) == want
    healthy, health = _healthy(s.store.path)
    row.count(fell_back and explained and same and healthy,
              f"checkpoint {name}: recovery '{engine.recovery['btc']}', "
              f"log {'ok' if explained else 'silent'}, predictions "
              f"{'equal' if same else 'DIFFER'}, {health}")


# -- a missing folder -------------------------------------------------------------------------


def _one_clear_line(proc: subprocess.CompletedProcess, *words: str) -> tuple[bool, str]:
    err = proc.stderr.decode(errors="replace")
    lines = [line for line in err.splitlines() if line.strip()]
    ok = (proc.returncode in (1, 2) and "Traceback" not in err and len(lines) >= 1
          and all(w in err for w in words))
    return ok, f"exit {proc.returncode}: {err.strip()[:300]!r}"


def _cli(ctx: Context, args: list[str], *, user: int | None = None, cwd: Path,
         timeout: float = 30) -> subprocess.CompletedProcess:
    # `run` must not reach the internet: its CoinGecko is a closed local port
    env = ctx.child_env(HOME=str(cwd), PYTHONDONTWRITEBYTECODE="1",
                        CRYPTOTECH_SOURCE__BASE_URL="http://127.0.0.1:9/api/v3")
    cmd = [sys.executable, "-m", "cryptotech.cli", *args]
    if user is not None:
        cmd = ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups", *cmd]
    try:
        proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:  # it kept running instead of refusing
        proc = subprocess.CompletedProcess(cmd, -9, exc.stdout or b"",
                                           (exc.stderr or b"") + b"\n(still running after "
                                           + str(timeout).encode() + b" s: killed)")
    with open(ctx.log_file("storage-cli"), "ab") as log:
        log.write(b"$ " + " ".join(args).encode() + b"\n" + proc.stdout + proc.stderr)
    return proc


def _missing_folder(ctx: Context) -> Row:
    row = Row("3b. missing database folder", "faults", lost=0)
    base = ctx.folder("storage")
    missing = base / "no-such-folder" / "cryptotech.db"
    try:
        Store(missing)
        row.count(False, "Store() opened a database in a missing folder")
    except StoreError as exc:
        row.count("does not exist" in str(exc) and str(missing.parent) in str(exc),
                  f"unclear error: {exc}")
    for args in (["demo", "--db", missing, "--port", "0", "--laps", "1"],
                 ["run", "--db", missing, "--port", "0"], ["backfill", "--db", missing]):
        proc = _cli(ctx, [str(a) for a in args], cwd=base)
        ok, said = _one_clear_line(proc, "does not exist", str(missing.parent))
        row.count(ok, f"cryptotech {args[0]}: {said}")
    row.check(not missing.parent.exists(), "the missing folder was created")
    row.notes.append("Store() and `cryptotech demo/run/backfill` each refuse with one line "
                     "naming the folder (exit 2), no traceback; nothing created")
    return row


# -- a read-only file -------------------------------------------------------------------------


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _prepared_db(folder: Path) -> Path:
    path = folder / "ro.db"
    with Store(path) as store:
        from conftest import model_settings

        from cryptotech.learning.learner import CoinLearner as Learner

        learner = Learner("btc", model_settings())
        for tick in random_walk(30):
            store.commit_tick(tick, *learner.process(tick))
    sqlite3.connect(path).close()  # the last connection folds the WAL into the file
    return path


def _write_fails(store_factory: Callable[[], Store]) -> tuple[bool, str]:
    """Open the store and try to write a tick: (refused with a StoreError, message)."""
    tick = random_walk(31)[-1]
    try:
        with store_factory() as store:
            store.commit_tick(tick, [], [])
    except StoreError as exc:
        return True, str(exc)
    return False, "the write succeeded"


def _read_only(ctx: Context) -> Row:
    row = Row("3c. read-only database file", "faults", lost=0)
    # outside the work folder (private to its owner): another user must reach this one
    folder = Path(tempfile.mkdtemp(prefix="cryptotech-ro-"))
    folder.chmod(0o755)  # readable by another user, writable by none but its owner
    how: list[str] = []
    try:
        path = _prepared_db(folder)
        before = _digest(path)

        ok, said = _write_fails(lambda: Store(path, readonly=True))
        row.count(ok and "readonly" in said, f"mode=ro: {said}")
        how.append("SQLite mode=ro")

        if sys.platform.startswith("linux") and shutil.which("chattr"):
            immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True)
            if immutable.returncode == 0:
                try:
                    ok, said = _write_fails(lambda: Store(path))
                    row.count(ok and ("readonly" in said or "read-only" in said),
                              f"chattr +i: {said}")
                    proc = _cli(ctx, ["demo", "--db", str(path), "--port", "0", "--laps", "1"],
                                cwd=folder)
                    ok, said = _one_clear_line(proc, "error:", str(path))
                    row.count(ok, f"chattr +i, cryptotech demo: {said}")
                    how.append("chattr +i (stops root)")
                finally:
                    subprocess.run(["chattr", "-i", str(path)], capture_output=True)

        root = hasattr(os, "geteuid") and os.geteuid() == 0
        if root and shutil.which("setpriv"):
            path.chmod(0o644)  # nobody may read it, not write it (nor create -wal/-shm)
            for command in (["demo", "--db", str(path), "--port", "0", "--laps", "1"],
                            ["run", "--db", str(path), "--port", "0"]):
                proc = _cli(ctx, command, user=NOBODY, cwd=folder)
                ok, said = _one_clear_line(proc, "error:", str(path))
                row.count(ok, f"as nobody, cryptotech {command[0]}: {said}")
            how.append("`cryptotech demo` and `run` as the user nobody (setpriv)")
        elif not root:  # pragma: no cover - depends on who runs the suite
            path.chmod(0o444)
            ok, said = _write_fails(lambda: Store(path))
            row.count(ok, f"chmod 444: {said}")
            how.append("chmod 444")
        row.check(_digest(path) == before, "the read-only file changed")
        healthy, health = _healthy(path)
        row.check(healthy, health)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    row.notes.append("refused with a StoreError / one `error:` line naming the file; file "
                     "unchanged (sha256), integrity ok; via " + ", ".join(how))
    return row


# -- a full disk --------------------------------------------------------------------------------


def _full_disk(ctx: Context, candidates: list[str]) -> Row:
    row = Row("3d. full disk (SQLite max_page_count)", "faults")
    base = ctx.folder("storage")
    ticks = two_coins(ctx.pick(600, 300))
    s = _settings(base / "full", candidates)
    stored: set[tuple[str, float]] = set()
    refused: list[int] = []
    messages: list[str] = []

    async def go() -> Engine:
        with Store(s.store.path) as store:
            engine = Engine(s, store, Hub(), None)
            await engine.start()
            for tick in ticks[: len(ticks) // 3]:
                await engine.handle(tick)
            pages = store._conn.execute("PRAGMA page_count").fetchone()[0]
            store._conn.execute(f"PRAGMA max_page_count = {pages + 8}")  # the disk fills up
            for i, tick in enumerate(ticks[len(ticks) // 3: len(ticks) * 2 // 3]):
                errors = engine.store_errors
                await engine.handle(tick)
                if engine.store_errors > errors:
                    refused.append(len(ticks) // 3 + i)
            try:
                await engine.run_in_worker(engine.checkpoint)
                messages.append("checkpoint written on a full disk?")
            except StoreError as exc:
                messages.append(f"checkpoint: {exc}")
            store._conn.execute("PRAGMA max_page_count = 1073741823")  # space is back
            for tick in ticks[len(ticks) * 2 // 3:]:
                await engine.handle(tick)
            await engine.stop()
            return engine

    with Lines("cryptotech.engine") as log:
        engine = asyncio.run(go())
    with Store(s.store.path) as store:
        for coin in ("btc", "eth"):
            stored |= {(coin, t.epoch) for _, t in store.ticks_after(coin, 0)}
    clear = [line for line in log.lines if "tick not stored" in line]
    for i in refused:
        row.count(any("full" in line for line in clear), f"tick {i}: no clear error")
    checkpoint_refused = any("full" in m for m in messages)
    row.count(checkpoint_refused, f"checkpoint on a full disk: {messages}")
    # the reference saw only the ticks that were stored: the learners must agree with it
    kept = [t for i, t in enumerate(ticks) if i not in set(refused)]
    ref = _settings(base / "full-reference", candidates)
    run_engine(ref, kept)
    same = stored_predictions(s.store.path) == stored_predictions(ref.store.path)
    expected = {(t.coin, t.epoch) for t in kept}
    row.lost = len(expected - stored)
    row.check(len(refused) > 0, "the disk never filled up")
    row.check(stored == expected, f"{len(stored ^ expected)} ticks differ from those committed")
    row.check(same, "after the full disk, the predictions differ from a run that only saw the "
                    "stored ticks (a learner kept a tick that was not stored)")
    healthy, health = _healthy(s.store.path)
    row.check(healthy, health)
    row.check(engine.store_errors == len(refused), "store errors miscounted")
    example = clear[0].split(");")[0].rsplit(": ", 1)[-1] if clear else ""
    row.notes.append(f"{len(refused)} ticks refused while full (log: 'tick not stored "
                     f"(database ...: {example}); restoring the learner from the store'), "
                     f"checkpoint refused; then {len(ticks) - len(ticks) * 2 // 3} ticks "
                     f"stored once space was back; state equal to a run that only saw the "
                     f"stored ticks; integrity and foreign keys ok")
    return row


def run(ctx: Context) -> list[Row]:
    candidates = ctx.pick(["bayes_linear", "hoeffding_tree"], ["bayes_linear"])
    return [_checkpoints(ctx, candidates), _missing_folder(ctx), _read_only(ctx),
            _full_disk(ctx, candidates)]
