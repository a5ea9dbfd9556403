"""External delivery end to end: the real app, apprise, and a real HTTP receiver on 127.0.0.1.

The receiver records every JSON message apprise posts (``json://`` URLs) and can answer 500 or
stall for its first requests. Each message carries ``alerta #ID``; a message is *accepted*
when the receiver answered 200 to it. Every stored alert must be accepted exactly once.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from conftest import FeedSource, LiveServer, api_settings, random_walk, wait_until

from cryptotech.api.app import create_app


class Receiver:
    """A webhook on a free port of 127.0.0.1. ``fail`` first requests get 500, ``stall``
    first requests get their answer only after ``stall_s`` seconds (past apprise's timeout)."""

    def __init__(self, fail: int = 0, stall: int = 0, stall_s: float = 1.5, port: int = 0):
        self.fail, self.stall, self.stall_s = fail, stall, stall_s
        self.requests: list[dict] = []
        self.accepted: list[dict] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append(body)
                    n = len(outer.requests)
                if n <= outer.fail:
                    self.send_response(500)
                    self.end_headers()
                    return
                if n <= outer.fail + outer.stall:
                    time.sleep(outer.stall_s)  # the client has given up by now
                    self.send_response(200)
                    self.end_headers()
                    return
                with outer.lock:
                    outer.accepted.append(body)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.server.server_address[1]
        self.url = f"json://127.0.0.1:{self.port}/?rto=0.5&cto=0.5"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()

    def accepted_ids(self) -> Counter:
        with self.lock:
            return Counter(int(re.search(r"alerta #(\d+)", m["message"]).group(1))
                           for m in self.accepted)


RULES = [{"tipo": "preco_acima", "moeda": "btc", "preco": 100.0, "intervalo_minimo": "1s",
          "rearme_pct": 0, "nome": "BTC acima de 100"}]


def feed_and_collect(tmp_path, receiver, monkeypatch, n=400):
    monkeypatch.setenv("CRYPTOTECH_ALERTAS_URLS", receiver.url)
    s = api_settings(tmp_path, alertas=RULES)
    source = FeedSource()
    app = create_app(s, source)
    with LiveServer(app) as server:
        source.feed(random_walk(n, "btc", sigma=0.004))
        wait_until(lambda: server.state.engine.ticks_processed == n, 60)
        stored = {a["id"] for a in server.state.store.alerts(limit=10_000)}
        assert len(stored) > 3, "the walk must cross 100 several times"
        wait_until(lambda: set(receiver.accepted_ids()) == stored, 60)
        status = httpx.get(server.url + "/status", timeout=10).json()["alertas"]
    return stored, status


def test_each_alert_arrives_once_with_its_message(tmp_path, monkeypatch):
    with Receiver() as receiver:
        stored, status = feed_and_collect(tmp_path, receiver, monkeypatch)
        assert all(n == 1 for n in receiver.accepted_ids().values())
        assert len(receiver.requests) == len(stored)
        msg = receiver.accepted[0]
        assert msg["title"].startswith("CryptoTech · BTC: BTC acima de 100")
        assert "Preço: US$" in msg["message"] and "/painel/" in msg["message"]
        assert "(horário de São Paulo)" in msg["message"] and "us$" not in msg["message"]
    assert status["disparados"] == len(stored)
    assert status["fila"] == {"enviado": len(stored)}
    assert status["entregas"] == {"enviado": len(stored)}
    assert status["canais"] and "127.0.0.1" in status["canais"][0]


def test_a_receiver_answering_500_is_retried_and_nothing_is_lost(tmp_path, monkeypatch):
    with Receiver(fail=2) as receiver:
        stored, status = feed_and_collect(tmp_path, receiver, monkeypatch)
        assert all(n == 1 for n in receiver.accepted_ids().values())
    assert status["entregas"]["nova_tentativa"] == 2
    assert status["entregas"]["enviado"] == len(stored)
    reasons = [e["motivo"] for e in status["ultimas_entregas"] if e["resultado"] != "enviado"]
    assert all("500" in (r or "") for r in reasons)


def test_a_receiver_that_times_out_is_retried_and_nothing_is_lost(tmp_path, monkeypatch):
    with Receiver(stall=1) as receiver:
        stored, status = feed_and_collect(tmp_path, receiver, monkeypatch)
        # the stalled message reached the receiver but was never acknowledged: sent again
        assert all(n == 1 for n in receiver.accepted_ids().values())
        assert len(receiver.requests) == len(stored) + 1
    assert status["entregas"]["nova_tentativa"] == 1


def test_a_source_outage_is_an_alert_delivered_like_the_others(tmp_path, monkeypatch):
    with Receiver() as receiver:
        monkeypatch.setenv("CRYPTOTECH_ALERTAS_URLS", receiver.url)
        s = api_settings(tmp_path, alertas=[{"tipo": "fonte_fora", "duracao": "1s"}])
        source = FeedSource()
        with LiveServer(create_app(s, source)) as server:
            source.feed(random_walk(3, "btc"))  # the source is live
            wait_until(lambda: server.state.engine.ticks_processed == 3)
            server.call(source.status.change, "unreachable", "connection refused")
            wait_until(lambda: len(receiver.accepted) == 1, 30)
            page = httpx.get(server.url + "/alertas?moeda=btc", timeout=10).json()
        assert [(a["tipo"], a["moeda"]) for a in page["itens"]] == [("fonte_fora", None)]
        assert receiver.accepted[0]["message"].startswith(
            "Fonte de preços com problema (unreachable) há ")
        assert receiver.accepted[0]["title"] == "CryptoTech · fonte de preços fora do ar por 1s"


def test_a_channel_that_keeps_failing_ends_failed_with_the_reason_and_backs_off(tmp_path):
    import asyncio

    from cryptotech.alerts.deliver import Retry, Sender, channels_from_env
    from cryptotech.store import AlertRows, Store

    alert = {"rule": "config:1:x", "rule_id": "config:1", "name": "teste", "rule_text": "teste",
             "tipo": "fonte_fora", "coin": None, "ts": time.time(), "price": None,
             "forecast": None, "text": "fonte de preços com problema"}
    with Receiver(fail=1000) as receiver, Store(tmp_path / "a.db") as store:
        channel = channels_from_env({"CRYPTOTECH_ALERTAS_URLS": receiver.url})[0]
        store.commit_alerts(AlertRows([alert, alert | {"ts": alert["ts"] + 1}], [channel.key]))
        sender = Sender(store, api_settings(tmp_path), [channel],
                        Retry(base=0.05, cap=0.2, max_attempts=3))

        async def run():
            task = asyncio.create_task(sender.run_channel(channel))
            deadline = time.monotonic() + 30
            while store.alert_summary()["outbox"] != {"falhou": 2}:
                assert time.monotonic() < deadline, store.alert_summary()
                await asyncio.sleep(0.02)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

        asyncio.run(run())
        log = store.alert_summary(recent=100)["log"]
    assert [e["result"] for e in reversed(log)] == ["nova_tentativa"] * 2 + ["falhou"] + \
        ["nova_tentativa"] * 2 + ["falhou"]
    assert all("500" in e["reason"] for e in log)
    gaps = [b["at"] - a["at"] for a, b in zip(reversed(log[1:]), reversed(log[:-1]))]
    assert min(gaps) >= 0.05  # never hammered: each attempt waits for its backoff
    assert len(receiver.requests) == 6


def test_deliveries_of_a_channel_removed_from_the_environment_end_failed(tmp_path):
    import asyncio

    from cryptotech.alerts.deliver import Sender, channels_from_env
    from cryptotech.store import AlertRows, Store

    alert = {"rule": "config:1:x", "rule_id": "config:1", "name": "teste", "rule_text": "teste",
             "tipo": "fonte_fora", "coin": None, "ts": time.time(), "price": None,
             "forecast": None, "text": "fonte de preços com problema"}
    with Store(tmp_path / "a.db") as store:
        old, new = channels_from_env({"CRYPTOTECH_ALERTAS_URLS":
                                      "json://127.0.0.1:9/a,json://127.0.0.1:9/b"})
        store.commit_alerts(AlertRows([alert], [old.key, new.key]))
        asyncio.run(Sender(store, api_settings(tmp_path), [new]).forget_unknown())
        summary = store.alert_summary()
    assert summary["outbox"] == {"falhou": 1, "pendente": 1}
    assert summary["log"][0]["channel"] == old.key
    assert "não está mais" in summary["log"][0]["reason"]
