"""Error answers in Portuguese: validation (422), unknown coin (404), read-only (405), 5xx.

Every error body is an :class:`~cryptotech.api.schemas.Erro` (``{"detalhe": ...}``), never a
stack trace. FastAPI's own validation handler is replaced so that its English messages become
Portuguese ones; an unknown coin in the path is a 404, not a 422. Unknown query
parameters are ignored, as common APIs do (a browser's cache-buster ``?_=123`` must not break
a call); the known ones are validated, and :func:`reject_repeated_query` refuses one given
twice. What a user sent is echoed at most :data:`ECHO_MAX` characters long (:func:`short`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cryptotech.errors import CryptoTechError

log = logging.getLogger("cryptotech.api")

_MESSAGES = {
    "missing": "é obrigatório",
    "int_parsing": "deve ser um número inteiro",
    "int_type": "deve ser um número inteiro",
    "int_from_float": "deve ser um número inteiro",
    "float_parsing": "deve ser um número",
    "bool_parsing": "deve ser true ou false",
    "bool_type": "deve ser true ou false",
    "string_type": "deve ser um texto",
    "string_pattern_mismatch": "formato inválido",
    "greater_than_equal": "deve ser maior ou igual a {ge}",
    "greater_than": "deve ser maior que {gt}",
    "less_than_equal": "deve ser menor ou igual a {le}",
    "less_than": "deve ser menor que {lt}",
    "string_too_long": "deve ter no máximo {max_length} caracteres",
    "string_too_short": "deve ter ao menos {min_length} caracteres",
    "enum": "valor inválido; aceitos: {expected}",
    "literal_error": "valor inválido; aceitos: {expected}",
}


#: At most this many characters of what the user sent are echoed in an error message.
ECHO_MAX = 32


def short(text: Any, limit: int = ECHO_MAX) -> str:
    """``text`` for an error message: at most ``limit`` characters, then "…".

    >>> short("a" * 100_000)
    'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa…'
    >>> short("btc")
    'btc'
    """
    text = str(text)
    return text if len(text) <= limit else text[:limit] + "…"


def message_pt(error: dict[str, Any]) -> str:
    """One pydantic error as a Portuguese phrase.

    >>> message_pt({"type": "less_than_equal", "ctx": {"le": 10000}})
    'deve ser menor ou igual a 10000'
    >>> message_pt({"type": "enum", "ctx": {"expected": "'15m', '1h' or '4h'"}})
    "valor inválido; aceitos: '15m', '1h' ou '4h'"
    >>> message_pt({"type": "value_error", "msg": "Value error, data inválida", "ctx": {}})
    'data inválida'
    """
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "value_error":
        cause = ctx.get("error")
        return str(cause) if cause is not None else str(error.get("msg", "")).removeprefix(
            "Value error, ")
    template = _MESSAGES.get(kind)
    if template is None:
        return "valor inválido"
    if isinstance(ctx.get("expected"), str):  # "'15m', '1h' or '4h'"
        ctx = {**ctx, "expected": ctx["expected"].replace(" or ", " ou ")}
    try:
        return template.format(**ctx)
    except (KeyError, IndexError):
        return template.split(";")[0]


def invalid(where: str, name: str, message: str, value: Any = None) -> RequestValidationError:
    """A validation error raised by our own checks, rendered like FastAPI's (422)."""
    return RequestValidationError([{
        "type": "value_error", "loc": (where, name), "msg": message, "input": value,
        "ctx": {"error": message},
    }])


def error_response(status: int, detail: str, headers: dict[str, str] | None = None,
                   errors: list[dict[str, str]] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"detalhe": detail}
    if errors is not None:
        body["erros"] = errors
    return JSONResponse(body, status_code=status, headers=headers)


def install(app: FastAPI, coins: Sequence[str]) -> None:
    """Register the Portuguese handlers on ``app``."""
    available = ", ".join(coins)

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        items = []
        for err in exc.errors():
            loc = [str(p) for p in err.get("loc", ())]
            where = loc[0] if loc else "query"
            name = ".".join(loc[1:]) or where
            if where == "path" and name == "moeda":
                wanted = request.path_params.get("moeda", err.get("input"))
                return error_response(
                    404, f"moeda '{short(wanted)}' não encontrada; moedas disponíveis: "
                         f"{available}")
            items.append({"parametro": name, "local": where
                          if where in ("path", "query", "header", "body", "cookie") else "query",
                          "mensagem": message_pt(err)})
        detail = "; ".join(f"{i['parametro']}: {i['mensagem']}" for i in items)
        return error_response(422, f"parâmetro inválido: {detail}", errors=items)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 404:
            detail = (f"caminho não encontrado: {short(request.url.path)}; veja a página "
                      "inicial (/) ou a documentação (/docs)")
        elif exc.status_code == 400:  # a request body that is not JSON (FastAPI's words)
            detail = "corpo da requisição ilegível: envie um objeto JSON em UTF-8"
        elif exc.status_code == 405:
            detail = "método não permitido: esta API é somente leitura (GET e HEAD)"
        elif isinstance(exc.detail, str) and exc.detail and not exc.detail.isascii():
            detail = exc.detail  # already ours, in Portuguese
        else:
            detail = f"erro HTTP {exc.status_code}"
        return error_response(exc.status_code, detail, headers=getattr(exc, "headers", None))

    async def store_error(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s: %s", request.method, request.url.path, exc)
        return error_response(503, "banco de dados indisponível no momento; tente novamente "
                              "em alguns segundos", headers={"Retry-After": "5"})

    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(CryptoTechError, store_error)
    app.add_middleware(CatchAll)


INTERNAL_ERROR = "erro interno do servidor; o problema foi registrado no log"


class CatchAll:
    """ASGI middleware: an unexpected exception becomes a Portuguese 500 without trace.

    Unlike an ``Exception`` handler (Starlette's outermost middleware answers, then re-raises
    and the server drops the connection), this answers, logs once and keeps the connection.
    An exception after the response started (a broken stream) is left to the server.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking)
        except Exception as exc:
            if started:
                raise
            log.error("%s %s: unexpected error", scope.get("method"), scope.get("path"),
                      exc_info=exc)
            await error_response(500, INTERNAL_ERROR)(scope, receive, send)


def _query_names(dependant: Dependant) -> Iterable[str]:
    for field in dependant.query_params:
        yield field.alias
    for sub in dependant.dependencies:
        yield from _query_names(sub)


async def reject_repeated_query(request: Request) -> None:
    """Dependency: 422 for a known query parameter given twice (which one would count?).

    Unknown parameters are ignored (``?_=123``, tracking tags), never refused.
    """
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = getattr(route, "_query_names", None)
    if known is None:
        known = frozenset(_query_names(dependant))
        route._query_names = known  # type: ignore[union-attr]
    seen: set[str] = set()
    for name, _ in request.query_params.multi_items():
        if name in known and name in seen:
            raise invalid("query", name, "informado mais de uma vez")
        seen.add(name)
