"""Supervision of the engine's long-lived tasks: nothing ends silently.

In the spirit of arq's ``run_job``: every unit of work runs inside ``try/except Exception``;
an unexpected error is logged at once with its traceback, counted, and the work carries on.

* A unit of work (one tick, one checkpoint, one status event) that fails is reported with
  :meth:`Supervisor.failed` and skipped; the task goes on. A success is reported with
  :meth:`Supervisor.succeeded`.
* A task that dies (its coroutine raises) is logged, counted and restarted after an
  exponential backoff (``base``, doubling, capped at ``cap`` seconds, with jitter).
* A task whose coroutine returns ends for good (a replay that ran out of data); that is
  logged too.

Each task has a health record, shown by ``/status`` under ``motor.tarefas``:

``ok``
    running, and its last unit of work succeeded (or none failed yet);
``reiniciando``
    it died and waits for its restart;
``falhou``
    ``fail_after`` failures in a row (units or deaths) without a success in between, or it
    ended while it should not have. It is still retried (at the capped backoff): a failed
    disk or a network that comes back heals it, and it turns ``ok`` at the next success.

The last error's message is kept (one line, at most 200 characters, secrets blanked by the
``clean`` function given) with its time (ISO-8601, UTC).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

from cryptotech.sources.base import Backoff, redact

log = logging.getLogger("cryptotech.engine")

Estado = Literal["ok", "reiniciando", "falhou"]
CoroFactory = Callable[[], Coroutine[Any, Any, Any]]


@dataclass
class TaskHealth:
    """The health of one supervised task, as ``/status`` shows it.

    >>> h = TaskHealth()
    >>> h.to_dict()
    {'estado': 'ok', 'erros': 0, 'ultimo_erro': None, 'erro_em': None}
    """

    estado: Estado = "ok"
    erros: int = 0
    ultimo_erro: str | None = None
    erro_em: str | None = None
    in_a_row: int = 0
    running: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"estado": self.estado, "erros": self.erros, "ultimo_erro": self.ultimo_erro,
                "erro_em": self.erro_em}


def describe(exc: BaseException, clean: Callable[[str], str] = lambda s: s) -> str:
    """One line naming the error, for ``/status`` (no traceback; secrets blanked).

    >>> describe(ValueError("Out of range float values are not JSON compliant"))
    'ValueError: Out of range float values are not JSON compliant'
    >>> describe(KeyError("btc"))
    "KeyError: 'btc'"
    """
    text = str(exc)
    return redact(clean(f"{type(exc).__name__}: {text}" if text else type(exc).__name__),
                  None, limit=200)


class Supervisor:
    """Runs named tasks, restarts those that die, and keeps each one's health.

    Parameters
    ----------
    base, cap
        Restart backoff: first wait in ``[base/2, base]`` seconds, doubling, at most ``cap``.
    fail_after
        Failures in a row that turn a task's state to ``falhou``.
    clean
        Applied to every error message kept for ``/status`` (e.g. blanks the API key).
    rng
        Jitter of the backoff (seed it in tests).
    sleep
        How a restart waits (``asyncio.sleep``; tests inject one they control).
    """

    def __init__(self, base: float = 1.0, cap: float = 60.0, fail_after: int = 5,
                 clean: Callable[[str], str] = lambda s: s, rng: random.Random | None = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep):
        self.base, self.cap, self.fail_after = base, cap, fail_after
        self.clean = clean
        self.rng = rng
        self.sleep = sleep
        self.health: dict[str, TaskHealth] = {}
        self.tasks: dict[str, asyncio.Task] = {}
        self.stopping = False

    # -- units of work -------------------------------------------------------------------

    def failed(self, name: str, exc: BaseException, what: str) -> None:
        """Record a failed unit of work of task ``name``: traceback logged now, counted."""
        log.error("%s: %s (%s); the task goes on", name, what, describe(exc, self.clean),
                  exc_info=exc)
        self._count(name, exc)

    def succeeded(self, name: str) -> None:
        """Record a successful unit of work: the task is ``ok`` again."""
        health = self.health.get(name)
        if health is not None and (health.in_a_row or health.estado != "ok"):
            if health.estado != "ok":
                log.info("%s: working again after %d failure(s) in a row", name,
                         health.in_a_row)
            health.in_a_row = 0
            health.estado = "ok"

    def _count(self, name: str, exc: BaseException) -> TaskHealth:
        health = self.health.setdefault(name, TaskHealth())
        health.erros += 1
        health.in_a_row += 1
        health.ultimo_erro = describe(exc, self.clean)
        health.erro_em = datetime.now(timezone.utc).isoformat()
        if health.in_a_row >= self.fail_after:
            health.estado = "falhou"
        return health

    # -- tasks ---------------------------------------------------------------------------

    def start(self, name: str, factory: CoroFactory) -> asyncio.Task:
        """Run ``factory()`` as task ``name``; restart it with backoff whenever it dies."""
        if name in self.tasks and not self.tasks[name].done():
            raise ValueError(f"task {name!r} is already running")
        self.health.setdefault(name, TaskHealth())
        task = asyncio.create_task(self._run(name, factory), name=f"engine-{name}")
        self.tasks[name] = task
        return task

    async def _run(self, name: str, factory: CoroFactory) -> None:
        health = self.health[name]
        backoff: Backoff | None = None
        while True:
            health.running = True
            try:
                await factory()
            except asyncio.CancelledError:
                health.running = False
                raise
            except Exception as exc:  # the whole point: log, count, restart
                health.running = False
                if self.stopping:
                    log.error("%s: ended with an error while stopping", name, exc_info=exc)
                    return
                self._count(name, exc)
                if health.estado != "falhou":
                    health.estado = "reiniciando"
                if backoff is None:
                    backoff = Backoff(self.base, max(self.base, self.cap), self.rng)
                wait = backoff.next()
                log.error("%s: task died; restarting in %.1f s (failure %d in a row)", name,
                          wait, health.in_a_row, exc_info=exc)
                await self.sleep(wait)
                if health.estado == "reiniciando":
                    health.estado = "ok"
                log.info("%s: task restarted", name)
                continue
            health.running = False
            log.info("%s: task finished", name)
            return

    def running(self, name: str) -> bool:
        """Whether task ``name`` is running its work now (not ended, not waiting to restart)."""
        health = self.health.get(name)
        return health is not None and health.running

    async def stop(self) -> None:
        """Cancel every task and wait for them (each logs what it was doing if it errs)."""
        self.stopping = True
        for task in self.tasks.values():
            task.cancel()
        for task in self.tasks.values():
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # already logged by _run; never silent
                log.exception("task %s ended with an error", task.get_name())

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """``{name: {estado, erros, ultimo_erro, erro_em}}`` for ``/status``."""
        return {name: h.to_dict() for name, h in self.health.items()}
