"""Section 5, the API and the SSE stream: request rate under load, delivery latency, memory.

1. ``/prever/{moeda}`` under load while the engine learns. The real ``cryptotech demo``
   (bundled data replayed at 3600x through the same engine as ``run``, default candidates)
   is the server process; this process is the load generator: ``CONNS`` keep-alive HTTP/1.1
   connections (raw asyncio, so the client costs little CPU) send requests back to back for
   ``SECONDS`` per round. Rounds alternate ``/moedas`` (a trivial endpoint of the same app:
   no database, a constant answer) and ``/prever/btc`` (one SQLite read, the learner's
   metrics, the answer model), twice each, and the figures are the sums over the rounds of
   each. The ratio ``/prever`` ÷ ``/moedas`` says what a forecast costs beyond the framework.
   The engine keeps learning meanwhile (the ticks it learned per second are reported).
2. SSE delivery with 100 and 1,000 subscribers on one server process (this module run as
   ``--sse-server``: the app under uvicorn, no source, events published by command). This
   process opens the subscribers (asyncio protocols that timestamp every chunk they
   receive) and asks the server to publish ``EVENTS`` events at ``RATE`` per second, each
   carrying ``time.time()`` taken just before ``hub.publish``. Latency = receipt time −
   that time, for every (event, subscriber): publish, render once, fan-out, uvicorn, the
   kernel, and the client's own event loop (which serves all the subscribers: with 1,000 of
   them its queueing is part of the figure).
3. Memory per subscriber: the server's RSS with the subscribers connected (after the
   events) minus its RSS before they connected, divided by their number.

Run alone: ``python benchmarks/bench_api.py [--quick]``. Workers (internal):
``--sse-server``.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import common
from common import fmt

NAME = "api"
TITLE = "6. API and SSE stream (one server process)"
HOST = "127.0.0.1"


def plan(quick: bool) -> dict:
    if quick:
        return {"coins": "btc=bitcoin,eth=ethereum", "seconds": 3.0, "conns": 8,
                "subscribers": [100, 1000], "events": 40, "rate": 20.0}
    return {"coins": None, "seconds": 8.0, "conns": 8,
            "subscribers": [100, 1000], "events": 100, "rate": 20.0}


# -- helpers ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float | None:
    """Resident memory of a process in MB (the helper of ``tests/conftest.py``)."""
    sys.path.insert(0, str(common.REPO / "tests"))
    from conftest import rss_mb as measure

    return measure(pid)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def raise_fd_limit(want: int = 8192) -> None:
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < want:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    except (ImportError, ValueError, OSError):
        pass


def http_get_json(port: int, path: str, timeout: float = 5.0):
    import httpx

    r = httpx.get(f"http://{HOST}:{port}{path}", timeout=timeout)
    return r.status_code, (r.json() if r.headers.get("content-type", "").startswith(
        "application/json") else None)


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.2)
    raise RuntimeError(f"timed out waiting for {what}")


# -- 1. request rate under load ------------------------------------------------------------


async def _load(port: int, path: str, seconds: float, conns: int) -> dict:
    """``conns`` keep-alive connections sending GET ``path`` back to back for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while time.perf_counter() < stop_at:
                t0 = time.perf_counter()
                writer.write(request)
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                await reader.readexactly(length)
                if not head.startswith(b"HTTP/1.1 200"):
                    errors += 1
                latencies.append(time.perf_counter() - t0)
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(conns)))
    wall = time.perf_counter() - started
    return {"requests": len(latencies), "seconds": wall, "errors": errors,
            "latencies": latencies}


