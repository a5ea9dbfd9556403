"""External delivery: the outbox drained through apprise, with retries and backoff per channel.

Channels are apprise URLs (``json://``, ``tgram://``, ``discord://``, ``mailto://``,
``ntfy://``...) read only from the environment variable ``CRYPTOTECH_ALERTAS_URLS`` (several
separated by commas), because they carry secrets (bot tokens, passwords). The store never sees
a URL: an outbox row names its channel by a hash of the URL, and logs and ``/status`` show
apprise's privacy form of it (secrets masked).

:class:`Sender` runs one task per channel. Each task takes the channel's due outbox rows in
order, sends each with apprise's blocking ``notify`` in a worker thread (never on the event
loop, never in the engine's thread), and records the result at once:

* success: the row becomes ``enviado`` (committed right after the receiver answered);
* failure: the row stays ``pendente`` with its next attempt ``backoff`` seconds later
  (exponential, per channel: a failing channel waits, the others carry on); after
  ``max_attempts`` it becomes ``falhou`` with the reason apprise logged.

On shutdown a send in flight is finished and recorded before its task stops.

Each trigger is delivered once across crashes and restarts: the outbox row is committed with
the tick that fired it, and marked ``enviado`` right after the send. The one window left is a
process killed between the receiver's answer and that commit (a few milliseconds): the alert
is then sent again after the restart (at-least-once there, never lost). Each message carries
``alerta #ID`` so a receiver can drop such a repeat.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cryptotech.alerts.rules import _num
from cryptotech.api.timefmt import local
from cryptotech.config import Settings, zone_city
from cryptotech.storage import StoreBackend as Store

log = logging.getLogger("cryptotech.alerts")

URLS_ENV = "CRYPTOTECH_ALERTAS_URLS"


@dataclass(frozen=True)
class Channel:
    """One external channel: its key in the store and its URL with secrets masked."""

    key: str
    url: str
    shown: str


@functools.cache
def _apprise() -> Any:
    """apprise, with its plugins loaded once (quietly: on Python 3.11/3.12 its e-mail plugin
    imports the deprecated ``imghdr``, a warning that is not ours to act on)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import apprise

        apprise.Apprise.instantiate("json://127.0.0.1/")  # loads every plugin now
    return apprise


def channels_from_env(environ: Any = None) -> list[Channel]:
    """The channels of ``CRYPTOTECH_ALERTAS_URLS`` (invalid URLs are logged and skipped).

    apprise is loaded only when there is one (it takes about a second)."""
    text = (os.environ if environ is None else environ).get(URLS_ENV, "")
    urls = [u.strip() for u in text.split(",") if u.strip()]
    if not urls:
        return []
    apprise = _apprise()
    out = []
    for url in urls:
        plugin = apprise.Apprise.instantiate(url)
        if not plugin:
            log.error("%s: an entry is not a valid apprise URL; skipped", URLS_ENV)
            continue
        key = "c" + hashlib.sha256(url.encode()).hexdigest()[:12]
        out.append(Channel(key, url, plugin.url(privacy=True)))
    return out


@dataclass(frozen=True)
class Retry:
    """Backoff of one channel: ``base · 2^(n-1)`` seconds, at most ``cap``; ``max_attempts``."""

    base: float = 1.0
    cap: float = 300.0
    max_attempts: int = 20  # about an hour of a channel down before an alert is given up

    def delay(self, failures: int) -> float:
        """
        >>> [Retry(base=1, cap=5).delay(n) for n in range(1, 6)]
        [1.0, 2.0, 4.0, 5.0, 5.0]
        """
        return float(min(self.cap, self.base * 2 ** min(failures - 1, 30)))


def dashboard_url(settings: Settings) -> str:
    host = settings.api.host
    shown = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    if ":" in shown:
        shown = f"[{shown}]"
    return f"http://{shown}:{settings.api.port}/painel/"


def message(alert: dict[str, Any], settings: Settings) -> tuple[str, str]:
    """(title, body) of one alert, in Portuguese: coin, rule, price, forecast, link."""
    zone = settings.zone
    money = {"usd": "US$", "brl": "R$", "eur": "€", "gbp": "£"}.get(
        settings.vs_currency, settings.vs_currency.upper())
    coin = (alert.get("coin") or "").upper()
    title = f"CryptoTech · {coin + ': ' if coin else ''}{alert['name']}"
    when = local(alert["ts"], zone)
    text = alert["text"]
    lines = [text[:1].upper() + text[1:] + "."]  # capitalize() would lower "US$" and "BTC"
    city = f"horário de {zone_city(settings.timezone)}"
    if alert.get("price") is not None:
        lines.append(f"Preço: {money} {_num(alert['price'])} em {when:%d/%m/%Y %H:%M} "
                     f"({city}).")
    else:
        lines.append(f"Em {when:%d/%m/%Y %H:%M} ({city}).")
    f = alert.get("forecast")
    if f:
        target = local(f["target_at"], zone)
        lines.append(f"Previsão para {target:%H:%M} ({f['horizon']}): {money} "
                     f"{_num(f['forecast'])}, intervalo de {money} {_num(f['lower'])} a "
                     f"{money} {_num(f['upper'])}.")
    lines.append(f"Regra: {alert['rule_text']} ({alert['rule_id']}).")
    lines.append(f"Painel: {dashboard_url(settings)}")
    lines.append(f"alerta #{alert['id']}")
    return title, "\n".join(lines)


