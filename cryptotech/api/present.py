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
from typing import Any

from cryptotech.alerts.schemas import present_alert
from cryptotech.api import schemas as s
from cryptotech.api.timefmt import local
from cryptotech.config import Settings, format_duration
from cryptotech.learning.learner import PUBLISHED
from cryptotech.learning.models import PERSISTENCE

_METRIC_NAMES = {
    "n": "resultados", "mae": "mae", "rmse": "rmse", "mape": "mape", "r2": "r2",
    "skill": "skill_vs_persistencia", "direction_hit_rate": "acerto_direcao",
    "coverage": "cobertura", "mean_width_bps": "largura_media_bps",
    "interval_score_skill": "skill_escore_intervalo", "pinball_skill": "skill_pinball",
    "brier_skill": "skill_brier", "quantile_coverage": "cobertura_quantis",
}
_QUANTILE_COLUMNS = ("q05", "q10", "q25", "q50", "q75", "q90", "q95")


def _quantiles(row: Mapping[str, Any]) -> dict[str, float | None] | None:
    """The quantiles of event data (a list) or of a stored row (``q05``..``q95``), by key."""
    values = row.get("quantiles")
    if values:
        return dict(zip(_QUANTILE_COLUMNS, values, strict=True))
    out = {q: row.get(q) for q in _QUANTILE_COLUMNS}
    return out if any(v is not None for v in out.values()) else None


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
        self.level = settings.model.interval_level
        self.window = settings.model.metrics_window

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
            id=row.get("id") or row.get("prediction_id") or pid,
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
        """``/prever``: the latest stored prediction with the learner's metrics as context."""
        base = self.prediction(row).model_dump()
        base["horizonte"] = base["horizonte"] or self.horizon
        return s.PrevisaoAtual(
            **base,
            horizonte_segundos=self.horizon_s,
            nivel_intervalo=self.level,
            moeda_cotacao=self.settings.vs_currency,
            contexto=self.context(metrics),
        )

    def context(self, metrics: Mapping[str, dict]) -> s.Contexto:
        pub = metrics.get(PUBLISHED, {})
        base = metrics.get(PERSISTENCE, {})
        n = int(pub.get("n") or 0)
        skill, coverage = pub.get("skill"), pub.get("coverage")
        level = _br(self.level * 100, 0)
        if n == 0:
            summary = (f"Ainda não há resultados: cada previsão é conferida {self.horizon} depois "
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
        return s.Metricas(**out)

    def metrics(self, coin: str, model_in_use: str, metrics: Mapping[str, dict]) -> s.MetricasMoeda:
        """The learner's ``metrics()`` (or an engine ``metricas`` event) in Portuguese."""
        empty: dict[str, Any] = {}
        return s.MetricasMoeda(
            moeda=coin,
            modelo_em_uso=model_in_use,
            horizonte=self.horizon,
            nivel_intervalo=self.level,
            janela=self.window,
            publicado=self._metric(metrics.get(PUBLISHED, empty)),
            persistencia=self._metric(metrics.get(PERSISTENCE, empty)),
            candidatos={name: self._metric(v) for name, v in metrics.items()
                        if name not in (PUBLISHED, PERSISTENCE)},
            explicacao=(
                "Métricas dos últimos resultados (janela móvel), em unidades de preço. "
                "skill_vs_persistencia = 1 - MAE/MAE_persistência: acima de 0 errou menos que "
                "'o preço fica igual', abaixo de 0 errou mais. Um candidato só é publicado "
                "quando erra menos que a persistência; senão a previsão publicada é a própria "
                f"persistência. cobertura: fração dos preços reais dentro do intervalo de "
                f"{_br(self.level * 100, 0)}%."
            ),
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
        elif kind == "metricas":
            model = self.metrics(data["coin"], data["model_in_use"], data["metrics"])
        elif kind == "alerta":  # cryptotech.alerts
            return present_alert(data, event_id, self.time)
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
                rejeitados={str(k): int(v) for k, v in (src.get("rejected") or {}).items()},
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
                ignorados={str(k): int(v) for k, v in (c.get("ignored") or {}).items()},
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
            iniciado_em=self.time_iso(raw["started_at"]),
            fuso_horario=self.settings.timezone,
            horizonte=self.horizon,
            fonte=fonte,
            moedas=coins,
            ticks_processados=int(raw.get("ticks_processed") or 0),
            ignorados={str(k): int(v) for k, v in (raw.get("ignored") or {}).items()},
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
