"""The engine: source -> per-coin learners -> store -> hub.

One worker thread owns the learners and the store's writer, so learning never blocks the
event loop and every tick is handled in order. For each tick the learner forecasts and
settles, then the store commits the tick and everything it caused in one transaction, and
only then are the events published. Checkpoints (pickled learners with the id of the last
tick they include) are written every ``store.checkpoint_every`` and at shutdown; on start the
newest readable checkpoint of each coin is loaded and the stored ticks after it replayed.

Every long-lived task (the source consumer ``fonte``, the ``checkpoints``, and whatever the
app adds with :meth:`Engine.supervise`) runs under a :class:`~cryptotech.supervisor.Supervisor`:
an unexpected error is logged at once with its traceback, counted, shown in ``/status``
(``motor.tarefas``), and the work goes on. A tick whose learning, storing or publishing
fails is skipped, and its coin's learner is reloaded from the store (checkpoint plus stored
ticks), so what the engine holds in memory never drifts from what is on disk. A task that
dies is restarted with exponential backoff.

:meth:`Engine.health` says whether the engine is learning (``/saude``, ``motor.aprendendo``):
recovered from the store, the worker usable, every task ``ok``, the source task running and
the source delivering prices (state ``live``).
"""

from __future__ import annotations

import asyncio
import logging
import platform
import threading
import time
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import river

from cryptotech import __version__
from cryptotech.alerts.service import Alerts
from cryptotech.config import Settings
from cryptotech.domain import Tick, valid_price
from cryptotech.errors import CheckpointError, StoreError
from cryptotech.hub import Event, Hub
from cryptotech.learning.learner import CoinLearner, dumps, loads
from cryptotech.sources.base import PriceSource, redact
from cryptotech.sources.coingecko import CreditBudget
from cryptotech.storage import StoreBackend
from cryptotech.store import StoredEvent
from cryptotech.supervisor import Supervisor

log = logging.getLogger("cryptotech.engine")

SOURCE_TASK = "fonte"
CHECKPOINT_TASK = "checkpoints"
CREDITS_KEY = "coingecko_credits"

#: Why the engine is not learning when the source is in this state (``/saude``).
SOURCE_NOT_LEARNING = {
    "starting": "a fonte de preços ainda não entregou nenhum preço",
    "stale": "a fonte de preços não traz preços novos",
    "unreachable": "a fonte de preços está inacessível",
    "rate_limited": "a fonte de preços limitou as consultas; esperando para consultar de novo",
    "auth_error": "a fonte de preços recusou a chave ou o plano",
    "budget_exhausted": "os créditos do mês da fonte de preços acabaram",
}


