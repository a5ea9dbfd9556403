"""CoinGecko REST source: ``/simple/price`` polled at a steady cadence through the official SDK.

One ``/simple/price`` call per poll covers every configured coin (price, market cap, 24 h
volume, 24 h change, ``last_updated_at``). The poller alone decides when to call (the SDK's own
retries are off):

* success: the next poll starts ``poll_interval`` after this one started (arq-style), or later
  if the monthly credit budget needs the calls spread out;
* 429: wait as long as ``Retry-After`` says (seconds or HTTP date), else back off;
* 5xx, timeouts, connection errors: exponential backoff with jitter;
* after a 429 or a failure the next call is never sooner than ``poll_interval`` (nor than
  the credit budget's spacing), even if ``Retry-After`` says 0: retrying faster than the
  normal cadence would exceed the rate the interval was chosen for;
* 401/403 and CoinGecko codes 10002, 10005, 10010, 10011: one actionable message, then a long
  wait (10 minutes by default): a wrong key does not fix itself;
* budget used up: no call until the next calendar month (UTC).

Status messages (``/status``, the dashboard) are Portuguese, as everything a user reads.

The API key travels only as the ``x-cg-demo-api-key`` / ``x-cg-pro-api-key`` header given to
the SDK's constructor; messages, logs and exceptions are built from our own words plus server
text passed through :func:`~cryptotech.sources.base.redact`.

Bodies are read raw (``with_raw_response``) and decoded here rather than by the SDK's models,
which would turn a NaN or a numeric string into a float and cannot tell us what was wrong.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import json
import math
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlsplit

from cryptotech.config import Settings, zone_city
from cryptotech.domain import Tick
from cryptotech.errors import ConfigError, SourceError
from cryptotech.sources.base import LOG, Backoff, SourceStatus, State, redact
from cryptotech.sources.validation import TickValidator

UTC = timezone.utc
PUBLIC_HOST = "https://api.coingecko.com/api/v3"
PRO_HOST = "https://pro-api.coingecko.com/api/v3"
KEY_HEADERS = {"demo": "x-cg-demo-api-key", "pro": "x-cg-pro-api-key"}

# Status messages are read by users (/status, the dashboard): Portuguese, one line each.
AUTH_HINTS = {
    10002: "o CoinGecko diz que falta a chave da API (erro 10002): defina "
    "CRYPTOTECH_COINGECKO_API_KEY e source.plan = \"demo\" ou \"pro\"",
    10005: "o CoinGecko diz que este endereço não faz parte do seu plano (erro 10005): confira "
    "source.plan e o plano da sua chave em coingecko.com/en/api/pricing",
    10010: "o CoinGecko diz que uma chave Pro foi enviada ao servidor público (erro 10010): "
    "defina source.plan = \"pro\" (servidor pro-api.coingecko.com)",
    10011: "o CoinGecko diz que uma chave Demo foi enviada ao servidor Pro (erro 10011): "
    "defina source.plan = \"demo\" (servidor api.coingecko.com)",
}


class RateLimited(SourceError):
    """HTTP 429. ``retry_after`` is the server's wish in seconds, if it said one."""

    def __init__(self, message: str, retry_after: float | None):
        super().__init__(message)
        self.retry_after = retry_after


class AuthRejected(SourceError):
    """The key or plan was refused (401/403 or a CoinGecko error code)."""

    def __init__(self, message: str, code: int | None):
        super().__init__(message)
        self.code = code


class Unavailable(SourceError):
    """CoinGecko could not be reached or answered with a server error."""


