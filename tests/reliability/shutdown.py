"""6. Shutdown: SIGTERM or SIGINT with open streams while the engine writes, beside a CPU
hog; restart; resume.

The real ``cryptotech demo`` replays two coins as fast as it can (``--speed 1e9``): the
engine commits ticks back to back, so a write is in flight whenever the signal comes (the
ticks committed in the 0.2 s before it are counted as evidence). Three SSE clients (all
coins, btc only, eth only) read throughout, and a CPU hog (one busy process per core) runs
beside the server for the whole scenario (killed at its end). Rounds alternate SIGTERM and
SIGINT (Ctrl+C). In each round, at a random moment:

* the signal; the process must exit within 5 s of the recorded time the signal was sent
  (exit 0, or by the re-raised signal);
* its log says ``stopping`` once and ``stopped`` once, both within those 5 s;
* every open stream ends with the ``adeus`` event;
* the final checkpoint of each coin covers every committed tick (its ``last_tick_id`` is the
  coin's newest stored tick), so the next start replays 0 stored ticks (``/status``);
* the clients reconnect to the restarted process with ``Last-Event-ID`` and get every
  stored event after it, once and in order (checked against the database over all rounds).
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime

from conftest import ticks_in

from reliability.core import Context, Row
from reliability.process import Server
from reliability.sse import SseConnection
from reliability.stream import STORED

FILTERS = (None, "btc", "eth")
SIGNALS = (signal.SIGTERM, signal.SIGINT)
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO cryptotech\.api: (stopping|stopped)")


def start_hog() -> list[subprocess.Popen]:
    """One busy process per core (bounded: the caller kills them in ``finally``)."""
    return [subprocess.Popen([sys.executable, "-c", "while True: pass"])
            for _ in range(os.cpu_count() or 2)]


def stop_hog(hog: list[subprocess.Popen]) -> None:
    for proc in hog:
        proc.kill()
    for proc in hog:
        proc.wait(10)


def send(server: Server, sig: signal.Signals, timeout: float = 15) -> tuple[int | None, float]:
    """Send ``sig``; (exit code, seconds from sending it to the exit). Killed if it hangs."""
    assert server.proc is not None
    server.client.close()  # its kept-alive connection would outlive the server
    began = time.monotonic()
    server.proc.send_signal(sig)
    try:
        code = server.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        server.proc.wait(10)
        code = None
    return code, time.monotonic() - began


def stop_lines(log_text: str, since: float) -> list[tuple[str, float]]:
    """("stopping" | "stopped", wall time) of the server's log lines at or after ``since``."""
    out = []
    for line in log_text.splitlines():
        match = LOG_TIME.match(line)
        if match:
            at = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            if at >= since - 0.001:
                out.append((match.group(2), at))
    return out


@dataclass
class Client:
    coins: str | None
    last: int | None = None
    ids: list[int] = field(default_factory=list)
    farewells: int = 0
    ended: int = 0
    other: list[str] = field(default_factory=list)


async def follow(client: Client, port: int, watch, stop: asyncio.Event) -> None:
    """Read one server's stream (reconnecting if dropped) until it says goodbye."""
    while not stop.is_set():
        conn = SseConnection("127.0.0.1", port, query={"moedas": client.coins}
                             if client.coins else None, last_id=client.last, watch=watch)
        try:
            if await conn.open() != 200:
                await asyncio.sleep(0.2)
                continue
            async with aclosing(conn.events()) as events:
                async for ev in events:
                    if ev.id is not None and ev.event in STORED:
                        client.ids.append(ev.id)
                        client.last = ev.id
                    elif ev.event == "adeus":
                        client.farewells += 1
                        return
                    elif ev.event == "removido":  # fell behind: resume at once
                        break
                    elif ev.event not in ("metricas", "status"):
                        client.other.append(ev.event)
            client.ended += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            await asyncio.sleep(0.1)
        finally:
            conn.close()


