"""From the engine's and the store's shapes (English keys, UTC seconds) to the API's.

One :class:`Presenter` per app turns stored rows, event data and engine snapshots into the
Portuguese models of :mod:`cryptotech.api.schemas`, with times in the configured zone. REST
answers and SSE events go through the same functions, so a forecast looks the same whether
it is read from ``/previsoes`` or received on ``/stream``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, overload

from cryptotech.alerts.schemas import present_alert
from cryptotech.api import schemas as s
from cryptotech.api.timefmt import local
from cryptotech.config import Settings, format_duration
from cryptotech.domain import QUANTILE_LEVELS
from cryptotech.learning.learner import EWMA, PUBLISHED, move_probabilities
from cryptotech.learning.models import PERSISTENCE

_METRIC_NAMES = {
    "n": "resultados", "mae": "mae", "rmse": "rmse", "mape": "mape", "r2": "r2",
    "skill": "skill_vs_persistencia", "direction_hit_rate": "acerto_direcao",
    "coverage": "cobertura", "mean_width_bps": "largura_media_bps",
    "interval_score": "escore_intervalo_bps", "interval_score_skill": "skill_escore_intervalo",
    "pinball": "pinball_medio_bps", "pinball_skill": "skill_pinball", "brier": "brier",
    "brier_skill": "skill_brier", "vol_loglik": "logverossimilhanca_vol",
    "quantile_coverage": "cobertura_quantis",
}


#: The engine's and the source's reason codes (English, in logs) as the API shows them.
REASONS_PT = {
    "warming_up": "aquecendo", "duplicate": "duplicado", "out_of_order": "fora_de_ordem",
    "invalid_price": "preco_invalido", "unlabelled_gap": "lacuna_sem_preco_real",
    "pending_dropped": "pendente_descartada", "unknown_coin": "moeda_desconhecida",
    "already_stored": "ja_guardado", "nan": "nao_e_numero", "infinite": "infinito",
    "non_positive": "nao_positivo", "non_numeric": "nao_numerico",
    "missing_price": "sem_preco", "missing_coin": "moeda_ausente",
    "absurd_jump": "salto_absurdo", "bad_timestamp": "horario_invalido",
    "malformed": "resposta_malformada",
}

#: The source's states (codes in ``estado``) in words, for sentences.
SOURCE_STATES_PT = {
    "starting": "iniciando", "live": "ao vivo", "stale": "sem preços novos",
    "unreachable": "inacessível", "rate_limited": "limite de consultas atingido",
    "auth_error": "chave da API recusada", "budget_exhausted": "créditos do mês esgotados",
}


def reasons_pt(counts: Mapping[str, Any] | None) -> dict[str, int]:
    """Reason counters with Portuguese keys (an unknown code is kept as it is).

    >>> reasons_pt({"warming_up": 2, "duplicate": 1, "novo": 3})
    {'aquecendo': 2, 'duplicado': 1, 'novo': 3}
    """
    out: dict[str, int] = {}
    for key, value in (counts or {}).items():
        name = REASONS_PT.get(str(key), str(key))
        out[name] = out.get(name, 0) + int(value)
    return out


def source_state_pt(state: str | None) -> str:
    """A source state in words.

    >>> source_state_pt("starting"), source_state_pt("novo")
    ('iniciando', 'novo')
    """
    return SOURCE_STATES_PT.get(state or "", state or "desconhecido")


#: What a ``metricas`` SSE event leaves out: the static explanation (shown once on the
#: page), and in ``por_horizonte`` the candidates and persistence (``GET /metricas`` has them;
#: the point skill against persistence is in ``publicado``).
SSE_METRICS_EXCLUDE: Any = {"explicacao": True,
                           "por_horizonte": {"__all__": {"candidatos", "persistencia"}}}


def _qkey(tau: float) -> str:
    """``q05`` for 0.05: the name of a quantile column and key.

    >>> _qkey(0.05), _qkey(0.5)
    ('q05', 'q50')
    """
    return f"q{round(tau * 100):02d}"


def _quantiles(row: Mapping[str, Any]) -> dict[str, float | None] | None:
    """The quantiles of a stored row (``q05``..``q95`` columns) or of event data (a list at
    :data:`QUANTILE_LEVELS`); ``None`` when the forecast has none."""
    values = row.get("quantiles")
    if values:
        if len(values) != len(QUANTILE_LEVELS):
            return None
        return {_qkey(tau): v for tau, v in zip(QUANTILE_LEVELS, values, strict=True)}
    out = {_qkey(tau): row.get(_qkey(tau)) for tau in QUANTILE_LEVELS}
    return out if any(v is not None for v in out.values()) else None


def _price(value: float | None) -> str:
    """A price the Brazilian way, with the digits it has (up to 10 significant).

    >>> _price(104250.5), _price(0.1691234), _price(None)
    ('104.250,5', '0,1691234', '?')
    """
    if value is None:
        return "?"
    text = f"{value:,.10g}" if abs(value) >= 1000 else f"{value:.10g}"
    if "e" in text:
        text = f"{value:.10f}".rstrip("0")
    return text.replace(",", "_").replace(".", ",").replace("_", ".")


def _br(value: float, digits: int = 1) -> str:
    """A number the Brazilian way (decimal comma).

    >>> _br(12.345)
    '12,3'
    """
    return f"{value:.{digits}f}".replace(".", ",")


def _pct_change(new: float | None, base: float | None) -> float | None:
    if new is None or not base:
        return None
    return (new / base - 1.0) * 100.0


class Presenter:
    """Converts to the API's models for one app's settings (zone, horizon, interval level)."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.zone = settings.zone
        self.horizon_s = int(settings.model.horizon.total_seconds())
        self.horizon = format_duration(settings.model.horizon)
        self.horizons = settings.model.horizon_labels
        self.horizon_seconds = {label: int(td.total_seconds()) for label, td in
                                zip(self.horizons, settings.model.horizons, strict=True)}
        self.thresholds = list(settings.model.move_thresholds)
        self.level = settings.model.interval_level
        self.window = settings.model.metrics_window

    @overload
    def time(self, epoch: float) -> datetime: ...
    @overload
    def time(self, epoch: float | None) -> datetime | None: ...

    def time(self, epoch: float | None) -> datetime | None:
        return local(epoch, self.zone)

    def time_iso(self, text: str | None) -> datetime | None:
        """An ISO-8601 text with offset (as ``engine.status()`` gives it) in the zone."""
        if not text:
            return None
        return datetime.fromisoformat(text).astimezone(self.zone)

    # -- forecasts ---------------------------------------------------------------------------

    def prediction(self, row: Mapping[str, Any], pid: int | None = None) -> s.Previsao:
        """A stored prediction row (``Store.predictions``) or the data of a ``previsao`` /
        ``resultado`` event (``pid`` is then the event's id, or its ``prediction_id``)."""
        actual = row.get("actual")
        covered = row.get("covered")
        error = row.get("error")
        return s.Previsao(
            id=int(row.get("id") or row.get("prediction_id") or pid or 0),
            moeda=row["coin"],
            feita_em=self.time(row["made_at"]),
            alvo_em=self.time(row["target_at"]),
            preco_atual=row["price"],
            previsao=row["forecast"],
            limite_inferior=row["lower"],
            limite_superior=row["upper"],
            variacao_prevista_pct=_pct_change(row["forecast"], row["price"]),
            modelo=row["model"],
            situacao="pendente" if actual is None else "realizada",
            preco_real=actual,
            erro=error,
            erro_pct=(error / actual * 100.0) if error is not None and actual else None,
            dentro_do_intervalo=None if covered is None else bool(covered),
            horizonte=row.get("horizon"),
            quantis=_quantiles(row),
            prob_subir=row.get("p_up"),
            volatilidade_prevista=row.get("vol"),
        )

    def current(self, row: Mapping[str, Any], metrics: Mapping[str, dict]) -> s.PrevisaoAtual:
        """``/prever``: the latest stored prediction of one horizon (the row's) with its
        predictive distribution and the learner's metrics of that horizon as context."""
        base = self.prediction(row)
        horizon = base.horizonte or self.horizon
        seconds = self.horizon_seconds.get(horizon) or int(row["target_at"] - row["made_at"])
        return s.PrevisaoAtual(
            **{**base.model_dump(), "horizonte": horizon},
            horizonte_segundos=seconds,
            horizontes_disponiveis=self.horizons,
            nivel_intervalo=self.level,
            moeda_cotacao=self.settings.vs_currency,
            distribuicao=self.distribution(base, horizon, metrics, row.get("p_move")),
            contexto=self.context(metrics, horizon),
        )

    def distribution(self, p: s.Previsao, horizon: str, metrics: Mapping[str, dict],
                     p_move: Any = None) -> s.Distribuicao:
        """The forecast as a distribution, in words too; the middle of the range said honestly.

        ``p_move``: the forecast's own ``(threshold, probability)`` pairs (event data, or the
        learner's last forecast); a stored row has none, so they are computed from its
        volatility as the learner does (:func:`move_probabilities`)."""
        quantiles = p.quantis or {}
        vol = p.volatilidade_prevista
        if not p_move and vol is not None and vol > 0:
            p_move = move_probabilities(vol, self.thresholds)
        moves = [s.ProbMovimento(limiar=x, probabilidade=prob) for x, prob in p_move or ()]
        level = _br(self.level * 100, 0)
        cur = self.settings.vs_currency.upper()
        summary = (f"Faixa provável em {horizon}: {_price(p.limite_inferior)} a "
                   f"{_price(p.limite_superior)} {cur} ({level}%)")
        if p.prob_subir is not None:
            summary += f"; chance de subir: {_br(p.prob_subir * 100, 0)}%"
        if vol is not None:
            summary += f"; volatilidade prevista: {_br(vol * 100)}%"
        summary += "."
        skill = metrics.get(PUBLISHED, {}).get("skill")
        if p.modelo == PERSISTENCE:
            note = ("O meio da faixa é 'sem mudança' (o preço atual): neste horizonte nenhum "
                    "modelo superou a persistência ('o preço fica igual') até agora; o que a "
                    "previsão traz de útil é a largura da faixa e as probabilidades.")
        else:
            versus = ("" if skill is None
                      else f" (errou {_br(skill * 100)}% menos nos últimos resultados)")
            note = (f"O meio da faixa vem do modelo {p.modelo}, publicado porque tem errado "
                    f"menos que a persistência{versus}; a diferença costuma ser pequena.")
        return s.Distribuicao(
            quantis=[s.Quantil(nivel=tau, preco=quantiles.get(_qkey(tau)))
                     for tau in QUANTILE_LEVELS if _qkey(tau) in quantiles],
            intervalo=s.Intervalo(nivel=self.level, inferior=p.limite_inferior,
                                  superior=p.limite_superior),
            prob_subir=p.prob_subir, volatilidade_prevista=vol, prob_movimento=moves,
            resumo=summary, nota=note)

    def context(self, metrics: Mapping[str, dict], horizon: str | None = None) -> s.Contexto:
        pub = metrics.get(PUBLISHED, {})
        base = metrics.get(PERSISTENCE, {})
        n = int(pub.get("n") or 0)
        skill, coverage = pub.get("skill"), pub.get("coverage")
        level = _br(self.level * 100, 0)
        if n == 0:
            summary = (f"Ainda não há resultados: cada previsão é conferida {horizon or self.horizon} depois "
                       "de feita. Até lá, não se sabe se ela erra menos que a persistência "
                       "('o preço fica igual').")
        else:
            if skill is None:
                versus = "ainda não dá para comparar com a persistência"
            elif skill > 0.0005:
                versus = f"a previsão publicada errou {_br(skill * 100)}% menos que a persistência"
            elif skill < -0.0005:
                versus = f"a previsão publicada errou {_br(-skill * 100)}% mais que a persistência"
            else:
                versus = "a previsão publicada errou o mesmo que a persistência"
            summary = f"Em {n} resultados, {versus} ('o preço fica igual')"
            if coverage is not None:
                summary += f"; o intervalo de {level}% cobriu {_br(coverage * 100)}% dos preços reais"
            summary += "."
        return s.Contexto(
            resultados=n, skill_vs_persistencia=skill, mae=pub.get("mae"),
            mae_persistencia=base.get("mae"), cobertura=coverage, nivel_intervalo=self.level,
            resumo=summary,
        )

    # -- metrics -----------------------------------------------------------------------------

    @staticmethod
    def _metric(values: Mapping[str, Any]) -> s.Metricas:
        out = {pt: values.get(en) for en, pt in _METRIC_NAMES.items()}
        out["resultados"] = int(out["resultados"] or 0)
        if out["mape"] is not None:  # River gives it in %; every rate here is a fraction
            out["mape"] = out["mape"] / 100.0
        return s.Metricas.model_validate(out)

    def _horizon_metrics(self, horizon: str, model_in_use: str,
                         metrics: Mapping[str, dict]) -> s.MetricasHorizonte:
        empty: dict[str, Any] = {}
        return s.MetricasHorizonte(
            horizonte=horizon, modelo_em_uso=model_in_use,
            publicado=self._metric(metrics.get(PUBLISHED, empty)),
            persistencia=self._metric(metrics.get(PERSISTENCE, empty)),
            ewma=self._metric(metrics[EWMA]) if EWMA in metrics else None,
            candidatos={name: self._metric(v) for name, v in metrics.items()
                        if name not in (PUBLISHED, PERSISTENCE, EWMA)})

    def metrics(self, coin: str, model_in_use: str, metrics: Mapping[str, dict],
                horizon: str | None = None,
                by_horizon: Mapping[str, Mapping[str, Any]] | None = None) -> s.MetricasMoeda:
        """The learner's metrics of one horizon (``None``: the first configured) in
        Portuguese, with every horizon's (``by_horizon``: ``{label: {"model_in_use",
        "metrics"}}``, as :meth:`Engine.metrics_payload` gives them) when known."""
        horizon = horizon or self.horizon
        first = self._horizon_metrics(horizon, model_in_use, metrics)
        per = None
        if by_horizon is not None:
            per = {label: self._horizon_metrics(label, v["model_in_use"], v["metrics"])
                   for label, v in by_horizon.items()}
        return s.MetricasMoeda(
            moeda=coin,
            modelo_em_uso=model_in_use,
            horizonte=horizon,
            nivel_intervalo=self.level,
            janela=self.window,
            publicado=first.publicado,
            persistencia=first.persistencia,
            candidatos=first.candidatos or {},
            ewma=first.ewma,
            horizontes_disponiveis=self.horizons,
            por_horizonte=per,
            explicacao=self.explanation(),
        )

    def explanation(self) -> str:
        """What each metric means, in plain Portuguese (``GET /metricas`` only: the SSE
        ``metricas`` events leave it out, the dashboard shows it once on the page)."""
        return (
            f"Métricas dos últimos {self.window} resultados (janela móvel); cada previsão é "
            f"conferida {self.horizon} depois de feita. mae (erro absoluto médio) e rmse "
            "(raiz do erro quadrático médio) estão em unidades de preço "
            f"({self.settings.vs_currency.upper()}): quanto menor, melhor. "
            "skill_vs_persistencia (habilidade contra a persistência) = 1 - MAE/MAE da "
            "persistência, uma fração: acima de 0 errou menos que 'o preço fica igual', "
            "abaixo de 0 errou mais (0,01 = 1% menos erro). Um candidato só é publicado quando "
            "erra menos que a persistência; senão a previsão publicada é a própria "
            "persistência. mape, acerto_direcao e cobertura são frações (0,9 = 90%): mape é o "
            "erro percentual absoluto médio; acerto_direcao, a fração de vezes em que a "
            "direção (sobe/desce) foi acertada; cobertura, a fração dos preços reais dentro "
            f"do intervalo de {_br(self.level * 100, 0)}%. largura_media_bps é a largura média "
            "do intervalo em pontos-base (bps: 100 bps = 1% do preço). r2 (R², coeficiente de "
            "determinação): 1 é perfeito, 0 é tão bom quanto prever a média, negativo é pior. "
            "A distribuição prevista (quantis, faixa, chance de subir, volatilidade) é "
            "comparada com a referência ewma (faixa Gaussiana com a volatilidade EWMA em "
            "torno do preço atual, chance de subir sempre 50%) por escores próprios, em que "
            "menor é melhor: escore_intervalo_bps (largura da faixa mais multa quando o preço "
            "sai dela, em pontos-base), pinball_medio_bps (erro de todos os quantis, em "
            "pontos-base) e brier (erro da chance de subir; 0,25 é o de quem diz sempre 50%); "
            "logverossimilhanca_vol, maior é melhor, diz se a volatilidade prevista acertou o "
            "tamanho dos movimentos. Cada skill_* = 1 - escore/escore da referência: acima de 0 "
            "é melhor que ela. cobertura_quantis: a fração dos preços reais abaixo de cada "
            "quantil (bem calibrado quando q05 ≈ 0,05 e q95 ≈ 0,95)."
        )

    # -- SSE payloads ------------------------------------------------------------------------

    def tick(self, data: Mapping[str, Any]) -> s.Preco:
        return s.Preco(
            moeda=data["coin"], horario=self.time(data["ts"]), preco=data["price"],
            valor_mercado=data.get("market_cap"), volume_24h=data.get("volume_24h"),
            variacao_24h_pct=data.get("change_24h"),
        )

    def event(self, kind: str, data: Mapping[str, Any], event_id: int | None) -> dict[str, Any]:
        """The JSON-ready payload of one hub/store event, by kind."""
        if kind == "tick":
            model: Any = self.tick(data)
        elif kind == "previsao":
            model = self.prediction(data, event_id)
        elif kind == "resultado":
            model = self.prediction(data)
        elif kind == "metricas":  # the explanation is static: on the page, not in each event
            model = self.metrics(data["coin"], data["model_in_use"], data["metrics"],
                                 data.get("horizon"), data.get("by_horizon"))
            return model.model_dump(mode="json", exclude=SSE_METRICS_EXCLUDE)
        elif kind == "alerta":  # cryptotech.alerts
            return present_alert(dict(data), event_id, self.time)
        else:  # already in the API's shape (status, reset, adeus, removido)
            return dict(data)
        return model.model_dump(mode="json")

    # -- status --------------------------------------------------------------------------------

    def status(self, engine: Any, counts: Mapping[str, int], last_event_id: int,
               max_subscribers: int) -> s.Status:
        raw = engine.status()
        src = raw.get("source")
        fonte = None
        if src is not None:
            fonte = s.FonteStatus(
                tipo=str(src.get("source") or ""),
                estado=str(src.get("state") or ""),
                mensagem=str(src.get("message") or ""),
                ultimo_sucesso_em=self.time_iso(src.get("last_ok_at")),
                ultimo_preco_em={c: self.time_iso(v)
                                 for c, v in (src.get("last_tick_at") or {}).items()},
                consultas=int(src.get("polls") or 0),
                erros=int(src.get("errors") or 0),
                rejeitados=reasons_pt(src.get("rejected")),
                duplicados=int(src.get("duplicates") or 0),
                creditos_usados_mes=int(src.get("credits_used_month") or 0),
                orcamento_creditos=int(src.get("credit_budget") or 0),
                proxima_consulta_em=self.time_iso(src.get("next_poll_at")),
            )
        coins = {
            coin: s.MoedaStatus(
                ultimo_preco_em=self.time_iso(c.get("last_tick_at")),
                modelo_em_uso=c.get("model_in_use") or PERSISTENCE,
                precos_vistos=int(c.get("ticks_seen") or 0),
                rotulos_pendentes=int(c.get("pending_labels") or 0),
                ignorados=reasons_pt(c.get("ignored")),
                recuperacao=c.get("recovery"),
                sem_dados=c.get("no_data"),
            )
            for coin, c in (raw.get("coins") or {}).items()
        }
        motor = s.Motor.model_validate(raw["motor"])
        healthy = ((fonte is None or fonte.estado == "live") and motor.aprendendo
                   and not any(c.sem_dados for c in coins.values()))
        return s.Status(
            situacao="ok" if healthy else "atencao",
            agora=self.time(time.time()),
            versao=raw["version"],
            versao_river=raw["river_version"],
            iniciado_em=datetime.fromisoformat(raw["started_at"]).astimezone(self.zone),
            fuso_horario=self.settings.timezone,
            horizonte=self.horizon,
            fonte=fonte,
            moedas=coins,
            ticks_processados=int(raw.get("ticks_processed") or 0),
            ignorados=reasons_pt(raw.get("ignored")),
            erros_banco=int(raw.get("store_errors") or 0),
            assinantes=int(raw.get("subscribers") or 0),
            assinantes_max=max_subscribers,
            assinantes_removidos=int(raw.get("subscribers_evicted") or 0),
            ultimo_evento_id=last_event_id,
            banco=s.Banco(
                ticks=counts.get("ticks", 0), previsoes=counts.get("predictions", 0),
                resultados=counts.get("outcomes", 0), eventos=counts.get("events", 0),
                checkpoints=counts.get("checkpoints", 0),
            ),
            motor=motor,
        )

    def status_brief(self, engine: Any, subscribers: int, last_event_id: int) -> s.StatusResumo:
        """The periodic SSE ``status`` event: cheap (no database access)."""
        src = engine.source.status if engine.source is not None else None
        return s.StatusResumo(
            agora=self.time(time.time()),
            fonte=getattr(src, "state", None),
            mensagem=getattr(src, "message", None),
            ultimo_preco_em={coin: self.time(lr.last_t) for coin, lr in engine.learners.items()},
            modelo_em_uso={coin: lr.model_in_use for coin, lr in engine.learners.items()},
            ticks_processados=engine.ticks_processed,
            assinantes=subscribers,
            ultimo_evento_id=last_event_id,
        )
