"""``GET /stream`` against a real uvicorn with real SSE clients (httpx-sse, and a raw socket).

Resume with ``Last-Event-ID`` must replay every missed stored event exactly once and in order
(compared with the store's own ids), a client that stops reading must be dropped without
holding anyone back, the subscriber cap answers 503, and shutdown says goodbye.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from datetime import timedelta

import httpx
import pytest
from conftest import FeedSource, LiveServer, api_settings, random_walk, wait_until
from httpx_sse import connect_sse

from cryptotech.api.app import create_app
from cryptotech.store import Store

END = object()
STORED = ("tick", "previsao", "resultado")


class SseReader:
    """An httpx-sse client reading ``/stream`` in a thread; events land in a queue."""

    def __init__(self, base: str, params=None, headers=None):
        self.events: queue.Queue = queue.Queue()
        self.status = None
        self.body = b""
        self.sock = None
        self.closing = False
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(base, params, headers),
                                        daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "no answer from /stream"

    def _run(self, base, params, headers) -> None:
        try:
            with httpx.Client(base_url=base, timeout=httpx.Timeout(10.0, read=60.0)) as client:
                with connect_sse(client, "GET", "/stream", params=params,
                                 headers=dict(headers or {})) as source:
                    response = source.response
                    self.status = response.status_code
                    self.sock = response.extensions["network_stream"].get_extra_info("socket")
                    if self.status != 200:
                        self.body = response.read()
                        return
                    self._ready.set()
                    for event in source.iter_sse():
                        self.events.put(event)
        except Exception as exc:  # noqa: BLE001 - handed to the test
            if not self.closing:
                self.events.put(exc)
        finally:
            self._ready.set()
            self.events.put(END)

    def next(self, timeout: float = 10.0):
        item = self.events.get(timeout=timeout)
        if isinstance(item, Exception):
            raise item
        return item

    def collect(self, until, timeout: float = 15.0) -> list:
        """Events until ``until(events)`` is true (or the stream ends); bounded in time."""
        out: list = []
        deadline = time.monotonic() + timeout
        while not until(out):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"timed out after {len(out)} events")
            try:
                item = self.next(left)
            except queue.Empty:
                continue
            if item is END:
                break
            out.append(item)
        return out

    def close(self) -> None:
        self.closing = True
        if self.sock is not None:
            try:
                self.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(10)
        assert not self._thread.is_alive()


def stored_ids(events) -> list[int]:
    return [int(e.id) for e in events if e.event in STORED]


def reached(newest: int):
    """A ``collect`` condition: the last event is a stored one with an id >= ``newest``."""
    return lambda ev: bool(ev) and ev[-1].event in STORED and int(ev[-1].id) >= newest


def payload(event) -> dict:
    return json.loads(event.data)


class Feeder:
    """Continues a random walk of btc and eth, 5 minutes a step, through a FeedSource."""

    def __init__(self, source: FeedSource, server: LiveServer):
        self.source, self.server = source, server
        self.ticks = sorted(random_walk(3000, "btc", seed=11, price=60_000.0)
                            + random_walk(3000, "eth", seed=12, price=2_500.0),
                            key=lambda t: (t.ts, t.coin))
        self.fed = 0

    def feed(self, n: int, wait: bool = True) -> None:
        batch = self.ticks[self.fed:self.fed + n]
        self.fed += len(batch)
        base = self.server.state.engine.ticks_processed
        self.source.feed(batch)
        if wait:
            wait_until(lambda: self.server.state.engine.ticks_processed >= base + len(batch))


def start(tmp_path, **settings_changes):
    settings = api_settings(tmp_path, api={"ping_interval": "1s", "send_timeout": "2s",
                                           **settings_changes.pop("api", {})},
                            **settings_changes)
    source = FeedSource()
    server = LiveServer(create_app(settings, source, status_every=0.3)).__enter__()
    return server, Feeder(source, server)


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    server, feeder = start(tmp_path_factory.mktemp("stream"))
    feeder.feed(20)  # past warm-up: every later tick makes a forecast
    try:
        yield server, feeder
    finally:
        server.stop()


def test_events_carry_ids_retry_and_portuguese_payloads(live):
    server, feeder = live
    reader = SseReader(server.url)
    try:
        first = reader.next()
        assert first.retry == 3000
        feeder.feed(30)
        kinds = {"tick", "previsao", "resultado", "metricas", "status"}
        events = reader.collect(lambda ev: kinds <= {e.event for e in ev})
    finally:
        reader.close()
    ids = stored_ids(events)
    assert ids == sorted(set(ids))
    store_ids = [e.id for e in server.state.store.events_after(ids[0] - 1, None, 10_000)]
    assert ids == store_ids[:len(ids)]
    for e in events:
        data = payload(e)
        if e.event == "tick":
            assert set(data) == {"moeda", "horario", "preco", "valor_mercado", "volume_24h",
                                 "variacao_24h_pct"}
            assert data["horario"].endswith("-03:00")
        elif e.event == "previsao":
            assert data["id"] == int(e.id) and data["situacao"] == "pendente"
            assert data["limite_inferior"] <= data["previsao"] <= data["limite_superior"]
        elif e.event == "resultado":
            assert data["id"] < int(e.id) and data["situacao"] == "realizada"
            assert isinstance(data["dentro_do_intervalo"], bool)
        elif e.event == "metricas":
            assert {"publicado", "persistencia", "candidatos"} <= set(data)
            assert "explicacao" not in data  # static text: on the page, not in every event
        elif e.event == "status":
            assert data["fonte"] == "live" and data["assinantes"] >= 1


def test_prever_follows_every_new_forecast(live):
    server, feeder = live
    with httpx.Client(base_url=server.url, timeout=5) as client:
        before = client.get("/prever/btc").json()
        assert client.get("/prever/btc").json() == before  # from the cache
        feeder.feed(6)
        after = client.get("/prever/btc").json()
    latest = server.state.store.latest_prediction("btc")
    assert after["id"] == latest["id"] > before["id"]
    assert after["contexto"]["resultados"] > before["contexto"]["resultados"]


def test_heartbeat_pings_arrive(live):
    server, _ = live
    with socket.create_connection(("127.0.0.1", int(server.url.rsplit(":", 1)[1])), 5) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: teste\r\nAccept: text/event-stream\r\n\r\n")
        sock.settimeout(0.5)
        got, deadline = b"", time.monotonic() + 5
        while b": ping" not in got and time.monotonic() < deadline:
            try:
                got += sock.recv(65536)
            except TimeoutError:
                pass
    assert got.startswith(b"HTTP/1.1 200")
    assert b"retry: 3000" in got and b": ping" in got
    assert b"cache-control: no-store" in got.lower()


def test_moedas_filter(live):
    server, feeder = live
    reader = SseReader(server.url, params={"moedas": "eth"})
    try:
        reader.next()
        feeder.feed(30)
        events = reader.collect(lambda ev: sum(e.event == "resultado" for e in ev) >= 3)
    finally:
        reader.close()
    coins = {payload(e)["moeda"] for e in events if e.event in (*STORED, "metricas")}
    assert coins == {"eth"}
    for bad, words in (("eth,doge", "desconhecida"), ("", "ao menos uma")):
        r = httpx.get(f"{server.url}/stream", params={"moedas": bad}, timeout=5)
        assert r.status_code == 422 and words in r.json()["detalhe"]
    for bad in ("abc", "-1", "1.5", "²", str(2**62 + 1), "9" * 5000):
        r = httpx.get(f"{server.url}/stream", headers={"Last-Event-ID": bad.encode()}, timeout=5)
        assert r.status_code == 422 and r.json()["erros"][0]["parametro"] == "Last-Event-ID"
        says = r.json()["erros"][0]["mensagem"]
        if bad.isascii() and bad.isdigit():
            assert "fora do intervalo" in says and "numérico" not in says, says
            assert len(r.content) < 500
        else:
            assert "numérico" in says
    for params in ({"ultimo_id": "-1"}, {"ultimo_id": "x"}, {"moedas": "btc", "ultimo_id": "y"}):
        r = httpx.get(f"{server.url}/stream", params=params, timeout=5)
        assert r.status_code == 422 and r.json()["detalhe"].startswith("parâmetro inválido")


@pytest.mark.parametrize("how", ["header", "query", "header+filter"])
def test_resume_replays_every_missed_event_once_in_order(live, how):
    server, feeder = live
    store = server.state.store
    first = SseReader(server.url)
    try:
        first.next()
        feeder.feed(20, wait=False)
        got = first.collect(lambda ev: len(stored_ids(ev)) >= 25)
    finally:
        first.close()  # disconnect mid-stream, while ticks are still being processed
    last = stored_ids(got)[-1]
    params, headers, coins = {}, {}, None
    if how == "query":
        params["ultimo_id"] = last
    else:
        headers["Last-Event-ID"] = str(last)
        params["ultimo_id"] = 1  # the header wins over the query
    if how == "header+filter":
        params["moedas"] = coins = "btc"
    # ticks keep arriving while the second client connects and is replayed
    feeder_thread = threading.Thread(target=lambda: [feeder.feed(5, wait=False) or time.sleep(0.05)
                                                     for _ in range(8)])
    feeder_thread.start()
    second = SseReader(server.url, params=params, headers=headers)
    try:
        feeder_thread.join(10)
        done = feeder.fed
        wait_until(lambda: server.state.engine.ticks_processed >= done - 20)
        newest = max(e.id for e in store.events_after(0, {coins} if coins else None, 10**6))
        events = second.collect(reached(newest))
    finally:
        second.close()
    expected = [e.id for e in store.events_after(last, {coins} if coins else None, 10**6)]
    received = stored_ids(events)
    assert received == expected[:len(received)] and received[-1] == newest
    assert len(received) == len(set(received)) and received[0] > last
    assert not any(e.event == "reset" for e in events)
    if coins:
        assert {payload(e)["moeda"] for e in events if e.event in STORED} == {"btc"}


def test_too_old_or_unknown_id_gets_a_reset_snapshot(tmp_path):
    server, feeder = start(tmp_path)
    try:
        feeder.feed(40)
        store = server.state.store
        store.prune(time.time() + 1)  # every stored tick event is gone
        assert "tick" not in {e.kind for e in store.events_after(0, None, 10**6)}
        assert store.replay_floor() > 1
        floor = store.replay_floor()
        for last_id in ("1", str(10**9)):
            reader = SseReader(server.url, headers={"Last-Event-ID": last_id})
            try:
                reader.next()
                reset = reader.next()
                assert reset.event == "reset"
                body = payload(reset)
                assert int(reset.id) == body["ultimo_id"] >= floor
                assert ("anterior" if last_id == "1" else "posterior") in body["motivo"]
                assert set(body["moedas"]) == {"btc", "eth"}
                btc = body["moedas"]["btc"]
                assert btc["previsao"]["moeda"] == "btc" and btc["previsao"]["contexto"]
                assert btc["metricas"]["publicado"]["resultados"] > 0
                feeder.feed(4)
                live_events = reader.collect(lambda ev: len(stored_ids(ev)) >= 8)
                assert min(stored_ids(live_events)) > body["ultimo_id"]
            finally:
                reader.close()
    finally:
        server.stop()


def test_a_stalled_client_is_dropped_and_others_keep_receiving(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="cryptotech.api.stream")
    server, feeder = start(tmp_path, api={"subscriber_queue": 16, "send_timeout": "1s"})
    port = int(server.url.rsplit(":", 1)[1])
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    good = None
    try:
        feeder.feed(20)
        stalled.connect(("127.0.0.1", port))
        stalled.sendall(b"GET /stream HTTP/1.1\r\nHost: teste\r\n\r\n")
        good = SseReader(server.url)
        wait_until(lambda: server.state.hub.subscribers == 2)
        start_id = server.state.store.event_id_range()[1]
        hub = server.state.hub
        deadline = time.monotonic() + 30
        while hub.evicted_total == 0 and time.monotonic() < deadline:
            feeder.feed(50)  # the stalled client never reads: its socket and queue fill up
        assert hub.evicted_total == 1, "the stalled subscriber was never evicted"
        started = time.monotonic()
        feeder.feed(50)
        assert time.monotonic() - started < 5, "the engine was slowed down"
        assert hub.subscribers == 1
        newest = server.state.store.event_id_range()[1]
        events = good.collect(reached(newest))
        expected = [e.id for e in server.state.store.events_after(start_id, None, 10**6)]
        assert [i for i in stored_ids(events) if i > start_id] == expected
        status = httpx.get(f"{server.url}/status", timeout=5).json()
        assert status["assinantes_removidos"] == 1 and status["assinantes"] == 1
        # the blocked send gives up after send_timeout and the server hangs up
        wait_until(lambda: any("send_timeout" in r.getMessage() for r in caplog.records),
                   timeout=10)
        stalled.settimeout(3)
        while stalled.recv(1 << 16):  # what was buffered, then the end (no keep-alive wait)
            pass
    finally:
        stalled.close()
        if good is not None:
            good.close()
        server.stop()


def test_subscriber_cap_is_503_in_portuguese(tmp_path):
    server, _ = start(tmp_path, api={"max_subscribers": 2})
    readers = []
    try:
        readers = [SseReader(server.url), SseReader(server.url)]
        refused = SseReader(server.url)
        assert refused.status == 503
        body = json.loads(refused.body)
        assert "limite de 2 assinantes" in body["detalhe"]
        readers[0].close()
        wait_until(lambda: server.state.hub.subscribers == 1)
        again = SseReader(server.url)
        assert again.status == 200
        readers.append(again)
    finally:
        for reader in readers:
            if reader.status == 200:
                reader.close()
        server.stop()


def test_farewell_on_shutdown(tmp_path):
    server, feeder = start(tmp_path)
    readers = [SseReader(server.url), SseReader(server.url, params={"moedas": "btc"})]
    feeder.feed(5)
    for reader in readers:
        reader.collect(lambda ev: any(e.event == "tick" for e in ev))
    began = time.monotonic()
    server.stop()
    assert time.monotonic() - began < 5
    for reader in readers:
        events = reader.collect(lambda ev: False, timeout=5)  # until the stream ends
        assert events[-1].event == "adeus"
        assert payload(events[-1])["reconectar"] is True
        reader.close()


def test_sigterm_with_open_streams_exits_within_5_seconds(tmp_path):
    """The real ``cryptotech demo`` process: SIGTERM -> adeus on every stream, exit, checkpoint."""
    if not hasattr(signal, "SIGTERM") or os.name == "nt":
        pytest.skip("POSIX signals")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = tmp_path / "demo.db"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRYPTOTECH_")}
    env.update({"CRYPTOTECH_COINS": "btc=bitcoin", "CRYPTOTECH_API__PING_INTERVAL": "1s",
                "CRYPTOTECH_MODEL__CANDIDATES": '["bayes_linear"]'})
    with open(tmp_path / "log.txt", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "cryptotech.cli", "demo", "--db", str(db),
                                 "--port", str(port), "--speed", "3000"],
                                cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=log)
    readers = []
    try:
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            try:
                return httpx.get(f"{base}/status", timeout=1).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(up, timeout=60, interval=0.2)
        readers = [SseReader(base), SseReader(base)]
        for reader in readers:
            reader.collect(lambda ev: any(e.event == "previsao" for e in ev))
        began = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=10)
        elapsed = time.monotonic() - began
        for reader in readers:
            events = reader.collect(lambda ev: False, timeout=5)
            assert events and events[-1].event == "adeus"
    finally:
        for reader in readers:
            reader.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert code in (0, -signal.SIGTERM), (tmp_path / "log.txt").read_text()
    assert elapsed < 5, f"took {elapsed:.1f} s to exit"
    with Store(db) as store:
        assert store.checkpoints("btc"), "no final checkpoint"


def test_replay_floor_follows_pruning(tmp_path):
    from conftest import model_settings

    from cryptotech.learning.learner import CoinLearner

    with Store(tmp_path / "f.db") as store:
        assert store.replay_floor() == 0
        learner = CoinLearner("btc", model_settings())
        for tick in random_walk(30, "btc", step=timedelta(minutes=5)):
            prediction, outcomes = learner.process(tick)
            store.commit_tick(tick, prediction, outcomes)
        assert store.replay_floor() == 0
        store.prune(time.time() + 1)
        newest = store.event_id_range()[1]
        assert store.replay_floor() == newest  # every tick event pruned
        tick = random_walk(31, "btc", step=timedelta(minutes=5))[-1]
        prediction, outcomes = learner.process(tick)
        store.commit_tick(tick, prediction, outcomes)
        assert store.replay_floor() == newest  # the new tick event is newest + 1


def test_disconnects_mid_replay_log_nothing_above_debug(tmp_path, caplog):
    """Clients that reset the connection while a long replay is being written: no asyncio
    "socket.send() raised exception." flood (it came from writes into the dead socket before
    the server saw the loss), nothing above debug, at most one line per disconnect."""
    server, feeder = start(tmp_path)
    clients = 12
    try:
        feeder.feed(1500)  # about 4,400 stored events: a replay from id 1 takes many writes
        port = int(server.url.rsplit(":", 1)[1])
        caplog.set_level(logging.DEBUG)
        caplog.clear()
        for i in range(clients):
            with socket.create_connection(("127.0.0.1", port), 10) as sock:
                sock.sendall(b"GET /stream?ultimo_id=1 HTTP/1.1\r\nHost: teste\r\n\r\n")
                got, wanted = 0, 20_000 * (i + 1)  # hang up at a different point each time
                while got < wanted:
                    chunk = sock.recv(65536)
                    assert chunk, "the server ended the replay early"
                    got += len(chunk)
                # RST, with the server still writing the replay
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        wait_until(lambda: server.state.hub.subscribers == 0)
        records = list(caplog.records)  # before the server's own stop lines
    finally:
        server.stop()
    chatter = [r for r in records
               if not (r.name == "sse_starlette.sse" and r.getMessage().startswith("chunk:"))]
    assert [r.getMessage() for r in chatter if r.name == "asyncio"] == []
    assert [r.getMessage() for r in chatter if r.levelno > logging.DEBUG] == []
    disconnects = [r for r in chatter if "disconnect" in r.getMessage().lower()
                   or "gone" in r.getMessage().lower()]
    assert len(disconnects) <= clients
