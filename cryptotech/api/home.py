"""The friendly home page (``GET /``): what CryptoTech is and where everything is, in Portuguese."""

from __future__ import annotations

from html import escape

from cryptotech.config import Settings

_STYLE = """
body{background:#0f1116;color:#e6e6e6;font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;
max-width:52rem;margin:2rem auto;padding:0 1rem;line-height:1.5}
a{color:#6cb6ff}h1{margin-bottom:.2rem}small,.muted{color:#9aa4b2}
code{background:#1b1f27;padding:.1rem .3rem;border-radius:4px}
table{border-collapse:collapse;width:100%}
td,th{border-bottom:1px solid #2a2f3a;padding:.35rem;text-align:left}
"""


def _city(zone: str) -> str:
    """The city of a zone name, for people.

    >>> _city("America/Sao_Paulo"), _city("UTC")
    ('Sao Paulo', 'UTC')
    """
    return zone.rsplit("/", 1)[-1].replace("_", " ")


def home_page(coins: list[str], settings: Settings) -> str:
    """The HTML of ``/``: links to the dashboard, the docs and every endpoint per coin.

    >>> from cryptotech.config import Settings
    >>> "/prever/btc" in home_page(["btc"], Settings(coins={"btc": "bitcoin"}))
    True
    """
    labels = settings.model.horizon_labels
    horizon = escape(labels[0] if len(labels) == 1
                     else ", ".join(labels[:-1]) + " e " + labels[-1])
    level = f"{settings.model.interval_level * 100:.0f}"
    rows = "\n".join(
        f"<tr><td><b>{escape(c)}</b> <small>{escape(settings.coins[c])}</small></td>"
        f'<td><a href="/prever/{escape(c)}">previsão</a></td>'
        f'<td><a href="/previsoes/{escape(c)}?ordem=desc&amp;limite=100">histórico recente</a> · '
        f'<a href="/previsoes/{escape(c)}?exportar_csv=true">CSV</a></td>'
        f'<td><a href="/metricas/{escape(c)}">métricas</a></td></tr>'
        for c in coins
    )
    first = escape(coins[0])
    return f"""<!doctype html>
<html lang="pt-BR"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>CryptoTech</title><style>{_STYLE}</style></head>
<body>
<h1>CryptoTech</h1>
<p class="muted">Previsões de preço de criptomoedas que aprendem a cada novo preço.</p>
<p>Para cada moeda, modelos online preveem o preço daqui a <b>{horizon}</b>: uma faixa
provável de {level}%, a chance de subir e a volatilidade prevista, e são comparados o tempo
todo com a persistência (“o preço fica igual”). Horários
no fuso de {escape(_city(settings.timezone))} (<code>{escape(settings.timezone)}</code>).</p>
<ul>
<li><a href="/painel/">Painel</a>: gráficos ao vivo</li>
<li><a href="/docs">Documentação interativa (Swagger)</a> · <a href="/redoc">ReDoc</a></li>
<li><a href="/status">Status</a> · <a href="/moedas">Moedas</a></li>
<li><a href="/stream">Eventos ao vivo (SSE)</a>: <code>/stream?moedas={first}</code></li>
</ul>
<table><thead><tr><th>Moeda</th><th>Agora</th><th>Histórico</th><th>Qualidade</th></tr></thead>
<tbody>
{rows}
</tbody></table>
<p><small>Somente leitura. Erros em JSON, com <code>detalhe</code> em português.</small></p>
</body></html>
"""
