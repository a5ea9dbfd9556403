"""5. API input: schemathesis with every check, odd requests, a CSV export of a long range.

The server is the real ``cryptotech run`` process, live: its CoinGecko is the fake one in
this process (demo plan, the planted key), three coins; ``sol`` also holds a long synthetic
history (5-minute predictions with outcomes over years: real rows in the real schema, written
in one transaction, plus a checkpoint so that start-up does not replay them).

* schemathesis (its own command line, a separate process) runs every phase with
  ``--checks all`` over the OpenAPI schema the server publishes (``/stream`` excluded: an
  endless response, its parameters are among the odd requests below). No server error may
  be found; every other check failure is listed (the known ones: a date that matches the
  documented pattern but is not on the calendar, e.g. 30 February, or outside the years
  0001..9999 once in UTC or the configured zone, is a 422 that says so).
* Odd requests, sent byte for byte on a raw socket: oversized, repeated, unknown, badly
  escaped, NUL, invalid UTF-8, injection attempts, huge numbers, wrong methods, odd
  headers. Each must get a 4xx (JSON with a Portuguese ``detalhe`` when the app answers;
  uvicorn's own 400/431 for what never reaches it), never a 5xx, a hang or a dropped line;
  the odd but valid ones (:data:`ACCEPTED`: unknown query parameters, an upper-case coin)
  a 200.
* ``/previsoes/sol?exportar_csv=true`` over the whole history: streamed (first bytes long
  before the last), every row there, the server's memory (RSS, sampled every 50 ms, with
  ``MALLOC_ARENA_MAX=2``) growing by a small fraction of the file.
"""

from __future__ import annotations

import json
import math
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from cryptotech.config import ModelSettings
from cryptotech.learning.learner import CoinLearner, dumps
from cryptotech.store import Store
from cryptotech.testing.fake_coingecko import FakeCoinGecko, offset_to_now
from reliability.core import Context, Row, say
from reliability.process import Server

COINS = "btc=bitcoin,eth=ethereum,sol=solana"
# the server's model settings (its env below): a checkpoint of other settings is refused and
# start-up would replay the whole long history instead
MODEL = ModelSettings(candidates=["bayes_linear"], horizons=["1h"])


# -- a long history ---------------------------------------------------------------------------


def long_history(path: Path, rows: int) -> None:
    """``rows`` 5-minute sol ticks with a prediction each (outcomes for all but the last 12),
    from 2020-01-01, then a checkpoint covering them."""
    with Store(path):
        pass  # the schema
    t0 = 1577836800.0
    conn = sqlite3.connect(path)
    try:
        conn.execute("BEGIN")
        first_tick = (conn.execute("SELECT COALESCE(MAX(id), 0) FROM ticks").fetchone()[0] + 1)
        first_event = (conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0] + 1)
        price = [100.0 * math.exp(0.01 * math.sin(i / 50.0) + i * 1e-6) for i in range(rows)]
        conn.executemany("INSERT INTO ticks (id, coin, ts, price) VALUES (?, 'sol', ?, ?)",
                         ((first_tick + i, t0 + 300 * i, price[i]) for i in range(rows)))
        data = json.dumps({"coin": "sol", "model": "persistence"})
        # events: the prediction of tick i has id first_event + i, its outcome event
        # first_event + rows + i
        conn.executemany("INSERT INTO events (id, kind, coin, ts, data) VALUES "
                         "(?, 'previsao', 'sol', ?, ?)",
                         ((first_event + i, t0 + 300 * i, data) for i in range(rows)))
        conn.executemany(
            "INSERT INTO predictions (id, coin, made_at, target_at, price, forecast, lower,"
            " upper, model, tick_id) VALUES (?, 'sol', ?, ?, ?, ?, ?, ?, 'persistence', ?)",
            ((first_event + i, t0 + 300 * i, t0 + 300 * i + 3600, price[i], price[i],
              price[i] * 0.98, price[i] * 1.02, first_tick + i) for i in range(rows)))
        settled = rows - 12
        conn.executemany("INSERT INTO events (id, kind, coin, ts, data) VALUES "
                         "(?, 'resultado', 'sol', ?, ?)",
                         ((first_event + rows + i, t0 + 300 * (i + 12), data)
                          for i in range(settled)))
        conn.executemany(
            "INSERT INTO outcomes (prediction_id, actual, error, covered, settled_at, event_id)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            ((first_event + i, price[i + 12], price[i + 12] - price[i],
              int(abs(price[i + 12] / price[i] - 1) < 0.02), t0 + 300 * (i + 12),
              first_event + rows + i) for i in range(settled)))
        conn.execute("COMMIT")
    finally:
        conn.close()
    import platform

    import river

    with Store(path) as store:
        store.save_checkpoint("sol", first_tick + rows - 1, dumps(CoinLearner("sol", MODEL)),
                              river.__version__, platform.python_version())