class MalformedResponse(SourceError):
    """A 200 answer whose body is not the JSON expected."""


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay in seconds or HTTP date).

    >>> now = datetime(2025, 6, 1, 12, 0, tzinfo=timezone.utc)
    >>> parse_retry_after("119", now)
    119.0
    >>> parse_retry_after("Sun, 01 Jun 2025 12:00:30 GMT", now)
    30.0
    >>> parse_retry_after("soon", now) is None, parse_retry_after(None, now) is None
    (True, True)
    """
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - now).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def next_month(now: datetime) -> datetime:
    """Midnight UTC of the first day of the month after ``now``.

    >>> next_month(datetime(2025, 12, 31, 23, 59, tzinfo=timezone.utc)).isoformat()
    '2026-01-01T00:00:00+00:00'
    """
    now = now.astimezone(UTC)
    year, month = (now.year + 1, 1) if now.month == 12 else (now.year, now.month + 1)
    return datetime(year, month, 1, tzinfo=UTC)


class CreditBudget:
    """Monthly call credits (1 per answered call) never exceeded, spread over the month.

    ``monthly == 0`` means no budget (calls are still counted). Months are UTC calendar months.
    Only calls that got an HTTP answer spend a credit (CoinGecko bills those; a DNS or
    connection failure never reached it). ``on_spend`` (if set) is called after each spend,
    so the count can be kept across restarts (:meth:`dump`, :meth:`restore`).

    >>> now = datetime(2025, 6, 30, 23, 0, tzinfo=timezone.utc)
    >>> budget = CreditBudget(monthly=4, used=2, now=now)
    >>> budget.remaining(now), budget.spacing(now)      # 3600 s left, 2 calls left
    (2, 1800.0)
    >>> budget.spend(now); budget.spend(now); budget.remaining(now), budget.spacing(now)
    (0, 3600.0)
    >>> budget.dump()
    '{"month": "2025-06", "used": 4}'
    >>> budget.remaining(datetime(2025, 7, 1, tzinfo=timezone.utc))   # a new month
    4
    """

    def __init__(self, monthly: int, used: int = 0, now: datetime | None = None):
        self.monthly = monthly
        self.used = used
        self._month = self._key(now or datetime.now(UTC))
        self.on_spend: Callable[[], None] | None = None

    @staticmethod
    def _key(now: datetime) -> tuple[int, int]:
        now = now.astimezone(UTC)
        return now.year, now.month

    def _roll(self, now: datetime) -> None:
        if self._key(now) != self._month:
            self._month = self._key(now)
            self.used = 0

    def remaining(self, now: datetime) -> int | None:
        """Credits left this month (None: no budget)."""
        self._roll(now)
        return None if self.monthly == 0 else max(0, self.monthly - self.used)

    def spend(self, now: datetime, credits: int = 1) -> None:
        self._roll(now)
        self.used += credits
        if self.on_spend is not None:
            self.on_spend()

    def dump(self) -> str:
        """This month's count as stored text (JSON ``{"month": "YYYY-MM", "used": n}``)."""
        year, month = self._month
        return json.dumps({"month": f"{year:04d}-{month:02d}", "used": self.used})

    def restore(self, text: str | None) -> None:
        """Take the count from :meth:`dump`'s text if it is of the current month (else keep
        this one: a new month starts from 0). Unreadable text is ignored.

        >>> now = datetime(2025, 6, 30, 23, 0, tzinfo=timezone.utc)
        >>> budget = CreditBudget(monthly=0, now=now)
        >>> budget.restore('{"month": "2025-06", "used": 7}'); budget.used
        7
        >>> budget.restore('{"month": "2025-05", "used": 9}'); budget.used
        7
        """
        try:
            saved = json.loads(text or "null")  # null: nothing saved yet (TypeError below)
            month, used = str(saved["month"]), int(saved["used"])
        except (ValueError, TypeError, KeyError):
            return
        year, mon = self._month
        if month == f"{year:04d}-{mon:02d}" and used >= 0:
            self.used = max(self.used, used)

    def spacing(self, now: datetime) -> float:
        """Smallest wait between calls that lasts the budget to the month's end.

        With no credit left, the time until the next month.
        """
        left = self.remaining(now)
        if left is None:
            return 0.0
        return (next_month(now) - now).total_seconds() / max(left, 1)


