"""The page's Plotly figures: a dark layout and empty traces that name, in ``meta``, their feed.

Every trace the browser fills carries ``meta = {"evento", "moeda", "x", "y", ...}``: the kind of
stream event that feeds it (``tick``, ``previsao`` or ``resultado``), the coin, and the payload
fields for x and y (or a derived value: ``variacao_real_pct``, ``limite_inferior_pct``,
``limite_superior_pct``, or a quantile ``q25``/``q75`` taken from ``quantis``). Optional keys:
``horizonte`` (only the forecasts of that horizon), ``filtro`` (only some events, e.g.
``fora_do_intervalo``), ``cor`` (``[positive, negative]`` bar colours) and ``normalizar``
(% change since the first point shown; raw prices kept in ``customdata``). The figure's
``layout.meta`` holds ``versao`` (which history belongs to it), ``janela_ms`` (points older
than the newest minus this leave the chart) and, for a figure drawn without data, ``espera``
(its axes are hidden behind a note, :func:`waiting`, until the first point).
``assets/painel.js`` reads these and does the rest, for the history and for every live event
alike, so the page has one data path.

Times on the x axes are ISO-8601 texts in the configured zone, as the API sends them; Plotly
shows their wall-clock part, which is the configured zone's time.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

# Colours shared with assets/painel.css (keep them in step).
TEXT = "#e6edf3"
MUTED = "#8b949e"
GRID = "rgba(139, 148, 158, 0.16)"
PRICE = "#58a6ff"
FORECAST = "#e3b341"
BAND = "rgba(227, 179, 65, 0.16)"
BAND_50 = "rgba(227, 179, 65, 0.34)"
UP = "#3fb950"
DOWN = "#f85149"
REALISED = "#58a6ff"
FONT = "Inter, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"

COIN_COLOURS = {"btc": "#f7931a", "eth": "#9aa8ff", "sol": "#14f195", "xrp": "#5fc3e4",
                "ada": "#4f8ff7", "doge": "#d4b54a"}
_PALETTE = ("#ff7b72", "#d2a8ff", "#7ee787", "#ffa657", "#79c0ff", "#f778ba", "#a5d6ff")


def coin_colour(coin: str, index: int = 0) -> str:
    """A stable colour per coin (the known ones get their brand-like colour).

    >>> coin_colour("btc"), coin_colour("xyz", 1)
    ('#f7931a', '#d2a8ff')
    """
    return COIN_COLOURS.get(coin, _PALETTE[index % len(_PALETTE)])


def meta(evento: str, moeda: str, x: str, y: str, **extra: Any) -> dict[str, Any]:
    """A trace's feed (see the module docstring).

    >>> meta("tick", "btc", "horario", "preco")
    {'evento': 'tick', 'moeda': 'btc', 'x': 'horario', 'y': 'preco'}
    """
    return {"evento": evento, "moeda": moeda, "x": x, "y": y, **extra}


def _layout(versao: str, window_s: float, yaxis: dict[str, Any], **more: Any) -> dict[str, Any]:
    axis = dict(gridcolor=GRID, linecolor=GRID, zeroline=False, automargin=True,
                tickfont=dict(color=MUTED))
    return dict(
        template="plotly_dark",
        paper_bgcolor="rgba(0,0,0,0)",
        plot_bgcolor="rgba(0,0,0,0)",
        font=dict(family=FONT, color=TEXT, size=12),
        margin=dict(l=8, r=8, t=8, b=8),
        separators=",.",
        hovermode="x unified",
        hoverlabel=dict(bgcolor="#1c2128", bordercolor="#30363d", font=dict(color=TEXT)),
        legend=dict(orientation="h", x=0, y=1.0, yanchor="bottom", bgcolor="rgba(0,0,0,0)",
                    font=dict(size=11, color=MUTED)),
        xaxis=axis | dict(type="date", tickformat="%H:%M\n%d/%m", hoverformat="%d/%m/%Y %H:%M"),
        yaxis=axis | dict(side="right") | yaxis,
        meta={"versao": versao, "janela_ms": int(window_s * 1000)},
        **more,
    )


def waiting(figure: go.Figure, text: str) -> go.Figure:
    """Hide an empty figure's axes behind ``text``; the page removes both at the first point."""
    figure.add_annotation(text=text, xref="paper", yref="paper", x=0.5, y=0.5,
                          showarrow=False, font=dict(color=MUTED, size=13))
    figure.update_layout(xaxis_visible=False, yaxis_visible=False,
                         meta={**figure.layout.meta, "espera": True})
    return figure


def _line(name: str, colour: str, feed: dict[str, Any], hover: str, dash: str | None = None,
          width: float = 2.0, **more: Any) -> go.Scatter:
    return go.Scatter(x=[], y=[], name=name, mode="lines", meta=feed,
                      line=dict(color=colour, width=width, dash=dash),
                      hovertemplate=hover + "<extra></extra>", **more)