# -- odd requests -----------------------------------------------------------------------------


def odd_requests() -> list[tuple[str, bytes]]:
    """(label, the request's first line and headers, as bytes)."""

    def get(target: str, *headers: str, method: str = "GET") -> bytes:
        lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", *headers, "Connection: close"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")

    p = "/previsoes/btc"
    cases = [
        ("query of 100 KB", get(f"{p}?inicio={'a' * 100_000}")),
        ("query of 8 KB in one value", get(f"{p}?inicio={'1' * 8_000}")),
        ("1000 unknown parameters", get(p + "?" + "&".join(f"p{i}=1" for i in range(1000)))),
        ("unknown parameter", get(f"{p}?inico=2025-01-01T00:00")),
        ("cache-buster", get(f"{p}?_=123&limite=1")),
        ("parameter given twice", get(f"{p}?limite=10&limite=20")),
        ("limite=0", get(f"{p}?limite=0")),
        ("limite=-1", get(f"{p}?limite=-1")),
        ("limite=10^30", get(f"{p}?limite=1{'0' * 30}")),
        ("limite=1e309", get(f"{p}?limite=1e309")),
        ("limite=NaN", get(f"{p}?limite=NaN")),
        ("limite=Infinity", get(f"{p}?limite=Infinity")),
        ("limite=0x10", get(f"{p}?limite=0x10")),
        ("limite in full-width digits", get(f"{p}?limite=%EF%BC%91%EF%BC%92")),
        ("apos_id=2^70", get(f"{p}?apos_id={2 ** 70}")),
        ("apos_id=-1", get(f"{p}?apos_id=-1")),
        ("inicio=30 February", get(f"{p}?inicio=2025-02-30T10:00")),
        ("inicio=month 13", get(f"{p}?inicio=2025-13-01T00:00")),
        ("inicio=year 0", get(f"{p}?inicio=0000-01-01T00:00")),
        ("inicio after fim", get(f"{p}?inicio=2025-01-02T00:00&fim=2025-01-01T00:00")),
        ("inicio with a bad offset", get(f"{p}?inicio=2025-01-01T00:00%2B25:00")),
        ("exportar_csv=maybe", get(f"{p}?exportar_csv=maybe")),
        ("NUL in a value", get(f"{p}?inicio=2025%00-01-01T00:00")),
        ("invalid UTF-8 in a value", get(f"{p}?inicio=%FF%FE")),
        ("overlong UTF-8", get(f"{p}?inicio=%C0%AE%C0%AE")),
        ("bad percent escape", get(f"{p}?inicio=%ZZ")),
        ("raw non-ASCII bytes", get(f"{p}?inicio=2025-01-01T00:00\udcc3\udca9")),
        ("CRLF injection", get(f"{p}?inicio=2025%0D%0AX-Injetado:%201")),
        ("SQL injection", get(f"{p}?inicio=%27%20OR%201%3D1%20--")),
        ("path traversal", get("/prever/..%2F..%2Fetc%2Fpasswd")),
        ("coin in upper case", get("/prever/BTC")),
        ("coin not configured", get("/prever/doge")),
        ("coin of 5000 characters", get("/prever/" + "b" * 5000)),
        ("NUL in the path", get("/prever/btc%00")),
        ("path of 20 KB", get("/" + "x" * 20_000)),
        ("moedas of 10,000 commas", get("/stream?moedas=" + "," * 10_000)),
        ("moedas unknown", get("/stream?moedas=btc,doge")),
        ("ultimo_id=abc", get("/stream?ultimo_id=abc")),
        ("Last-Event-ID: -1", get("/stream", "Last-Event-ID: -1")),
        ("Last-Event-ID: 1e5", get("/stream", "Last-Event-ID: 1e5")),
        ("Last-Event-ID of 2^70", get("/stream", f"Last-Event-ID: {2 ** 70}")),
        ("Last-Event-ID non-ASCII", get("/stream", "Last-Event-ID: \udcd9\udca3")),
        ("header line without a colon", get("/status", "Sem-dois-pontos")),
        ("NUL in a header value", get("/status", "X-Nulo: a\x00b")),
        ("space before a header's colon", get("/status", "X-Espaco : 1")),
        ("POST /status", get("/status", "Content-Length: 0", method="POST")),
        ("DELETE /previsoes/btc", get(p, method="DELETE")),
        ("PUT /prever/btc", get("/prever/btc", "Content-Length: 0", method="PUT")),
        ("TRACE /", get("/", method="TRACE")),
        ("unknown method", get("/status", method="BREW")),
        ("absolute-form target", get("http://example.com/status")),
        ("no Host header", b"GET /status HTTP/1.1\r\nConnection: close\r\n\r\n"),
        ("two Content-Length headers", get("/status", "Content-Length: 0",
                                           "Content-Length: 5")),
        ("chunked body with a bad chunk size", get("/status", "Transfer-Encoding: chunked")
         + b"zz\r\nabc\r\n0\r\n\r\n"),
    ]
    return cases