def _error_details(body: object) -> tuple[int | None, str]:
    """CoinGecko's ``error_code`` and ``error_message`` from an error body (any known shape)."""
    if isinstance(body, dict):
        status = body.get("status")
        if not isinstance(status, dict) and isinstance(body.get("error"), dict):
            status = body["error"].get("status")
        if isinstance(status, dict):
            code = status.get("error_code")
            message = status.get("error_message")
            return (code if isinstance(code, int) else None), str(message or "")
        if isinstance(body.get("error"), str):
            return None, body["error"]
    return None, ""


def _load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedResponse("the body is not JSON") from None


def parse_simple_price(
    body: bytes, coins: Mapping[str, str], vs: str, validator: TickValidator
) -> list[Tick]:
    """Valid ticks from a ``/simple/price`` body; everything else is counted by ``validator``.

    ``coins`` maps symbol -> CoinGecko id. Raises :class:`MalformedResponse` if the body is not
    a JSON object.

    >>> from cryptotech.sources.base import SourceStatus
    >>> v = TickValidator(SourceStatus())
    >>> body = (b'{"bitcoin": {"usd": 104000.5, "last_updated_at": 1750000000},'
    ...         b' "ethereum": {"usd": NaN}}')
    >>> coins = {"btc": "bitcoin", "eth": "ethereum", "ada": "cardano"}
    >>> [(t.coin, t.price) for t in parse_simple_price(body, coins, "usd", v)]
    [('btc', 104000.5)]
    >>> dict(v.status.rejected)
    {'nan': 1, 'missing_coin': 1}
    """
    data = _load_json(body)
    if not isinstance(data, dict):
        raise MalformedResponse("the body is not a JSON object")
    ticks = []
    missing = {}
    for symbol, coin_id in coins.items():
        entry = data.get(coin_id)
        if entry is None:
            validator.reject("missing_coin")
            missing[symbol] = f"sem dados na fonte: o CoinGecko não devolve o id {coin_id!r}"
            continue
        if not isinstance(entry, dict):
            validator.reject("malformed")
            continue
        tick = validator.accept(
            symbol,
            entry.get("last_updated_at"),
            entry.get(vs),
            market_cap=entry.get(f"{vs}_market_cap"),
            volume_24h=entry.get(f"{vs}_24h_vol"),
            change_24h=entry.get(f"{vs}_24h_change"),
        )
        if tick is not None:
            ticks.append(tick)
    validator.status.note_no_data(missing, present=set(coins) - set(missing))
    return ticks


def parse_market_chart(body: bytes, symbol: str, validator: TickValidator) -> list[Tick]:
    """Valid ticks of one coin from a ``/coins/{id}/market_chart`` body, in time order.

    >>> from cryptotech.sources.base import SourceStatus
    >>> v = TickValidator(SourceStatus())
    >>> body = (b'{"prices": [[1750000000000, 10.0], [1750000300000, -1], [1750000450123, 10.5]],'
    ...         b' "market_caps": [[1750000000000, 1e9]], "total_volumes": []}')
    >>> for t in parse_market_chart(body, "x", v):
    ...     print(t.ts.isoformat(), t.price, t.market_cap)
    2025-06-15T15:06:40+00:00 10.0 1000000000.0
    2025-06-15T15:14:10.123000+00:00 10.5 None
    """
    data = _load_json(body)
    if not isinstance(data, dict) or not isinstance(data.get("prices"), list):
        raise MalformedResponse("the body has no 'prices' list")

    def by_time(key: str) -> dict[float, object]:
        pairs = data.get(key)
        return {
            p[0]: p[1]
            for p in (pairs if isinstance(pairs, list) else [])
            if isinstance(p, list) and len(p) == 2 and isinstance(p[0], (int, float))
        }

    caps, volumes = by_time("market_caps"), by_time("total_volumes")
    points = []
    for pair in data["prices"]:
        if not (isinstance(pair, list) and len(pair) == 2 and isinstance(pair[0], (int, float))):
            validator.reject("malformed")
            continue
        points.append(pair)
    points.sort(key=lambda p: p[0])
    ticks = []
    for ms, price in points:
        tick = validator.accept(
            symbol, ms / 1000.0, price, market_cap=caps.get(ms), volume_24h=volumes.get(ms)
        )
        if tick is not None:
            ticks.append(tick)
    return ticks


