"""The backtest's HTML report: one self-contained page in Portuguese, readable on a phone.

For each coin: a table of every candidate's scores beside persistence ("o preço fica igual"),
then the forecast against the realised price with the interval band, the rolling skill and the
rolling interval coverage. The page carries Plotly's *basic* bundle once (scatter charts only,
about 1.2 MB, shipped in ``cryptotech/report_assets``, so it opens offline), and each plotted
series is thinned to at most ``max_points`` points, so 30 days of one coin stays well under
2 MB. The realised price is drawn last, solid, above the dashed forecast, so neither hides it.
Times are shown in the configured zone.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from cryptotech.config import Settings, format_duration, zone_city

if TYPE_CHECKING:
    from cryptotech.backtest import CoinResult

MAX_POINTS = 1000
PLOTLY_BUNDLE = "plotly-basic.min.js"

EXPERT_NAMES = {
    "published": "publicado",
    "persistence": "persistência (preço fica igual)",
    "ewma": "EWMA (banda de volatilidade)",
    "bayes_linear": "regressão linear bayesiana",
    "hoeffding_tree": "árvore de Hoeffding",
    "arf": "floresta aleatória adaptativa (ARF)",
}

STYLE = """
body{margin:0;padding:12px;font-family:system-ui,sans-serif;background:#111;color:#eee;
line-height:1.45}
main{max-width:1100px;margin:auto}
h1{font-size:1.5rem}h2{font-size:1.25rem;margin-top:2rem}
p,li{max-width:70ch}
.rolagem{overflow-x:auto;-webkit-overflow-scrolling:touch}
table{border-collapse:collapse;font-variant-numeric:tabular-nums;min-width:100%}
th,td{padding:4px 8px;border-bottom:1px solid #333;text-align:right}
td{white-space:nowrap}th{vertical-align:bottom}
th:first-child,td:first-child{text-align:left}
.legenda{color:#aaa;margin:1rem 0 .25rem}
.dica{display:none;color:#888;font-size:.85em;margin:0 0 .25rem}
@media (max-width:700px){body{padding:6px;font-size:15px}.dica{display:block}}
"""
# Plotly's date axes in Portuguese (the bundle ships English only)
LOCALE = """Plotly.register({moduleType:"locale",name:"pt-BR",dictionary:{},format:{
days:["Domingo","Segunda","Terça","Quarta","Quinta","Sexta","Sábado"],
shortDays:["Dom","Seg","Ter","Qua","Qui","Sex","Sáb"],
months:["Janeiro","Fevereiro","Março","Abril","Maio","Junho","Julho","Agosto","Setembro",
"Outubro","Novembro","Dezembro"],
shortMonths:["jan","fev","mar","abr","mai","jun","jul","ago","set","out","nov","dez"],
date:"%d/%m/%Y",decimal:",",thousands:"."}});"""


def write_report(results: Mapping[str, CoinResult], path: Path | str,
                 settings: Settings | None = None, max_points: int = MAX_POINTS,
                 window: int = 288) -> int:
    """Write the report to ``path`` and return its size in bytes.

    ``window`` is the number of outcomes of the rolling skill and coverage curves.
    """
    settings = settings if settings is not None else Settings()
    page = render(results, settings, max_points=max_points, window=window)
    data = page.encode("utf-8")
    Path(path).write_bytes(data)
    return len(data)


def render(results: Mapping[str, CoinResult], settings: Settings,
           max_points: int = MAX_POINTS, window: int = 288) -> str:
    """The report as one HTML page."""
    model = settings.model
    city = zone_city(settings.timezone)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="pt-BR"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>CryptoTech: backtest</title>",
        f"<style>{STYLE}</style>",
        f"<script>{_plotly_js()}</script>",
        f"<script>{LOCALE}</script>",
        "</head><body><main>",
        "<h1>CryptoTech: backtest</h1>",
        f"<p>Cada previsão do aprendiz ao vivo, para daqui a {format_duration(model.horizon)}, "
        "comparada com o preço que de fato aconteceu. A referência é a persistência: "
        "prever que o preço fica igual. Horários no fuso de "
        f"{html.escape(city)}.</p>",
        _summary_table(results, model.interval_level, format_duration(model.horizon)),
        _legend(model.interval_level),
    ]
    for coin in sorted(results):
        result = results[coin]
        if not result.outcomes:
            continue
        parts.append(f"<h2>{html.escape(coin.upper())}</h2>")
        parts.append(_candidates_table(result))
        parts.append(_figure(result, settings, max_points, window))
    parts.append("</main></body></html>")
    return "\n".join(parts)


def _plotly_js() -> str:
    return (resources.files("cryptotech") / "report_assets" / PLOTLY_BUNDLE).read_text("utf-8")


def _fmt(value: Any, spec: str) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return spec.format(value).replace("-", "−")


def _table(caption: str, header: list[str], rows: list[list[str]], css_id: str) -> str:
    head = "".join(f"<th scope='col'>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return (f"<p class='legenda'>{html.escape(caption)}</p>"
            "<p class='dica'>Deslize a tabela para o lado para ver todas as colunas.</p>"
            f"<div class='rolagem'><table id='{css_id}'>"
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")


def _summary(result: CoinResult, horizon: str) -> dict[str, Any]:
    """Accuracy over all outcomes of one horizon, beside persistence."""
    rows = result.by_horizon().get(horizon, [])
    n = len(rows)
    if not n:
        return {"n": 0}
    mae = sum(abs(o.error) for o in rows) / n
    mae_p = sum(abs(o.prediction.price - o.actual) for o in rows) / n
    moved = [o for o in rows if o.prediction.forecast != o.prediction.price
             and o.actual != o.prediction.price]
    hits = [(o.prediction.forecast > o.prediction.price) == (o.actual > o.prediction.price)
            for o in moved]
    return {
        "n": n, "mae": mae, "mae_persistence": mae_p,
        "skill": 1.0 - mae / mae_p if mae_p else None,
        "direction_hit_rate": sum(hits) / len(hits) if hits else None,
        "coverage": sum(o.covered for o in rows) / n,
        "mean_width_bps": sum((o.prediction.upper - o.prediction.lower) / o.prediction.price
                              for o in rows) / n * 1e4,
    }


def _summary_table(results: Mapping[str, CoinResult], level: float, horizon: str) -> str:
    # skill and coverage first: on a phone they are the columns seen without scrolling
    header = ["Moeda", "Skill", f"Cobertura ({level:.0%})", "Acerto de direção", "Erro médio",
              "Erro médio da persistência", "Largura média (bps)", "Resultados"]
    rows = []
    for coin in sorted(results):
        s = _summary(results[coin], horizon)
        rows.append([coin.upper(), _fmt(s.get("skill"), "{:+.4f}"), _fmt(s.get("coverage"), "{:.1%}"),
                     _fmt(s.get("direction_hit_rate"), "{:.1%}"), _fmt(s.get("mae"), "{:.4g}"),
                     _fmt(s.get("mae_persistence"), "{:.4g}"), _fmt(s.get("mean_width_bps"), "{:.0f}"),
                     str(s.get("n", 0))])
    return _table(f"Resumo de todo o período, por moeda (horizonte {horizon})", header, rows, "resumo")


def _legend(level: float) -> str:
    return (
        "<ul>"
        "<li><b>Erro médio</b>: erro absoluto médio da previsão publicada, na moeda de cotação."
        "</li><li><b>Skill</b> = 1 − erro médio / erro médio da persistência: positivo quando a "
        "previsão erra menos que \"o preço fica igual\", zero quando empata, negativo quando "
        "erra mais.</li>"
        "<li><b>Acerto de direção</b>: fração das vezes em que a previsão acertou se o preço "
        "subiria ou cairia (só quando previu um movimento).</li>"
        f"<li><b>Cobertura</b>: fração dos preços reais dentro do intervalo de {level:.0%}; "
        f"o certo é ficar perto de {level:.0%}.</li>"
        "<li><b>bps</b> (pontos-base): centésimos de 1 %; 100 bps = 1 % do preço.</li>"
        "</ul>"
    )


def _expert_rows(metrics: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    """(horizon, expert, scores) from ``CoinLearner.metrics()``, with or without horizons."""
    first = next(iter(metrics.values()), None)
    nested = isinstance(first, Mapping) and all(isinstance(v, Mapping) for v in first.values())
    if not nested:
        return [("", name, m) for name, m in metrics.items()]
    return [(str(h), name, m) for h, by_expert in metrics.items() for name, m in by_expert.items()]


def _candidates_table(result: CoinResult) -> str:
    learner = result.learner
    if learner is None:
        return ""
    rows_in = _expert_rows(learner.metrics())
    horizons = len({h for h, _, _ in rows_in}) > 1
    header = (["Horizonte"] if horizons else []) + [
        "Candidato", "Skill", "Erro médio", "Acerto de direção", "Cobertura", "Resultados"]
    rows = []
    for horizon, name, m in rows_in:
        rows.append(([horizon] if horizons else []) + [
            EXPERT_NAMES.get(name, name), _fmt(m.get("skill"), "{:+.4f}"),
            _fmt(m.get("mae"), "{:.4g}"), _fmt(m.get("direction_hit_rate"), "{:.1%}"),
            _fmt(m.get("coverage"), "{:.1%}"), str(m.get("n", "–"))])
    window = getattr(getattr(learner, "settings", None), "metrics_window", None)
    caption = ("Candidatos lado a lado" + (f", nos últimos {window} resultados" if window else "")
               + f"; publicado agora: {EXPERT_NAMES.get(learner.model_in_use, learner.model_in_use)}")
    return _table(caption, header, rows, f"candidatos-{result.coin}")


def _frame(result: CoinResult, settings: Settings) -> pd.DataFrame:
    """One row per outcome of the plotted horizon (the first configured one)."""
    wanted = format_duration(settings.model.horizon)
    outcomes = result.outcomes
    labels = {getattr(o.prediction, "horizon", wanted) for o in outcomes}
    if len(labels) > 1:
        keep = wanted if wanted in labels else sorted(labels)[0]
        outcomes = [o for o in outcomes if getattr(o.prediction, "horizon", wanted) == keep]
    zone = settings.zone
    return pd.DataFrame({
        # wall-clock time in the configured zone, as epoch ms: a Plotly date axis shows it as is
        "x": [(o.prediction.target_at + (o.prediction.target_at.astimezone(zone).utcoffset()
                                         or timedelta(0))).timestamp() * 1000 for o in outcomes],
        "price": [o.prediction.price for o in outcomes],
        "predicted": [o.prediction.forecast for o in outcomes],
        "lower": [o.prediction.lower for o in outcomes],
        "upper": [o.prediction.upper for o in outcomes],
        "actual": [o.actual for o in outcomes],
    })


def thin(frame: pd.DataFrame, max_points: int) -> pd.DataFrame:
    """Evenly spaced rows, first and last included, so that at most ``max_points`` rows remain.

    >>> len(thin(pd.DataFrame({"a": range(10_000)}), 1000))
    1000
    >>> thin(pd.DataFrame({"a": range(5)}), 1000)["a"].tolist()
    [0, 1, 2, 3, 4]
    """
    if len(frame) <= max_points:
        return frame
    return frame.iloc[np.linspace(0, len(frame) - 1, max_points).round().astype(int)]


def _figure(result: CoinResult, settings: Settings, max_points: int, window: int) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    frame = _frame(result, settings)
    level = settings.model.interval_level
    err = (frame["predicted"] - frame["actual"]).abs().rolling(window, min_periods=12).mean()
    err_p = (frame["price"] - frame["actual"]).abs().rolling(window, min_periods=12).mean()
    covered = (frame["lower"] <= frame["actual"]) & (frame["actual"] <= frame["upper"])
    frame["skill"] = 1 - err / err_p.where(err_p > 0)
    frame["coverage"] = covered.astype(float).rolling(window, min_periods=12).mean()
    shown = thin(frame, max_points)
    x = shown["x"].to_numpy(dtype=float)

    def y(column: str) -> np.ndarray:
        return shown[column].to_numpy(dtype=float)

    coin = result.coin.upper()
    fig = make_subplots(rows=3, cols=1, shared_xaxes=True, row_heights=[0.6, 0.2, 0.2],
                        vertical_spacing=0.07,
                        subplot_titles=(f"{coin}: previsão e preço real (faixa = intervalo de "
                                        f"{level:.0%})",
                                        f"Skill móvel ({window} resultados)",
                                        f"Cobertura móvel do intervalo ({window} resultados)"))
    hover = ".6~g"
    fig.add_trace(go.Scatter(x=x, y=y("upper"), line={"width": 0}, showlegend=False,
                             hoverinfo="skip"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=y("lower"), fill="tonexty", line={"width": 0},
                             fillcolor="rgba(99,110,250,0.25)", name=f"intervalo {level:.0%}",
                             hoverinfo="skip"), row=1, col=1)
    # forecast first, dashed and translucent; the realised price last, solid, on top
    fig.add_trace(go.Scatter(x=x, y=y("predicted"), name="previsão", opacity=0.8,
                             line={"color": "#ffa15a", "width": 1.5, "dash": "dash"},
                             yhoverformat=hover), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=y("actual"), name="preço real",
                             line={"color": "#e8e8e8", "width": 1.5}, yhoverformat=hover),
                  row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=y("skill"), name="skill", line={"color": "#00cc96"},
                             yhoverformat="+.3f"), row=2, col=1)
    fig.add_hline(y=0, line={"color": "#888", "dash": "dot"}, row=2, col=1)
    fig.add_trace(go.Scatter(x=x, y=y("coverage"), name="cobertura", line={"color": "#ab63fa"},
                             yhoverformat=".1%"), row=3, col=1)
    fig.add_hline(y=level, line={"color": "#888", "dash": "dot"}, row=3, col=1)
    fig.update_xaxes(type="date")
    fig.update_yaxes(tickformat=".0%", row=3, col=1)
    fig.update_layout(
        template="plotly_dark", autosize=True, margin={"l": 50, "r": 10, "t": 40, "b": 10},
        legend={"orientation": "h", "y": -0.05}, hovermode="x unified",
        separators=",.", paper_bgcolor="#111", plot_bgcolor="#111",
    )
    fig.update_annotations(font_size=13)
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=f"grafico-{result.coin}",
                       default_height="720px", default_width="100%",
                       config={"responsive": True, "displaylogo": False, "locale": "pt-BR"})
