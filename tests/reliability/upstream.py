"""1. Upstream faults: the fake CoinGecko misbehaves; the poller, validator and engine cope.

The real REST source (official SDK, demo plan, the planted key checked by the fake) feeds a
real engine and SQLite store. Faults are served by :class:`FakeCoinGecko` to the next
``/simple/price`` request (``fail_next``) or to every request for a while (``fail_for``):

* each alone: 429 with and without ``Retry-After`` (seconds, 0, HTTP date; JSON and HTML),
  401 with CoinGecko's codes 10002/10005/10010/10011 and without one, 403, 5xx (JSON, HTML,
  one echoing the key), a timeout, a slow answer; and bad values: malformed JSON, an HTML
  page with 200, NaN, Infinity, negative, zero, absurd (x10 and /10), string and null
  prices, a missing coin, a repeated ``last_updated_at``;
* then mixed at random for a bounded time: bursts of 1-3 faults, sustained outages;
* then a monthly credit budget that runs out while faults keep coming.

Measured, from the fake's own record of every request (when it arrived, when it was
answered, which history point and which fault it served) and the ticks the source yielded:

* recovery: after a fault clears, the very next poll is answered and every coin's price is
  yielded within the wait the poller had to observe (one poll interval; or what
  ``Retry-After`` asked; the auth wait; the backoff of a sustained outage) plus a small
  scheduling tolerance;
* rate: consecutive calls are never closer than one poll interval; credits: every call that
  got an HTTP answer is counted (a timed-out one is not), and none is made past the budget;
* learning: every stored tick (what the learners learned from) is exactly a price the fake
  served validly; every valid price served is stored (events lost); every bad value is
  refused and counted under the right reason.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from contextlib import aclosing
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from conftest import VirtualClock, run_until

from cryptotech.config import Settings
from cryptotech.engine import Engine
from cryptotech.hub import Hub
from cryptotech.sources.coingecko import CoinGeckoRestSource, parse_retry_after
from cryptotech.store import Store
from cryptotech.testing.fake_coingecko import FakeCoinGecko, RecordedRequest, load_history
from reliability.core import Context, Row, say

COINS = {"btc": "bitcoin", "eth": "ethereum"}
BY_ID = {coin_id: coin for coin, coin_id in COINS.items()}
FAILURES = {"429", "401", "403", "500", "502", "503", "timeout"}
VALUE_FAULTS = {"nan", "inf", "negative", "zero", "string", "null", "absurd", "missing"}
REASON = {"nan": "nan", "inf": "infinite", "negative": "non_positive", "zero": "non_positive",
          "string": "non_numeric", "null": "missing_price", "missing": "missing_coin",
          "absurd": "absurd_jump", "malformed": "malformed"}


@dataclass
class Plan:
    interval: float  # poll interval, s
    timeout: float  # client timeout, s
    auth_wait: float  # wait after an auth error (600 s in production; short here)
    retry_after: int  # Retry-After the fake asks for, s
    tolerance: float  # scheduling slack on a shared 2-core machine, s
    mixed_seconds: float

    @classmethod
    def of(cls, ctx: Context) -> Plan:
        return cls(interval=ctx.pick(0.2, 0.1), timeout=ctx.pick(0.5, 0.3),
                   auth_wait=ctx.pick(1.0, 0.5), retry_after=1, tolerance=0.4,
                   mixed_seconds=ctx.pick(60.0, 8.0))


def faults_alone(plan: Plan) -> list[tuple[str, str, dict[str, Any]]]:
    """(label, kind, options) of every failure injected alone."""
    return [
        ("429 JSON, Retry-After in seconds", "429", {"retry_after": plan.retry_after}),
        ("429 HTML, Retry-After as an HTTP date", "429", {"retry_after": "date",
                                                          "body": "html"}),
        ("429 JSON, Retry-After 0", "429", {"retry_after": 0}),
        ("429 JSON, no Retry-After", "429", {}),
        ("429 HTML, no Retry-After", "429", {"body": "html"}),
        ("401 code 10002", "401", {"code": 10002}),
        ("401 code 10005", "401", {"code": 10005}),
        ("401 code 10010", "401", {"code": 10010}),
        ("401 code 10011", "401", {"code": 10011}),
        ("401 HTML, no code", "401", {"body": "html"}),
        ("403 code 10005", "403", {"code": 10005}),
        ("500 JSON", "500", {}),
        ("500 JSON echoing the key", "500", {"echo_key": True}),
        ("502 HTML", "502", {"body": "html"}),
        ("503 JSON", "503", {}),
        ("503 HTML", "503", {"body": "html"}),
        ("timeout", "timeout", {"delay": plan.timeout + 0.3}),
        ("slow answer (half the timeout)", "slow", {"delay": plan.timeout / 2}),
    ]


BAD_ALONE: list[tuple[str, str, dict[str, Any]]] = [
    ("malformed JSON", "malformed", {}),
    ("HTML page with status 200", "malformed", {"body": "html"}),
    ("NaN price", "nan", {}),
    ("Infinity price", "inf", {}),
    ("negative price", "negative", {}),
    ("zero price", "zero", {}),
    ("absurd price x10", "absurd", {"factor": 10.0}),
    ("absurd price /10", "absurd", {"factor": 0.1}),
    ("price as a string", "string", {}),
    ("null price", "null", {}),
    ("missing coin", "missing", {}),
    ("repeated last_updated_at", "repeat", {}),
]


class Recorder:
    """The source as the engine sees it, noting when each tick was yielded and when the
    poller started each call (its own cadence, before any time spent in the client)."""

    def __init__(self, source: CoinGeckoRestSource):
        self.source = source
        self.status = source.status
        self.yielded: list[tuple[float, Any]] = []
        self.call_starts: list[float] = []
        poll = source._poll

        async def timed(client: Any) -> Any:
            self.call_starts.append(time.monotonic())
            return await poll(client)

        source._poll = timed  # type: ignore[method-assign]

    async def backfill(self) -> list:
        return []

    async def stream(self):
        async with aclosing(self.source.stream()) as ticks:
            async for tick in ticks:
                self.yielded.append((time.monotonic(), tick))
                yield tick


@dataclass
class Episode:
    """Faults injected together, and the requests they were served to."""

    label: str
    kinds: list[str]
    first: int  # index in fake.requests of the first request after injection
    requests: list[RecordedRequest] = field(default_factory=list)
    sustained_until: float | None = None
    data: dict[str, Any] = field(default_factory=dict)


def _is_failure(r: RecordedRequest) -> bool:
    return r.status is None or r.status >= 400 or (r.fault is not None
                                                    and r.fault.kind == "timeout")


def _cleared(r: RecordedRequest, plan: Plan) -> float:
    """When the fault of ``r`` stopped affecting the client."""
    if r.fault is not None and r.fault.kind == "timeout":
        return r.at + plan.timeout
    return r.done if r.done is not None else r.at


def _expected_wait(r: RecordedRequest, failures_in_a_row: int, plan: Plan) -> float:
    """The longest wait the poller may observe after the faulty request ``r``: one poll
    interval, or longer if the upstream asked (``Retry-After``), the key was refused (auth
    wait) or the failures go on (exponential backoff)."""
    fault = r.fault
    kind = fault.kind if fault is not None else ""
    if kind == "429" and fault is not None and fault.retry_after is not None:
        return max(_asked_wait(r), plan.interval)
    if kind in ("401", "403"):
        return plan.auth_wait
    if _is_failure(r):
        return plan.interval * 2 ** (failures_in_a_row - 1)
    return plan.interval


class Run:
    """One fake, one source, one engine, one store; analysis of what happened."""

    def __init__(self, ctx: Context, plan: Plan, fake: FakeCoinGecko):
        self.ctx, self.plan, self.fake = ctx, plan, fake
        db = ctx.folder("upstream") / "upstream.db"
        self.settings = Settings(
            coins=COINS, model={"candidates": ["bayes_linear"]},
            store={"path": str(db)},
            source={"base_url": fake.url, "plan": "demo", "poll_interval": plan.interval,
                    "timeout": plan.timeout, "backfill": False, "stale_after_polls": 1000,
                    "monthly_credit_budget": 10**9},
            coingecko_api_key=ctx.key)
        self.source = CoinGeckoRestSource(self.settings, rng=random.Random(ctx.seed),
                                          auth_retry_after=plan.auth_wait, max_wait=30.0)
        self.recorder = Recorder(self.source)
        self.store = Store(db)
        self.engine = Engine(self.settings, self.store, Hub(), self.recorder)
        self.episodes: list[Episode] = []
        self.mixed_from = 0  # index of the first episode of the mixed phase
        self.stopped_at = math.inf
        self.history = {coin: load_history(coin) for coin in COINS}

    # -- driving -------------------------------------------------------------------------------

    async def full_poll_after(self, index: int, deadline: float) -> RecordedRequest | None:
        """Wait for a clean, answered request at or after ``index`` whose prices were all
        yielded; None at the deadline."""
        while time.monotonic() < deadline:
            for r in self.fake.requests[index:]:
                if r.fault is None and r.status == 200 and r.point is not None \
                        and self.yield_time(r) is not None:
                    return r
            await asyncio.sleep(0.01)
        return None

    def yield_time(self, r: RecordedRequest) -> float | None:
        """When the last coin's price served by ``r`` was yielded (None: not all were)."""
        assert r.point is not None
        wanted = {coin: float(self.history[coin].point(r.point)["ts"]) for coin in COINS}
        seen = {}
        for at, tick in reversed(self.recorder.yielded):
            if at < r.at:
                break
            if wanted.get(tick.coin) == tick.epoch:
                seen[tick.coin] = at
        return max(seen.values()) if len(seen) == len(COINS) else None

    async def episode(self, label: str, faults: list[tuple[str, dict[str, Any]]],
                      sustained: tuple[float, str, dict[str, Any]] | None = None) -> Episode:
        """Inject ``faults`` (served in order to the next requests) or a sustained fault,
        wait until served and recovered (bounded)."""
        plan = self.plan
        start = len(self.fake.requests)
        ep = Episode(label, [k for k, _ in faults], start)
        for kind, options in faults:
            options = dict(options)
            if options.get("retry_after") == "date":  # an HTTP date, 1-2 s ahead
                when = datetime.now(timezone.utc) + timedelta(seconds=plan.retry_after + 1)
                options["retry_after"] = email.utils.format_datetime(when, usegmt=True)
            self.fake.fail_next(kind, **options)
        if sustained is not None:
            seconds, kind, options = sustained
            ep.kinds.append(kind)
            ep.sustained_until = time.monotonic() + seconds
            self.fake.fail_for(seconds, kind, **options)
        deadline = time.monotonic() + 20 + (sustained[0] if sustained else 0)
        while time.monotonic() < deadline:  # every fault served and answered
            pending = self.fake.pending_faults or (
                ep.sustained_until is not None and time.monotonic() < ep.sustained_until)
            answered = all(r.done is not None for r in self.fake.requests[start:])
            if not pending and answered:
                break
            await asyncio.sleep(0.01)
        served = [i for i, r in enumerate(self.fake.requests) if i >= start and
                  (r.fault is not None)]
        last = served[-1] + 1 if served else start
        await self.full_poll_after(last, time.monotonic() + 15)
        ep.requests = self.fake.requests[start:]
        self.episodes.append(ep)
        return ep

    async def steady(self) -> None:
        """Wait for one clean full poll (the state before the next fault)."""
        await self.full_poll_after(len(self.fake.requests), time.monotonic() + 10)

    # -- analysis ------------------------------------------------------------------------------

    def recovery(self, ep: Episode) -> tuple[bool, str, float, float]:
        """(recovered in time, why not, seconds from clear to all prices, lateness)."""
        reqs = ep.requests
        faulty = [i for i, r in enumerate(reqs) if r.fault is not None]
        if not faulty:
            return False, f"{ep.label}: the fault was never served", 0.0, 0.0
        last_i = faulty[-1]
        last = reqs[last_i]
        n = 0
        for r in reversed(reqs[: last_i + 1]):
            if not _is_failure(r):
                break
            n += 1
        after = reqs[last_i + 1:]
        if not after:
            return False, f"{ep.label}: no request after the fault", 0.0, 0.0
        nxt = after[0]
        if not (nxt.fault is None and nxt.status == 200 and nxt.point is not None):
            return False, (f"{ep.label}: the first request after the fault got "
                           f"{nxt.status} (fault {nxt.fault.kind if nxt.fault else None})"), 0, 0
        done = self.yield_time(nxt)
        if done is None:
            return False, f"{ep.label}: the first good answer's prices were not all yielded", 0, 0
        cleared = _cleared(last, self.plan)
        took = done - cleared
        allowed = _expected_wait(last, max(n, 1), self.plan)
        late = took - allowed
        if late > self.plan.tolerance:
            return False, (f"{ep.label}: recovered {took:.2f} s after the fault cleared "
                           f"(allowed {allowed:.2f} s + {self.plan.tolerance:g} s)"), took, late
        return True, "", took, late

    def rate_violations(self) -> tuple[list[float], int]:
        """Gaps between the poller's consecutive calls shorter than one poll interval (less
        1 % + 5 ms), and the most calls the fake received in any window of 10 intervals
        (arrivals jitter with the client's latency: one extra call at most)."""
        starts = self.recorder.call_starts
        floor = self.plan.interval * 0.99 - 0.005
        short = [b - a for a, b in zip(starts, starts[1:]) if b - a < floor]
        arrivals = [r.at for r in self.fake.requests if r.path.endswith("simple/price")]
        window = 10 * self.plan.interval
        most, j = 0, 0
        for i, t in enumerate(arrivals):
            while arrivals[j] < t - window:
                j += 1
            most = max(most, i - j + 1)
        return short, most

    def ground_truth(self) -> tuple[dict, set, dict]:
        """What the fake served: valid (coin, ts) -> price, the (coin, ts) of bad values, and
        (coin, ts) -> when it was answered. Answers the client gave up on (timeouts) are left
        out: their prices never reached it."""
        valid: dict[tuple[str, float], float] = {}
        bad: set[tuple[str, float]] = set()
        answered: dict[tuple[str, float], float] = {}
        for r in self.fake.requests:
            if r.point is None or r.status != 200 or r.done is None:
                continue
            kind = r.fault.kind if r.fault is not None else None
            if kind == "timeout":
                continue
            affected = set()
            if kind in VALUE_FAULTS:
                ids = r.query.get("ids", "").split(",")
                affected = set(r.fault.coins or ids[:1])  # type: ignore[union-attr]
            for coin, coin_id in COINS.items():
                point = self.history[coin].point(r.point)
                key = (coin, float(point["ts"]))
                if coin_id in affected:
                    bad.add(key)
                else:
                    valid[key] = point["price"]
                    answered.setdefault(key, r.done)
        return valid, bad, answered


