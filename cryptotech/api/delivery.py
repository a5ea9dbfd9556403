"""How the app's bytes travel: compressed, cached, and the API docs without any CDN.

* :func:`install_docs`: ``/docs`` (Swagger UI) and ``/redoc`` (ReDoc) load their scripts and
  styles from this server, from the files the ``fastapi-offline`` package installs, never from a
  CDN or a font host: they work on a laptop without internet.
* :func:`install_delivery`: gzip for every answer worth it (JSON, CSV, HTML, JS, CSS; never the
  SSE stream, which must flow event by event: Starlette's ``GZipMiddleware`` leaves
  ``text/event-stream`` alone) and cache headers for static files (:class:`CacheStatic`).
"""

from __future__ import annotations

from functools import lru_cache
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response
from starlette.datastructures import MutableHeaders
from starlette.middleware.gzip import GZipMiddleware
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Where the docs' own files are served (Swagger UI's and ReDoc's scripts and styles).
DOCS_ASSETS = "/docs-arquivos"
#: Answers smaller than this are sent as they are (gzip would not pay for its header).
GZIP_MIN_BYTES = 1000

#: The docs pages may load nothing from another host (the browser enforces it).
DOCS_CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline' blob:; worker-src 'self' "
            "blob:; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
            "font-src 'self' data:; connect-src 'self'")
#: The one outside URL ReDoc's bundle loads by itself (its "API docs by Redocly" logo).
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"

DAY = "public, max-age=86400"
YEAR = "public, max-age=31536000, immutable"


def docs_assets_dir() -> Path:
    """The folder of Swagger UI's and ReDoc's files inside the installed ``fastapi-offline``."""
    return Path(str(files("fastapi_offline") / "static"))


@lru_cache(maxsize=1)
def redoc_script() -> bytes:
    """ReDoc's bundle with its logo taken from this server instead of Redocly's CDN."""
    text = (docs_assets_dir() / "redoc.standalone.js").read_text(encoding="utf-8")
    return text.replace(REDOC_LOGO, f"{DOCS_ASSETS}/favicon.png").encode("utf-8")


def install_docs(app: FastAPI) -> None:
    """``/docs`` and ``/redoc`` served from this server only (create the app with
    ``docs_url=None, redoc_url=None``)."""

    @app.get(f"{DOCS_ASSETS}/redoc.js", include_in_schema=False)  # before the folder's mount
    async def redoc_js() -> Response:
        return Response(redoc_script(), media_type="text/javascript; charset=utf-8")

    app.mount(DOCS_ASSETS, StaticFiles(directory=docs_assets_dir()), name="docs-arquivos")
    favicon = f"{DOCS_ASSETS}/favicon.png"
    swagger_parameters = {**(app.swagger_ui_parameters or {}), "validatorUrl": None}
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=root + openapi_url, title=f"{app.title} · documentação interativa",
            swagger_js_url=f"{root}{DOCS_ASSETS}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{DOCS_ASSETS}/swagger-ui.css",
            swagger_favicon_url=root + favicon, swagger_ui_parameters=swagger_parameters)
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_redoc_html(
            openapi_url=root + openapi_url, title=f"{app.title} · ReDoc",
            redoc_js_url=f"{root}{DOCS_ASSETS}/redoc.js",
            redoc_favicon_url=root + favicon, with_google_fonts=False)
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page


def cache_control(path: str, query: str) -> str | None:
    """The ``Cache-Control`` of a static file (``None``: not a static file, say nothing).

    Dash's files carry their version in the URL (``painel.js?m=<mtime>``, ``.v4_4_1m…js``),
    so they can be kept a year; the docs' files have a fixed URL, so a day.

    >>> cache_control("/painel/assets/painel.js", "m=1796157939.4")
    'public, max-age=31536000, immutable'
    >>> cache_control("/painel/assets/painel.js", ""), cache_control("/prever/btc", "")
    ('no-cache', None)
    >>> cache_control("/docs-arquivos/swagger-ui.css", "")
    'public, max-age=86400'
    """
    if path.startswith(DOCS_ASSETS + "/"):
        return DAY
    if path.startswith("/painel/assets/"):
        return YEAR if "m=" in query else "no-cache"  # no version: revalidate (ETag)
    if path.startswith("/painel/_dash-component-suites/"):
        return YEAR
    if path == "/painel/_favicon.ico":
        return DAY
    return None


class CacheStatic:
    """ASGI middleware: :func:`cache_control` on successful answers that set none."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        value = cache_control(scope.get("path", ""), scope.get("query_string", b"").decode(
            "latin-1"))
        if value is None:
            await self.app(scope, receive, send)
            return

        async def with_cache(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] in (200, 304):
                headers = MutableHeaders(scope=message)
                if "cache-control" not in headers:
                    headers["Cache-Control"] = value
            await send(message)

        await self.app(scope, receive, with_cache)


def install_delivery(app: FastAPI) -> None:
    """Gzip (never ``text/event-stream``) and cache headers for static files."""
    app.add_middleware(CacheStatic)
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MIN_BYTES)
