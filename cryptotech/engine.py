"""The engine: source -> per-coin learners -> store -> hub.

One worker thread owns the learners and the store's writer, so learning never blocks the
event loop and every tick is handled in order. For each tick the learner forecasts and
settles, then the store commits the tick and everything it caused in one transaction, and
only then are the events published. Checkpoints (pickled learners with the id of the last
tick they include) are written every ``store.checkpoint_every`` and at shutdown; on start the
newest readable checkpoint of each coin is loaded and the stored ticks after it replayed.
"""

from __future__ import annotations

import asyncio
import logging
import platform
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from typing import Any

import river

from cryptotech import __version__
from cryptotech.config import Settings
from cryptotech.domain import Tick, valid_price
from cryptotech.errors import CheckpointError, StoreError
from cryptotech.hub import Event, Hub
from cryptotech.learning.learner import CoinLearner, dumps, loads
from cryptotech.sources.base import PriceSource
from cryptotech.store import Store, StoredEvent

log = logging.getLogger("cryptotech.engine")


class Engine:
    """Runs the learners of every configured coin over a source of ticks."""

    def __init__(self, settings: Settings, store: Store, hub: Hub, source: PriceSource | None):
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
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="engine")
        self._tasks: list[asyncio.Task] = []
        self._last_checkpoint = time.monotonic()

    # -- startup -------------------------------------------------------------------------

    def recover(self) -> None:
        """Load or rebuild every coin's learner from the store (blocking; call in a thread)."""
        for coin in self.settings.coins:
            started = time.perf_counter()
            learner, last_id, how = self._restore(coin)
            replayed = 0
            for tick_id, tick in self.store.ticks_after(coin, last_id):
                learner.process(tick)
                last_id = tick_id
                replayed += 1
            self.learners[coin] = learner
            self.last_tick_id[coin] = last_id
            self.recovery[coin] = f"{how}, replayed {replayed} stored ticks"
            if how != "new learner" or replayed:
                log.info("%s: %s, replayed %d stored ticks in %.2f s", coin, how, replayed,
                         time.perf_counter() - started)

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
        """Learn from one tick and commit what it caused; returns the stored events."""
        learner = self.learners.get(tick.coin)
        if learner is None:
            self.ignored["unknown_coin"] += 1
            return []
        if not valid_price(tick.price) or (learner.last_t is not None
                                           and tick.epoch <= learner.last_t):
            learner.process(tick)  # counted by the learner: invalid, duplicate or out of order
            return []
        predictions, outcomes = learner.process(tick)
        try:
            result = self.store.commit_tick(tick, predictions, outcomes)
        except StoreError as exc:
            self.store_errors += 1
            log.error("%s: tick not stored (%s); restoring the learner from the store", tick.coin,
                      exc)
            self._reload(tick.coin)
            return []
        if result is None:
            self.ignored["already_stored"] += 1
            return []
        tick_id, events = result
        self.last_tick_id[tick.coin] = tick_id
        self.ticks_processed += 1
        return events

    def _reload(self, coin: str) -> None:
        learner, last_id, _ = self._restore(coin)
        for tick_id, tick in self.store.ticks_after(coin, last_id):
            learner.process(tick)
            last_id = tick_id
        self.learners[coin] = learner
        self.last_tick_id[coin] = last_id

    def checkpoint(self) -> dict[str, tuple[int, float]]:
        """Write one checkpoint per coin; returns (bytes, seconds) per coin."""
        sizes = {}
        for coin, learner in self.learners.items():
            if not self.last_tick_id.get(coin):
                continue
            started = time.perf_counter()
            blob = dumps(learner)
            self.store.save_checkpoint(coin, self.last_tick_id[coin], blob, river.__version__,
                                       platform.python_version())
            sizes[coin] = (len(blob), time.perf_counter() - started)
        retention = self.settings.store.tick_retention.total_seconds()
        newest = max((lr.last_t or 0 for lr in self.learners.values()), default=0)
        if newest:
            self.store.prune(newest - retention)
        return sizes

    # -- the loop ------------------------------------------------------------------------

    async def run_in_worker(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def handle(self, tick: Tick) -> None:
        events = await self.run_in_worker(self.process, tick)
        for ev in events:
            self.hub.publish(Event(ev.kind, ev.data, ev.coin, ev.id))
        if any(ev.kind == "resultado" for ev in events):
            self.hub.publish(Event("metricas", self.metrics_payload(tick.coin), tick.coin))

    async def start(self) -> None:
        await self.run_in_worker(self.recover)
        if self.source is not None:
            self._tasks.append(asyncio.create_task(self._consume(), name="engine-source"))
        self._tasks.append(asyncio.create_task(self._checkpoints(), name="engine-checkpoint"))

    async def _consume(self) -> None:
        assert self.source is not None
        if self.settings.source.backfill:
            try:
                for tick in await self.source.backfill():
                    await self.handle(tick)
            except Exception as exc:  # a failed warm start must not stop the live feed
                log.warning("warm start failed: %s", exc)
        async for tick in self.source.stream():
            await self.handle(tick)

    async def _checkpoints(self) -> None:
        every = self.settings.store.checkpoint_every.total_seconds()
        while True:
            await asyncio.sleep(every)
            try:
                await self.run_in_worker(self.checkpoint)
            except StoreError as exc:
                log.error("checkpoint failed: %s", exc)

    async def stop(self) -> None:
        """Stop consuming, write the final checkpoint, release the worker."""
        self.stopping.set()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception as exc:
                log.error("engine task %s ended with %s", task.get_name(), exc)
        try:
            await self.run_in_worker(self.checkpoint)
        except StoreError as exc:
            log.error("final checkpoint failed: %s", exc)
        self._executor.shutdown(wait=True)

    async def wait_idle(self) -> None:
        """Wait until the source is exhausted (replays that end): for tests and tools."""
        for task in self._tasks:
            if task.get_name() == "engine-source":
                await task

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
            }
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
        }


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=timezone.utc).isoformat()