def bench_requests(p: dict) -> dict:
    """The real demo process as server, this process as the load generator."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOTECH_")}
    if p["coins"]:
        env["CRYPTOTECH_COINS"] = p["coins"]
    with tempfile.TemporaryDirectory() as tmp:
        log = open(Path(tmp) / "demo.log", "wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "cryptotech.cli", "demo", "--db", str(Path(tmp) / "d.db"),
             "--port", str(port), "--speed", "3600"],
            cwd=tmp, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            common.log("api: waiting for the demo to warm up (one day replayed at once)")
            wait_for(lambda: http_get_json(port, "/prever/btc")[0] == 200, 300, "a forecast")
            rounds = {"/moedas": [], "/prever/btc": []}
            ticks0 = http_get_json(port, "/status")[1]["ticks_processados"]
            t0 = time.perf_counter()
            cpu0 = _cpu_seconds(proc.pid)
            for _ in range(2):
                for path in rounds:
                    rounds[path].append(asyncio.run(_load(port, path, p["seconds"], p["conns"])))
            elapsed = time.perf_counter() - t0
            cpu = _cpu_seconds(proc.pid)
            learned = http_get_json(port, "/status")[1]["ticks_processados"] - ticks0
        finally:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            log.close()
    out = {}
    for path, runs in rounds.items():
        lat = [x for r in runs for x in r["latencies"]]
        seconds = sum(r["seconds"] for r in runs)
        out[path] = {"rps": len(lat) / seconds, "p50_ms": percentile(lat, 50) * 1e3,
                     "p99_ms": percentile(lat, 99) * 1e3, "requests": len(lat),
                     "errors": sum(r["errors"] for r in runs)}
    out["ratio"] = out["/prever/btc"]["rps"] / out["/moedas"]["rps"]
    out["ticks_learned_per_s"] = learned / elapsed
    out["server_cpu_share"] = (cpu - cpu0) / elapsed if cpu is not None and cpu0 is not None else None
    return out


def _cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


# -- 2 and 3. SSE latency and memory ---------------------------------------------------------


def sse_server() -> None:
    """Worker: the app under uvicorn on a free port; commands on stdin, answers on stdout."""
    import threading

    import uvicorn

    from cryptotech.api.app import begin_shutdown, create_app
    from cryptotech.config import Settings
    from cryptotech.hub import Event

    raise_fd_limit()
    tmp = tempfile.mkdtemp()
    settings = Settings(coins={"btc": "bitcoin"}, model={"candidates": ["bayes_linear"]},
                        store={"path": str(Path(tmp) / "sse.db")},
                        api={"max_subscribers": 5000})
    app = create_app(settings, None, status_every=3600)
    sock = socket.socket()
    sock.bind((HOST, 0))
    config = uvicorn.Config(app, lifespan="on", log_level="warning", ws="none",
                            timeout_graceful_shutdown=2, backlog=4096)
    server = uvicorn.Server(config)
    loop_box: list = []

    async def serve() -> None:
        loop_box.append(asyncio.get_running_loop())
        await server.serve(sockets=[sock])

    thread = threading.Thread(target=lambda: asyncio.run(serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    loop = loop_box[0]

    def reply(obj) -> None:
        print(json.dumps(obj), flush=True)

    reply({"port": sock.getsockname()[1], "pid": os.getpid()})
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "subscribers":
            reply({"subscribers": app.state.hub.subscribers})
        elif cmd["cmd"] == "publish":
            gap = 1.0 / cmd["rate"]
            next_at = time.perf_counter()
            for i in range(cmd["n"]):
                next_at += gap
                time.sleep(max(0.0, next_at - time.perf_counter()))

                def publish(i=i) -> None:
                    app.state.hub.publish(Event("bench", {"i": i, "t": time.time()}))

                loop.call_soon_threadsafe(publish)
            reply({"published": cmd["n"]})
        elif cmd["cmd"] == "quit":
            break
    loop.call_soon_threadsafe(begin_shutdown, app)
    server.should_exit = True
    thread.join(15)
    reply({"stopped": not thread.is_alive()})


class _Subscriber(asyncio.Protocol):
    """One SSE subscriber: keeps (receipt time, bytes) of every chunk, parses later."""

    def __init__(self, ready: asyncio.Event | None = None):
        self.chunks: list[tuple[float, bytes]] = []
        self.count = 0
        self.transport = None
        self.ready = ready

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(b"GET /stream HTTP/1.1\r\nHost: bench\r\nAccept: text/event-stream\r\n\r\n")

    def data_received(self, data: bytes) -> None:
        self.chunks.append((time.time(), data))
        self.count += data.count(b'data: {"i":')

    def latencies(self) -> list[float]:
        out = []
        for received, data in self.chunks:
            for match in re.finditer(rb'data: \{"i":\d+,"t":([0-9.e+-]+)\}', data):
                out.append(received - float(match.group(1)))
        return out


async def _subscribe(port: int, n: int) -> list[_Subscriber]:
    loop = asyncio.get_running_loop()
    subs = []
    for start in range(0, n, 100):  # in waves, not to overflow the listen backlog
        batch = await asyncio.gather(*(loop.create_connection(_Subscriber, HOST, port)
                                       for _ in range(min(100, n - start))))
        subs += [protocol for _, protocol in batch]
    return subs


def bench_sse(p: dict) -> list[dict]:
    raise_fd_limit()
    return [_sse_round(p, n) for n in p["subscribers"]]


def _sse_round(p: dict, n: int) -> dict:
    """One SSE server process with ``n`` subscribers: latency, server CPU and memory."""
    proc = subprocess.Popen([sys.executable, __file__, "--sse-server"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)

    def ask(cmd: dict) -> dict:
        proc.stdin.write(json.dumps(cmd) + "\n")
        proc.stdin.flush()
        return json.loads(proc.stdout.readline())

    try:
        hello = json.loads(proc.stdout.readline())
        port, pid = hello["port"], hello["pid"]
        time.sleep(0.5)
        rss_before = rss_mb(pid)
        server_cpu: list = []

        async def run() -> tuple[list[float], float | None, int]:
            subs = await _subscribe(port, n)
            deadline = time.monotonic() + 60
            while ask({"cmd": "subscribers"})["subscribers"] < n:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"only some of {n} subscribers connected")
                await asyncio.sleep(0.1)
            await asyncio.sleep(0.5)
            cpu0, t0 = _cpu_seconds(pid), time.perf_counter()
            # publish from a thread, so this loop keeps receiving meanwhile
            await asyncio.to_thread(ask, {"cmd": "publish", "n": p["events"],
                                          "rate": p["rate"]})
            deadline = time.monotonic() + 60
            while (any(s.count < p["events"] for s in subs)
                   and time.monotonic() < deadline):
                await asyncio.sleep(0.05)
            cpu1, t1 = _cpu_seconds(pid), time.perf_counter()
            server_cpu.append((cpu1 - cpu0) / (t1 - t0) if cpu0 is not None else None)
            rss_after = rss_mb(pid)
            for s in subs:
                s.transport.close()
            lat = [x for s in subs for x in s.latencies()]
            return lat, rss_after, sum(1 for s in subs if s.chunks)

        lat, rss_after, answered = asyncio.run(run())
        expected = n * p["events"]
        row = {
            "subscribers": n, "events": p["events"], "rate": p["rate"],
            "deliveries": len(lat), "expected": expected,
            "p50_ms": (percentile(lat, 50) or 0) * 1e3,
            "p99_ms": (percentile(lat, 99) or 0) * 1e3,
            "max_ms": max(lat) * 1e3 if lat else None,
            "mean_ms": statistics.fmean(lat) * 1e3 if lat else None,
            "server_cpu_share": server_cpu[0],
            "rss_before_mb": rss_before, "rss_after_mb": rss_after,
            "kb_per_subscriber": ((rss_after - rss_before) * 1024 / n)
            if rss_after is not None and rss_before is not None else None,
        }
        ask({"cmd": "quit"})
    finally:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return row


# -- the section ------------------------------------------------------------------------------


def run(ctx) -> dict:
    """``ctx``: the suite's context (``ctx.quick``), or just a bool for quick mode."""
    quick = ctx if isinstance(ctx, bool) else bool(getattr(ctx, "quick", False))
    p = plan(quick)
    common.log("api: requests under load")
    req = bench_requests(p)
    common.log("api: SSE latency and memory")
    sse = bench_sse(p)
    tables = [
        common.table(
            "Requests under load while the engine learns (server: cryptotech demo)",
            ["endpoint", "requests/s", "p50 ms", "p99 ms", "requests", "errors"],
            [[path, fmt(req[path]["rps"], "{:.0f}"), fmt(req[path]["p50_ms"], "{:.2f}"),
              fmt(req[path]["p99_ms"], "{:.2f}"), req[path]["requests"], req[path]["errors"]]
             for path in ("/moedas", "/prever/btc")],
            [f"/prever ÷ /moedas = {req['ratio']:.2f} (same app, same run; rounds alternated)",
             f"{p['conns']} keep-alive connections from a second process, "
             f"{2 * p['seconds']:.0f} s per endpoint; the engine learned "
             f"{req['ticks_learned_per_s']:.0f} ticks/s meanwhile"
             + (f"; server CPU {req['server_cpu_share']:.0%} of one core"
                if req["server_cpu_share"] is not None else "")]),
        common.table(
            "SSE delivery latency and memory (one server process)",
            ["subscribers", "deliveries", "p50 ms", "p99 ms", "max ms", "server CPU",
             "KB / subscriber"],
            [[r["subscribers"], f"{r['deliveries']}/{r['expected']}",
              fmt(r["p50_ms"], "{:.1f}"), fmt(r["p99_ms"], "{:.1f}"), fmt(r["max_ms"], "{:.1f}"),
              fmt(r["server_cpu_share"], "{:.0%}"),
              fmt(r["kb_per_subscriber"], "{:.0f}")] for r in sse],
            [f"{p['events']} events at {p['rate']:g}/s, each timed from just before "
             "hub.publish to its receipt by every subscriber (clients: one asyncio process); "
             "server CPU: share of one core while publishing and delivering",
             "memory: server RSS with the subscribers connected minus before, per subscriber"]),
    ]
    return {"tables": tables, "data": {"requests": req, "sse": sse, "plan": p}, "notes": []}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--sse-server":
        sys.exit(sse_server())
    sys.exit(common.main_single(sys.modules[__name__]))
