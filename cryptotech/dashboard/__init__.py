"""The live dashboard: a Dash app at ``/painel/`` on the API's own server and port.

Mounted as an extension of the app factory::

    from cryptotech.api.app import create_app
    from cryptotech.dashboard import mount_dashboard

    app = create_app(settings, source, extensions=[mount_dashboard])

The page reads its first history on the server (from the store, through the API's
presenter), then follows ``/stream`` with the browser's ``EventSource`` and extends its
charts in the browser (``assets/painel.js``). Dash serves its own scripts and the assets from
this package: nothing is loaded from the internet.
"""

from __future__ import annotations

from fastapi import FastAPI

from cryptotech.config import Settings


def mount_dashboard(app: FastAPI, settings: Settings) -> None:
    """Add the dashboard at ``/painel/`` to ``app`` (an ``extensions`` hook of ``create_app``).

    The Dash app is kept as ``app.state.painel``.
    """
    from cryptotech.dashboard.app import build_dash

    app.state.painel = build_dash(app, settings)
