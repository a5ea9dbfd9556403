"""``GET /alertas`` (history, JSON or CSV) and ``/alertas/regras`` (rules; writes need a token).

Reading is open, like the rest of the API. Writing rules (``POST /alertas/regras``, ``PATCH``
and ``DELETE /alertas/regras/{id}``) is enabled only when the operator sets
``CRYPTOTECH_ALERTAS_TOKEN`` in the environment; the caller then sends
``Authorization: Bearer <token>``. The token is compared in constant time
(:func:`hmac.compare_digest`), and is never logged, echoed or stored. Without the variable the
write methods answer 403 and the API stays read-only. Rules from ``config.toml`` are listed
but cannot be changed here (403).
"""


import csv
import hmac
import io
import os
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import StreamingResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.exceptions import HTTPException

from cryptotech.alerts.rules import ALL_COINS, Regra, RegraAtiva
from cryptotech.alerts.schemas import (
    Alerta,
    AlertasStatus,
    ListaRegras,
    PaginaAlertas,
    Pausa,
    RegraInfo,
    present_alert,
)
from cryptotech.alerts.service import dump_rule
from cryptotech.api.errors import error_response, invalid, reject_repeated_query
from cryptotech.api.present import Presenter
from cryptotech.api.schemas import Erro
from cryptotech.api.timefmt import INSTANT_PATTERN, parse_instant
from cryptotech.config import Settings

__all__ = ["Alerta", "alerts_status", "build_router"]

TOKEN_ENV = "CRYPTOTECH_ALERTAS_TOKEN"
MAX_LIMIT = 10_000
DEFAULT_LIMIT = 100
CSV_COLUMNS = ["id", "moeda", "horario", "regra_id", "regra", "tipo", "mensagem", "preco",
               "valor", "limite", "previsao", "limite_inferior", "limite_superior"]
RULE_ID = r"^(config|api):\d{1,12}$"

RulePath = Annotated[str, Path(pattern=RULE_ID, max_length=20, examples=["api:1"],
                               description="Id da regra (veja GET /alertas/regras)")]
_bearer = HTTPBearer(auto_error=False, description=f"O valor de {TOKEN_ENV}")


def alerts_status(alerts: Any, presenter: Presenter) -> AlertasStatus:
    """The ``alertas`` block of ``/status``."""
    return AlertasStatus(**alerts.status(presenter.time))


def _info(rule: RegraAtiva) -> RegraInfo:
    return RegraInfo(id=rule.id, origem=rule.origin, pausada=rule.pausada,
                     descricao=rule.regra.describe(), regra=rule.regra)