def _asked_wait(r: RecordedRequest) -> float:
    """The wait a ``Retry-After`` (seconds or HTTP date) asked for, from when it was sent."""
    assert r.fault is not None
    answered = datetime.now(timezone.utc) - timedelta(seconds=time.monotonic() - (r.done or r.at))
    return parse_retry_after(str(r.fault.retry_after), answered) or 0.0


async def _drive(ctx: Context, plan: Plan, run: Run) -> None:
    rng = random.Random(ctx.seed)
    await run.engine.start()
    try:
        await run.steady()
        # -- each alone ---------------------------------------------------------------------
        for label, kind, options in faults_alone(plan):
            await run.steady()
            await run.episode(label, [(kind, options)])
        for label, kind, options in BAD_ALONE:
            await run.steady()
            before = dict(run.source.status.rejected)
            dups = run.source.status.duplicates
            stored = run.store.counts()["ticks"]
            ep = await run.episode(label, [(kind, options)])
            ep.data = {"rejected_before": before, "dups_before": dups,
                       "rejected_after": dict(run.source.status.rejected),
                       "dups_after": run.source.status.duplicates,
                       "stored_before": stored}
        alone = len(run.episodes)
        # -- mixed at random for a bounded time -----------------------------------------------
        pool = [(k, o) for _, k, o in faults_alone(plan) + BAD_ALONE]
        outages = [("500", {}), ("503", {"body": "html"}), ("429", {}), ("502", {}),
                   ("timeout", {"delay": plan.timeout + 0.3})]
        end = time.monotonic() + plan.mixed_seconds
        n = 0
        while time.monotonic() < end and n < 2000:
            n += 1
            roll = rng.random()
            if roll < 0.2:
                seconds = rng.uniform(2, 6) * plan.interval
                kind, options = rng.choice(outages)
                await run.episode(f"mixed {n}: {kind} for {seconds:.1f} s", [],
                                  sustained=(seconds, kind, options))
            else:
                burst = [rng.choice(pool) for _ in range(rng.randint(1, 3))]
                await run.episode(f"mixed {n}: " + " + ".join(k for k, _ in burst), burst)
            for _ in range(rng.randint(0, 2)):
                await run.steady()
        run.mixed_from = alone
        await run.steady()
    finally:
        run.stopped_at = time.monotonic()
        await run.engine.stop()
        run.store.close()


