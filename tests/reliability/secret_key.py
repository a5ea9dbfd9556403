"""7. Secrets: after everything else, the planted API key is nowhere it should not be.

The key (``CRYPTOTECH_COINGECKO_API_KEY``, a fake one made at the start of the run) was in
the environment of every ``cryptotech`` process the suite started and in the settings of its
in-process REST source. This scenario first runs ``cryptotech run`` once more against the
fake CoinGecko with the key *and* upstream errors that quote the key back (a 500, a 429 and a
401 whose messages contain it, as a careless proxy might), then asks every page of the API
and the dashboard, and reads a bit of ``/stream``. Then it looks for the key in:

* every log line: the in-process log (every logger, DEBUG while the REST source ran, with
  the raw log arguments) and the output of every child process;
* every response: every byte any client of the suite received (scanned as they arrived);
* every database row (each column of each table of each SQLite file), and the raw bytes of
  every file the suite wrote (databases with their WAL, reports, exports).

The only place the key may be is the ``x-cg-demo-api-key`` header the fake received (checked
by the upstream scenario: never in a URL).
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from cryptotech.testing.fake_coingecko import FakeCoinGecko, offset_to_now
from reliability.core import Context, Row
from reliability.process import Server

PAGES = ["/", "/status", "/moedas", "/prever/btc", "/previsoes/btc",
         "/previsoes/btc?exportar_csv=true", "/metricas/btc", "/docs", "/redoc",
         "/openapi.json", "/painel/", "/nao-existe", "/prever/doge"]


def _in_auth_wait(status: dict) -> bool:
    """Whether the source's next call is minutes away (the wait after a refused key)."""
    next_call = (status.get("fonte") or {}).get("proxima_consulta_em")
    return next_call is not None and (
        datetime.fromisoformat(next_call) - datetime.now(timezone.utc) > timedelta(minutes=5))


def _noisy_run(ctx: Context) -> int:
    """``cryptotech run`` with the key, upstream errors that echo it, every page asked."""
    folder = ctx.folder("secrets")
    asked = 0
    with FakeCoinGecko(api_key=ctx.key, time_offset=offset_to_now()) as fake:
        fake.fail_next("500", echo_key=True)
        fake.fail_next("429", echo_key=True)
        server = Server(ctx, "secrets-run", folder / "secrets.db", ["run"], env={
            "CRYPTOTECH_COINS": "btc=bitcoin,eth=ethereum",
            "CRYPTOTECH_MODEL__CANDIDATES": '["bayes_linear"]',
            "CRYPTOTECH_SOURCE__BASE_URL": fake.url, "CRYPTOTECH_SOURCE__PLAN": "demo",
            "CRYPTOTECH_SOURCE__POLL_INTERVAL": "200ms"})
        server.start()
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and server.get("/prever/btc").status_code != 200:
                time.sleep(0.2)
            fake.fail_next("401", code=10099, echo_key=True)  # last: then a 10-minute wait
            deadline = time.monotonic() + 30  # until every fault is served and the refusal
            while time.monotonic() < deadline and not (  # taken in (the long wait began)
                    fake.pending_faults == 0 and _in_auth_wait(server.status())):
                time.sleep(0.1)
            for page in PAGES:
                server.get(page)
                asked += 1
            with server.client.stream("GET", "/stream", headers={"Last-Event-ID": "1"}) as r:
                got = 0
                for chunk in r.iter_bytes():
                    ctx.watch.response("secrets-stream", chunk, "/stream")
                    got += len(chunk)
                    if got > 200_000:
                        break
            asked += 1
            echoed = [r for r in fake.requests if r.fault is not None and r.fault.echo_key]
            if len(echoed) < 3:
                raise RuntimeError(f"only {len(echoed)} of the 3 echoing errors were served")
        finally:
            server.stop()
    return asked


def _scan_db(path: Path, key: str) -> tuple[int, list[str]]:
    rows, hits = 0, []
    needle = key.encode()
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return 0, []
    try:
        tables = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'")]
        for table in tables:
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                rows += 1
                for value in row:
                    if (isinstance(value, str) and key in value) or (
                            isinstance(value, bytes) and needle in value):
                        hits.append(f"{path.name}:{table}")
    except sqlite3.Error:
        pass
    finally:
        conn.close()
    return rows, hits


def _scan_file(path: Path, needle: bytes) -> bool:
    tail = b""
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            if needle in tail + chunk:
                return True
            tail = chunk[-len(needle):]
    return False


def run(ctx: Context) -> list[Row]:
    row = Row("7. planted API key: logs, responses, database rows", "places", lost=None)
    asked = _noisy_run(ctx)
    for handler in __import__("logging").getLogger().handlers:
        handler.flush()
    key = ctx.key
    needle = key.encode()
    files = [p for p in ctx.workdir.rglob("*") if p.is_file()]
    lines = db_rows = 0
    hits: list[str] = []
    for path in files:
        if path.suffix in (".log", ".txt"):
            text = path.read_text(encoding="utf-8", errors="replace")
            for line in text.splitlines():
                lines += 1
                row.count(key not in line, f"log line in {path.name}")
        elif path.suffix == ".db":
            n, found = _scan_db(path, key)
            db_rows += n
            for _ in range(n - len(found)):
                row.count(True)
            for where in found:
                row.count(False, f"database row in {where}")
        if _scan_file(path, needle):
            hits.append(path.name)
    responses = ctx.watch.responses
    for _ in range(responses):
        row.count(True)
    for where in ctx.watch.hits:
        row.count(False, f"in a {where}")
        row.tried -= 1  # that response was already counted as clean above
        row.ok -= 1
    row.check(not hits, f"the key is in the bytes of {sorted(set(hits))[:5]}")
    row.check(lines > 0 and db_rows > 0 and responses > 0, "nothing to scan")
    row.notes.append(
        f"after all of the above plus a `run` whose upstream echoed the key in 3 errors and "
        f"{asked} pages asked: {lines} log lines, {responses} responses "
        f"({ctx.watch.response_bytes / 1024**2:.0f} MB), {db_rows} database rows in "
        f"{sum(p.suffix == '.db' for p in files)} databases, and the raw bytes of "
        f"{len(files)} files: the key in "
        f"{'none' if row.ok == row.tried and not hits else f'{row.tried - row.ok} + {len(hits)} files'}")
    return [row]