def notify(url: str, title: str, body: str) -> tuple[bool, str | None]:
    """Send one message through apprise (blocking); (ok, reason of a failure)."""
    apprise = _apprise()

    sender = apprise.Apprise()
    sender.add(url)
    with apprise.LogCapture(level=logging.WARNING) as captured:
        try:
            ok = bool(sender.notify(title=title, body=body))
        except Exception as exc:  # a plugin bug must not stop the sender
            return False, f"{type(exc).__name__}: {exc}"[:300]
    if ok:
        return True, None
    lines = [ln.strip() for ln in captured.getvalue().splitlines() if ln.strip()]
    return False, (" ".join(lines)[:300] or "apprise não conseguiu enviar")


class Sender:
    """Drains the outbox: one task per channel (see the module docstring)."""

    def __init__(self, store: Store, settings: Settings, channels: list[Channel],
                 retry: Retry = Retry(), send: Callable[[str, str, str],
                                                        tuple[bool, str | None]] = notify):
        self.store = store
        self.settings = settings
        self.channels = channels
        self.retry = retry
        self.send = send
        self.wake = {c.key: asyncio.Event() for c in channels}
        self.counts = {"enviado": 0, "nova_tentativa": 0, "falhou": 0}

    def poke(self, *_: Any) -> None:
        """New alerts were committed: wake every channel (event loop thread)."""
        for event in self.wake.values():
            event.set()

    async def forget_unknown(self) -> None:
        """Pending rows of channels no longer configured become ``falhou`` (with why)."""
        known = {c.key for c in self.channels}
        for key in await asyncio.to_thread(self.store.outbox_channels):
            if key in known:
                continue
            for row in await asyncio.to_thread(self.store.outbox_due, key, float("inf"), 10_000):
                await asyncio.to_thread(self.store.outbox_result, row["id"], "falhou",
                                        "canal não está mais em CRYPTOTECH_ALERTAS_URLS")

    async def run_channel(self, channel: Channel) -> None:
        """Deliver the channel's outbox forever (cancel to stop); never ends on an error."""
        failures, resume_at = 0, 0.0
        wake = self.wake[channel.key]
        while True:
            pause = resume_at - time.time()
            if pause > 0:  # this channel backs off; the others carry on
                await asyncio.sleep(pause)
            wake.clear()
            try:
                sent, failed = await self._drain(channel, failures)
            except Exception:  # the store busy or gone for a moment: log, back off, go on
                log.exception("alert delivery to %s: unexpected error", channel.shown)
                sent, failed = 0, True
            if failed:
                failures += 1
                resume_at = time.time() + self.retry.delay(failures)
                continue
            failures = 0 if sent else failures
            if sent:
                continue  # there may be more due at once
            due = await asyncio.to_thread(self.store.outbox_next_due, channel.key)
            wait = 5.0 if due is None else min(5.0, max(0.01, due - time.time()))
            # asyncio.wait, not wait_for: on Python 3.11 wait_for swallows a cancellation that
            # lands as ``wake`` is set (CPython gh-86296), and the stop would wait forever
            waiter = asyncio.ensure_future(wake.wait())
            try:
                await asyncio.wait({waiter}, timeout=wait)
            finally:
                waiter.cancel()

    async def _drain(self, channel: Channel, failures: int) -> tuple[int, bool]:
        """Send the channel's due rows in order until one fails: (sent, failed)."""
        sent = 0
        for row in await asyncio.to_thread(self.store.outbox_due, channel.key, time.time()):
            job = asyncio.ensure_future(asyncio.to_thread(self._deliver, channel, row, failures))
            try:
                result = await asyncio.shield(job)
            except asyncio.CancelledError:  # stopping: the send in flight is finished and
                await asyncio.wait([job])   # recorded first, so it is not sent again
                raise
            self.counts[result] += 1
            if result != "enviado":
                return sent, True
            sent += 1
        return sent, False

    def _deliver(self, channel: Channel, row: dict[str, Any], failures: int) -> str:
        """Send one outbox row and record the result at once (worker thread)."""
        title, body = message(row["alert"], self.settings)
        ok, reason = self.send(channel.url, title, body)
        if ok:
            self.store.outbox_result(row["id"], "enviado")
            return "enviado"
        attempts = row["attempts"] + 1
        wait = self.retry.delay(failures + 1)
        next_at: float | None = time.time() + wait
        if attempts >= self.retry.max_attempts:
            result, next_at = "falhou", None
            log.error("alert %d to %s failed after %d attempts: %s", row["alert_id"],
                      channel.shown, attempts, reason)
        else:
            result = "nova_tentativa"
            log.warning("alert %d to %s not delivered (attempt %d): %s; retrying in %.0f s",
                        row["alert_id"], channel.shown, attempts, reason, wait)
        self.store.outbox_result(row["id"], result, reason, next_at)
        return result