def _analyse(run: Run, plan: Plan) -> list[Row]:
    alone_faults = Row("1a. upstream failures, each alone", "faults")
    alone_bad = Row("1b. upstream bad values, each alone", "inputs")
    mixed = Row(f"1c. upstream faults mixed at random ({plan.mixed_seconds:g} s)", "faults")
    failures = {label for label, _, _ in faults_alone(plan)}
    recoveries: dict[str, list[float]] = {"alone": [], "mixed": []}
    lateness: list[float] = []
    for i, ep in enumerate(run.episodes):
        ok, why, took, late = run.recovery(ep)
        mixed_phase = i >= run.mixed_from
        if ok:
            recoveries["mixed" if mixed_phase else "alone"].append(took)
            lateness.append(late)
        if mixed_phase:
            for _ in ep.kinds:
                mixed.count(ok, why)
        elif ep.label in failures:
            alone_faults.count(ok, why)
        else:
            data = ep.data
            kind = ep.kinds[0]
            reason = REASON.get(kind)
            if kind == "repeat":
                counted = data["dups_after"] - data["dups_before"] == len(COINS)
            else:
                delta = {k: v - data["rejected_before"].get(k, 0)
                         for k, v in data["rejected_after"].items()
                         if v != data["rejected_before"].get(k, 0)}
                counted = delta == {reason: 1}
            alone_bad.count(ok and counted, why or f"{ep.label}: not counted as {reason}")

    # what the learners learned from: the stored ticks, against what the fake served
    with Store(run.settings.store.path) as store:
        stored = {(coin, tick.epoch): tick.price for coin in COINS
                  for _, tick in store.ticks_after(coin, 0)}
        integrity = store.integrity_check()
    valid, bad, answered = run.ground_truth()
    # (a point served spoilt once and valid once, e.g. a repeat after a missing coin, is valid)
    learned_bad = [k for k, price in stored.items() if valid.get(k) != price]
    # valid prices answered before the engine stopped (with time to learn them) must be stored
    lost = [k for k in valid if k not in stored and answered[k] < run.stopped_at - 0.5]
    invalid_at_learner = sum(lr.counts.get("invalid_price", 0)
                             for lr in run.engine.learners.values())
    violations, most = run.rate_violations()
    price_calls = run.fake.requests_to("simple/price")
    calls = len(price_calls)
    # a credit is spent only for a call that got an HTTP answer (any status): the fake's
    # "timeout" fault holds the answer past the client's timeout, so the client never gets
    # one (every other fault, "slow" included, is answered within the timeout)
    answered_calls = [r for r in price_calls
                      if not (r.fault is not None and r.fault.kind == "timeout")]
    # a call still in flight when the engine stopped may have been abandoned unanswered
    in_flight = sum(1 for r in answered_calls if r.done is None or r.done > run.stopped_at)
    timed_out = calls - len(answered_calls)
    status = run.source.status
    for row in (alone_faults, alone_bad, mixed):
        row.lost = 0
    mixed.lost = len(lost)
    mixed.check(not learned_bad, f"{len(learned_bad)} invalid values learned from, e.g. "
                                 f"{learned_bad[:3]}")
    mixed.check(invalid_at_learner == 0, f"{invalid_at_learner} invalid prices reached a learner")
    mixed.check(not violations, f"{len(violations)} calls started closer than one poll "
                                f"interval ({plan.interval:g} s), e.g. "
                                f"{', '.join(f'{g:.3f} s' for g in sorted(violations)[:3])}")
    mixed.check(most <= 11, f"{most} calls arrived within 10 poll intervals")
    credits = status.credits_used_month
    mixed.check(len(answered_calls) - in_flight <= credits <= len(answered_calls),
                f"credits counted {credits} != calls answered {len(answered_calls)} "
                f"({calls} made, {timed_out} timed out unanswered"
                f"{f', {in_flight} in flight at stop' if in_flight else ''})")
    mixed.check(integrity == "ok", f"integrity_check: {integrity}")
    worst = max(lateness, default=0.0)
    alone_faults.notes.append(
        f"poll interval {plan.interval:g} s; first poll after each fault answered, all prices "
        f"within the wait asked (1 interval; Retry-After; auth wait {plan.auth_wait:g} s) "
        f"+ ≤ {max(worst, 0):.2f} s")
    alone_bad.notes.append("each refused and counted under its reason; the other coin's "
                           "price of the same answer stored")
    mixed.notes.append(
        f"{len(run.episodes) - run.mixed_from} episodes (bursts of 1-3 faults, "
        f"outages of 2-6 intervals); {calls} calls, started ≥ 1 interval apart (min "
        f"{_min_gap(run.recorder.call_starts):.3f} s), ≤ {most} in any 10 intervals; "
        f"credits counted = calls answered ({timed_out} timed out, not counted); "
        f"{len(stored)} ticks stored = every "
        f"valid price served; {len(bad)} bad values served, 0 learned")
    alone_faults.data = {"recovery_s": recoveries["alone"]}
    mixed.data = {"recovery_s": recoveries["mixed"], "calls": calls,
                  "rejected": dict(status.rejected), "duplicates": status.duplicates,
                  "stored": len(stored), "bad_served": len(bad), "lost": lost[:20]}
    return [alone_faults, alone_bad, mixed]