def _band(moeda: str, evento: str, upper: str, lower: str, name: str, hover: str,
          horizonte: str | None = None, fill: str = BAND) -> list[go.Scatter]:
    """The interval as a filled band: its upper edge, then the lower edge filled up to it."""
    edge = dict(color="rgba(227, 179, 65, 0.35)", width=0.5)
    feed = {} if horizonte is None else {"horizonte": horizonte}
    return [
        go.Scatter(x=[], y=[], name=f"{name} (sup.)", mode="lines", line=edge, showlegend=False,
                   meta=meta(evento, moeda, "alvo_em", upper, **feed),
                   hovertemplate="máx. " + hover + "<extra></extra>"),
        go.Scatter(x=[], y=[], name=name, mode="lines", line=edge, fill="tonexty",
                   fillcolor=fill, meta=meta(evento, moeda, "alvo_em", lower, **feed),
                   hovertemplate="mín. " + hover + "<extra></extra>"),
    ]


def _price_axis(tick_format: str | None) -> dict[str, Any]:
    return {} if tick_format is None else {"tickformat": tick_format}


def price_figure(coin: str, versao: str, window_s: float, money: str, decimals: int,
                 tick_format: str | None, horizon: str, level_pct: str,
                 horizonte: str | None = None) -> go.Figure:
    """Price history and the forecast for ``horizon`` ahead as a fan, drawn at its target
    time: the band at the configured level, the 50 % band (quartiles) inside it, and the
    middle of the range (the published median)."""
    value = f"{money} %{{y:,.{decimals}f}}"
    feed = {} if horizonte is None else {"horizonte": horizonte}
    traces = [
        *_band(coin, "previsao", "limite_superior", "limite_inferior",
               f"Faixa de {level_pct}", value, horizonte),
        *_band(coin, "previsao", "q75", "q25", "Faixa de 50%", value, horizonte, BAND_50),
        _line(f"Meio da faixa (+{horizon})", FORECAST,
              meta("previsao", coin, "alvo_em", "previsao", **feed),
              f"meio da faixa {value}", dash="dot"),
        _line("Preço", PRICE, meta("tick", coin, "horario", "preco"), f"preço {value}"),
    ]
    return go.Figure(traces, _layout(versao, window_s, _price_axis(tick_format)))


def change_figure(coin: str, versao: str, window_s: float, horizon: str, level_pct: str,
                  horizonte: str | None = None) -> go.Figure:
    """The realised change over the horizon (bars, green up, red down) against the predicted
    change and the interval, in % of the price when the forecast was made."""
    value = "%{y:+,.2f}%"
    feed = {} if horizonte is None else {"horizonte": horizonte}
    traces = [
        *_band(coin, "resultado", "limite_superior_pct", "limite_inferior_pct",
               f"Faixa de {level_pct}", value, horizonte),
        go.Bar(x=[], y=[], name=f"Variação real em {horizon}",
               marker=dict(color=[], line=dict(width=0)),
               meta=meta("resultado", coin, "alvo_em", "variacao_real_pct", cor=[UP, DOWN],
                         **feed),
               hovertemplate=f"real {value}<extra></extra>"),
        _line("Variação prevista", FORECAST,
              meta("resultado", coin, "alvo_em", "variacao_prevista_pct", **feed),
              f"prevista {value}", width=1.5),
    ]
    layout = _layout(versao, window_s, dict(ticksuffix="%", tickformat=",.1f"), bargap=0.05)
    return go.Figure(traces, layout)


def evolution_figure(coin: str, versao: str, window_s: float, money: str, decimals: int,
                     tick_format: str | None, level_pct: str, horizonte: str | None = None
                     ) -> go.Figure:
    """Each settled forecast against the price that came true, with its interval; the real
    prices that fell outside the interval are marked."""
    value = f"{money} %{{y:,.{decimals}f}}"
    feed = {} if horizonte is None else {"horizonte": horizonte}
    traces = [
        *_band(coin, "resultado", "limite_superior", "limite_inferior",
               f"Faixa de {level_pct}", value, horizonte),
        _line("Previsto", FORECAST, meta("resultado", coin, "alvo_em", "previsao", **feed),
              f"previsto {value}", dash="dot"),
        _line("Realizado", REALISED, meta("resultado", coin, "alvo_em", "preco_real", **feed),
              f"realizado {value}"),
        go.Scatter(x=[], y=[], name="Fora da faixa", mode="markers",
                   marker=dict(color=DOWN, size=6, symbol="x"),
                   meta=meta("resultado", coin, "alvo_em", "preco_real",
                             filtro="fora_do_intervalo", **feed),
                   hovertemplate=f"fora da faixa {value}<extra></extra>"),
    ]
    return go.Figure(traces, _layout(versao, window_s, _price_axis(tick_format)))


def comparator_figure(coins: list[str], all_coins: list[str], versao: str, window_s: float,
                      money: str) -> go.Figure:
    """Several coins on one scale: % change since the first point shown (a common start)."""
    traces = [
        go.Scatter(x=[], y=[], customdata=[], name=coin.upper(), mode="lines",
                   line=dict(color=coin_colour(coin, all_coins.index(coin)
                                               if coin in all_coins else i), width=2),
                   meta=meta("tick", coin, "horario", "preco", normalizar=True),
                   hovertemplate=(f"{coin.upper()} %{{y:+,.2f}}% · {money} "
                                  "%{customdata:,.4~r}<extra></extra>"))
        for i, coin in enumerate(coins)
    ]
    layout = _layout(versao, window_s, dict(ticksuffix="%", tickformat=",.1f", zeroline=True,
                                            zerolinecolor="rgba(139, 148, 158, 0.45)"))
    return go.Figure(traces, layout)
