"""Market rules evaluated on every tick, on event time, committed with the tick.

:class:`MarketRules` sits between the learner and the store in the engine's worker thread:
:meth:`MarketRules.commit` evaluates every rule of the tick's coin, then writes the tick, what
the learner made of it, the alerts it fired, their outbox rows and the rules' new state in ONE
transaction (:meth:`cryptotech.store.Store.commit_tick`). Only once that commit succeeded does
the in-memory state move on, so a failed commit changes nothing.

Where the state lives, and why: each rule's state per coin (armed, last fired, run of
surprises, recent storm level) is a row of ``alert_state`` upserted in the tick's transaction,
not a field of the learner's checkpoint. It is therefore always exactly as recent as the last
stored tick: a restart (even after ``kill -9``) neither repeats an alert nor loses one, and
recovery needs no replay through the rules. The only state not stored is the price window of
``variacao`` rules, which is rebuilt from the stored ticks on the first tick after a start.
Event time (the tick's timestamp) drives cooldowns and windows, so a replay of the same ticks
with the same rules fires the same alerts.
"""

from __future__ import annotations

import functools
import json
import math
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Any

from cryptotech.alerts.rules import MARKET, RegraAtiva, _num
from cryptotech.domain import Outcome, Prediction, Tick
from cryptotech.storage import StoreBackend as Store
from cryptotech.store import AlertRows

FRESH: dict[str, Any] = {"armed": True, "last": None}
CURRENCY = {"usd": "US$", "brl": "R$", "eur": "€", "gbp": "£"}


def predictions_of(prediction: Prediction | Sequence[Prediction] | None) -> list[Prediction]:
    """The learner's forecast(s) of a tick as a list (one today, one per horizon later)."""
    if prediction is None:
        return []
    if isinstance(prediction, Prediction):
        return [prediction]
    return list(prediction)


def forecast_json(p: Prediction | None) -> dict[str, Any] | None:
    return None if p is None else _forecast(p)


def _forecast(p: Prediction) -> dict[str, Any]:
    return {"horizon": p.horizon, "made_at": p.made_at.timestamp(),
            "target_at": p.target_at.timestamp(), "price": p.price, "forecast": p.forecast,
            "lower": p.lower, "upper": p.upper, "p_up": p.p_up, "vol": p.vol}


