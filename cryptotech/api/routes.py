"""The REST routes of the seed, in Portuguese: ``/``, ``/status``, ``/saude``, ``/moedas``,
``/prever/{moeda}``, ``/previsoes/{moeda}`` (JSON pages or a streamed CSV) and
``/metricas/{moeda}``.

Read-only: every route answers GET and HEAD, nothing else. ``{moeda}`` is an enum built
from the configured coins (a dropdown in ``/docs``); an unknown coin is a 404. Routes that
read the store are plain functions, which FastAPI runs in its thread pool (``/prever`` reads
it in a worker thread, and only when its per-coin cache was invalidated by a new forecast or
outcome: :mod:`.cache`), so a query never blocks the event loop that serves the SSE streams.
"""

import csv
import io
import time
from collections.abc import Callable, Iterator
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeAlias

import anyio
from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from cryptotech.api import schemas as s
from cryptotech.api.alerts import alerts_status
from cryptotech.api.errors import invalid, reject_repeated_query
from cryptotech.api.home import home_page
from cryptotech.api.present import Presenter, source_state_pt
from cryptotech.api.timefmt import INSTANT_PATTERN, parse_instant
from cryptotech.config import Settings
from cryptotech.store import QUANTILE_COLUMNS, Store

MAX_LIMIT = 10_000
DEFAULT_LIMIT = 1000
MAX_ID = 2**62
CSV_FLUSH_ROWS = 1000
CSV_COLUMNS = ["id", "moeda", "feita_em", "alvo_em", "preco_atual", "previsao",
               "limite_inferior", "limite_superior", "variacao_prevista_pct", "modelo",
               "situacao", "preco_real", "erro", "erro_pct", "dentro_do_intervalo",
               "horizonte", *QUANTILE_COLUMNS, "prob_subir", "volatilidade_prevista"]


class _Coin(str, Enum):
    """A configured coin; any case is accepted and normalised to lowercase (``BTC`` = ``btc``),
    the one rule for ``/prever``, ``/previsoes``, ``/metricas`` and ``/stream?moedas=``."""

    @classmethod
    def _missing_(cls, value: object) -> Enum | None:
        if isinstance(value, str):
            return next((m for m in cls if m.value == value.lower()), None)
        return None


def coin_enum(coins: list[str]) -> type[Enum]:
    """The ``{moeda}`` path type: one member per configured coin (a dropdown in /docs).

    >>> Moeda = coin_enum(["btc", "eth"])
    >>> [m.value for m in Moeda], Moeda("ETH").value
    (['btc', 'eth'], 'eth')
    """
    return _Coin("Moeda", {coin: coin for coin in coins})  # type: ignore[call-overload]


def _errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    described = {404: "Moeda não configurada", 422: "Parâmetro inválido",
                 503: "Banco de dados indisponível"}
    return {code: {"model": s.Erro, "description": described[code]} for code in codes}


def _csv_value(value: Any) -> Any:
    """A CSV cell: empty for null, ``true``/``false`` as in the JSON (pandas reads them as
    booleans), numbers as the JSON gives them."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return value.value
    return value


def csv_chunks(store: Store, presenter: Presenter, coin: str, start: float | None,
               end: float | None, after_id: int, limit: int | None,
               horizon: str | None = None, **order: Any) -> Iterator[str]:
    """The CSV export, in chunks of :data:`CSV_FLUSH_ROWS` rows (never the whole range);
    ``order`` is passed to :meth:`Store.predictions` (``newest_first``, ``before_id``)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    rows = 0
    for row in store.predictions(coin, start, end, after_id, limit, horizon, **order):
        p = presenter.prediction(row).model_dump()
        p["feita_em"] = p["feita_em"].isoformat()
        p["alvo_em"] = p["alvo_em"].isoformat()
        # a forecast without quantiles (rows from before they were stored) has
        # ``quantis: null``: its quantile cells are empty, like any other null
        quantiles = p.pop("quantis") or {}
        p.update({c: quantiles.get(c) for c in QUANTILE_COLUMNS})
        writer.writerow([_csv_value(p.get(c)) for c in CSV_COLUMNS])
        rows += 1
        if rows % CSV_FLUSH_ROWS == 0:
            yield buf.getvalue()
            buf.seek(0)
            buf.truncate()
    yield buf.getvalue()