#: Odd but valid: answered 200 (unknown query parameters are ignored; a coin in any case is
#: that coin). Every other odd request gets a 4xx.
ACCEPTED = {"1000 unknown parameters", "unknown parameter", "cache-buster", "coin in upper case"}


def send_raw(port: int, request: bytes, timeout: float = 10.0) -> tuple[int | None, bytes, bytes]:
    """(status, headers, body) of one raw request; status None if no answer came."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendall(request)
        except OSError:
            pass
        data = b""
        deadline = time.monotonic() + timeout
        try:
            while time.monotonic() < deadline:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
                if b"\r\n\r\n" in data and len(data) > 1_000_000:
                    break
        except (TimeoutError, ConnectionResetError):
            pass
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return None, head, body
    return status, head, body


# -- the run ----------------------------------------------------------------------------------


def _schemathesis(ctx: Context, server: Server, folder: Path) -> Row:
    row = Row("5a. schemathesis, every check", "inputs", lost=None)
    report = folder / "schemathesis.json"
    examples = ctx.pick(100, 25)
    budget = ctx.pick(["--max-time", "180"], [])  # full: fuzz and walk links for 3 minutes
    # the stateful phase follows the pagination links through the long history: slow, so
    # the short run leaves it out
    phases = ctx.pick("examples,coverage,fuzzing,stateful", "examples,coverage,fuzzing")
    cmd = [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json",
           "--checks", "all", "--phases", phases,
           "--max-examples", str(examples), *budget, "--exclude-path", "/stream",
           "--seed", str(ctx.seed), "--generation-deterministic", "--request-timeout", "20",
           "--workers", "1", "--report", "ndjson", "--report-ndjson-path", str(report),
           "--suppress-health-check", "all", "--no-color"]
    started = time.monotonic()
    with open(ctx.log_file("schemathesis"), "wb") as log:
        proc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=folder,
                              timeout=ctx.pick(900, 240))
    took = time.monotonic() - started
    cases, failures = _read_report(report)
    server_errors = [f for f in failures if f["check"] == "not_a_server_error"]
    known = [f for f in failures if _known(f)]
    other = [f for f in failures if f not in server_errors and f not in known]
    failed_cases = {f["case"] for f in failures if f not in known}
    for case in range(cases):
        row.count(case not in failed_cases)
    row.check(cases > 0, f"schemathesis ran no case (exit {proc.returncode}); see its log")
    row.check(not server_errors, f"{len(server_errors)} server errors: "
                                 f"{[f['title'] for f in server_errors[:3]]}")
    row.check(not other, f"{len(other)} check failures: "
                         + "; ".join(f"{f['check']} on {f['operation']}: {f['title']}"
                                     for f in other[:4]))
    row.notes.append(
        f"schemathesis {_version()} --checks all, phases {phases.replace(',', ', ')}, "
        f"{examples} examples per operation, {took:.0f} s: {cases} requests, "
        f"{len(server_errors)} server errors"
        + (f"; allowed: {len(known)} schema-valid requests refused by a documented rule "
           f"({'; '.join(sorted({_known(f) or '' for f in known}))})"
           if known else ""))
    row.data = {"cases": cases, "failures": failures[:50], "exit": proc.returncode}
    say(f"  api: schemathesis {cases} requests, {len(failures)} check failures")
    return row


def _version() -> str:
    from importlib.metadata import version

    return version("schemathesis")


KNOWN = {  # documented rules an OpenAPI schema cannot express; answered with a clear 422
    "data inexistente": "a date of the documented shape that is not on the calendar",
    "fora do intervalo aceito": "a date beyond the years 0001..9999 in UTC or the zone",
    "deve ser igual ou posterior a inicio": "fim before inicio",
}


#: The alert rules' write API (POST/PATCH/DELETE /alertas/regras) is off on this server: it
#: runs without CRYPTOTECH_ALERTAS_TOKEN, so the API is read-only and every write answers the
#: documented 403 ("desativada"), with or without an Authorization header (no token could be
#: accepted; a 401 would tell the client to send one). schemathesis's missing_required_header
#: wants 401 for a request without the declared bearer header: that holds when writing is on
#: (tests/test_alerts_api.py), which this read-only scenario does not cover.
WRITE_DISABLED = "desativada (somente leitura)"


def _known(failure: dict[str, Any]) -> str | None:
    """Which documented rule a schema-valid request broke (None: not one of them)."""
    if (failure["check"] == "missing_required_header" and failure.get("status") == 403
            and WRITE_DISABLED in failure.get("body", "")
            and failure.get("operation", "").split(" ")[0] in ("POST", "PATCH", "DELETE")
            and "/alertas/regras" in failure.get("operation", "")):
        return "the alert rules' write API is off here (no token): a 403 saying so"
    if failure["check"] != "positive_data_acceptance" or failure.get("status") != 422:
        return None
    return next((f"{why}: a 422 saying so" for text, why in KNOWN.items()
                 if text in failure.get("body", "")), None)


def _read_report(path: Path) -> tuple[int, list[dict[str, Any]]]:
    """(requests made, failures) from schemathesis's NDJSON events."""
    cases = 0
    failures: list[dict[str, Any]] = []
    if not path.exists():
        return 0, []
    seen: set[tuple[str, str, str]] = set()
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        for kind, payload in event.items():
            if kind != "ScenarioFinished":
                continue
            recorder = payload.get("recorder") or {}
            cases += len(recorder.get("interactions") or {})
            for case_id, checks in (recorder.get("checks") or {}).items():
                for check in checks:
                    if str(check.get("status", "")).lower() != "failure":
                        continue
                    failure = check.get("failure_info") or {}
                    info = failure.get("failure") or {}
                    response = (recorder.get("interactions") or {}).get(case_id, {}) \
                        .get("response") or {}
                    body = _body(response)
                    key = (check.get("name", ""), info.get("title", ""), case_id)
                    if key in seen:
                        continue
                    seen.add(key)
                    failures.append({"check": check.get("name", ""), "case": case_id,
                                     "title": info.get("title", ""),
                                     "operation": info.get("operation", ""),
                                     "status": response.get("status_code"), "body": body})
    # every failure's case is one of the cases counted
    return cases, failures


