"""The control API under ``/_mock/``: what tests use to steer the mock (described in specs/control.yaml).

Modules: ``base`` (what every route shares: the app key, JSON errors, parsing), ``state`` (providers, reset,
clock, journal, files), ``faults``, ``webhooks``, ``accounts`` (accounts and keys), ``events`` (the
dashboard's live feed, request details, resources), ``ui`` (the dashboard's files). Route modules import
``base`` only, never each other.
"""

from __future__ import annotations

from aiohttp import web

from mockserver.control.accounts import ACCOUNT_ROUTES
from mockserver.control.base import MOCK, guarded, unrouted
from mockserver.control.events import EVENT_ROUTES, close_feed
from mockserver.control.faults import FAULT_ROUTES
from mockserver.control.state import STATE_ROUTES
from mockserver.control.ui import UI_ROUTES
from mockserver.control.webhooks import WEBHOOK_ROUTES
from mockserver.core.cors import CATCH_ALL, add_fallback
from mockserver.mock import Mock

ROUTES = [
    *STATE_ROUTES,
    *FAULT_ROUTES,
    *WEBHOOK_ROUTES,
    *ACCOUNT_ROUTES,
    *EVENT_ROUTES,
    *UI_ROUTES,
]
"""Every control route, relative to ``/_mock``."""


def build_control_app(mock: Mock) -> web.Application:
    """The ``/_mock`` sub-application."""
    app = web.Application()
    app[MOCK] = mock
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, guarded(handler))
    add_fallback(app.router, CATCH_ALL, unrouted(app.router), mock.settings)
    app.on_shutdown.append(close_feed)
    return app
