"""CoinGecko WebSocket source (beta, paid plans): ``CGSimplePrice`` updates as they happen.

Protocol (ActionCable-style, as CoinGecko documents it; ``identifier`` and ``data`` are
JSON-encoded strings)::

    -> {"command": "subscribe", "identifier": "{\\"channel\\":\\"CGSimplePrice\\"}"}
    <- {"type": "confirm_subscription", "identifier": ...}
    -> {"command": "message", "identifier": ..., "data": "{\\"coin_id\\":[...],
        \\"vs_currencies\\":[\\"usd\\"],\\"action\\":\\"set_tokens\\"}"}
    <- {"code": 2000, "message": ...}
    <- {"c": "C1", "i": "bitcoin", "vs": "usd", "p": ..., "pp": ..., "m": ..., "v": ..., "t": ...}

Updates have short keys in any order, any of them may be null, ``t`` may be a float; older
documentation names the fields ``usd_price``, ``usd_market_cap``, ... which are accepted too.
Values go through the same :class:`~cryptotech.sources.validation.TickValidator` as REST.

The key is sent in the ``x-cg-pro-api-key`` header only. A dropped connection is reopened with
exponential backoff and jitter; after ``max_failures`` consecutive failures the source falls
back to the REST poller for good (until restarted) and says so in its status. ``backfill()``
is REST's ``market_chart``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from cryptotech.config import Settings
from cryptotech.domain import Tick
from cryptotech.errors import ConfigError, SourceError
from cryptotech.sources.base import LOG, Backoff, SourceStatus, redact
from cryptotech.sources.coingecko import KEY_HEADERS, CoinGeckoRestSource
from cryptotech.sources.validation import TickValidator

CHANNEL = "CGSimplePrice"
IDENTIFIER = json.dumps({"channel": CHANNEL}, separators=(",", ":"))
CONTROL_TYPES = {"welcome", "ping", "confirm_subscription"}


class _Dropped(SourceError):
    """The server ended the session (rejected subscription, disconnect message)."""


class _RedactingLogger(logging.LoggerAdapter):
    """Hands ``websockets`` a logger that blanks the key out of its debug lines (it logs the
    request headers of the handshake when DEBUG is on)."""

    def __init__(self, logger: logging.Logger, secret: str):
        super().__init__(logger, {})
        self._secret = secret

    def log(self, level: int, msg: object, *args: Any, **kwargs: Any) -> None:
        if self.isEnabledFor(level):
            text = str(msg) % args if args else str(msg)
            kwargs.pop("extra", None)
            self.logger.log(level, "%s", redact(text, self._secret, limit=2000), **kwargs)


def _first(message: dict[str, Any], *names: str) -> Any:
    """The value of the first of ``names`` present in ``message`` (None if none is)."""
    for name in names:
        if name in message:
            return message[name]
    return None


class CoinGeckoStreamSource:
    """Live ticks from CoinGecko's WebSocket ``CGSimplePrice`` channel.

    Parameters
    ----------
    settings
        Coins, vs currency, ``source.websocket_url``, ``source.timeout``, the Pro key; also
        what the REST fallback and backfill use (``source.base_url``, ``poll_interval``...).
    rng
        Random generator for the reconnect jitter (and the fallback's backoff).
    now
        Wall clock (aware UTC datetime).
    sleep
        The coroutine that waits between reconnects and between the fallback's polls
        (``asyncio.sleep``; tests pass a virtual clock's).
    max_failures
        Consecutive failed sessions (no price received) before falling back to REST.
    rest_options
        Passed to the :class:`~cryptotech.sources.coingecko.CoinGeckoRestSource` used for
        backfill and fallback (e.g. ``credits_used_month``); it shares this source's status
        and validator, so duplicates and prices are tracked across the switch.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        rng: random.Random | None = None,
        now: Callable[[], datetime] | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        max_failures: int = 5,
        **rest_options: Any,
    ):
        source = settings.source
        key = settings.coingecko_api_key.get_secret_value() if settings.coingecko_api_key else ""
        if source.plan != "pro" or not key:
            raise ConfigError(
                "config: source.kind = \"websocket\" needs a paid plan: set source.plan = "
                "\"pro\" and CRYPTOTECH_COINGECKO_API_KEY"
            )
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        self.url = source.websocket_url
        self._host = urlsplit(self.url).netloc or self.url
        self._key = key
        self.coins = dict(settings.coins)
        self._symbol_of = {coin_id: symbol for symbol, coin_id in self.coins.items()}
        self.vs = settings.vs_currency
        self.timeout = source.timeout.total_seconds()
        self.stale_after = source.stale_after_polls * source.poll_interval.total_seconds()
        self.max_failures = max_failures
        self.status = SourceStatus(source="websocket")
        self.validator = TickValidator(self.status)
        rng = rng if rng is not None else random.Random()
        self.rest = CoinGeckoRestSource(
            settings, status=self.status, validator=self.validator, rng=rng, now=now,
            sleep=sleep, **rest_options,
        )
        base = min(source.poll_interval.total_seconds(), 1.0)
        self.backoff = Backoff(base=base, cap=max(base, 60.0), rng=rng)
        self.now = self.rest.now
        self.sleep = sleep
        self.fell_back = False
        self._logger = _RedactingLogger(logging.getLogger("cryptotech.source.websocket"), key)

    async def backfill(self) -> list[Tick]:
        """Recent history through REST ``market_chart`` (the WebSocket has none)."""
        return await self.rest.backfill()

    async def stream(self) -> AsyncIterator[Tick]:
        """Yield ticks from the WebSocket, reconnecting; after repeated failures, from REST."""
        import websockets

        failures = 0
        while True:
            got_prices = False
            try:
                async with aclosing(self._session()) as session:
                    async for tick in session:
                        if not got_prices:
                            got_prices = True
                            failures = 0
                            self.backoff.reset()
                        yield tick
                reason = "o servidor fechou a conexão"
            except websockets.InvalidStatus as exc:
                reason = f"o servidor recusou a conexão (HTTP {exc.response.status_code})"
            except (OSError, TimeoutError, websockets.WebSocketException, SourceError) as exc:
                reason = redact(str(exc) or type(exc).__name__, self._key, limit=160)
            if not got_prices:
                failures += 1
            self.status.errors += 1
            if failures >= self.max_failures:
                break
            wait = self.backoff.next()
            self.status.next_poll_at = self.now() + timedelta(seconds=wait)
            self.status.change(
                "unreachable",
                f"websocket {self._host}: {reason}; reconectando (tentativas seguidas sem "
                f"sucesso: {failures} de {self.max_failures} antes de passar a consultar por REST)",
            )
            await self.sleep(wait)
        self.fell_back = True
        message = (f"o websocket falhou {failures} vezes seguidas ({reason}); consultando por "
                   "REST até reiniciar")
        LOG.warning("source %s: %s", self.status.source, message)
        self.status.source = "rest"  # the kind now delivering prices; the flag says why
        self.status.fallback = True
        self.status.change("unreachable", message)
        async with aclosing(self.rest.stream()) as polled:
            async for tick in polled:
                yield tick

    async def _session(self) -> AsyncGenerator[Tick, None]:
        """One connection: subscribe, then yield ticks until it ends (raises on failure)."""
        from websockets.asyncio.client import connect

        async with connect(
            self.url,
            additional_headers={KEY_HEADERS["pro"]: self._key},
            open_timeout=self.timeout,
            close_timeout=min(self.timeout, 5.0),
            logger=self._logger,
        ) as ws:
            try:
                await self._subscribe(ws)
                self.status.last_ok_at = self.now()
                if self.status.state != "live":
                    self.status.change("live", f"websocket {self._host}: inscrito em "
                                               f"{len(self.coins)} moeda(s)")
                last_new = time.monotonic()
                while True:
                    left = last_new + self.stale_after - time.monotonic()
                    if left <= 0:
                        self.status.change("stale", f"websocket {self._host}: sem preços novos "
                                                    f"há {self.stale_after:g} s")
                        last_new = time.monotonic()
                        continue
                    try:
                        raw = await asyncio.wait_for(ws.recv(), timeout=left)
                    except TimeoutError:
                        continue
                    for tick in self.parse(raw):
                        last_new = time.monotonic()
                        self.status.last_ok_at = self.now()
                        if self.status.state != "live":
                            self.status.change("live", f"websocket {self._host}: recebendo "
                                                       "preços")
                        yield tick
            finally:
                await ws.close()  # a normal close (1000), also when the consumer stops

    async def _subscribe(self, ws: Any) -> None:
        await ws.send(json.dumps({"command": "subscribe", "identifier": IDENTIFIER}))
        deadline = time.monotonic() + self.timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Dropped(f"sem confirmação da inscrição em {self.timeout:g} s")
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), timeout=left))
            except TimeoutError:
                continue
            except ValueError:
                continue
            kind = message.get("type") if isinstance(message, dict) else None
            if kind == "confirm_subscription":
                break
            if kind in ("reject_subscription", "disconnect"):
                raise _Dropped(f"o servidor respondeu {kind}")
        data = {"coin_id": list(self.coins.values()), "vs_currencies": [self.vs],
                "action": "set_tokens"}
        await ws.send(json.dumps({"command": "message", "identifier": IDENTIFIER,
                                  "data": json.dumps(data, separators=(",", ":"))}))

    def parse(self, raw: str | bytes) -> list[Tick]:
        """Valid new ticks in one WebSocket message (control messages give none).

        Raises :class:`SourceError` if the server says it is ending the session.
        """
        try:
            message = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            self.validator.reject("malformed")
            return []
        items = message if isinstance(message, list) else [message]
        ticks = []
        for item in items:
            if isinstance(item, dict) and isinstance(item.get("message"), dict):
                item = item["message"]  # ActionCable envelope {"identifier", "message"}
            if not isinstance(item, dict):
                self.validator.reject("malformed")
                continue
            tick = self._update(item)
            if tick is not None:
                ticks.append(tick)
        return ticks

    def _update(self, item: dict[str, Any]) -> Tick | None:
        kind = item.get("type")
        if kind in ("reject_subscription", "disconnect"):
            raise _Dropped(f"o servidor enviou {kind}")
        coin_id = _first(item, "i", "coin_id")
        if kind in CONTROL_TYPES or (coin_id is None and "code" in item):
            return None  # welcome, ping, confirmations, {"code": 2000, ...}
        if item.get("c") not in (None, "C1"):
            return None  # another channel
        if not isinstance(coin_id, str):
            self.validator.reject("malformed")
            return None
        symbol = self._symbol_of.get(coin_id)
        if symbol is None:
            self.validator.reject("unknown_coin")
            return None
        vs = item.get("vs")
        if vs is not None and vs != self.vs:
            return None  # a quote currency we did not ask for
        v = self.vs
        return self.validator.accept(
            symbol,
            _first(item, "t", "last_updated_at"),
            _first(item, "p", f"{v}_price", v),
            market_cap=_first(item, "m", f"{v}_market_cap"),
            volume_24h=_first(item, "v", f"{v}_24h_vol", f"{v}_total_volume"),
            change_24h=_first(item, "pp", f"{v}_price_change_percentage_24h", f"{v}_24h_change"),
        )