def _body(response: dict[str, Any]) -> str:
    import base64

    content = response.get("content") or response.get("body") or ""
    if isinstance(content, dict):
        raw = content.get("$base64") or content.get("base64")
        content = (base64.b64decode(raw).decode("utf-8", "replace") if raw
                   else content.get("string", ""))
    return str(content)[:500]


def _odd(ctx: Context, server: Server) -> Row:
    row = Row("5b. oversized and odd requests", "inputs", lost=None)
    statuses: dict[int | None, int] = {}
    for label, request in odd_requests():
        status, head, body = send_raw(server.port, request)
        ctx.watch.whole(head + body, label)
        statuses[status] = statuses.get(status, 0) + 1
        accepted = label in ACCEPTED
        ok = status == 200 if accepted else status is not None and 400 <= status < 500
        if ok and b"application/json" in head.lower():
            try:
                answer = json.loads(body)
                # a refusal says why in Portuguese; an accepted request gets its JSON answer
                detail = answer if accepted else answer["detalhe"]
                ok = isinstance(detail, dict) if accepted else isinstance(detail, str) and bool(
                    detail)
            except (ValueError, KeyError, TypeError):
                ok = False
        if label == "CRLF injection":
            ok = ok and b"x-injetado" not in head.lower()
        row.count(ok, f"{label}: HTTP {status} {body[:120]!r}")
    row.check(server.proc is not None and server.proc.poll() is None, "the server died")
    row.notes.append("answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(
        statuses.items(), key=lambda kv: (kv[0] is None, kv[0] or 0))) +
        "; JSON with a Portuguese `detalhe` when the app answers, uvicorn's 400/431 for what "
        "never reaches it; none 5xx")
    return row