def _checkpoints(db) -> dict[str, tuple[int, float, int]]:
    """Per coin: (newest checkpoint's last_tick_id, its created_at, the newest tick id)."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        out = {}
        for coin in ("btc", "eth"):
            cp = conn.execute("SELECT last_tick_id, created_at FROM checkpoints WHERE coin = ?"
                              " ORDER BY id DESC LIMIT 1", (coin,)).fetchone()
            newest = conn.execute("SELECT MAX(id) FROM ticks WHERE coin = ?",
                                  (coin,)).fetchone()[0]
            out[coin] = (cp[0] if cp else -1, cp[1] if cp else 0.0, newest or 0)
        return out
    finally:
        conn.close()


async def scenario(ctx: Context, row: Row) -> dict:
    rng = random.Random(ctx.seed + 6)
    db = ctx.folder("shutdown") / "shutdown.db"
    rounds = ctx.pick(6, 2)
    clients = [Client(c) for c in FILTERS]
    exits: dict[str, list[float]] = {sig.name: [] for sig in SIGNALS}
    in_flight: list[int] = []
    replayed: list[str] = []
    goodbyes: list[int] = []
    zero_replays: list[bool] = []
    hog = start_hog()
    try:
        for n in range(rounds + 1):  # the last start only checks the resume and the recovery
            server = Server(ctx, f"shutdown-demo-{n}", db,
                            ["demo", "--speed", "1e9", "--laps", "2"],
                            env={"CRYPTOTECH_COINS": "btc=bitcoin,eth=ethereum",
                                 "CRYPTOTECH_MODEL__CANDIDATES": '["bayes_linear"]'})
            await asyncio.to_thread(server.start)
            stop = asyncio.Event()
            readers = [asyncio.create_task(follow(c, server.port, ctx.watch, stop))
                       for c in clients]
            try:
                status = await asyncio.to_thread(server.status)
                recovery = {c: v.get("recuperacao") for c, v in status["moedas"].items()}
                if n > 0:
                    replayed.append("; ".join(f"{c}: {r}" for c, r in recovery.items()))
                    nothing = all(r and "; 0 preços guardados reprocessados" in r
                                  for r in recovery.values())
                    zero_replays.append(nothing)
                    row.check(nothing, f"restart {n}: the final checkpoint did not cover every "
                                       f"tick: {recovery}")
                counts = [len(c.ids) for c in clients]
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline and any(
                        len(c.ids) <= k for c, k in zip(clients, counts)):
                    await asyncio.sleep(0.05)  # every client is receiving again
                if n == rounds:
                    break
                await asyncio.sleep(rng.uniform(0.3, 2.0))
                before = ticks_in(db)
                await asyncio.sleep(0.2)
                in_flight.append(ticks_in(db) - before)
                farewells = [c.farewells for c in clients]
                sig = SIGNALS[n % len(SIGNALS)]
                signalled = time.time()  # the recorded moment the exit time is measured from
                code, took = await asyncio.to_thread(send, server, sig)
                exits[sig.name].append(took)
                await asyncio.wait_for(asyncio.gather(*readers, return_exceptions=True), 10)
                lines = stop_lines(server.log.read_text(errors="replace"), signalled)
                said = [what for what, _ in lines]
                in_time = all(at - signalled < 5 for _, at in lines)
                cps = _checkpoints(db)
                complete = all(cp == newest for cp, _, newest in cps.values())
                said_goodbye = all(c.farewells > f for c, f in zip(clients, farewells))
                goodbyes.append(sum(c.farewells > f for c, f in zip(clients, farewells)))
                row.count(code in (0, -sig, 128 + sig) and took < 5 and complete and said_goodbye
                          and said == ["stopping", "stopped"] and in_time,
                          f"{sig.name} {n + 1}: exit {code} after {took:.2f} s, log {lines}, "
                          f"final checkpoint {'complete' if complete else f'INCOMPLETE {cps}'}, "
                          f"adeus to {sum(c.farewells > f for c, f in zip(clients, farewells))}"
                          "/3 streams")
            finally:
                stop.set()
                for task in readers:
                    task.cancel()
                await asyncio.gather(*readers, return_exceptions=True)
                await asyncio.to_thread(server.stop)
    finally:
        stop_hog(hog)
    return {"clients": clients, "exits": exits, "in_flight": in_flight, "db": db,
            "replayed": replayed, "goodbyes": goodbyes, "zero_replays": zero_replays}


def run(ctx: Context) -> list[Row]:
    row = Row("6. SIGTERM with open streams and a write in flight", "faults")
    result = asyncio.run(scenario(ctx, row))
    db = result["db"]
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        coin_of = dict(conn.execute("SELECT id, coin FROM events"))
        integrity = conn.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        conn.close()
    ids = sorted(coin_of)
    lost = gaps = dups = 0
    for c in result["clients"]:
        if not c.ids:
            row.check(False, f"client {c.coins or 'all'} received nothing")
            continue
        wanted = set(c.coins.split(",")) if c.coins else None
        expected = [i for i in ids if c.ids[0] <= i <= c.ids[-1]
                    and (wanted is None or coin_of[i] in wanted)]
        missing = len(set(expected) - set(c.ids))
        doubled = len(c.ids) - len(set(c.ids))
        lost += missing + doubled
        gaps += missing
        dups += doubled
        row.check(c.ids == expected, f"client {c.coins or 'all'}: {missing} missing, "
                                     f"{doubled} doubled across the restarts")
        row.check(not c.other, f"client {c.coins or 'all'}: unexpected events {c.other[:3]}")
    row.lost = lost
    row.check(integrity == "ok", f"integrity_check: {integrity}")
    exits = result["exits"]
    every = [e for taken in exits.values() for e in taken]
    received = sum(len(c.ids) for c in result["clients"])
    times = "; ".join(f"{name} {min(t):.2f}-{max(t):.2f} s" for name, t in exits.items() if t)
    row.notes.append(
        f"beside a CPU hog ({os.cpu_count()} busy processes): exits in {times} (limit 5 s) while "
        f"committing ({min(result['in_flight'], default=0)}-{max(result['in_flight'], default=0)}"
        f" ticks in the 0.2 s before each signal); one 'stopping' and one 'stopped' log line "
        f"each; adeus on {sum(result['goodbyes'])} of {len(FILTERS) * len(every)} open streams; "
        f"restarts that replayed 0 stored ticks (the final checkpoint covered every commit): "
        f"{sum(result['zero_replays'])} of {len(result['zero_replays'])}; {len(FILTERS)} "
        f"clients resumed across "
        f"{len(every)} restarts: {received} events, {gaps} gaps, {dups} duplicates")
    row.data = {"exit_seconds": {name: [round(e, 2) for e in t] for name, t in exits.items()},
                "in_flight": result["in_flight"], "recovery": result["replayed"]}
    return [row]
