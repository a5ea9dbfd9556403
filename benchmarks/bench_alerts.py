"""Alerts: delivery latency (tick -> external receiver) and how often the README's rules fire.

1. Latency. The real app under uvicorn (``tests/conftest.py``'s ``LiveServer``, a source fed
   by this process), one ``json://`` channel to a webhook on 127.0.0.1 (this process, a
   ``ThreadingHTTPServer``) and a ``preco_acima`` rule with no cooldown or margin. Prices
   alternate around its threshold, one tick every ``GAP`` seconds, so every other tick fires.
   Latency = receipt time at the webhook - the time the tick was handed to the source: the
   engine (learn, evaluate, commit tick + alert + outbox row), the sender's wake-up, the
   message, apprise's HTTP POST, and the webhook.
2. Tick-path cost: the engine's time per tick without rules, with the README's rules, and
   with them plus a channel (one outbox row per alert).
3. Counts. The README's example rules replayed over the demo's bundled 30 days (6 coins,
   5-minute prices) with the default config, through the same evaluator the engine runs
   (``cryptotech backtest --alertas`` does the same for any data).

``python benchmarks/bench_alerts.py [--quick] [--only latency|cost|counts]`` (quick: 60 alerts,
and the counts with the linear candidate only).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

#: The example rules of the README's Alerts section (and config.toml), in that order.
EXAMPLES = [
    {"nome": "BTC fora do intervalo previsto", "tipo": "fora_do_intervalo", "moeda": "btc"},
    {"tipo": "variacao", "percentual": 3, "janela": "1h"},
    {"tipo": "preco_acima", "moeda": "btc", "preco": 110000, "intervalo_minimo": "6h"},
    {"tipo": "surpresas_seguidas", "quantidade": 3},
    {"tipo": "tempestade", "fator": 2},
    {"tipo": "fonte_fora", "duracao": "10m"},
]
GAP = 0.05


def latency(alerts: int) -> dict:
    from conftest import FeedSource, LiveServer, api_settings, wait_until

    from cryptotech.api.app import create_app
    from cryptotech.domain import Tick

    received: dict[int, float] = {}
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers["Content-Length"])).decode()
            now = time.time()
            with lock:
                received[int(re.search(r"alerta #(\d+)", body).group(1))] = now
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    hook = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=hook.serve_forever, daemon=True).start()
    os.environ["CRYPTOTECH_ALERTAS_URLS"] = f"json://127.0.0.1:{hook.server_address[1]}/"
    tmp = Path(tempfile.mkdtemp())
    s = api_settings(tmp, coins={"btc": "bitcoin"}, alertas=[
        {"tipo": "preco_acima", "moeda": "btc", "preco": 100.0, "intervalo_minimo": "1s",
         "rearme_pct": 0}])
    source = FeedSource()
    app = create_app(s, source)
    fed: dict[float, float] = {}
    start = datetime(2025, 1, 1, tzinfo=timezone.utc)
    with LiveServer(app) as server:
        for i in range(alerts * 2):
            tick = Tick("btc", start + timedelta(minutes=5 * i), 101.0 if i % 2 else 99.0)
            fed[tick.epoch] = time.time()
            source.feed([tick])
            time.sleep(GAP)
        wait_until(lambda: len(received) >= alerts, 60)
        rows = server.state.store.alerts(limit=100_000)
    hook.shutdown()
    lat = sorted((received[a["id"]] - fed[a["ts"]]) * 1000 for a in rows if a["id"] in received)
    q = statistics.quantiles(lat, n=100)
    return {"n": len(lat), "p50_ms": q[49], "p99_ms": q[98], "max_ms": lat[-1]}


def tick_cost(n: int = 3000, rounds: int = 5) -> dict:
    """Engine time per tick (real engine, SQLite file, linear candidate) without rules, with
    the example rules, and with them plus a channel (outbox rows; nothing drains them here:
    the sender is not part of the tick path). The three alternate in each round (a busy
    machine then weighs on all three alike); the figure is the median over the rounds."""
    from conftest import api_settings, run_engine

    from cryptotech.sources.replay import Replay, bundled_inputs

    ticks = list(Replay([x for x in bundled_inputs() if x[0] == "btc"]))[:n]
    configs = (("no rules", [], ""), ("example rules", EXAMPLES, ""),
               ("example rules + 1 channel", EXAMPLES, "json://127.0.0.1:9/"))
    times: dict[str, list[float]] = {name: [] for name, _, _ in configs}
    for _ in range(rounds):
        for name, rules, urls in configs:
            os.environ["CRYPTOTECH_ALERTAS_URLS"] = urls
            s = api_settings(Path(tempfile.mkdtemp()), coins={"btc": "bitcoin"}, alertas=rules)
            started = time.perf_counter()
            run_engine(s, ticks)
            times[name].append((time.perf_counter() - started) / len(ticks) * 1000)
    os.environ.pop("CRYPTOTECH_ALERTAS_URLS", None)
    return {name: statistics.median(v) for name, v in times.items()}


def counts(quick: bool) -> list[tuple[str, str, int | None, float]]:
    from cryptotech.alerts.replay import count_alerts
    from cryptotech.config import Settings
    from cryptotech.sources.replay import Replay, bundled_inputs

    model = {"candidates": ["bayes_linear"]} if quick else {}
    s = Settings(alertas=EXAMPLES, model=model)
    replay = Replay(bundled_inputs())
    rules, fired, days = count_alerts(iter(replay), s, len(replay), progress=True)
    return [(r.id, r.regra.describe(), fired[r.id] if r.regra.tipo != "fonte_fora" else None,
             days) for r in rules]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=("latency", "cost", "counts"))
    args = parser.parse_args()
    if args.only in (None, "latency"):
        lat = latency(60 if args.quick else 300)
        print(f"delivery latency tick -> webhook over {lat['n']} alerts: p50 "
              f"{lat['p50_ms']:.1f} ms, p99 {lat['p99_ms']:.1f} ms, max {lat['max_ms']:.1f} ms "
              f"(1-minute load average {os.getloadavg()[0]:.1f})")
    if args.only in (None, "cost"):
        cost = tick_cost()
        print("engine time per tick (median of 5 alternating rounds, 3000 BTC ticks, linear "
              "candidate): " + ", ".join(
            f"{k} {v:.2f} ms" for k, v in cost.items()))
    if args.only in ("latency", "cost"):
        return
    rows = counts(args.quick)
    days = rows[0][3] if rows else 0
    print(f"\nexample rules over the demo's bundled data ({days:.1f} days, 6 coins"
          f"{', linear candidate only' if args.quick else ', default config'}):")
    print("| rule | alerts | per day |\n|---|---|---|")
    for rid, text, n, d in rows:
        print(f"| `{rid}` {text} | {'live only' if n is None else n} | "
              f"{'-' if n is None else f'{n / d:.1f}'} |")


if __name__ == "__main__":
    main()
