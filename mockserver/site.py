"""Root routes beside the providers: ``/`` leads to the dashboard, each provider publishes its spec.

``/<id>/openapi.json`` and ``/<id>/openapi.yaml`` (``/openapi.json`` with ``--provider ID``) are the mock's
own endpoints, not operations of the provider: they are registered before the provider's catch-all, so they
never become its 404, and no spec lists them.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable

import yaml
from aiohttp import web

from mockserver.core.spec import SAFE_LOADER
from mockserver.resources import spec_path

DASHBOARD_PATH = "/_mock/ui"
SpecHandler = Callable[[web.Request], Awaitable[web.Response]]


@functools.cache
def _spec_texts(provider_id: str) -> tuple[bytes, bytes]:
    """The provider's spec as YAML (the file as shipped) and as JSON (read once, on first request)."""
    raw = spec_path(provider_id).read_bytes()
    document = yaml.load(raw, Loader=SAFE_LOADER)
    # YAML timestamps have no JSON form: str() gives their ISO text.
    return raw, json.dumps(document, indent=1, default=str).encode()


def spec_routes(provider_id: str) -> list[tuple[str, str, SpecHandler]]:
    """``(method, path, handler)`` serving the provider's spec, relative to its mount prefix."""

    async def as_yaml(request: web.Request) -> web.Response:
        return web.Response(
            body=_spec_texts(provider_id)[0], content_type="application/yaml", charset="utf-8"
        )

    async def as_json(request: web.Request) -> web.Response:
        return web.Response(
            body=_spec_texts(provider_id)[1], content_type="application/json", charset="utf-8"
        )

    return [("GET", "/openapi.yaml", as_yaml), ("GET", "/openapi.json", as_json)]


async def to_dashboard(request: web.Request) -> web.Response:
    """``GET /``: the dashboard (only when providers are mounted under their ids, leaving ``/`` free)."""
    raise web.HTTPFound(DASHBOARD_PATH)
