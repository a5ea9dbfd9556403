"""A fake CoinGecko on 127.0.0.1, for tests and for trying CryptoTech without the internet.

:class:`FakeCoinGecko` is a real HTTP server (a Starlette app served by uvicorn in a background
thread) answering the three endpoints CryptoTech uses, shaped as CoinGecko's official OpenAPI
spec and the recorded responses:

* ``GET /api/v3/ping`` -> ``{"gecko_says": "(V3) To the Moon!"}``
* ``GET /api/v3/simple/price?ids=..&vs_currencies=..&include_*=true`` -> per coin id,
  ``<vs>``, ``<vs>_market_cap``, ``<vs>_24h_vol``, ``<vs>_24h_change``, ``last_updated_at``
* ``GET /api/v3/coins/{id}/market_chart?vs_currency=..&days=..`` -> ``prices``,
  ``market_caps``, ``total_volumes`` as ``[ms, value]`` pairs (``days=1``: 5-minute points)

The same paths without the ``/api/v3`` prefix work too. ``fake.url`` ends in ``/api/v3``,
which is what the official SDK expects as ``base_url`` (it appends ``/simple/price``).

Prices walk through the real 5-minute history bundled in ``cryptotech/data`` (six coins,
2025-05-30 .. 2025-06-29): each ``/simple/price`` request serves the next 5-minute point
(``step`` points per request, deterministic), with ``last_updated_at`` that point's UNIX time
plus ``time_offset``. The walk wraps around at the end of the data with timestamps still
increasing. ``/market_chart`` returns the day of points before the current one plus an
off-grid last point, as CoinGecko does (its last point is the request time). Market caps are
price times an approximate circulating supply; volumes are the candles' quote volume summed
over 24 h; prices are Bybit USDT-perpetual closes, not CoinGecko's aggregate.

Every request is recorded (method, path, query, headers, status) for assertions, and faults
can be injected::

    with FakeCoinGecko() as fake:
        fake.fail_next("429", retry_after=3, body="html")
        fake.fail_next("401", code=10011)
        fake.fail_next("nan", coins=["bitcoin"])
        fake.fail_for(2.0, "503")           # every matching request for 2 s
        ...
        fake.requests                       # what the client sent

:class:`FakeCoinGeckoStream` is a WebSocket server speaking the documented ``CGSimplePrice``
protocol (ActionCable-style subscribe / ``set_tokens``, ``C1`` updates with short keys in
varying order), with scripted messages, dropped connections and refused handshakes.

Run both by hand: ``python -m cryptotech.testing.fake_coingecko --now --port 8765 --ws-port 8766``
(``--now``: prices follow the clock, with current timestamps; without it each request steps
one 5-minute point through 2025's history).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import functools
import gzip
import json
import logging
import math
import os
import random
import signal
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptotech.config import DEFAULT_COINS

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
STEP_SECONDS = 300
DAY_POINTS = 86_400 // STEP_SECONDS  # 288
START_TIMEOUT = 10.0

# Approximate circulating supplies (mid-2025), to turn prices into market caps.
SUPPLY = {
    "btc": 19.88e6,
    "eth": 120.7e6,
    "ada": 36.0e9,
    "sol": 530e6,
    "xrp": 59.0e9,
    "doge": 149.5e9,
}

# The exact 187-byte body of a real 429 from api.coingecko.com (see the data README).
RATE_LIMIT_BODY = (
    '{"status":{"error_code":429,"error_message":"You\'ve exceeded the Rate Limit. Please visit '
    'https://www.coingecko.com/en/api/pricing to subscribe to our API plans for higher rate '
    'limits."}}'
)
# What a Cloudflare error page looks like to a JSON client (an illustrative page, not a copy).
HTML_PAGE = (
    "<!DOCTYPE html>\n<html><head><title>{title} | api.coingecko.com | Cloudflare</title></head>"
    "<body><div id=\"cf-error-details\"><h1>{title}</h1><p>{text}</p>"
    "<p>Cloudflare Ray ID: 8c1f0e2d3a4b5c6d</p></div></body></html>\n"
)
# CoinGecko's error codes, with messages following its documentation ("Common Errors").
AUTH_MESSAGES = {
    10002: "API Key Missing. Please make sure you're using the right authentication method.",
    10005: "You may not have access to this endpoint. e.g. 'This request is limited Pro API "
    "subscribers'.",
    10010: "Invalid API Key. If you are using a Pro API key, please change your root URL from "
    "api.coingecko.com to pro-api.coingecko.com",
    10011: "Invalid API Key. If you are using a Demo API key, please change your root URL from "
    "pro-api.coingecko.com to api.coingecko.com",
}
STATUS_KINDS = {"429", "401", "403", "500", "502", "503"}
DELAY_KINDS = {"slow": 1.0, "timeout": 60.0}
VALUE_KINDS = {"nan", "inf", "negative", "zero", "string", "null", "absurd", "missing"}
BODY_KINDS = {"malformed", "repeat"}
FAULT_KINDS = STATUS_KINDS | set(DELAY_KINDS) | VALUE_KINDS | BODY_KINDS


# --------------------------------------------------------------------------------------------
# The bundled history, walked point by point


@dataclass(frozen=True)
class CoinHistory:
    """One coin's bundled 5-minute closes, with 24 h quote volume and a synthetic market cap."""

    symbol: str
    ts: tuple[int, ...]
    price: tuple[float, ...]
    volume_24h: tuple[float, ...]
    supply: float

    def __len__(self) -> int:
        return len(self.ts)

    def point(self, k: int) -> dict[str, float]:
        """Point ``k`` of an endless walk: the data repeats with time still moving forward.

        >>> h = load_history("btc")
        >>> p0, p1 = h.point(0), h.point(len(h))
        >>> p1["ts"] - p0["ts"] == len(h) * 300, p1["price"] == p0["price"]
        (True, True)
        """
        n = len(self.ts)
        lap, i = divmod(max(k, 0), n)
        ts = self.ts[i] + lap * n * STEP_SECONDS
        price = self.price[i]
        before = self.price[max(k - DAY_POINTS, 0) % n]
        return {
            "ts": ts,
            "price": price,
            "market_cap": price * self.supply,
            "volume_24h": self.volume_24h[i],
            "change_24h": (price / before - 1.0) * 100.0,
        }


    def at(self, t: float) -> dict[str, float]:
        """The walk at market time ``t`` (UNIX seconds): the price interpolated between the two
        5-minute points around it, the other fields from the point before it.

        >>> h = load_history("btc")
        >>> a, b = h.point(300), h.point(301)
        >>> mid = h.at(a["ts"] + 150)
        >>> mid["ts"] == a["ts"] + 150, mid["price"] == (a["price"] + b["price"]) / 2
        (True, True)
        """
        k = math.floor((t - self.ts[0]) / STEP_SECONDS)
        before, after = self.point(k), self.point(k + 1)
        share = (t - before["ts"]) / STEP_SECONDS
        price = before["price"] + share * (after["price"] - before["price"])
        return {**before, "ts": t, "price": price, "market_cap": price * self.supply}

    def index_at(self, t: float) -> int:
        """The index of the last 5-minute point at or before market time ``t``."""
        return math.floor((t - self.ts[0]) / STEP_SECONDS)