def horizon_enum(labels: list[str]) -> type[Enum]:
    """The ``horizonte`` query type: one member per configured horizon (a dropdown in /docs).

    >>> [m.value for m in horizon_enum(["15m", "1h"])]
    ['15m', '1h']
    """
    return Enum("Horizonte", {label: label for label in labels}, type=str)  # type: ignore[return-value]


def _file_time(epoch: float | None, presenter: Presenter) -> str:
    value = presenter.time(epoch)
    return "" if value is None else value.strftime("%Y%m%dT%H%M")


def build_router(settings: Settings, presenter: Presenter) -> APIRouter:
    """The REST routes for one app's settings."""
    coins = list(settings.coins)
    Moeda = coin_enum(coins)
    zone = settings.zone
    router = APIRouter(dependencies=[Depends(reject_repeated_query)])
    horizons = settings.model.horizon_labels
    Horizonte = horizon_enum(horizons)
    horizon_doc = (f"Horizonte da previsão: {', '.join(horizons)} (padrão {horizons[0]}, o "
                   "primeiro configurado)")
    if TYPE_CHECKING:  # types built at run time: the type checker sees their base
        coin_path: TypeAlias = _Coin
        horizon_query: TypeAlias = Enum | None
    else:
        coin_path = Annotated[Moeda, Path(
            description="Símbolo da moeda (veja /moedas); maiúsculas ou minúsculas")]
        horizon_query = Annotated[Horizonte | None, Query(description=horizon_doc)]

    def get(path: str, **kwargs: Any) -> Callable:
        """GET (documented) and HEAD (same handler, not in the schema)."""

        def register(fn: Callable) -> Callable:
            kwargs.setdefault("response_description", "Sucesso")
            router.add_api_route(path, fn, methods=["GET"], **kwargs)
            head = {k: v for k, v in kwargs.items() if k not in (
                "summary", "description", "responses", "tags", "response_description")}
            router.add_api_route(path, fn, methods=["HEAD"], include_in_schema=False, **head)
            return fn

        return register

    @get("/", response_class=HTMLResponse, summary="Página inicial", tags=["serviço"],
         responses={200: {"description": "Página HTML com links"}})
    async def inicio() -> HTMLResponse:
        return HTMLResponse(home_page(coins, settings))

    @get("/status", response_model=s.Status, summary="Pulsação do serviço", tags=["serviço"],
         description="Fonte de preços, último preço por moeda, entradas recusadas, créditos "
                     "usados, assinantes do /stream, modelo em uso por moeda e versão.",
         responses=_errors(503))
    def status(request: Request) -> s.Status:
        state = request.app.state
        counts = state.store.counts()
        last_id = max(state.hub.last_id, state.store.event_id_range()[1])
        body = presenter.status(state.engine, counts, last_id, state.hub.max_subscribers)
        body.alertas = alerts_status(state.engine.alerts, presenter)  # cryptotech.alerts
        return body

    @get("/saude", response_model=s.Saude, summary="O motor está aprendendo?", tags=["serviço"],
         description="200 enquanto o motor aprende: recuperado do banco, todas as tarefas ok e "
                     "a fonte entregando preços. 503 caso contrário, com o motivo (fonte "
                     "inacessível ou sem preços novos, tarefa reiniciando ou com falhas "
                     "seguidas, motor encerrando). Não lê o banco: serve para monitoramento.",
         responses={503: {"model": s.Saude, "description": "O motor não está aprendendo"}})
    async def saude(request: Request) -> JSONResponse:
        engine = request.app.state.engine
        learning, why = engine.health()
        body = s.Saude(aprendendo=learning, detalhe=why, ticks_processados=engine.ticks_processed)
        return JSONResponse(body.model_dump(mode="json"), status_code=200 if learning else 503,
                            headers={"Cache-Control": "no-store"})

    @get("/moedas", response_model=s.Moedas, summary="Moedas configuradas", tags=["serviço"])
    async def moedas() -> s.Moedas:
        return s.Moedas(moedas=coins,
                        detalhes=[s.MoedaInfo(simbolo=c, id_coingecko=settings.coins[c])
                                  for c in coins],
                        moeda_cotacao=settings.vs_currency)

    @get("/prever/{moeda}", response_model=s.PrevisaoAtual, tags=["previsões"],
         summary="Previsão atual para daqui a um horizonte",
         description="A previsão mais recente da moeda para agora + horizonte (`horizonte`, "
                     f"padrão {horizons[0]}): preço atual, previsão, horários, a distribuição "
                     "prevista (quantis de 5% a 95%, a faixa no nível configurado, a chance de "
                     "subir, a volatilidade prevista e a chance de movimentos maiores que os "
                     "limiares configurados) e o contexto honesto (skill contra a persistência, "
                     "cobertura da faixa e quantos resultados já foram conferidos). O meio da "
                     "faixa é 'sem mudança' enquanto nenhum modelo supera a persistência. 503 "
                     "enquanto a moeda aquece, com o motivo e quando uma previsão é esperada.",
         responses={**_errors(404, 422),
                    503: {"model": s.Indisponivel | s.Erro,
                          "description": "Ainda sem previsão (aquecendo: Indisponivel) ou "
                                         "banco indisponível (Erro)",
                          "headers": {"Retry-After": {"schema": {"type": "integer"},
                                                      "description": "Segundos"}}}})
    async def prever(moeda: coin_path, request: Request,
                     horizonte: horizon_query = None) -> Any:
        state = request.app.state
        coin = moeda.value
        horizon = horizonte.value if horizonte is not None else horizons[0]
        cache = state.forecasts
        body = cache.get(coin, horizon)
        if body is None:
            version = cache.version(coin)
            row = await anyio.to_thread.run_sync(state.store.latest_prediction, coin, horizon)
            learner = state.engine.learners[coin]
            if row is None:
                return _warming_up(coin, state.engine, learner)
            metrics = learner.horizon_metrics(horizon)
            last = learner.horizon(horizon).last_prediction
            if last is not None and last.made_at.timestamp() == row["made_at"]:
                row = {**row, "p_move": last.p_move}  # the forecast's own (not stored)
            body = presenter.current(row, metrics).model_dump_json().encode()
            cache.put(coin, version, body, horizon)
        return Response(body, media_type="application/json")

    def _warming_up(coin: str, engine: Any, learner: Any) -> JSONResponse:
        poll = settings.source.poll_interval.total_seconds()
        src = engine.source.status if engine.source is not None else None
        next_poll = getattr(src, "next_poll_at", None)
        now = time.time()
        expected = next_poll.timestamp() if next_poll is not None else now + poll
        wait = max(1, int(round(expected - now)))
        seen = learner.ticks_seen
        no_data = engine.no_data_reason(coin)
        if no_data is not None and seen == 0:  # the source does not have this coin
            body = s.Indisponivel(detalhe=f"{coin}: {no_data}", motivo="sem_dados_na_fonte",
                                  precos_recebidos=0, previsao_esperada_em=None,
                                  tentar_novamente_em_segundos=max(wait, 3600))
            return JSONResponse(body.model_dump(mode="json"), status_code=503,
                                headers={"Retry-After": str(body.tentar_novamente_em_segundos)})
        motivo: Literal["sem_dados", "aquecendo"]
        if seen == 0:
            motivo = "sem_dados"
            state = ""
            if src is not None:
                state = f"; fonte: {source_state_pt(src.state)}"
                if src.message and src.message != src.state:
                    state += f" ({src.message})"
            detail = f"{coin}: nenhum preço recebido ainda{state}"
        else:
            motivo = "aquecendo"
            detail = (f"{coin}: aquecendo; {seen} preço(s) recebido(s). A primeira previsão sai "
                      "quando houver dois preços diferentes para estimar a volatilidade")
        body = s.Indisponivel(detalhe=detail, motivo=motivo, precos_recebidos=seen,
                              previsao_esperada_em=presenter.time(now + wait),
                              tentar_novamente_em_segundos=wait)
        return JSONResponse(body.model_dump(mode="json"), status_code=503,
                            headers={"Retry-After": str(wait)})

    instant = dict(pattern=INSTANT_PATTERN, max_length=40, examples=["2025-01-31T14:30"])

    @get("/previsoes/{moeda}", response_model=s.PaginaPrevisoes, tags=["previsões"],
         summary="Histórico de previsões (filtros, páginas e CSV)",
         description="Previsões com o resultado quando já conhecido, da mais antiga para a mais "
                     "nova (`ordem=desc`: da mais nova para a mais antiga). `inicio`/`fim` "
                     "filtram pelo horário em que a previsão foi feita: AAAA-MM-DDTHH:MM, com "
                     f"ou sem fuso (sem fuso vale {settings.timezone}). Páginas de até "
                     "`limite` itens; siga `proxima_pagina` (ou passe `apos_id`; com "
                     "`ordem=desc`, `antes_id`). Com `exportar_csv=true` o histórico inteiro do "
                     "filtro vem como arquivo CSV, enviado em partes, na mesma ordem; no CSV, "
                     "vazio é null e os booleanos são true/false, como no JSON. Parâmetros "
                     "desconhecidos são ignorados.",
         responses={**_errors(404, 422, 503),
                    200: {"description": "Página JSON, ou CSV com exportar_csv=true",
                          "content": {"text/csv": {"schema": {"type": "string"}}}}})
    def previsoes(
        moeda: coin_path,
        request: Request,
        inicio: Annotated[str | None, Query(
            description="Desde (inclusive), pelo horário da previsão", **instant)] = None,
        fim: Annotated[str | None, Query(
            description="Até (inclusive), pelo horário da previsão", **instant)] = None,
        limite: Annotated[int | None, Query(
            ge=1, le=MAX_LIMIT, description=f"Itens por página (padrão {DEFAULT_LIMIT}; no "
            "CSV, sem limite se omitido)")] = None,
        apos_id: Annotated[int, Query(
            ge=0, le=MAX_ID, description="Só previsões com id maior (cursor da página)")] = 0,
        exportar_csv: Annotated[bool, Query(
            description="true: baixar como CSV em vez de JSON")] = False,
        ordem: Annotated[s.Ordem, Query(
            description="asc: da mais antiga para a mais nova (padrão); desc: da mais nova "
                        "para a mais antiga")] = "asc",
        antes_id: Annotated[int | None, Query(
            ge=1, le=MAX_ID, description="Só previsões com id menor (cursor da página com "
                                         "ordem=desc)")] = None,
        horizonte: horizon_query = None,
    ) -> Any:
        state = request.app.state
        coin = moeda.value
        start = _instant("inicio", inicio)
        end = _instant("fim", fim)
        if start is not None and end is not None and start > end:
            raise invalid("query", "fim", "deve ser igual ou posterior a inicio", fim)
        horizon = horizonte.value if horizonte is not None else horizons[0]
        order = {"newest_first": ordem == "desc", "before_id": antes_id}
        if exportar_csv:
            name = f"previsoes_{coin}"
            if start is not None or end is not None:
                name += (f"_{_file_time(start, presenter) or 'inicio'}"
                         f"_{_file_time(end, presenter) or 'fim'}")
            return StreamingResponse(
                csv_chunks(state.store, presenter, coin, start, end, apos_id, limite, horizon,
                           **order),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="{name}.csv"'})
        limit = limite or DEFAULT_LIMIT
        items = [presenter.prediction(row) for row in state.store.predictions(
            coin, start, end, apos_id, limit, horizon, **order)]
        next_id = items[-1].id if len(items) == limit else None
        next_page = None
        if next_id is not None:
            cursor = {"antes_id": next_id} if ordem == "desc" else {"apos_id": next_id}
            url = request.url.include_query_params(**cursor, limite=limit)
            path = url.path.rsplit("/", 1)[0] + "/" + coin  # the coin as normalised
            next_page = f"{path}?{url.query}"
        return s.PaginaPrevisoes(
            moeda=coin, inicio=presenter.time(start), fim=presenter.time(end),
            fuso_horario=settings.timezone, horizonte=horizon, ordem=ordem, limite=limit,
            quantidade=len(items),
            itens=items, proximo_apos_id=next_id if ordem == "asc" else None,
            proximo_antes_id=next_id if ordem == "desc" else None, proxima_pagina=next_page)

    def _instant(name: str, text: str | None) -> float | None:
        if text is None:
            return None
        try:
            return parse_instant(text, zone)
        except ValueError as exc:
            raise invalid("query", name, str(exc), text) from None

    @get("/metricas/{moeda}", response_model=s.MetricasMoeda, tags=["previsões"],
         summary="Métricas da previsão publicada, da persistência e de cada candidato",
         responses=_errors(404, 422))
    async def metricas(moeda: coin_path, request: Request,
                       horizonte: horizon_query = None) -> s.MetricasMoeda:
        learner = request.app.state.engine.learners[moeda.value]
        horizon = horizonte.value if horizonte is not None else horizons[0]
        by_horizon = {label: {"model_in_use": h.model_in_use, "metrics": h.metrics()}
                      for label, h in learner.horizons.items()}
        chosen = by_horizon[horizon]
        return presenter.metrics(moeda.value, chosen["model_in_use"], chosen["metrics"],
                                 horizon, by_horizon)

    return router

