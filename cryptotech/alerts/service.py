"""The alerts of one engine: rules, the per-tick hook, the outage check and the sender.

:class:`Alerts` is built with the engine (``engine.alerts``). Its pieces:

* :meth:`Alerts.commit`: the engine's per-tick hook (worker thread), see
  :mod:`cryptotech.alerts.evaluate`;
* :meth:`Alerts.watch_outages`: a small periodic task on wall time for ``fonte_fora`` and
  ``motor_parado`` (they are about the service, not a price, so no tick can fire them); it
  commits through the engine's worker, so stored event ids stay in publication order;
* :class:`~cryptotech.alerts.deliver.Sender`: one task per external channel;
* :func:`start_tasks`: starts both from the app's lifespan.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable, Coroutine
from typing import Any

from cryptotech.alerts.deliver import Channel, Retry, Sender, channels_from_env
from cryptotech.alerts.evaluate import MarketRules
from cryptotech.alerts.rules import OUTAGE, Regra, RegraAtiva, config_rules
from cryptotech.config import Settings, horizon_label
from cryptotech.hub import Event
from cryptotech.storage import StoreBackend as Store
from cryptotech.store import AlertRows

log = logging.getLogger("cryptotech.alerts")

OUTAGE_EVERY = 2.0  # seconds between two outage checks (wall time)
SOURCE_DOWN = ("stale", "unreachable", "rate_limited", "auth_error", "budget_exhausted")


class Alerts:
    """Rules from config.toml and the database, evaluated and delivered (module docstring)."""

    def __init__(self, settings: Settings, store: Store, channels: list[Channel] | None = None,
                 retry: Retry = Retry()):
        self.settings = settings
        self.store = store
        self.channels = channels_from_env() if channels is None else channels
        self.retry = retry
        self.config = config_rules(list(settings.alertas))
        self.rules: list[RegraAtiva] = list(self.config)
        self.market = MarketRules((), [c.key for c in self.channels], settings.vs_currency,
                                  horizon_label(settings.model.horizon))
        self.outage: dict[str, dict[str, Any]] = {}
        self.sender: Sender | None = None
        self.reload()

    # -- rules -----------------------------------------------------------------------------

    def reload(self) -> None:
        """Read the API's rules from the store again and use the new set from the next tick."""
        stored = []
        for rid, definition, paused in self.store.alert_rules():
            try:
                stored.append(RegraAtiva(id=f"api:{rid}", regra=Regra.model_validate_json(
                    definition), pausada=paused))
            except ValueError as exc:
                log.error("alert rule api:%d unreadable, ignored: %s", rid, exc)
        self.rules = [*self.config, *stored]
        self.market.set_rules(self.rules)

    def commit(self, store: Store, tick: Any, prediction: Any, outcomes: Any):
        """The engine's hook: ``store.commit_tick`` with the alerts this tick fires."""
        return self.market.commit(store, tick, prediction, outcomes)

    # -- outages (wall time) ---------------------------------------------------------------

    def check_outages(self, engine: Any, now: float) -> list[dict[str, Any]]:
        """The outage alerts due at ``now`` (updates the in-memory state)."""
        fired = []
        for rule in self.rules:
            r = rule.regra
            if r.tipo not in OUTAGE or rule.pausada:
                continue
            st = self.outage.setdefault(rule.key, {"armed": True, "since": None, "last": None})
            down, what = _outage(r.tipo, engine)
            if not down:
                st["since"], st["armed"] = None, True
                continue
            if st["since"] is None:
                st["since"] = now
            if (st["armed"] and now - st["since"] >= r.outage_after
                    and (st["last"] is None or now - st["last"] >= r.cooldown)):
                st["armed"], st["last"] = False, now
                gone = now - st["since"]
                for_how_long = f"{gone:.0f} s" if gone < 60 else f"{gone / 60:.0f} min"
                fired.append({"rule": rule.key, "rule_id": rule.id,
                              "name": r.nome or r.describe(), "rule_text": r.describe(),
                              "tipo": r.tipo, "coin": None, "ts": now, "price": None,
                              "forecast": None, "text": f"{what} há {for_how_long}"})
        return fired

    async def watch_outages(self, engine: Any) -> None:
        """Every :data:`OUTAGE_EVERY` s: fire the outage rules that are due (runs forever).

        Starts by failing the pending deliveries of channels no longer configured."""
        if self.sender is not None:
            await self.sender.forget_unknown()
        last = await asyncio.to_thread(self.store.last_alert_at)
        for rule in self.rules:
            if rule.key in last:
                self.outage[rule.key] = {"armed": True, "since": None, "last": last[rule.key]}
        while True:
            try:
                fired = self.check_outages(engine, time.time())
                if fired:
                    rows = AlertRows(fired, [c.key for c in self.channels])
                    events = await engine.run_in_worker(self.store.commit_alerts, rows)
                    for ev in events:
                        engine.hub.publish(Event(ev.kind, ev.data, ev.coin, ev.id))
            except Exception:  # a check must never end the task
                log.exception("outage check failed")
            await asyncio.sleep(OUTAGE_EVERY)

    # -- status ----------------------------------------------------------------------------

    def status(self, time_of: Any) -> dict[str, Any]:
        """The ``alertas`` block of ``/status`` (``time_of``: epoch -> shown datetime)."""
        summary = self.store.alert_summary()
        shown = {c.key: c.shown for c in self.channels}
        return {
            "regras": len(self.rules),
            "regras_pausadas": sum(r.pausada for r in self.rules),
            "canais": [c.shown for c in self.channels],
            "disparados": summary["fired"],
            "fila": summary["outbox"],
            "entregas": summary["log_counts"],
            "ultimas_entregas": [{"alerta": e["alert_id"], "canal": shown.get(e["channel"],
                                                                               e["channel"]),
                                  "em": time_of(e["at"]), "resultado": e["result"],
                                  "motivo": e["reason"]} for e in summary["log"]],
        }