def build_router(settings: Settings, presenter: Presenter) -> APIRouter:
    coins = list(settings.coins)
    token = os.environ.get(TOKEN_ENV, "")
    router = APIRouter(dependencies=[Depends(reject_repeated_query)], tags=["alertas"])
    errors: dict[int | str, dict[str, Any]] = {
              400: {"model": Erro, "description": "Corpo que não é JSON"},
              401: {"model": Erro, "description": "Sem o token, ou token errado"},
              403: {"model": Erro, "description": "Escrita desativada (sem "
                    f"{TOKEN_ENV}) ou regra do config.toml"},
              404: {"model": Erro, "description": "Regra não encontrada"},
              422: {"model": Erro, "description": "Regra ou parâmetro inválido"}}

    def authorised(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    ) -> None:
        if not token:
            raise HTTPException(403, "a API de regras está desativada (somente leitura): o "
                                f"operador habilita a escrita definindo {TOKEN_ENV}")
        given = credentials.credentials if credentials is not None else ""
        if not hmac.compare_digest(given.encode(), token.encode()):
            raise HTTPException(401, "token ausente ou inválido: envie o cabeçalho "
                                "Authorization: Bearer <token>",
                                headers={"WWW-Authenticate": "Bearer"})

    write = [Depends(authorised)]
    instant = dict(pattern=INSTANT_PATTERN, max_length=40, examples=["2025-01-31T14:30"])

    def _instant(name: str, text: str | None) -> float | None:
        if text is None:
            return None
        try:
            return parse_instant(text, settings.zone)
        except ValueError as exc:
            raise invalid("query", name, str(exc), text) from None

    def alertas(
        request: Request,
        # the schema lists the configured coins: any other value is a 422 (as documented),
        # never a schema-valid request refused
        moeda: Annotated[str | None, Query(max_length=32, description="Só esta moeda (os "
                                           "alertas do serviço aparecem sempre)",
                                           json_schema_extra={"enum": list(coins)})] = None,
        inicio: Annotated[str | None, Query(description="Desde (inclusive)", **instant)] = None,
        fim: Annotated[str | None, Query(description="Até (inclusive)", **instant)] = None,
        limite: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Quantos, no máximo")
                          ] = DEFAULT_LIMIT,
        exportar_csv: Annotated[bool, Query(description="true: baixar como CSV")] = False,
    ) -> Any:
        if moeda is not None and moeda not in coins:
            raise invalid("query", "moeda", f"moeda desconhecida; disponíveis: "
                          f"{', '.join(coins)}", moeda)
        start, end = _instant("inicio", inicio), _instant("fim", fim)
        if start is not None and end is not None and start > end:
            raise invalid("query", "fim", "deve ser igual ou posterior a inicio", fim)
        rows = request.app.state.store.alerts(moeda, start, end, limite)
        items = [present_alert(row, None, presenter.time) for row in rows]
        if exportar_csv:
            return StreamingResponse(
                _csv(items), media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="alertas'
                         f'{"_" + moeda if moeda else ""}.csv"'})
        return PaginaAlertas(moeda=moeda, quantidade=len(items),
                             itens=[Alerta(**i) for i in items])

    router.add_api_route(
        "/alertas", alertas, methods=["GET"], response_model=PaginaAlertas,
        summary="Alertas disparados (do mais novo ao mais antigo; filtros e CSV)",
        description="Histórico dos alertas. `inicio`/`fim` filtram pelo horário do disparo "
                    f"(AAAA-MM-DDTHH:MM, sem fuso vale {settings.timezone}).",
        responses={422: errors[422], 200: {"description": "JSON, ou CSV com exportar_csv=true",
                                           "content": {"text/csv": {"schema": {"type": "string"}}}}})
    router.add_api_route("/alertas", alertas, methods=["HEAD"], include_in_schema=False)

    @router.get("/alertas/regras", response_model=ListaRegras, summary="Regras de alerta")
    def regras(request: Request) -> ListaRegras:
        alerts = request.app.state.engine.alerts
        return ListaRegras(escrita_habilitada=bool(token),
                           regras=[_info(r) for r in alerts.rules])

    @router.post("/alertas/regras", response_model=RegraInfo, status_code=201,
                 dependencies=write, summary="Criar uma regra (com o token)",
                 responses={k: errors[k] for k in (400, 401, 403, 422)})
    def criar(regra: Regra, request: Request) -> RegraInfo:
        if regra.moeda != ALL_COINS and regra.moeda not in coins:
            raise invalid("body", "moeda", f"moeda desconhecida; use 'todas' ou uma de: "
                          f"{', '.join(coins)}", regra.moeda)
        state = request.app.state
        rid = state.store.add_alert_rule(dump_rule(regra))
        state.engine.alerts.reload()
        return _info(RegraAtiva(id=f"api:{rid}", regra=regra))

    def _find(request: Request, regra_id: str) -> tuple[Any, int] | Response:
        alerts = request.app.state.engine.alerts
        if not any(r.id == regra_id for r in alerts.rules):
            return error_response(404, f"regra {regra_id} não encontrada; veja GET "
                                  "/alertas/regras")
        origin, number = regra_id.split(":")
        if origin != "api":
            raise HTTPException(403, f"a regra {regra_id} vem do config.toml: mude-a no arquivo "
                                "e reinicie o serviço")
        return alerts, int(number)

    @router.patch("/alertas/regras/{regra_id}", response_model=RegraInfo, dependencies=write,
                  summary="Pausar ou retomar uma regra (com o token)", responses=errors)
    def pausar(regra_id: RulePath, corpo: Pausa, request: Request) -> Any:
        found = _find(request, regra_id)
        if isinstance(found, Response):
            return found
        alerts, number = found
        alerts.store.set_alert_rule_paused(number, corpo.pausada)
        alerts.reload()
        return _info(next(r for r in alerts.rules if r.id == regra_id))

    @router.delete("/alertas/regras/{regra_id}", status_code=204, dependencies=write,
                   summary="Apagar uma regra (com o token)", responses=errors,
                   response_class=Response)
    def apagar(regra_id: RulePath, request: Request) -> Response:
        found = _find(request, regra_id)
        if isinstance(found, Response):
            return found
        alerts, number = found
        alerts.store.delete_alert_rule(number)
        alerts.reload()
        return Response(status_code=204)

    return router


def _csv(items: list[dict[str, Any]]) -> Iterator[str]:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for a in items:
        f = a.get("previsao") or {}
        row = {**a, "previsao": f.get("previsao"), "limite_inferior": f.get("limite_inferior"),
               "limite_superior": f.get("limite_superior")}
        writer.writerow(["" if row.get(c) is None else row.get(c) for c in CSV_COLUMNS])
    yield buf.getvalue()