class MarketRules:
    """The market rules of one engine, their state, and the hook that commits a tick."""

    def __init__(self, rules: Iterable[RegraAtiva] = (), channels: Sequence[str] = (),
                 vs_currency: str = "usd", horizon: str | None = None):
        self.rules: tuple[RegraAtiva, ...] = ()
        # a rule without ``horizonte`` watches this one (the first configured: the one shown)
        self.horizon = horizon
        self.channels = list(channels)
        self.money = CURRENCY.get(vs_currency, vs_currency.upper())
        self.state: dict[tuple[str, str], dict[str, Any]] = {}
        self.windows: dict[str, deque[tuple[float, float]]] = {}
        self.loaded: set[str] = set()
        self.fired_total = 0
        self.set_rules(rules)

    def set_rules(self, rules: Iterable[RegraAtiva]) -> None:
        """Replace the rule set (atomic: the worker thread sees the old or the new tuple)."""
        self.rules = tuple(r for r in rules if r.regra.tipo in MARKET and not r.pausada)

    # -- the engine's hook -----------------------------------------------------------------

    def commit(self, store: Store, tick: Tick, prediction: Any, outcomes: Sequence[Outcome]):
        """Evaluate the rules on ``tick``, then ``store.commit_tick`` with the alerts."""
        rules = [r for r in self.rules if r.regra.applies_to(tick.coin)]
        if not rules:
            return store.commit_tick(tick, prediction, outcomes)
        self._load(store, tick.coin)
        fired, staged, window = self.evaluate(rules, tick, predictions_of(prediction), outcomes)
        rows = AlertRows(fired, self.channels if fired else (),
                         [(k, c, json.dumps(v)) for (k, c), v in staged.items()])
        result = store.commit_tick(tick, prediction, outcomes, alerts=rows)
        if result is not None:  # committed: the state moves on
            self._apply(tick.coin, fired, staged, window)
        return result

    def step(self, tick: Tick, prediction: Any, outcomes: Sequence[Outcome]) -> list[dict]:
        """Evaluate and move on without a store (a backtest); returns the alerts fired."""
        rules = [r for r in self.rules if r.regra.applies_to(tick.coin)]
        if not rules:
            return []
        fired, staged, window = self.evaluate(rules, tick, predictions_of(prediction), outcomes)
        self._apply(tick.coin, fired, staged, window)
        return fired

    def _apply(self, coin: str, fired: list, staged: dict, window: deque) -> None:
        self.state.update(staged)
        self.windows[coin] = window
        self.fired_total += len(fired)

    def _load(self, store: Store, coin: str) -> None:
        """On the first tick of a coin after a start: stored state, and the price window."""
        if not self.loaded:
            self.state = store.alert_state()
        if coin in self.loaded:
            return
        self.loaded.add(coin)
        span = max((r.regra.window for r in self.rules if r.regra.tipo == "variacao"), default=0)
        window: deque[tuple[float, float]] = deque()
        last = store.last_ticks().get(coin)
        if span and last is not None:
            window.extend(store.recent_ticks(coin, since=last[1] - span - _slack(span)))
        self.windows[coin] = window

    # -- evaluation (pure: returns what changes) ------------------------------------------

    def evaluate(self, rules: Sequence[RegraAtiva], tick: Tick, predictions: list[Prediction],
                 outcomes: Sequence[Outcome]):
        """(alerts fired, new state by (rule key, coin), new price window) for one tick."""
        t, coin, price = tick.epoch, tick.coin, tick.price
        window = deque(self.windows.get(coin, ()))
        if not window or t > window[-1][0]:
            window.append((t, price))
        span = max((r.regra.window for r in rules if r.regra.tipo == "variacao"), default=0)
        while len(window) > 1 and window[1][0] <= t - span:
            window.popleft()
        fired: list[dict[str, Any]] = []
        staged: dict[tuple[str, str], dict[str, Any]] = {}
        for rule in rules:
            old = self.state.get((rule.key, coin), FRESH)
            st = dict(old)
            for cond, clear, what in self._observe(rule, st, t, price, window, predictions,
                                                   [o for o in outcomes
                                                    if o.prediction.coin == coin]):
                if not st["armed"]:
                    st["armed"] = bool(clear)
                elif cond and (st["last"] is None or t - st["last"] >= rule.regra.cooldown):
                    st["armed"], st["last"] = False, t
                    fired.append(self._alert(rule, tick, predictions, what()))
            if st != old:
                staged[(rule.key, coin)] = st
        return fired, staged, window

    def _observe(self, rule: RegraAtiva, st: dict, t: float, price: float, window: deque,
                 predictions: list[Prediction], outcomes: list[Outcome]):
        """Yield (condition, cleared, details) for each observation the rule makes now;
        ``details()`` builds the alert's words and values (only when it fires)."""
        r = rule.regra
        kind, margin = r.tipo, r.rearm
        if kind == "preco_acima":
            assert r.preco is not None
            yield price > r.preco, price <= r.preco * (1 - margin), lambda: {
                "value": price, "threshold": r.preco,
                "text": f"preço acima de {self.money} {_num(r.preco)}: {self.money} {_num(price)}"}
        elif kind == "preco_abaixo":
            assert r.preco is not None
            yield price < r.preco, price >= r.preco * (1 + margin), lambda: {
                "value": price, "threshold": r.preco,
                "text": f"preço abaixo de {self.money} {_num(r.preco)}: {self.money} {_num(price)}"}
        elif kind == "variacao":
            assert r.percentual is not None
            ref = _reference(window, t, r.window)
            if ref is None:
                return
            change = (price / ref[1] - 1) * 100
            mins = round((t - ref[0]) / 60)
            yield abs(change) >= r.percentual, abs(change) <= r.percentual * (1 - margin), lambda: {
                "value": change, "threshold": r.percentual,
                "text": f"variação de {_signed(change)}% em {mins} min "
                        f"({self.money} {_num(ref[1])} → {self.money} {_num(price)})"}
        elif kind in ("fora_do_intervalo", "surpresas_seguidas"):
            want = r.horizonte or self.horizon
            for o in outcomes:
                if want and o.prediction.horizon != want:
                    continue
                if kind == "fora_do_intervalo":
                    yield not o.covered, o.covered, functools.partial(self._surprise, o, 0)
                else:
                    st["streak"] = 0 if o.covered else st.get("streak", 0) + 1
                    assert r.quantidade is not None
                    yield (st["streak"] >= r.quantidade, st["streak"] == 0,
                           functools.partial(self._surprise, o, st["streak"]))
        else:
            at = _at_horizon(predictions, r.horizonte or self.horizon)
            if at is None:
                return
            if kind == "tempestade":
                yield from self._storm(rule, st, t, at)
            elif at.p_up is not None and math.isfinite(at.p_up):
                prob = at.p_up if kind == "prob_subir" else 1 - at.p_up
                assert r.probabilidade is not None
                verbo = "subir" if kind == "prob_subir" else "cair"
                yield prob >= r.probabilidade, prob <= r.probabilidade * (1 - margin), lambda: {
                    "value": prob, "threshold": r.probabilidade,
                    "text": f"probabilidade de {verbo} em {at.horizon}: {_num(prob * 100)}%"}

    def _surprise(self, o: Outcome, streak: int) -> dict[str, Any]:
        """The details of a realised price outside its interval (``streak``: of a run)."""
        p = o.prediction
        where = "acima" if o.actual > p.upper else "abaixo"
        text = (f"preço real {self.money} {_num(o.actual)} {where} do intervalo previsto "
                f"[{_num(p.lower)}; {_num(p.upper)}] (previsão de {p.horizon} atrás)")
        if streak:
            text = f"{streak} preços reais seguidos fora do intervalo; o último: {text}"
        return {"issued": _forecast(p) | {"actual": o.actual, "covered": o.covered},
                "value": streak or o.actual, "text": text}

    def _storm(self, rule: RegraAtiva, st: dict, t: float, p: Prediction):
        r = rule.regra
        m = p.vol if r.medida == "volatilidade" else (p.upper - p.lower) / p.price
        if m is None or not math.isfinite(m) or m <= 0:
            return
        level, prev = st.get("level"), st.get("t")
        if level is None or prev is None:
            st.update(level=m, t=t, since=t)
            return
        ratio = m / level
        factor = r.fator or 2.0
        st["level"] = level + (1 - math.exp(-(t - prev) / r.window)) * (m - level)
        st["t"] = t
        if t - st["since"] < r.window:  # no recent level yet
            return
        medida = "volatilidade prevista" if r.medida == "volatilidade" else "largura do intervalo"
        yield ratio >= factor, ratio <= factor * (1 - r.rearm), lambda: {
            "value": ratio, "threshold": factor,
            "text": f"tempestade prevista: {medida} {_num(round(ratio, 2))}× o nível recente "
                    f"(horizonte {p.horizon})"}

    def _alert(self, rule: RegraAtiva, tick: Tick, predictions: list[Prediction],
               what: dict[str, Any]) -> dict[str, Any]:
        return {
            "rule": rule.key, "rule_id": rule.id,
            "name": rule.regra.nome or rule.regra.describe(coin=False),
            "rule_text": rule.regra.describe(), "tipo": rule.regra.tipo, "coin": tick.coin,
            "ts": tick.epoch, "price": tick.price,
            "forecast": forecast_json(predictions[0] if predictions else None), **what,
        }


def _slack(span: float) -> float:
    """How far before ``t - janela`` the reference price of a change may lie."""
    return max(600.0, 0.1 * span)


def _reference(window: deque, t: float, span: float) -> tuple[float, float] | None:
    """The newest (ts, price) at or before ``t - span``, if not older than the slack."""
    ts, price = window[0]
    if ts > t - span or t - span - ts > _slack(span):
        return None
    return ts, price


def _at_horizon(predictions: list[Prediction], horizon: str | None) -> Prediction | None:
    for p in predictions:
        if horizon is None or p.horizon == horizon:
            return p
    return None


def _signed(value: float) -> str:
    """
    >>> _signed(3.14159), _signed(-2.5)
    ('+3,14', '-2,50')
    """
    return f"{value:+.2f}".replace(".", ",")