class CoinGeckoRestSource:
    """Live ticks from CoinGecko's ``/simple/price``, polled through ``coingecko-sdk``.

    Parameters
    ----------
    settings
        Coins, vs currency and ``settings.source`` (plan, poll_interval, base_url, timeout,
        monthly_credit_budget, stale_after_polls); the key from ``coingecko_api_key``.
    status, validator
        Shared with another source (the WebSocket source falling back to REST); new ones
        by default.
    rng
        Random generator for the backoff jitter (seed it in tests).
    now
        Wall clock (aware UTC datetime) for the credit budget and ``Retry-After`` dates.
    monotonic, sleep
        The clock that times the waits between polls and the coroutine that waits
        (``time.monotonic`` and ``asyncio.sleep``; tests pass a virtual clock).
    credits_used_month
        Credits already spent this month (e.g. remembered by the store across restarts).
    auth_retry_after
        Seconds to wait after the key or plan was refused before trying again.
    max_wait
        Upper bound in seconds of any single wait (backoff cap, ``Retry-After`` cap).
    backfill_share
        With a budget, the largest share of this month's remaining credits a backfill may use.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        status: SourceStatus | None = None,
        validator: TickValidator | None = None,
        rng: random.Random | None = None,
        now: Callable[[], datetime] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        credits_used_month: int = 0,
        auth_retry_after: float = 600.0,
        max_wait: float = 3600.0,
        backfill_share: float = 0.1,
    ):
        source = settings.source
        self.settings = settings
        self.coins = dict(settings.coins)
        self.vs = settings.vs_currency
        self.plan = source.plan
        self.interval = source.poll_interval.total_seconds()
        self.timeout = source.timeout.total_seconds()
        self.stale_after = source.stale_after_polls
        self.auth_retry_after = auth_retry_after
        self.max_wait = max_wait
        self.backfill_share = backfill_share
        self.base_url = (source.base_url or (PRO_HOST if self.plan == "pro" else PUBLIC_HOST))
        self.base_url = self.base_url.rstrip("/")
        self._host = urlsplit(self.base_url).netloc or self.base_url
        key = settings.coingecko_api_key.get_secret_value() if settings.coingecko_api_key else ""
        if self.plan != "keyless" and not key:
            raise ConfigError(
                f"config: source.plan is {self.plan!r} but CRYPTOTECH_COINGECKO_API_KEY is not "
                "set (set it, or use source.plan = \"keyless\")"
            )
        if self.plan == "keyless" and key:
            LOG.warning("CRYPTOTECH_COINGECKO_API_KEY is set but source.plan is 'keyless': "
                        "the key is not sent")
            key = ""
        self._key = key
        self.now = now or (lambda: datetime.now(UTC))
        self.monotonic = monotonic
        self.sleep = sleep
        self.status = status if status is not None else SourceStatus(source="rest")
        self.validator = validator if validator is not None else TickValidator(self.status)
        self.backoff = Backoff(base=self.interval, cap=max(self.interval, max_wait), rng=rng)
        self.budget = CreditBudget(source.monthly_credit_budget, credits_used_month, self.now())
        self.status.credit_budget = source.monthly_credit_budget
        self.status.credits_used_month = credits_used_month
        self._quiet_polls = 0

    # -- the SDK client ------------------------------------------------------------------------

    @asynccontextmanager
    async def _client(self) -> AsyncIterator[Any]:
        from coingecko_sdk import AsyncCoingecko

        client = AsyncCoingecko(
            pro_api_key=self._key if self.plan == "pro" else None,
            demo_api_key=self._key if self.plan == "demo" else None,
            base_url=self.base_url,
            max_retries=0,
            timeout=self.timeout,
        )
        try:
            yield client
        finally:
            await client.close()

    def _headers(self) -> dict[str, Any]:
        """Per-request headers: explicitly drop the key headers this plan does not use.

        (The SDK would otherwise pick up ``COINGECKO_*_API_KEY`` from the environment, and
        refuses to send a request with no key unless told the omission is deliberate.)
        """
        from coingecko_sdk import Omit

        return {h: Omit() for plan, h in KEY_HEADERS.items() if plan != self.plan}

    async def _fetch(self, call: Callable[[], Awaitable[Any]]) -> bytes:
        """The body of a 200 answer; every failure converted into a :class:`SourceError`.

        A credit is spent for every call that got an HTTP answer (any status), none for a
        call that never reached CoinGecko (DNS, connection refused, timeout).
        """
        import coingecko_sdk as sdk
        import httpx

        try:
            raw = await call()
            self._spend()  # answered: CoinGecko counts it
            return await raw.read()
        except sdk.APIStatusError as exc:
            self._spend()  # an HTTP error answer is a call CoinGecko answered too
            status = exc.status_code
            code, server_text = _error_details(exc.body)
            server_text = redact(server_text, self._key, limit=160)
            if status == 429:
                wait = parse_retry_after(exc.response.headers.get("retry-after"), self.now())
                raise RateLimited(
                    "limite de requisições do CoinGecko atingido (HTTP 429)"
                    + (f"; Retry-After {wait:g} s" if wait is not None else ""),
                    wait,
                ) from None
            if code in AUTH_HINTS:
                raise AuthRejected(AUTH_HINTS[code], code) from None
            if status in (401, 403):
                raise AuthRejected(
                    f"o CoinGecko recusou a requisição (HTTP {status}"
                    + (f", erro {code}" if code else "")
                    + (f": {server_text}" if server_text else "")
                    + "): confira CRYPTOTECH_COINGECKO_API_KEY e source.plan",
                    code,
                ) from None
            raise Unavailable(
                f"o CoinGecko respondeu HTTP {status}" + (f": {server_text}" if server_text else "")
            ) from None
        except sdk.APITimeoutError:
            raise Unavailable(f"o CoinGecko ({self._host}) não respondeu em "
                              f"{self.timeout:g} s") from None
        except sdk.APIConnectionError as exc:
            cause = redact(str(exc.__cause__ or exc), self._key, limit=160)
            raise Unavailable(f"não foi possível acessar o CoinGecko em {self._host} "
                              f"(detalhe: {cause})") from None
        except httpx.HTTPError as exc:  # e.g. the connection dropped while reading the body
            cause = redact(str(exc) or type(exc).__name__, self._key, limit=160)
            raise Unavailable(f"a resposta do CoinGecko foi interrompida (detalhe: {cause})") from None

    # -- polling -------------------------------------------------------------------------------

    def _spacing(self) -> float:
        return max(self.interval, self.budget.spacing(self.now()))

    def _can_spend(self) -> bool:
        left = self.budget.remaining(self.now())
        return left is None or left > 0

    def _spend(self) -> None:
        self.budget.spend(self.now())
        self.status.credits_used_month = self.budget.used

    async def stream(self) -> AsyncGenerator[Tick, None]:
        """Poll forever, yielding each new valid tick; cancel (or ``aclose``) to stop."""
        async with self._client() as client:
            while True:
                started = self.monotonic()
                ticks: list[Tick] = []
                if not self._can_spend():
                    deadline = started + self._budget_exhausted()
                else:
                    ticks, wait, steady = await self._poll(client)
                    deadline = (started if steady else self.monotonic()) + wait
                left = max(0.0, deadline - self.monotonic())
                self.status.next_poll_at = self.now() + timedelta(seconds=left)
                for tick in ticks:
                    yield tick
                await self.sleep(max(0.0, deadline - self.monotonic()))

    def _budget_exhausted(self) -> float:
        now = self.now()
        resume = next_month(now)
        self.status.credits_used_month = self.budget.used
        local = resume.astimezone(self.settings.zone)
        self.status.change(
            "budget_exhausted",
            f"orçamento mensal de {self.budget.monthly} chamadas esgotado; as consultas voltam "
            f"em {local:%d/%m/%Y às %H:%M} (horário de {zone_city(self.settings.timezone)})",
        )
        return min(self.max_wait, max(0.001, (resume - now).total_seconds()))

    async def _poll(self, client: Any) -> tuple[list[Tick], float, bool]:
        """One ``/simple/price`` call: (new ticks, seconds to wait, whether the wait is steady).

        A steady wait counts from the start of this poll (the caller subtracts the time the
        poll took); any other wait counts from now.
        """
        self.status.polls += 1
        try:
            body = await self._fetch(
                lambda: client.simple.price.with_raw_response.get(
                    vs_currencies=self.vs,
                    ids=",".join(self.coins.values()),
                    include_market_cap=True,
                    include_24hr_vol=True,
                    include_24hr_change=True,
                    include_last_updated_at=True,
                    extra_headers=self._headers(),
                )
            )
        except RateLimited as exc:
            self.status.errors += 1
            wait = exc.retry_after if exc.retry_after is not None else self.backoff.next()
            wait = min(self.max_wait, max(wait, self._spacing()))
            self.status.change("rate_limited", f"{exc}; nova consulta em {wait:g} s")
            return [], wait, False
        except AuthRejected as exc:
            self.status.errors += 1
            self.status.change("auth_error", str(exc))
            return [], self.auth_retry_after, False
        except Unavailable as exc:
            self.status.errors += 1
            wait = min(self.max_wait, max(self.backoff.next(), self._spacing()))
            self.status.change("unreachable", f"{exc}; tentando de novo, com esperas crescentes")
            return [], wait, False
        self.backoff.reset()
        self.status.last_ok_at = self.now()
        try:
            ticks = parse_simple_price(body, self.coins, self.vs, self.validator)
        except MalformedResponse:
            self.validator.reject("malformed")
            ticks = []
        self._note_freshness(bool(ticks))
        return ticks, self._spacing(), True

    def _note_freshness(self, fresh: bool) -> None:
        if fresh:
            self._quiet_polls = 0
            coins = len(self.coins)
            self.status.change("live", f"consultando {self._host} a cada {self._spacing():g} s, "
                                       f"{coins} {'moeda' if coins == 1 else 'moedas'}")
            return
        self._quiet_polls += 1
        if self._quiet_polls >= self.stale_after:
            self.status.change("stale", f"sem preços novos nas últimas {self._quiet_polls} consultas")
        elif self.status.state not in ("live", "stale"):
            self.status.change("live", f"{self._host} responde; aguardando preços novos")

    # -- warm start ----------------------------------------------------------------------------

    async def backfill(self) -> list[Tick]:
        """The last day of 5-minute points of every coin (``market_chart?days=1``), by time.

        One credit per coin, and with a budget at most ``backfill_share`` of the credits left
        this month; on the first failure the backfill stops (one log line) and returns what
        it has.
        """
        left = self.budget.remaining(self.now())
        allowed = len(self.coins) if left is None else int(left * self.backfill_share)
        out: list[Tick] = []
        done = 0
        async with self._client() as client:
            for symbol, coin_id in self.coins.items():
                if done >= allowed:
                    LOG.warning("backfill: credit budget allows %d of %d coins; skipped the rest",
                                allowed, len(self.coins))
                    break
                done += 1
                try:
                    body = await self._fetch(functools.partial(
                        client.coins.market_chart.with_raw_response.get,
                        coin_id, vs_currency=self.vs, days="1", extra_headers=self._headers(),
                    ))
                except SourceError as exc:
                    self.status.errors += 1
                    state: State = ("rate_limited" if isinstance(exc, RateLimited) else
                                    "auth_error" if isinstance(exc, AuthRejected) else
                                    "unreachable")
                    self.status.change(state, f"histórico inicial interrompido em {symbol}: {exc}")
                    break
                try:
                    out.extend(parse_market_chart(body, symbol, self.validator))
                except MalformedResponse:
                    self.validator.reject("malformed")
        out.sort(key=lambda t: (t.ts, t.coin))
        LOG.info("backfill: %d tick(s) for %d coin(s) from %s", len(out), done, self._host)
        return out
