"""The Dash app at ``/painel/``: layout (Portuguese, dark, responsive) and callbacks.

Two server callbacks read the history when the page opens or a choice changes (coin, window,
horizon, compared coins) and return figures with empty traces plus that history (see
:mod:`.figures` and :mod:`.snapshot`). Everything after that happens in the browser:
``assets/painel.js`` keeps one ``EventSource`` on ``/stream`` and appends the history and each
live event with ``Plotly.extendTraces``; ``assets/painel-cartoes.js`` draws the cards, the
model table, the calibration chart and the banner (clientside callbacks) from small stores the
first script updates. Prices never poll and the page never reloads; only the engine's state is
read from ``/status`` every 30 s (the stream does not carry it).

The headline is what is forecastable: the likely range at the chosen horizon (a fan of the
forecast's quantiles on the price chart), the chance of a rise and the forecast volatility
beside the realised one, each score with a plain explanation (``title`` tooltips and the page's
"Como ler estes números"); the middle of the range stays "sem mudança" while no model beats
persistence.

The layout is a function, evaluated for each page load: it carries the newest stored event id,
after which the page's stream starts (no gap between the history and the stream).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import anyio
from dash import ClientsideFunction, Dash, Input, Output, State, dcc, html
from dash.exceptions import PreventUpdate
from fastapi import FastAPI

from cryptotech.api.stream import RETRY_MS
from cryptotech.config import Settings, horizon_label
from cryptotech.dashboard import figures, snapshot

PREFIX = "/painel/"
ASSETS = Path(__file__).parent / "assets"
TITLE = "CryptoTech · Painel ao vivo"

#: Model names as people read them (unknown names are shown as they are).
MODEL_LABELS = {
    "persistence": "Persistência",
    "bayes_linear": "Linear bayesiana",
    "hoeffding_tree": "Árvore de Hoeffding",
    "arf": "Floresta adaptativa (ARF)",
    "ewma": "Faixa EWMA-Gaussiana (referência)",
    "published": "Publicado",
}
WAITING_PRICES = "Aguardando os primeiros preços…"
#: Zone cities whose Portuguese name differs from the zone key's last part.
CITY_NAMES = {"Sao_Paulo": "São Paulo", "Belem": "Belém", "Maceio": "Maceió",
              "Cuiaba": "Cuiabá", "Araguaina": "Araguaína", "Santarem": "Santarém",
              "Eirunepe": "Eirunepé", "Noronha": "Fernando de Noronha", "Bahia": "Salvador",
              "Lisbon": "Lisboa", "London": "Londres", "New_York": "Nova York"}
CURRENCY = {"usd": "US$", "brl": "R$", "eur": "€", "gbp": "£", "jpy": "¥"}
#: Dash 4's dropdown texts, in Portuguese.
DROPDOWN_LABELS: Any = {"select_all": "Selecionar todas", "deselect_all": "Limpar seleção",
                   "selected_count": "{num_selected} selecionadas", "search": "Buscar",
                   "clear_search": "Limpar busca", "clear_selection": "Limpar seleção",
                   "no_options_found": "Nenhuma moeda encontrada"}
GRAPH_CONFIG: Any = {"displayModeBar": False, "displaylogo": False, "scrollZoom": False,
                "doubleClick": "reset+autosize"}

INDEX = """<!DOCTYPE html>
<html lang="pt-BR">
<head>
{%metas%}
<title>{%title%}</title>
{%favicon%}
{%css%}
</head>
<body>
<noscript>O painel precisa de JavaScript ligado no navegador.</noscript>
{%app_entry%}
<footer>
{%config%}
{%scripts%}
{%renderer%}
</footer>
</body>
</html>"""


def aria(label: str) -> dict[str, Any]:
    """An ``aria-label`` for a Dash component (``**aria("Métricas")``)."""
    return {"aria-label": label}


def human_duration(text: str) -> str:
    """``format_duration``'s compact text, spaced for reading.

    >>> human_duration("1h"), human_duration("30m"), human_duration("1d")
    ('1 h', '30 min', '1 dia')
    """
    number, unit = text[:-1], text[-1]
    words = {"s": "s", "m": "min", "h": "h", "d": "dia" if number == "1" else "dias"}
    return f"{number} {words.get(unit, unit)}"


def zone_city(zone: str) -> str:
    """The configured zone as people name it: its city, in Portuguese where we know it.

    >>> zone_city("America/Sao_Paulo"), zone_city("America/Argentina/Buenos_Aires")
    ('São Paulo', 'Buenos Aires')
    >>> zone_city("Europe/Lisbon"), zone_city("UTC")
    ('Lisboa', 'UTC')
    """
    city = zone.rsplit("/", 1)[-1]
    return CITY_NAMES.get(city, city.replace("_", " "))


def history_params(server: FastAPI) -> set[str]:
    """The query parameters ``/previsoes/{moeda}`` takes: the export link only carries
    parameters the API knows (``ordem`` and ``horizonte`` are newer than the page)."""
    for route in server.routes:
        if getattr(route, "path", None) == "/previsoes/{moeda}":
            params = getattr(getattr(route, "dependant", None), "query_params", [])
            return {str(getattr(p, "alias", None) or getattr(p, "name", "")) for p in params}
    return set()


def currency_symbol(code: str) -> str:
    """
    >>> currency_symbol("usd"), currency_symbol("chf")
    ('US$', 'CHF')
    """
    return CURRENCY.get(code, code.upper())


def build_dash(server: FastAPI, settings: Settings) -> Dash:
    """The dashboard on ``server`` (Dash's FastAPI backend), at :data:`PREFIX`."""
    coins = list(settings.coins)
    money = currency_symbol(settings.vs_currency)
    # every configured horizon, label -> as people read it ("15m" -> "15 min"); the first is
    # the page's default
    horizons = {label: human_duration(label) for label in settings.model.horizon_labels}
    horizon_s = {horizon_label(td): td.total_seconds() for td in settings.model.horizons}
    first = settings.model.horizon_labels[0]
    horizon = horizons[first]
    level_pct = f"{settings.model.interval_level * 100:.0f}%"
    versions = itertools.count(1)

    app = Dash(
        __name__,
        server=server,  # type: ignore[arg-type]  # Dash 4.4's FastAPI backend; stubs lag
        routes_pathname_prefix=PREFIX,
        requests_pathname_prefix=PREFIX,
        assets_folder=str(ASSETS),
        title=TITLE,
        update_title="",  # the tab's title never changes
        serve_locally=True,
        compress=False,
        meta_tags=[{"name": "theme-color", "content": "#0d1117"},
                   {"name": "description",
                    "content": "Previsões de preço de criptomoedas ao vivo, com intervalo e "
                               "comparação honesta com 'o preço fica igual'."}],
    )
    app.index_string = INDEX
    _keep_unknown_paths_404(app)
    _no_websocket(app)

    def config() -> dict[str, Any]:
        return {
            "stream": "/stream",
            "csv": "/previsoes/{moeda}?exportar_csv=true",
            "retry_ms": RETRY_MS,
            "ultimo_id": snapshot.newest_event_id(getattr(server.state, "store", None)),
            "fuso": settings.timezone,
            "fuso_nome": zone_city(settings.timezone),
            "status": "/status",
            "janelas": {key: seconds for key, (_, seconds) in snapshot.WINDOWS.items()},
            # newest first, and the chosen horizon, when the API takes them
            "csv_ordem": "desc" if "ordem" in history_params(server) else None,
            "csv_horizonte": "horizonte" in history_params(server),
            # past this age of the newest price, a live source is shown as late
            "atraso_max_s": int(settings.source.poll_interval.total_seconds()
                                * settings.source.stale_after_polls),
            "horizonte": horizon,
            "horizonte_padrao": first,
            "horizontes": horizons,
            "nivel": settings.model.interval_level,
            "nivel_pct": level_pct,
            "moeda_cotacao": money,
            "modelos": MODEL_LABELS,
        }

    app.layout = lambda: layout(coins, settings, config())

    def token(kind: str) -> str:
        return f"{kind}-{next(versions)}"

    @app.callback(
        Output("grafico-preco", "figure"),
        Output("grafico-variacao", "figure"),
        Output("grafico-evolucao", "figure"),
        Output("painel-base", "data"),
        Output("painel-metricas", "data"),
        Output("painel-atual", "data"),
        Output("painel-status", "data"),
        Output("titulo-preco", "children"),
        Output("titulo-variacao", "children"),
        Input("moeda", "value"),
        Input("janela", "value"),
        Input("horizonte", "value"),
        Input("painel-recarga", "data"),
    )
    async def load_coin(coin: str, window: str, chosen: str | None, _reload: int):
        if coin not in coins:
            raise PreventUpdate
        label = chosen if chosen in horizons else first
        ahead = horizons[label]
        state = server.state
        window_s = snapshot.window_seconds(window)
        metrics, last_t = snapshot.coin_state(state, coin, label)
        history = await anyio.to_thread.run_sync(
            snapshot.read_coin_history, state.store, state.presenter, coin, last_t, window_s,
            label, horizon_s[label])
        ticks, forecasts = history["tick"], history["previsao"]
        last_price = ticks[-1]["preco"] if ticks else None
        decimals, axis = snapshot.price_decimals(last_price), snapshot.axis_format(last_price)
        version = token(coin)
        price = figures.price_figure(coin, version, window_s, money, decimals, axis, ahead,
                                     level_pct, label)
        change = figures.change_figure(coin, version, window_s, ahead, level_pct, label)
        evolution = figures.evolution_figure(coin, version, window_s, money, decimals, axis,
                                             level_pct, label)
        if not ticks:
            figures.waiting(price, WAITING_PRICES)
        if not snapshot.settled(history):
            for figure in (change, evolution):
                figures.waiting(figure, f"Aguardando os primeiros resultados: cada previsão é "
                                        f"conferida {ahead} depois de feita.")
        return (
            price,
            change,
            evolution,
            {"versao": version, "moeda": coin, "casas": decimals, "historico": history,
             "horizonte": label, "horizonte_rotulo": ahead,
             "graficos": ["grafico-preco", "grafico-variacao", "grafico-evolucao"]},
            metrics,
            {"preco": ticks[-1] if ticks else None,
             "previsao": forecasts[-1] if forecasts else None},
            snapshot.source_state(state),
            f"Preço e faixa provável em {ahead}",
            f"Variação em {ahead} (%)",
        )

    @app.callback(
        Output("grafico-comparador", "figure"),
        Output("painel-base-comparador", "data"),
        Input("comparar", "value"),
        Input("janela", "value"),
        Input("painel-recarga", "data"),
    )
    async def load_comparison(chosen: list[str] | None, window: str, _reload: int):
        state = server.state
        window_s = snapshot.window_seconds(window)
        picked = [c for c in coins if c in (chosen or [])]
        last_t = {c: state.engine.learners[c].last_t for c in picked}
        history = await anyio.to_thread.run_sync(
            snapshot.read_comparison, state.store, state.presenter, last_t, window_s)
        version = token("comparador")
        figure = figures.comparator_figure(picked, coins, version, window_s, money)
        if not history["tick"]:
            figures.waiting(figure, WAITING_PRICES if picked else "Escolha ao menos uma moeda.")
        return (figure,
                {"versao": version, "moeda": None, "historico": history,
                 "graficos": ["grafico-comparador"]})

    clientside = {
        # no outputs: these two hand data to the page's script
        "iniciar": ([], [Input("painel-config", "data")], []),
        "base": ([], [Input("painel-base", "data"), Input("painel-base-comparador", "data")],
                 [State("painel-config", "data")]),
        "calibracao": ([Output("grafico-calibracao", "figure")],
                       [Input("painel-metricas", "data")], [State("painel-config", "data")]),
        "cartoes": ([Output("cartoes", "children"), Output("tabela-modelos", "children")],
                    [Input("painel-metricas", "data"), Input("painel-atual", "data")],
                    [State("painel-config", "data"), State("painel-base", "data")]),
        "faixa": ([Output("faixa", "children")],
                  [Input("painel-status", "data"), Input("painel-vivo", "data")],
                  [State("painel-config", "data")]),
        "csv": ([Output("exportar", "href")],
                [Input("moeda", "value"), Input("janela", "value"), Input("painel-atual", "data"),
                 Input("horizonte", "value")],
                [State("painel-config", "data")]),
    }
    for name, (outputs, inputs, states) in clientside.items():
        app.clientside_callback(ClientsideFunction("painel", name), *outputs, *inputs, *states)
    return app


def _keep_unknown_paths_404(app: Dash) -> None:
    """Stop Dash from answering every unknown path of the whole server with its page.

    Dash 4.4's FastAPI backend adds a ``{path:path}`` catch-all route when the server starts
    (for multi-page apps), which would turn the API's 404s (``/naoexiste``, a typo in
    ``/previsoes``) into 200s with the dashboard's HTML. This page has one URL, ``/painel/``,
    so the catch-all is not installed.
    """
    app.backend._setup_catchall = lambda: None  # type: ignore[attr-defined]


def _no_websocket(app: Dash) -> None:
    """Do not offer Dash's WebSocket transport to the page.

    Dash 4.4's renderer opens a WebSocket (through a SharedWorker) whenever the backend
    advertises one in the page's config, even when no callback uses it. This page's live data
    comes over SSE and its callbacks are plain HTTP, so the page is told there is none: one
    connection less per viewer, and no failed handshake on servers run without WebSockets.
    """
    app.backend.websocket_capability = False


def _panel(title: str, graph_id: str, note: str, *extra: Any, title_id: str | None = None
           ) -> html.Section:
    return html.Section(className="cartao-grafico", children=[
        html.Header(className="cartao-grafico-topo", children=[
            html.H2(title, id=title_id) if title_id else html.H2(title),
            html.P(note, className="nota"),
            *extra,
        ]),
        html.Div(className="grafico", children=dcc.Graph(
            id=graph_id, config=GRAPH_CONFIG, responsive=True, style={"height": "100%"},
            figure={"data": [], "layout": {"paper_bgcolor": "rgba(0,0,0,0)",
                                           "plot_bgcolor": "rgba(0,0,0,0)",
                                           "xaxis": {"visible": False},
                                           "yaxis": {"visible": False}}})),
    ])


def glossary(config: dict[str, Any]) -> html.Section:
    """What each number means, in plain words and with its unit (static: the ``metricas``
    events do not carry it)."""
    money, level, horizon = config["moeda_cotacao"], config["nivel_pct"], config["horizonte"]
    terms = [
        ("Persistência (“o preço fica igual”)",
         f"A previsão mais simples: daqui a {horizon} o preço será o de agora. Em {horizon} o "
         "preço de uma criptomoeda é quase um passeio aleatório, e bater essa previsão é "
         "difícil; por isso toda métrica aparece ao lado da dela."),
        ("MAE (erro absoluto médio)",
         f"Em média, quanto a previsão errou o preço real, em {money}. Menor é melhor."),
        ("Skill (ganho sobre a persistência)",
         "1 − MAE da previsão ÷ MAE da persistência, em %. Acima de 0%: errou menos que "
         "prever “o preço fica igual”; abaixo de 0%: errou mais. Um modelo só é publicado "
         "quando erra menos que a persistência; senão, publica-se a própria persistência."),
        ("Cobertura do intervalo",
         f"Em quantos % dos casos o preço real caiu dentro do intervalo de {level} previsto. "
         f"O certo é ficar perto de {level}: bem abaixo, o intervalo é estreito demais; bem "
         "acima, largo demais."),
        ("bps (pontos-base)",
         "Unidade da largura do intervalo: 1 bp = 0,01% do preço, 100 bps = 1%. Com a mesma "
         "cobertura, um intervalo mais estreito informa mais."),
        ("Acerto de direção",
         "Em quantos % dos casos a previsão acertou se o preço subiria ou cairia; 50% é o "
         "acaso (cara ou coroa)."),
        ("Faixa provável",
         f"Onde o preço deve estar no horizonte escolhido: em {level} dos casos, entre os dois "
         "valores; a faixa de 50% (mais escura no gráfico) é o miolo. O meio da faixa é a "
         "mediana prevista: “sem mudança” (o preço de agora) enquanto nenhum modelo erra "
         "menos que a persistência."),
        ("Chance de subir",
         "A probabilidade de o preço estar acima do de agora no fim do horizonte. 50% quer "
         "dizer “tanto faz”. O Brier mede o erro dessa chance (0 = perfeito); o skill de "
         "Brier compara com dizer sempre 50%: acima de 0%, a chance informa algo."),
        ("Volatilidade prevista",
         "Quanto o preço deve oscilar até o fim do horizonte: um desvio-padrão do retorno, em "
         "% do preço (±). Ao lado, a realizada: a oscilação medida nas previsões já "
         "conferidas da janela."),
        ("Pontuação do intervalo (interval score)",
         f"Nota da faixa de {level}: a largura dela mais uma multa quando o preço real cai "
         "fora, em bps do preço; menor é melhor. O skill compara com a faixa EWMA-Gaussiana "
         "(a volatilidade recente que decai aos poucos, em volta de “o preço fica igual”): "
         "acima de 0%, a nossa faixa é melhor que essa referência."),
        ("Perda pinball",
         "Nota de todos os quantis de uma vez (uma estimativa do CRPS), em bps do preço; "
         "menor é melhor. O skill compara com a mesma referência EWMA-Gaussiana."),
        ("Calibração",
         "Um quantil de 25% deve ficar acima do preço real em 25% dos casos, um de 95% em 95%, "
         "e assim por diante. No gráfico de calibração, pontos sobre a diagonal são uma "
         "previsão calibrada."),
        ("R² (coeficiente de determinação)",
         "Quanto da variação do preço a previsão explica, de 0 a 1 (na API, em /metricas). "
         "Com preços, fica perto de 1 até para a persistência: não serve para comparar "
         "modelos; use o skill."),
    ]
    return html.Section(className="glossario", id="como-ler", children=[
        html.H2("Como ler estes números"),
        html.Dl([part for term, text in terms for part in (html.Dt(term), html.Dd(text))]),
    ])


def layout(coins: list[str], settings: Settings, config: dict[str, Any]) -> html.Div:
    """The page (see the module docstring); ``config`` goes to the browser as is."""
    level, horizon = config["nivel_pct"], config["horizonte"]
    horizons = config["horizontes"]
    spoken = list(horizons.values())
    ahead = spoken[0] if len(spoken) == 1 else ", ".join(spoken[:-1]) + " e " + spoken[-1]
    options = [{"label": f"{c.upper()} · {settings.coins[c]}", "value": c} for c in coins]
    stores = [dcc.Store(id=i) for i in ("painel-base", "painel-base-comparador",
                                        "painel-metricas", "painel-atual", "painel-status",
                                        "painel-vivo")]
    return html.Div(className="painel", children=[
        dcc.Store(id="painel-config", data=config),
        dcc.Store(id="painel-recarga", data=0),
        *stores,
        html.Header(className="topo", children=[
            html.Div(className="marca", children=[
                html.H1(["Crypto", html.Span("Tech")]),
                html.P(f"Previsões de criptomoedas ao vivo · "
                       f"{'horizonte' if len(spoken) == 1 else 'horizontes'} de {ahead}",
                       className="subtitulo"),
            ]),
            html.Div(id="faixa", className="faixa"),
        ]),
        html.Section(className="controles", children=[
            html.Div(className="controle", children=[
                html.Label("Moeda", htmlFor="moeda"),
                dcc.Dropdown(id="moeda", options=options, value=coins[0], clearable=False,
                             searchable=False, labels=DROPDOWN_LABELS,
                             className="seletor-moeda"),
            ]),
            html.Div(className="controle", children=[
                html.Span("Janela", className="rotulo"),
                dcc.RadioItems(id="janela", value=snapshot.DEFAULT_WINDOW, inline=True,
                               className="janela",
                               options=[{"label": label, "value": key}
                                        for key, (label, _) in snapshot.WINDOWS.items()]),
            ]),
            html.Div(className="controle" + ("" if len(horizons) > 1 else " oculto"), children=[
                html.Span("Horizonte", className="rotulo",
                          title="Para quando é a previsão: daqui a quanto tempo"),
                dcc.RadioItems(id="horizonte", value=config["horizonte_padrao"], inline=True,
                               className="janela",
                               options=[{"label": spoken_h, "value": key}
                                        for key, spoken_h in horizons.items()]),
            ]),
            html.A("Exportar CSV", id="exportar", className="botao", download="",
                   href=config["csv"].replace("{moeda}", coins[0]),
                   title="Baixar as previsões da moeda escolhida feitas na janela escolhida, "
                         "com o resultado de cada uma (CSV)"),
        ]),
        html.Section(id="cartoes", className="cartoes", **aria("Métricas")),
        html.Div(className="graficos", children=[
            _panel(f"Preço e faixa provável em {horizon}", "grafico-preco",
                   f"O leque mostra onde o preço deve estar, na hora a que se refere: a faixa "
                   f"de {level} (clara) e a de 50% (escura), em volta do meio da faixa.",
                   title_id="titulo-preco"),
            _panel(f"Variação em {horizon} (%)", "grafico-variacao",
                   f"Variação real de cada previsão conferida, contra a prevista e a faixa "
                   f"de {level}.", title_id="titulo-variacao"),
            _panel("Evolução das previsões: previsto × realizado", "grafico-evolucao",
                   "Cada previsão conferida contra o preço que de fato ocorreu."),
            _panel("Comparador de moedas", "grafico-comparador",
                   "Variação % desde o início da janela: todas partem de 0%.",
                   dcc.Dropdown(id="comparar", options=options, value=coins[:4], multi=True,
                                clearable=False, searchable=False, labels=DROPDOWN_LABELS,
                                placeholder="Escolha as moedas", className="seletor-comparar")),
            _panel("Calibração: cada quantil na frequência certa?", "grafico-calibracao",
                   "Para cada nível (5% … 95%), em quantos % dos casos o preço real ficou "
                   "abaixo do quantil previsto. Calibrado: sobre a diagonal."),
            html.Section(className="modelos", children=[
                html.H2("Modelos lado a lado"),
                html.P("Últimos resultados conferidos (janela móvel), sempre ao lado da "
                       "persistência, que prevê que “o preço fica igual”. Passe o mouse sobre "
                       "os títulos das colunas para ver o que cada uma quer dizer.",
                       className="nota"),
                html.Div(id="tabela-modelos", className="tabela-rolagem"),
                html.P("Em telas estreitas, arraste a tabela para o lado para ver as demais "
                       "colunas →", className="nota dica-rolagem"),
            ]),
            glossary(config),
        ]),
        html.Section(id="alertas", className="alertas"),  # filled by assets/alertas.js
        html.Footer(className="rodape", children=[
            html.Span(f"Horários de {config['fuso_nome']}. "),
            html.Span("Os gráficos se atualizam sozinhos a cada novo preço, sem recarregar. "),
            html.A("API", href="/docs"), " · ", html.A("Status", href="/status"),
            " · ", html.A("Início", href="/"),
        ]),
    ])