def _csv(ctx: Context, server: Server, rows: int) -> Row:
    row = Row("5c. CSV export of a very long range", "inputs", lost=0)
    url = "/previsoes/sol?exportar_csv=true&inicio=2019-12-31T00:00&horizonte=1h"  # its rows: 1 h
    samples: list[float] = []
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            value = server.rss()
            if value is not None:
                samples.append(value)
            time.sleep(0.05)

    before = [server.rss() or 0.0 for _ in range(5)]
    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    started = time.monotonic()
    first = None
    size = lines = 0
    tail = b""
    try:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            with client.stream("GET", url) as response:
                status = response.status_code
                for chunk in response.iter_bytes():
                    if first is None:
                        first = time.monotonic() - started
                    size += len(chunk)
                    lines += chunk.count(b"\n")
                    ctx.watch.response("csv", chunk, url)
                    tail = (tail + chunk)[-300:]
    finally:
        done.set()
        thread.join(5)
    took = time.monotonic() - started
    base = max(before)
    peak = max(samples, default=base)
    growth = peak - base
    mb = size / 1024**2
    row.count(status == 200, f"HTTP {status}")
    row.lost = max(0, rows + 1 - lines)  # the header and one line per prediction, at least
    row.check(lines >= rows + 1, f"{lines} lines for {rows} predictions")
    row.check(first is not None and first < took / 4,
              f"first bytes after {first} s of {took:.1f} s: not streamed")
    row.check(growth <= max(10.0, mb / 5), f"server memory grew {growth:.1f} MB for a "
                                           f"{mb:.0f} MB file")
    row.notes.append(f"{lines - 1} rows, {mb:.0f} MB in {took:.1f} s, first bytes after "
                     f"{(first or 0) * 1000:.0f} ms; server RSS {base:.0f} -> peak {peak:.0f} MB "
                     f"({growth:+.1f} MB)")
    row.data = {"bytes": size, "seconds": round(took, 2), "rss_growth_mb": round(growth, 1)}
    return row


def run(ctx: Context) -> list[Row]:
    folder = ctx.folder("api")
    db = folder / "api.db"
    history = ctx.pick(500_000, 150_000)
    long_history(db, history)
    with FakeCoinGecko(api_key=ctx.key, time_offset=offset_to_now()) as fake:
        server = Server(ctx, "api-run", db, ["run"], env={
            "CRYPTOTECH_COINS": COINS, "CRYPTOTECH_MODEL__CANDIDATES": '["bayes_linear"]',
            "CRYPTOTECH_MODEL__HORIZONS": '["1h"]',  # the stored history is of the 1 h horizon
            "CRYPTOTECH_SOURCE__BASE_URL": fake.url, "CRYPTOTECH_SOURCE__PLAN": "demo",
            "CRYPTOTECH_SOURCE__POLL_INTERVAL": "1s",
            # as in the SSE soak: one malloc arena per thread-pool thread would show as RSS
            # steps unrelated to what the export keeps (see reliability.stream)
            "MALLOC_ARENA_MAX": "2"})
        server.start()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not all(
                    server.get(f"/prever/{c}").status_code == 200 for c in ("btc", "eth", "sol")):
                time.sleep(0.1)  # polling the server, bounded by the deadline above
            rows = [_schemathesis(ctx, server, folder), _odd(ctx, server),
                    _csv(ctx, server, history)]
            status = server.status()
            rows[0].check(status["situacao"] == "ok", f"/status after the fuzzing: {status}")
        finally:
            code, took = server.terminate()
    rows[2].check(code is not None and took < 5, f"the server took {took:.1f} s to stop")
    return rows