class Engine:
    """Runs the learners of every configured coin over a source of ticks."""

    def __init__(self, settings: Settings, store: StoreBackend, hub: Hub, source: PriceSource | None,
                 supervisor: Supervisor | None = None):
        self.settings = settings
        self.store = store
        self.hub = hub
        self.source = source
        self.learners: dict[str, CoinLearner] = {}
        self.last_tick_id: dict[str, int] = {}
        self.recovery: dict[str, str] = {}
        self.ticks_processed = 0
        self.ignored: dict[str, int] = {"unknown_coin": 0, "already_stored": 0}
        self.store_errors = 0
        self.started_at = time.time()
        self.stopping = asyncio.Event()
        key = settings.coingecko_api_key.get_secret_value() if settings.coingecko_api_key else ""
        self.supervisor = supervisor or Supervisor(clean=lambda text: redact(text, key, 10**6))
        self.ready = False  # recovered from the store
        self.no_data: dict[str, str] = {}  # coin -> why the source has no price for it
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self._halt = threading.Event()  # stop recovering: the server is stopping
        self._checkpointed: dict[str, int] = {}  # coin -> last tick id of its newest checkpoint
        self._closed = False
        self._stale: set[str] = set()  # coins whose learner must be reloaded from the store
        self._backfilled = False
        self._budget = _credit_budget(source)
        self.alerts = Alerts(settings, store)  # alert rules, committed with each tick

    @property
    def _tasks(self) -> list[asyncio.Task]:
        """The supervised tasks (what tests cancel when they stop an engine by hand)."""
        return list(self.supervisor.tasks.values())

    # -- startup -------------------------------------------------------------------------

    def recover(self) -> None:
        """Load or rebuild every coin's learner from the store (blocking; call in a thread).

        Stops early if :meth:`halt` is called (the server is stopping): each learner then
        holds the stored ticks it replayed so far, which its final checkpoint records.
        """
        for coin in self.settings.coins:
            if self._halt.is_set():
                return
            started = time.perf_counter()
            learner, last_id, how = self._restore(coin)
            self._checkpointed[coin] = last_id
            self.learners[coin] = learner
            self.last_tick_id[coin] = last_id
            replayed = 0
            for tick_id, tick in self.store.ticks_after(coin, last_id):
                if self._halt.is_set():
                    log.info("%s: recovery interrupted (the server stops) after %d stored ticks",
                             coin, replayed)
                    break
                learner.process(tick)
                self.last_tick_id[coin] = tick_id
                replayed += 1
            self.recovery[coin] = recovery_text(how, replayed)
            if how != "new learner" or replayed:
                log.info("%s: %s, replayed %d stored ticks in %.2f s", coin, how, replayed,
                         time.perf_counter() - started)

    def halt(self) -> None:
        """The server stops: end a recovery in progress and take no more work (any thread)."""
        self._halt.set()

    def _restore(self, coin: str) -> tuple[CoinLearner, int, str]:
        for cp in self.store.checkpoints(coin):
            try:
                learner = loads(cp.blob)
            except CheckpointError as exc:
                log.warning("%s: checkpoint %d not usable (%s); trying an older one", coin,
                            cp.id, exc)
                continue
            if learner.coin != coin:
                log.warning("%s: checkpoint %d not usable (it holds the learner of %r); "
                            "trying an older one", coin, cp.id, learner.coin)
                continue
            if learner.settings != self.settings.model:
                log.warning("%s: checkpoint %d was made with other model settings; "
                            "trying an older one", coin, cp.id)
                continue
            return learner, cp.last_tick_id, f"checkpoint {cp.id}"
        fresh = CoinLearner(coin, self.settings.model)
        has_cp = bool(self.store.checkpoints(coin))
        return fresh, 0, "rebuilt from stored ticks" if has_cp else "new learner"

    # -- per tick (worker thread) --------------------------------------------------------

    def process(self, tick: Tick) -> list[StoredEvent]:
        """Learn from one tick and commit what it caused; returns the stored events.

        Any error (learner, store, anything unexpected) skips the tick: it is logged with its
        traceback, counted under the ``fonte`` task, and the coin's learner is reloaded from
        the store, so that the learner again holds exactly what the store holds.
        """
        learner = self.learners.get(tick.coin)
        if learner is None:
            self.ignored["unknown_coin"] += 1
            return []
        try:
            if tick.coin in self._stale:
                self._reload(tick.coin)
                learner = self.learners[tick.coin]
            if not valid_price(tick.price) or (learner.last_t is not None
                                               and tick.epoch <= learner.last_t):
                learner.process(tick)  # counted by the learner: invalid, duplicate or out of order
                return []
            predictions, outcomes = learner.process(tick)
            result = self.alerts.commit(self.store, tick, predictions, outcomes)  # + alerts
        except Exception as exc:
            if isinstance(exc, StoreError):
                self.store_errors += 1
            self.supervisor.failed(SOURCE_TASK, exc, f"tick not stored ({tick.coin} at "
                                   f"{tick.ts.isoformat()}); skipped, restoring the learner "
                                   "from the store")
            self._restore_from_store(tick.coin)
            return []
        self.supervisor.succeeded(SOURCE_TASK)
        if result is None:
            self.ignored["already_stored"] += 1
            return []
        tick_id, events = result
        self.last_tick_id[tick.coin] = tick_id
        self.ticks_processed += 1
        return events

    def _restore_from_store(self, coin: str) -> None:
        """Reload ``coin``'s learner from the store; if that fails too, retry on its next tick."""
        try:
            self._reload(coin)
        except Exception:
            log.exception("%s: cannot reload the learner from the store; trying again with the "
                          "next tick", coin)
            self._stale.add(coin)
        else:
            self._stale.discard(coin)

    def _reload(self, coin: str) -> None:
        learner, last_id, _ = self._restore(coin)
        for tick_id, tick in self.store.ticks_after(coin, last_id):
            learner.process(tick)
            last_id = tick_id
        self.learners[coin] = learner
        self.last_tick_id[coin] = last_id
        self._stale.discard(coin)

    def checkpoint(self, prune: bool = True,
                   until: float | None = None) -> dict[str, tuple[int, float]]:
        """Write one checkpoint per coin that learned since its last one; returns (bytes,
        seconds) per coin written.

        ``prune`` also deletes raw ticks older than the retention (not at shutdown: that can
        wait for the next start). ``until`` (a ``time.monotonic()`` deadline) bounds the
        time: the coins furthest from their last checkpoint go first, and those left when
        time is up are skipped. Nothing is lost by skipping: their ticks are stored, and
        the next start replays them after the coin's newest checkpoint.
        """
        sizes = {}
        behind = sorted(self.learners, key=lambda c: self._checkpointed.get(c, 0)
                        - self.last_tick_id.get(c, 0))
        for coin in behind:
            last_id = self.last_tick_id.get(coin)
            if not last_id or coin in self._stale or self._checkpointed.get(coin) == last_id:
                continue
            if until is not None and time.monotonic() > until:
                break
            started = time.perf_counter()
            blob = dumps(self.learners[coin])
            self.store.save_checkpoint(coin, last_id, blob, river.__version__,
                                       platform.python_version())
            self._checkpointed[coin] = last_id
            sizes[coin] = (len(blob), time.perf_counter() - started)
        retention = self.settings.store.tick_retention.total_seconds()
        newest = max((lr.last_t or 0 for lr in self.learners.values()), default=0)
        if newest and prune:
            self.store.prune(newest - retention)
        return sizes

    def unsaved(self) -> list[str]:
        """Coins that learned from stored ticks their newest checkpoint does not include."""
        return [c for c in self.learners
                if self.last_tick_id.get(c) and self._checkpointed.get(c) != self.last_tick_id[c]]

    # -- the loop ------------------------------------------------------------------------

    async def run_in_worker(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def handle(self, tick: Tick) -> None:
        """Learn from ``tick`` (worker thread), then publish what it caused.

        A failure to publish is logged and counted; the events are stored, so subscribers
        get them when they resume with ``Last-Event-ID``.
        """
        events = await self.run_in_worker(self.process, tick)
        for ev in events:
            self._publish(tick, ev.kind, ev.data, ev.id, ev.coin)
        if any(ev.kind == "resultado" for ev in events):
            self._publish(tick, "metricas", None)

    def _publish(self, tick: Tick, kind: str, data: dict[str, Any] | None,
                 event_id: int | None = None, coin: str | None = "") -> None:
        try:
            if data is None:  # metrics: built here, so that an error in them is caught too
                data = self.metrics_payload(tick.coin)
            self.hub.publish(Event(kind, data, tick.coin if coin == "" else coin, event_id))
        except Exception as exc:
            self.supervisor.failed(SOURCE_TASK, exc, f"event of {tick.coin} at "
                                   f"{tick.ts.isoformat()} stored but not published (clients "
                                   "get it when they resume)")

    def supervise(self, name: str,
                  coro_factory: Callable[[], Coroutine[Any, Any, Any]]) -> asyncio.Task:
        """Run ``coro_factory()`` as a supervised task named ``name`` (shown in ``/status``):
        logged and restarted with backoff if it dies, cancelled by :meth:`stop`."""
        return self.supervisor.start(name, coro_factory)

    async def start(self) -> None:
        """Recover from the store, then start the source and checkpoint tasks (not if the
        server began to stop meanwhile)."""
        await self.run_in_worker(self.recover)
        if self._halt.is_set():
            return
        if self._budget is not None:
            await self.run_in_worker(self._load_credits)
        self._flag_coins_without_data()
        self.ready = True
        if self.source is not None:
            self.supervise(SOURCE_TASK, self._consume)
        self.supervise(CHECKPOINT_TASK, self._checkpoints)

    async def _consume(self) -> None:
        assert self.source is not None
        if self.settings.source.backfill and not self._backfilled:
            self._backfilled = True  # once: a restarted task does not spend credits again
            try:
                warm = await self.source.backfill()
            except Exception as exc:  # a failed warm start must not stop the live feed
                self.supervisor.failed(SOURCE_TASK, exc, "warm start (backfill) failed")
                warm = []
            for tick in warm:
                await self.handle(tick)
        self._resume_where_stored()
        stream = self.source.stream()
        try:
            async for tick in stream:
                await self.handle(tick)
        finally:
            close = getattr(stream, "aclose", None)
            if close is not None:
                await close()

    def _resume_where_stored(self) -> None:
        """A restarted replay skips what the learners already hold (replays only)."""
        resume = getattr(self.source, "resume_after", None)
        if isinstance(resume, dict):
            for coin, learner in self.learners.items():
                if learner.last_t is not None:
                    resume[coin] = max(resume.get(coin, learner.last_t), learner.last_t)

    async def _checkpoints(self) -> None:
        every = self.settings.store.checkpoint_every.total_seconds()
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at = max(next_at + every, loop.time())
            await asyncio.sleep(next_at - loop.time())
            try:
                await self.run_in_worker(self.checkpoint)
            except Exception as exc:
                self.supervisor.failed(CHECKPOINT_TASK, exc, "checkpoint")
            else:
                self.supervisor.succeeded(CHECKPOINT_TASK)

    async def stop(self, budget: float = 2.5) -> str:
        """Stop every task at once, write the final checkpoint, release the worker.

        The final checkpoint covers the coins that learned since their last one, within
        ``budget`` seconds (those left replay their stored ticks at the next start). Returns
        one line saying what was written, for the log.
        """
        until = time.monotonic() + budget
        self.stopping.set()
        self.halt()
        await self.supervisor.stop()
        try:
            sizes = await self.run_in_worker(self.checkpoint, False, until)
        except Exception:
            log.exception("final checkpoint failed")
            said = "final checkpoint FAILED (the stored ticks replay at the next start)"
        else:
            left = self.unsaved()
            said = f"final checkpoint of {len(sizes)} coin(s)"
            if left:
                said += (f"; {', '.join(left)} not checkpointed in time (their stored ticks "
                         "replay at the next start)")
        self._closed = True
        self._executor.shutdown(wait=True)
        return said

    async def wait_idle(self) -> None:
        """Wait until the source is exhausted (replays that end): for tests and tools."""
        task = self.supervisor.tasks.get(SOURCE_TASK)
        if task is not None:
            await task

    # -- coins the source has no data for ------------------------------------------------

    def _flag_coins_without_data(self) -> None:
        """A replay without a file (or without a valid row) for a configured coin: say so."""
        replay = getattr(self.source, "replay", None)
        summaries = getattr(replay, "summaries", None)
        if summaries is None:
            return
        ticks: dict[str, int] = {}
        for summary in summaries:
            ticks[summary.coin] = ticks.get(summary.coin, 0) + summary.ticks
        missing = {coin: ("sem dados na fonte: nenhum arquivo de preços desta moeda"
                          if coin not in ticks else
                          "sem dados na fonte: o arquivo desta moeda não tem preço válido")
                   for coin in self.settings.coins if not ticks.get(coin)}
        if self.source is not None and missing:
            self.source.status.note_no_data(missing)

    def no_data_reason(self, coin: str) -> str | None:
        """Why the source has no price for ``coin`` (Portuguese), or None."""
        if self.source is None:
            return None
        return self.source.status.no_data.get(coin)

    # -- credits (CoinGecko sources) -------------------------------------------------------

    def _load_credits(self) -> None:
        """Give the source this month's credit count kept by the store (worker thread)."""
        assert self._budget is not None
        budget = self._budget
        try:
            budget.restore(self.store.get_value(CREDITS_KEY))
        except StoreError as exc:
            log.error("credits used this month not read (%s); counting from 0", exc)
        budget.on_spend = self._save_credits_soon
        if self.source is not None:
            self.source.status.credits_used_month = budget.used

    def _save_credits_soon(self) -> None:
        """Called by the source (event loop) after each answered call: saved by the worker."""
        if self._closed or self._budget is None:
            return
        value = self._budget.dump()
        try:
            self._executor.submit(self._save_credits, value)
        except RuntimeError:  # the worker is shut down (stopping): nothing more is spent
            pass

    def _save_credits(self, value: str) -> None:
        try:
            self.store.set_value(CREDITS_KEY, value)
        except Exception:
            log.exception("credits used this month not saved")

    # -- snapshots for the API (event-loop thread, read-only) ----------------------------

    def metrics_payload(self, coin: str) -> dict[str, Any]:
        """Today's keys for the first horizon, and ``by_horizon``: every horizon's metrics and
        the model behind its published median."""
        learner = self.learners[coin]
        by_horizon = {label: {"model_in_use": h.model_in_use, "metrics": h.metrics()}
                      for label, h in learner.horizons.items()}
        first = by_horizon[next(iter(by_horizon))]
        return {"coin": coin, "horizon": next(iter(by_horizon)),
                "model_in_use": first["model_in_use"], "metrics": first["metrics"],
                "by_horizon": by_horizon}

    def health(self) -> tuple[bool, str]:
        """(whether the engine is learning, why not or "aprendendo"), in Portuguese.

        Learning means: recovered from the store, not stopping, the worker usable, every
        supervised task ``ok``, the source task running (not ended, not waiting to restart)
        and the source delivering prices (state ``live``).
        """
        if self._closed or self.stopping.is_set():
            return False, "o motor está encerrando"
        if not self.ready:
            return False, "o motor está recuperando o estado guardado"
        for name, task in self.supervisor.health.items():
            if task.estado != "ok":
                why = f": {task.ultimo_erro}" if task.ultimo_erro else ""
                return False, f"tarefa {name} {task.estado}{why}"
        if self.source is None:
            return False, "o motor roda sem fonte de preços"
        if not self.supervisor.running(SOURCE_TASK):
            return False, "a leitura da fonte de preços terminou"
        state = self.source.status.state
        if state != "live":
            return False, SOURCE_NOT_LEARNING.get(state, f"fonte de preços: {state}")
        return True, "aprendendo"

    def status(self) -> dict[str, Any]:
        source = self.source.status.to_dict() if self.source is not None else None
        coins = {}
        for coin, learner in self.learners.items():
            last = learner.last_t
            coins[coin] = {
                "last_tick_at": _iso(last),
                "model_in_use": learner.model_in_use,
                "ticks_seen": learner.ticks_seen,
                "pending_labels": learner.pending_count,
                "ignored": dict(learner.all_counts),
                "recovery": self.recovery.get(coin),
                "no_data": self.no_data_reason(coin),
            }
        learning, why = self.health()
        return {
            "version": __version__,
            "river_version": river.__version__,
            "started_at": _iso(self.started_at),
            "source": source,
            "coins": coins,
            "ticks_processed": self.ticks_processed,
            "ignored": dict(self.ignored),
            "store_errors": self.store_errors,
            "subscribers": self.hub.subscribers,
            "subscribers_evicted": self.hub.evicted_total,
            # already in the API's shape (the contract of /status)
            "motor": {"aprendendo": learning, "motivo": why,
                      "tarefas": self.supervisor.snapshot()},
        }


RECOVERY_PT = {"new learner": "aprendiz novo",
               "rebuilt from stored ticks": "reconstruído a partir dos preços guardados"}


def recovery_text(how: str, replayed: int) -> str:
    """How a coin's learner was restored, in Portuguese (``/status``).

    >>> recovery_text("checkpoint 12", 3)
    'checkpoint 12; 3 preços guardados reprocessados'
    >>> recovery_text("new learner", 0)
    'aprendiz novo; 0 preços guardados reprocessados'
    """
    return f"{RECOVERY_PT.get(how, how)}; {replayed} preços guardados reprocessados"


def _credit_budget(source: PriceSource | None) -> CreditBudget | None:
    """The credit budget of a CoinGecko source (REST, or the WebSocket's REST fallback)."""
    for candidate in (source, getattr(source, "rest", None)):
        budget = getattr(candidate, "budget", None)
        if isinstance(budget, CreditBudget):
            return budget
    return None


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat()