def _outage(kind: str, engine: Any) -> tuple[bool, str]:
    if kind == "fonte_fora":
        src = getattr(engine, "source", None)
        state = getattr(getattr(src, "status", None), "state", None)
        return state in SOURCE_DOWN, f"fonte de preços com problema ({state})"
    # the engine's own tasks (a source outage is ``fonte_fora``'s, not this rule's)
    bad = sorted(name for name, task in engine.supervisor.health.items() if task.estado != "ok")
    return bool(bad), "motor sem aprender (tarefas com problema: " + ", ".join(bad) + ")"


def start_tasks(state: Any) -> list[asyncio.Task]:
    """Start the alerts' tasks from the app's lifespan: the outage check (``alertas``) and one
    sender per channel (``alertas-envio-N``).

    Under the engine's supervisor when it has one (``engine.supervise(name, factory)``:
    restarted with backoff if they die, shown in ``/status``, stopped by ``engine.stop()``);
    otherwise started like the engine starts its own tasks, and returned for the lifespan to
    cancel.
    """
    engine = state.engine
    alerts: Alerts = engine.alerts
    if alerts.channels:
        sender = alerts.sender = Sender(alerts.store, alerts.settings, alerts.channels,
                                        alerts.retry)
        listeners = getattr(state.hub, "listeners", None)
        if listeners is not None:
            listeners.append(lambda ev: sender.poke() if ev.kind == "alerta" else None)
    jobs: list[tuple[str, Callable[[], Coroutine[Any, Any, None]]]] = [
        ("alertas", lambda: alerts.watch_outages(engine))]
    if alerts.sender is not None:
        sender = alerts.sender
        jobs += [(f"alertas-envio-{i}", functools.partial(sender.run_channel, channel))
                 for i, channel in enumerate(alerts.channels, start=1)]
    supervise = getattr(engine, "supervise", None)
    if supervise is not None:
        for name, factory in jobs:
            supervise(name, factory)
        return []
    return [asyncio.create_task(factory(), name=name) for name, factory in jobs]


def dump_rule(rule: Regra) -> str:
    return json.dumps(rule.model_dump(exclude_none=True), sort_keys=True)