def _min_gap(starts: list[float]) -> float:
    return min((b - a for a, b in zip(starts, starts[1:])), default=math.inf)


def _credit_budget(ctx: Context, plan: Plan, fake: FakeCoinGecko) -> Row:
    """A budget of 6 calls, 6 poll intervals before the month ends (a frozen wall clock; the
    waits on a virtual clock): the calls are spread to last until the month's end, faults
    meanwhile, then no call."""
    row = Row("1d. credit budget running out under faults", "faults")
    budget = 6
    end = datetime(2025, 7, 1, tzinfo=timezone.utc) - timedelta(seconds=6 * plan.interval)
    clock = VirtualClock()
    settings = Settings(coins=COINS, store={"path": str(ctx.folder("upstream") / "b.db")},
                        source={"base_url": fake.url, "plan": "demo",
                                "poll_interval": plan.interval, "timeout": plan.timeout,
                                "monthly_credit_budget": budget},
                        coingecko_api_key=ctx.key)
    source = CoinGeckoRestSource(settings, now=lambda: end, monotonic=clock.monotonic,
                                 sleep=clock.sleep, rng=random.Random(ctx.seed),
                                 auth_retry_after=plan.auth_wait)
    start = len(fake.requests)
    injected = [("503", {}), ("429", {"retry_after": 0}), ("nan", {}), ("500", {}),
                ("429", {"body": "html"})]
    for kind, options in injected:
        fake.fail_next(kind, **options)
    # until the budget is used up and one more wait has begun (no call may follow)
    asyncio.run(run_until(source.stream(), lambda: source.status.state == "budget_exhausted"
                          and len(clock.waits) > budget, timeout=60))
    fake.clear_faults()
    calls = fake.requests[start:]
    served = sum(r.fault is not None for r in calls)
    for i in range(len(injected)):
        row.count(i < served, f"fault {i + 1} never served")
    row.lost = 0
    row.check(len(calls) == budget, f"{len(calls)} calls for a budget of {budget}")
    row.check(source.status.credits_used_month == budget,
              f"credits counted {source.status.credits_used_month}")
    row.check(source.status.state == "budget_exhausted", f"state {source.status.state}")
    gaps = clock.waits[:budget - 1]
    row.check(all(g >= plan.interval * (1 - 1e-9) for g in gaps),
              f"calls closer than one interval: {[round(g, 3) for g in gaps]}")
    row.notes.append(f"{len(calls)} calls for {budget} credits, then none "
                     f"('{source.status.state}'); calls spread "
                     f"{', '.join(f'{g:.2f}' for g in gaps)} s apart (virtual clock)")
    return row


def run(ctx: Context) -> list[Row]:
    plan = Plan.of(ctx)
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)  # the SDK's debug lines too: the key must not be in them
    try:
        with FakeCoinGecko(coins=COINS, api_key=ctx.key, host="public") as fake:
            run_ = Run(ctx, plan, fake)
            asyncio.run(_drive(ctx, plan, run_))
            rows = _analyse(run_, plan)
            say(f"  upstream: {len(fake.requests)} requests served")
            rows.append(_credit_budget(ctx, plan, fake))
            for r in fake.requests:  # the key travels only as a header
                if ctx.key in r.path or ctx.key in repr(r.query):
                    rows[0].failures.append("the key appeared in a URL")
                    break
    finally:
        root.setLevel(level)
    return rows