@functools.cache
def load_history(symbol: str) -> CoinHistory:
    """The bundled ``<SYMBOL>USDT_5m.csv.gz`` of ``symbol`` (e.g. ``"btc"``)."""
    path = DATA_DIR / f"{symbol.upper()}USDT_5m.csv.gz"
    ts: list[int] = []
    price: list[float] = []
    quote: list[float] = []
    with gzip.open(path, "rt", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            ts.append(int(datetime.fromisoformat(row["timestamp"]).timestamp()))
            close = float(row["close"])
            price.append(close)
            quote.append(float(row["volume"]) * close)
    volume = []
    window = 0.0
    for i, q in enumerate(quote):  # trailing 24 h sum, scaled up while the day is not full
        window += q - (quote[i - DAY_POINTS] if i >= DAY_POINTS else 0.0)
        volume.append(window * DAY_POINTS / min(i + 1, DAY_POINTS))
    return CoinHistory(symbol, tuple(ts), tuple(price), tuple(volume), SUPPLY.get(symbol, 1e9))


def offset_to_now(start: int = DAY_POINTS, now: float | None = None) -> int:
    """The ``time_offset`` that makes history point ``start`` fall on ``now`` (default: the
    current time)."""
    now = time.time() if now is None else now
    return int(now) - int(load_history("btc").point(start)["ts"])


class _Walk:
    """The coins a fake knows (CoinGecko id -> bundled history)."""

    def __init__(self, coins: Mapping[str, str]):
        self.by_id = {coin_id: load_history(symbol) for symbol, coin_id in coins.items()}

    def point(self, coin_id: str, k: int) -> dict[str, float] | None:
        history = self.by_id.get(coin_id)
        return None if history is None else history.point(k)

    def at(self, coin_id: str, t: float) -> dict[str, float] | None:
        history = self.by_id.get(coin_id)
        return None if history is None else history.at(t)


# --------------------------------------------------------------------------------------------
# Faults and recorded requests


@dataclass
class Fault:
    """One injected misbehaviour.

    kind
        ``"429"``, ``"401"``, ``"403"``, ``"500"``, ``"502"``, ``"503"`` (error status);
        ``"slow"``, ``"timeout"`` (answer normally after ``delay`` seconds; 1 s and 60 s by
        default); ``"malformed"`` (truncated JSON, or an HTML page with ``body="html"``, sent
        with status 200); ``"nan"``, ``"inf"``, ``"negative"``, ``"zero"``, ``"string"``,
        ``"null"``, ``"absurd"`` (price times ``factor``), ``"missing"`` (coin left out) for
        the coins in ``coins`` (default: the first one asked for); ``"repeat"`` (the previous
        point again: same prices, same ``last_updated_at``).
    retry_after
        For 429: the ``Retry-After`` header (seconds, or an HTTP date string); None = absent.
    body
        ``"json"`` or ``"html"`` for error statuses and ``malformed``.
    code
        CoinGecko error code for 401/403 (10002, 10005, 10010, 10011; default 10002).
    endpoint
        ``"simple/price"`` (default), ``"market_chart"``, ``"ping"`` or ``"*"``.
    echo_key
        For error statuses with a JSON body: the error message quotes back the API key the
        client sent, as a careless upstream or proxy might (to check that it is redacted).
    """

    kind: str
    retry_after: int | float | str | None = None
    body: str = "json"
    code: int | None = None
    delay: float | None = None
    coins: tuple[str, ...] | None = None
    factor: float = 10.0
    endpoint: str = "simple/price"
    until: float | None = None
    echo_key: bool = False

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {self.kind!r}; one of {sorted(FAULT_KINDS)}")
        if self.body not in ("json", "html"):
            raise ValueError("body must be 'json' or 'html'")
        if self.coins is not None:
            self.coins = tuple(self.coins)
        if self.delay is None and self.kind in DELAY_KINDS:
            self.delay = DELAY_KINDS[self.kind]

    def matches(self, endpoint: str) -> bool:
        if self.endpoint == "*":
            return True
        if self.endpoint == "market_chart":
            return endpoint.startswith("coins/") and endpoint.endswith("/market_chart")
        return endpoint == self.endpoint


@dataclass
class RecordedRequest:
    """One request the fake received. Header names are lower-case.

    ``at`` is when it arrived and ``done`` when its answer was ready (``time.monotonic``);
    ``fault`` the injected fault it got, if any; ``point`` the history index a
    ``/simple/price`` answer served (None if it served none).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    status: int | None = None
    at: float = field(default_factory=time.monotonic)
    done: float | None = None
    fault: Fault | None = None
    point: int | None = None


def _free_socket(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if os.name != "nt":  # on Windows SO_REUSEADDR would let two servers share a port
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError:
        sock.close()
        raise
    return sock


def _json_body(data: Any) -> bytes:
    # allow_nan: a misbehaving upstream sends NaN/Infinity tokens, which is what we imitate.
    return json.dumps(data, allow_nan=True, separators=(",", ":")).encode()


# --------------------------------------------------------------------------------------------
# The REST fake


class FakeCoinGecko:
    """CoinGecko's REST API on 127.0.0.1, walking through the bundled history.

    Parameters
    ----------
    port
        0 (default) picks a free port.
    coins
        Symbol -> CoinGecko id of the coins the fake knows (default: the six bundled coins).
    start
        History index served by the first ``/simple/price`` (default 288: one day in, so that
        ``market_chart?days=1`` has a full day behind it).
    step
        History points advanced per ``/simple/price`` request (0 = prices never change).
    time_offset
        Seconds added to every timestamp served (:func:`offset_to_now` makes the walk start
        at the current time).
    live
        Follow the clock instead of stepping per request: history point ``start`` falls on
        the time the fake was made, each answer serves the walk at ``clock()`` (the price
        interpolated between the 5-minute points around it) with ``last_updated_at`` the
        current second, so a client sees live-looking, current prices (``--now``).
        (``time_offset`` is then set to make it so, and ``step`` is unused.)
    clock
        Wall clock in UNIX seconds (for ``live`` and for :meth:`fail_for`); tests inject one.
    api_key, host
        If ``api_key`` is set, keys are checked as CoinGecko does: on ``host="public"`` a Pro
        key header gets 10010, a wrong Demo key 401; on ``host="pro"`` a missing key gets
        10002, a Demo key header 10011.

    Examples
    --------
    >>> import httpx
    >>> with FakeCoinGecko() as fake:
    ...     r = httpx.get(fake.url + "/simple/price", params={"ids": "bitcoin",
    ...                   "vs_currencies": "usd", "include_last_updated_at": "true"})
    ...     sorted(r.json()["bitcoin"]), len(fake.requests)
    (['last_updated_at', 'usd'], 1)
    """

    def __init__(
        self,
        *,
        port: int = 0,
        coins: Mapping[str, str] | None = None,
        start: int = DAY_POINTS,
        step: int = 1,
        time_offset: int = 0,
        live: bool = False,
        clock: Callable[[], float] = time.time,
        api_key: str | None = None,
        host: str = "public",
    ):
        if host not in ("public", "pro"):
            raise ValueError("host must be 'public' or 'pro'")
        self._walk = _Walk(coins if coins is not None else DEFAULT_COINS)
        self.index = start
        self.step = step
        self.live = live
        self.clock = clock
        self.time_offset = offset_to_now(start, clock()) if live else time_offset
        self.api_key = api_key
        self.host = host
        self._port = port
        self._lock = threading.Lock()
        self._faults: deque[Fault] = deque()
        self._timed: list[Fault] = []
        self._requests: list[RecordedRequest] = []
        self._last_index: int | None = None
        self._last_market: float | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._sock: socket.socket | None = None
        self.port: int | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL for the SDK (``http://127.0.0.1:<port>/api/v3``)."""
        if self.port is None:
            raise RuntimeError("the fake is not running; use 'with FakeCoinGecko() as fake:'")
        return f"http://127.0.0.1:{self.port}/api/v3"

    def start(self) -> FakeCoinGecko:
        """Start serving in a background thread; returns when the port accepts connections."""
        import uvicorn
        from starlette.applications import Starlette
        from starlette.routing import Route

        if self._thread is not None:
            raise RuntimeError("already started")
        app = Starlette(routes=[Route("/{path:path}", self._handle, methods=["GET"])])
        config = uvicorn.Config(
            app,
            loop="asyncio",
            http="h11",
            ws="none",
            lifespan="off",
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._sock = _free_socket(self._port)
        self.port = self._sock.getsockname()[1]
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True,
            name=f"fake-coingecko-{self.port}",
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the fake CoinGecko server did not start")
            time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving and free the port (waits for the thread, at most a few seconds)."""
        self._stopping.set()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=START_TIMEOUT)
            self._thread = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> FakeCoinGecko:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- faults and records --------------------------------------------------------------------

    def fail_next(self, kind: str, *, times: int = 1, **options: Any) -> None:
        """Queue ``times`` faults of ``kind`` for the next matching requests (see :class:`Fault`).

        ``options`` are :class:`Fault` fields (``retry_after``, ``body``, ``code``, ``delay``,
        ``coins``, ``factor``, ``endpoint``).
        """
        with self._lock:
            for _ in range(times):
                self._faults.append(Fault(kind, **options))

    def fail_for(self, seconds: float, kind: str, **options: Any) -> None:
        """Apply a fault of ``kind`` to every matching request for ``seconds``."""
        fault = Fault(kind, until=self.clock() + seconds, **options)
        with self._lock:
            self._timed.append(fault)

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()
            self._timed.clear()

    @property
    def pending_faults(self) -> int:
        """Queued faults not yet served."""
        with self._lock:
            return len(self._faults)

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every request received so far (a copy)."""
        with self._lock:
            return list(self._requests)

    def requests_to(self, endpoint: str) -> list[RecordedRequest]:
        """Requests whose path ends with ``endpoint`` (e.g. ``"simple/price"``)."""
        return [r for r in self.requests if r.path.rstrip("/").endswith(endpoint)]

    def _take_fault(self, endpoint: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(endpoint):
                    self._faults.remove(fault)
                    return fault
            now = self.clock()
            self._timed = [f for f in self._timed if f.until is not None and f.until > now]
            return next((f for f in self._timed if f.matches(endpoint)), None)

    # -- request handling ----------------------------------------------------------------------

    async def _handle(self, request: Any) -> Any:
        from starlette.responses import Response

        path = request.url.path
        endpoint = path.removeprefix("/api/v3").strip("/")
        record = RecordedRequest(
            method=request.method,
            path=path,
            query=dict(request.query_params),
            headers={k.lower(): v for k, v in request.headers.items()},
        )
        with self._lock:
            self._requests.append(record)
        fault = self._take_fault(endpoint)
        record.fault = fault
        if fault is not None and fault.delay:
            await self._sleep(fault.delay)
        status, body, headers = self._answer(endpoint, record, fault)
        record.status = status
        record.done = time.monotonic()
        media = "text/html; charset=utf-8" if body.lstrip().startswith(b"<") else "application/json"
        return Response(body, status_code=status, headers=headers, media_type=media)

    async def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(min(left, 0.05))

    def _answer(
        self, endpoint: str, record: RecordedRequest, fault: Fault | None
    ) -> tuple[int, bytes, dict[str, str]]:
        auth = self._check_key(record.headers)
        if auth is not None:
            return 401, _json_body(self._auth_body(auth)), {}
        if fault is not None and fault.kind in STATUS_KINDS:
            return self._error(fault, record.headers)
        if fault is not None and fault.kind == "malformed":
            if fault.body == "html":
                page = HTML_PAGE.format(title="Error", text="Something went wrong.")
                return 200, page.encode(), {}
            return 200, b'{"bitcoin":{"usd":1045', {}
        if endpoint == "ping":
            return 200, _json_body({"gecko_says": "(V3) To the Moon!"}), {}
        if endpoint == "simple/price":
            return self._simple_price(record.query, fault, record)
        parts = endpoint.split("/")
        if len(parts) == 3 and parts[0] == "coins" and parts[2] == "market_chart":
            return self._market_chart(parts[1], record.query, fault)
        return 404, _json_body({"error": "Not Found"}), {}

    def _check_key(self, headers: Mapping[str, str]) -> int | None:
        """The CoinGecko error code the key headers deserve, or None if they are fine."""
        if self.api_key is None:
            return None
        pro, demo = headers.get("x-cg-pro-api-key"), headers.get("x-cg-demo-api-key")
        if self.host == "public":
            if pro is not None:
                return 10010
            if demo is not None and demo != self.api_key:
                return 10002
            return None
        if demo is not None and pro is None:
            return 10011
        return None if pro == self.api_key else 10002

    @staticmethod
    def _auth_body(code: int) -> dict[str, Any]:
        stamp = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        return {
            "status": {
                "timestamp": stamp,
                "error_code": code,
                "error_message": AUTH_MESSAGES.get(code, "Unauthorized"),
            }
        }

    def _error(self, fault: Fault, sent: Mapping[str, str]) -> tuple[int, bytes, dict[str, str]]:
        status = int(fault.kind)
        echo = ""
        if fault.echo_key:
            key = sent.get("x-cg-demo-api-key") or sent.get("x-cg-pro-api-key") or ""
            echo = f" (request key: {key})"
        headers: dict[str, str] = {}
        if fault.retry_after is not None:
            headers["retry-after"] = str(fault.retry_after)
        if fault.body == "html":
            titles = {429: "Error 1015: You are being rate limited", 500: "Internal Server Error",
                      502: "502 Bad Gateway", 503: "503 Service Temporarily Unavailable"}
            title = titles.get(status, f"Error {status}")
            page = HTML_PAGE.format(title=title, text="Please try again in a few minutes.")
            return status, page.encode(), headers
        if status == 429:
            if echo:
                body = json.loads(RATE_LIMIT_BODY)
                body["status"]["error_message"] += echo
                return status, _json_body(body), headers
            return status, RATE_LIMIT_BODY.encode(), headers
        if status in (401, 403):
            body = self._auth_body(fault.code or 10002)
            body["status"]["error_message"] += echo
            return status, _json_body(body), headers
        reasons = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable"}
        return status, _json_body({"error": reasons.get(status, "Error") + echo}), headers

    def _simple_price(
        self, query: Mapping[str, str], fault: Fault | None, record: RecordedRequest | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        ids = [i for i in query.get("ids", "").split(",") if i]
        currencies = [c for c in query.get("vs_currencies", "").split(",") if c]
        if not currencies:
            return 400, _json_body({"error": "Missing parameter vs_currencies"}), {}
        flags = {k for k, v in query.items() if k.startswith("include_") and v == "true"}
        market = float(int(self.clock()) - self.time_offset) if self.live else None
        with self._lock:
            if fault is not None and fault.kind == "repeat" and self._last_index is not None:
                k = self._last_index
                market = self._last_market
            elif market is not None:
                k = self.index = load_history("btc").index_at(market)
            else:
                k = self.index
                self.index += self.step
            self._last_index, self._last_market = k, market
            if record is not None:
                record.point = k
        affected = set(fault.coins) if fault is not None and fault.coins else set(ids[:1])
        out: dict[str, Any] = {}
        for coin_id in ids:
            point = (self._walk.point(coin_id, k) if market is None
                     else self._walk.at(coin_id, market))
            if point is None:
                continue  # CoinGecko leaves unknown ids out
            if fault is not None and fault.kind == "missing" and coin_id in affected:
                continue
            price: Any = point["price"]
            if fault is not None and fault.kind in VALUE_KINDS and coin_id in affected:
                price = _spoil(price, fault)
            entry: dict[str, Any] = {}
            for vs in currencies:
                entry[vs] = price
                if "include_market_cap" in flags:
                    entry[f"{vs}_market_cap"] = point["market_cap"]
                if "include_24hr_vol" in flags:
                    entry[f"{vs}_24h_vol"] = point["volume_24h"]
                if "include_24hr_change" in flags:
                    entry[f"{vs}_24h_change"] = point["change_24h"]
            if "include_last_updated_at" in flags:
                entry["last_updated_at"] = int(point["ts"]) + self.time_offset
            out[coin_id] = entry
        return 200, _json_body(out), {}

    def _market_chart(
        self, coin_id: str, query: Mapping[str, str], fault: Fault | None
    ) -> tuple[int, bytes, dict[str, str]]:
        if coin_id not in self._walk.by_id:
            return 404, _json_body({"error": "coin not found"}), {}
        if not query.get("vs_currency"):
            return 400, _json_body({"error": "Missing parameter vs_currency"}), {}
        days_text = query.get("days", "")
        try:
            days = math.inf if days_text == "max" else float(days_text)
        except ValueError:
            days = -1.0
        if not days > 0:
            return 400, _json_body({"error": "invalid value for days"}), {}
        market = self.clock() - self.time_offset if self.live else None
        with self._lock:
            current = self.index if market is None else load_history("btc").index_at(market) + 1
        # CoinGecko's automatic granularity: 5-minute up to 1 day, hourly up to 90, then daily.
        stride = 1 if days <= 1 else 12 if days <= 90 else DAY_POINTS
        count = int(min(days * DAY_POINTS, current) // stride)
        ks = [current - stride * j for j in range(count, 0, -1)]
        points = [self._walk.point(coin_id, k) for k in ks]
        if market is None:
            last = dict(self._walk.point(coin_id, current - 1) or {})  # the "request time" point
            last["ts"] = last["ts"] + 157.0
        else:
            last = dict(self._walk.at(coin_id, market) or {})
        points.append(last)
        rows: dict[str, list[list[float]]] = {"prices": [], "market_caps": [], "total_volumes": []}
        for p in points:
            assert p is not None
            ms = (p["ts"] + self.time_offset) * 1000
            ms = int(ms) if float(ms).is_integer() else ms
            rows["prices"].append([ms, p["price"]])
            rows["market_caps"].append([ms, p["market_cap"]])
            rows["total_volumes"].append([ms, p["volume_24h"]])
        if fault is not None and fault.kind in VALUE_KINDS - {"missing"} and rows["prices"]:
            middle = rows["prices"][len(rows["prices"]) // 2]
            middle[1] = _spoil(middle[1], fault)
        return 200, _json_body(rows), {}


def _spoil(price: float, fault: Fault) -> Any:
    """The bad value a value fault puts where ``price`` was."""
    return {
        "nan": math.nan,
        "inf": math.inf,
        "negative": -price,
        "zero": 0,
        "string": str(price),
        "null": None,
        "absurd": price * fault.factor,
    }.get(fault.kind, price)


# --------------------------------------------------------------------------------------------
# The WebSocket fake


class FakeCoinGeckoStream:
    """CoinGecko's WebSocket API (``CGSimplePrice``, channel ``C1``) on 127.0.0.1.

    A client connects (``x-cg-pro-api-key`` header checked if ``api_key`` is set), gets a
    ``{"type": "welcome"}``, subscribes with ``{"command": "subscribe", "identifier":
    "{\\"channel\\":\\"CGSimplePrice\\"}"}`` (answered with ``confirm_subscription``) and sends
    ``set_tokens`` (answered with ``{"code": 2000, ...}``). Then every ``interval`` seconds the
    server sends the next scripted message if any (:meth:`push`), else (if ``walk``) one ``C1``
    update per subscribed coin from the bundled history, keys in a shuffled order, ``t`` a
    float.

    Parameters
    ----------
    port, coins, start, step, time_offset, live, clock
        As for :class:`FakeCoinGecko` (``live``: each update is the walk at ``clock()``).
    interval
        Seconds between messages.
    walk
        Whether to send history updates when no scripted message is waiting.
    api_key
        Required ``x-cg-pro-api-key`` value (None: not checked).
    seed
        Seed of the key-order shuffling.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        coins: Mapping[str, str] | None = None,
        start: int = DAY_POINTS,
        step: int = 1,
        time_offset: int = 0,
        live: bool = False,
        clock: Callable[[], float] = time.time,
        interval: float = 0.02,
        walk: bool = True,
        api_key: str | None = None,
        seed: int = 0,
    ):
        self._walk = _Walk(coins if coins is not None else DEFAULT_COINS)
        self.index = start
        self.step = step
        self.live = live
        self.clock = clock
        self.time_offset = offset_to_now(start, clock()) if live else time_offset
        self.interval = interval
        self.walk = walk
        self.api_key = api_key
        self._rng = random.Random(seed)
        self._port = port
        self._lock = threading.Lock()
        self._script: deque[str] = deque()
        self._drop_after: int | None = None
        self._refuse: deque[int] = deque()
        self.connections: list[RecordedRequest] = []
        self.received: list[Any] = []
        self.sent = 0
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("the fake is not running; use 'with FakeCoinGeckoStream() as s:'")
        return f"ws://127.0.0.1:{self.port}/v1"

    # -- control from the test thread -----------------------------------------------------------

    def push(self, *messages: Any) -> None:
        """Send these messages (dicts as JSON, strings as they are) before any history update."""
        with self._lock:
            for message in messages:
                self._script.append(message if isinstance(message, str) else json.dumps(message))

    def drop_after(self, n: int) -> None:
        """Abort the connection (no close frame) after ``n`` more messages have been sent."""
        with self._lock:
            self._drop_after = n

    def refuse_next(self, n: int, status: int = 503) -> None:
        """Answer the next ``n`` handshakes with HTTP ``status`` instead of upgrading."""
        with self._lock:
            self._refuse.extend([status] * n)

    @property
    def script_left(self) -> int:
        with self._lock:
            return len(self._script)

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> FakeCoinGeckoStream:
        if self._thread is not None:
            raise RuntimeError("already started")
        self._ready.clear()
        self._thread = threading.Thread(target=self._run, daemon=True, name="fake-coingecko-ws")
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT) or self._error is not None:
            self.stop()
            raise RuntimeError(f"the fake CoinGecko stream did not start: {self._error!r}")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            try:
                self._loop.call_soon_threadsafe(self._stop.set)
            except RuntimeError:  # the loop already ended
                pass
        if self._thread is not None:
            self._thread.join(timeout=START_TIMEOUT)
            self._thread = None

    def __enter__(self) -> FakeCoinGeckoStream:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to start()
            self._error = exc
            self._ready.set()

    async def _main(self) -> None:
        from websockets.asyncio.server import serve

        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        sock = _free_socket(self._port)
        async with serve(
            self._connection, sock=sock, process_request=self._process_request,
            logger=_NoDebug(logging.getLogger("cryptotech.testing.fake_stream")),
        ) as server:
            self.port = sock.getsockname()[1]
            self._ready.set()
            await self._stop.wait()
            server.close(close_connections=True)
            await server.wait_closed()

    def _process_request(self, connection: Any, request: Any) -> Any:
        headers = {k.lower(): v for k, v in request.headers.raw_items()}
        record = RecordedRequest("GET", request.path, {}, headers)
        with self._lock:
            self.connections.append(record)
            refuse = self._refuse.popleft() if self._refuse else None
        if refuse is not None:
            record.status = refuse
            return connection.respond(refuse, "unavailable\n")
        if self.api_key is not None and headers.get("x-cg-pro-api-key") != self.api_key:
            record.status = 401
            return connection.respond(401, "unauthorized\n")
        record.status = 101
        return None

    async def _connection(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        tokens: list[str] = []
        state = {"vs": "usd"}
        sender: asyncio.Task[None] | None = None
        try:
            await ws.send(json.dumps({"type": "welcome"}))
            async for raw in ws:
                try:
                    message = json.loads(raw)
                except ValueError:
                    message = raw
                with self._lock:
                    self.received.append(message)
                if not isinstance(message, dict):
                    continue
                command = message.get("command")
                identifier = message.get("identifier")
                if command == "subscribe":
                    channel = _channel(identifier)
                    kind = "confirm" if channel == "CGSimplePrice" else "reject"
                    await ws.send(json.dumps({"type": f"{kind}_subscription",
                                              "identifier": identifier}))
                elif command == "message":
                    data = _loads(message.get("data"))
                    coins = [c for c in data.get("coin_id", []) if isinstance(c, str)]
                    if data.get("action") == "set_tokens":
                        tokens.extend(c for c in coins if c not in tokens)
                        currencies = data.get("vs_currencies") or ["usd"]
                        state["vs"] = str(currencies[0])
                        await ws.send(json.dumps({"code": 2000, "message":
                                                  "Subscription is successful for "
                                                  + ",".join(coins)}))
                        if sender is None:
                            sender = asyncio.create_task(self._send_updates(ws, tokens, state))
                    elif data.get("action") == "unset_tokens":
                        tokens[:] = [c for c in tokens if c not in coins]
                elif command == "unsubscribe" and sender is not None:
                    sender.cancel()
                    sender = None
        except ConnectionClosed:
            pass
        finally:
            if sender is not None:
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)

    async def _send_updates(self, ws: Any, tokens: list[str], state: dict[str, str]) -> None:
        from websockets.exceptions import ConnectionClosed

        try:
            while True:
                await asyncio.sleep(self.interval)
                for message in self._next_messages(tokens, state["vs"]):
                    await ws.send(message)
                    with self._lock:
                        self.sent += 1
                        if self._drop_after is not None:
                            self._drop_after -= 1
                            drop = self._drop_after <= 0
                            if drop:
                                self._drop_after = None
                        else:
                            drop = False
                    if drop:
                        ws.transport.abort()
                        return
        except ConnectionClosed:
            return

    def _next_messages(self, tokens: Iterable[str], vs: str) -> list[str]:
        with self._lock:
            if self._script:
                return [self._script.popleft()]
            if not self.walk:
                return []
            k = self.index
            self.index += self.step
        market = self.clock() - self.time_offset if self.live else None
        out = []
        for coin_id in tokens:
            point = self._walk.point(coin_id, k) if market is None else self._walk.at(coin_id, market)
            if point is None:
                continue
            fields = [
                ("c", "C1"), ("i", coin_id), ("vs", vs), ("p", point["price"]),
                ("pp", point["change_24h"]), ("m", point["market_cap"]),
                ("v", point["volume_24h"]), ("t", float(point["ts"] + self.time_offset)),
            ]
            self._rng.shuffle(fields)
            out.append(json.dumps(dict(fields)))
        return out


class _NoDebug(logging.LoggerAdapter):
    """The fake's websockets logger without DEBUG lines (they would echo the clients' keys)."""

    def __init__(self, logger: logging.Logger):
        super().__init__(logger, {})

    def isEnabledFor(self, level: int) -> bool:
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


def _loads(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _channel(identifier: Any) -> Any:
    return _loads(identifier).get("channel")


# --------------------------------------------------------------------------------------------
# By hand


def main(argv: list[str] | None = None) -> int:
    """``python -m cryptotech.testing.fake_coingecko``: serve until Ctrl-C."""
    parser = argparse.ArgumentParser(
        prog="python -m cryptotech.testing.fake_coingecko",
        description="A fake CoinGecko (REST, optionally WebSocket) on 127.0.0.1, walking "
        "through the bundled real 5-minute history.",
    )
    parser.add_argument("--port", type=int, default=8765, help="REST port (default 8765)")
    parser.add_argument("--ws-port", type=int, default=None,
                        help="also serve the WebSocket API on this port")
    parser.add_argument("--step", type=int, default=1,
                        help="5-minute points advanced per /simple/price request (default 1)")
    parser.add_argument("--interval", type=float, default=10.0,
                        help="seconds between WebSocket updates (default 10)")
    parser.add_argument("--now", action="store_true",
                        help="live prices: the walk follows the clock from the current time "
                             "(prices interpolated between the 5-minute points, timestamps of "
                             "now), so a client sees current, moving prices; --step is unused")
    args = parser.parse_args(argv)
    # Ctrl-C stops it even when started from a shell that ignores SIGINT in background jobs
    signal.signal(signal.SIGINT, signal.default_int_handler)
    rest = FakeCoinGecko(port=args.port, step=args.step, live=args.now)
    stream = (
        FakeCoinGeckoStream(port=args.ws_port, interval=args.interval, live=args.now)
        if args.ws_port is not None
        else None
    )
    with rest:
        print(f"fake CoinGecko REST: {rest.url}  (e.g. {rest.url}/ping)", flush=True)
        print(f"  use: CRYPTOTECH_SOURCE__BASE_URL={rest.url}", flush=True)
        if stream is not None:
            stream.start()
            print(f"fake CoinGecko WebSocket: {stream.url}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping", flush=True)
        finally:
            if stream is not None:
                stream.stop()
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
