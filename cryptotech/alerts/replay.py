"""``cryptotech backtest ... --alertas``: how often each configured rule would have fired.

The market rules run over the replay exactly as the engine runs them live (same evaluator, event
time), on a learner of their own per coin, so a user can tune a rule before going live. Outage
rules (``fonte_fora``, ``motor_parado``) are about the live service and are not replayed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from tqdm import tqdm

from cryptotech.alerts.evaluate import MarketRules
from cryptotech.alerts.rules import MARKET, RegraAtiva, config_rules
from cryptotech.config import Settings
from cryptotech.domain import Tick
from cryptotech.learning.learner import CoinLearner


def count_alerts(ticks: Iterable[Tick], settings: Settings, total: int | None = None,
                 progress: bool = False) -> tuple[list[RegraAtiva], Counter, float]:
    """(the rules, alerts fired per rule id, days replayed) over ``ticks`` in time order."""
    rules = config_rules(list(settings.alertas))
    market = MarketRules(rules, (), settings.vs_currency)
    learners: dict[str, CoinLearner] = {}
    fired: Counter = Counter()
    first = last = None
    for tick in tqdm(ticks, total=total, disable=not progress, unit="tick", mininterval=0.5):
        learner = learners.get(tick.coin)
        if learner is None:
            learner = learners[tick.coin] = CoinLearner(tick.coin, settings.model)
        prediction, outcomes = learner.process(tick)
        fired.update(a["rule_id"] for a in market.step(tick, prediction, outcomes))
        first = tick.epoch if first is None else first
        last = tick.epoch
    days = (last - first) / 86400 if first is not None and last is not None else 0.0
    return rules, fired, days


def format_counts(rules: list[RegraAtiva], fired: Counter, days: float | None = None) -> str:
    """One line per rule: its id, how many alerts, and what it watches."""
    if not rules:
        return "alertas: no [[alertas]] rule in the config"
    lines = ["alertas (rules of the config, replayed):"]
    for rule in rules:
        if rule.regra.tipo not in MARKET:
            lines.append(f"  {rule.id:>10}       -  {rule.regra.describe()} (live only)")
            continue
        n = fired[rule.id]
        per_day = f"  ({n / days:.1f}/day)" if days else ""
        lines.append(f"  {rule.id:>10}  {n:>6}  {rule.regra.describe()}{per_day}")
    return "\n".join(lines)
