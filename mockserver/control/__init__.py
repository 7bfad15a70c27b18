"""The control API under ``/_mock/``: what tests use to steer the mock (described in specs/control.yaml).

Modules: ``access`` (who may call it: the token, the Host check, JSON-only state changes, CORS
preflights), ``base`` (what every route shares: the app key, the access check, JSON errors, parsing),
``state`` (providers, reset, clock, journal, files), ``faults``, ``webhooks``, ``accounts`` (accounts and
keys), ``ops`` (metrics, health), ``replay`` (recorded exchanges), ``events`` (the dashboard's live feed,
request details, resources), ``ui`` (the dashboard's files). Route modules import ``base`` only, never each
other; ``base`` imports ``access``.
"""

from __future__ import annotations

from aiohttp import web

from mockserver.control.access import ACCESS, ControlAccess, preflight
from mockserver.control.accounts import ACCOUNT_ROUTES
from mockserver.control.base import MOCK, guarded, unrouted
from mockserver.control.events import EVENT_ROUTES, close_feed
from mockserver.control.faults import FAULT_ROUTES
from mockserver.control.ops import OPS_ROUTES
from mockserver.control.replay import REPLAY_ROUTES
from mockserver.control.state import STATE_ROUTES
from mockserver.control.ui import UI_ROUTES
from mockserver.control.webhooks import WEBHOOK_ROUTES
from mockserver.core.cors import CATCH_ALL, install_control_cors
from mockserver.mock import Mock

ROUTES = [
    *STATE_ROUTES,
    *FAULT_ROUTES,
    *WEBHOOK_ROUTES,
    *ACCOUNT_ROUTES,
    *OPS_ROUTES,
    *EVENT_ROUTES,
    *REPLAY_ROUTES,
]
"""Every control route behind the token, relative to ``/_mock``."""
PUBLIC_ROUTES = UI_ROUTES
"""The dashboard's static files: no token (a page load cannot send one: the page asks for it)."""


def build_control_app(mock: Mock) -> web.Application:
    """The ``/_mock`` sub-application (``ConfigError`` on a non-loopback bind without a control token)."""
    settings = mock.settings
    app = web.Application()
    app[MOCK] = mock
    app[ACCESS] = ControlAccess(settings)
    for method, path, handler in ROUTES:
        app.router.add_route(method, path, guarded(handler))
    for method, path, handler in PUBLIC_ROUTES:
        app.router.add_route(method, path, guarded(handler, public=True))
    fallback = unrouted(app.router)
    if settings.cors:
        app.router.add_route("OPTIONS", CATCH_ALL, guarded(preflight(fallback)))
        install_control_cors(app, settings)
    app.router.add_route("*", CATCH_ALL, fallback)
    app.on_shutdown.append(close_feed)
    return app
