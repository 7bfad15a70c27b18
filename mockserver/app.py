"""Assemble the server: each provider's operations under its prefix, plus the control API, around a ``Mock``.

Providers are route groups on the root app rather than sub-apps: aiohttp resolves a sub-app's routes in a
second router pass, which costs about 7 us a request (measured; a bare aiohttp request is ~45 us).
Each group is still one provider's own: its ``ProviderService`` owns every route under its prefix.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from mockserver.control import build_control_app
from mockserver.core.cors import CATCH_ALL, add_fallback
from mockserver.core.pipeline import MAX_BODY_BYTES, ProviderService
from mockserver.mock import MOCK, Mock, build_mock
from mockserver.settings import Settings
from mockserver.site import spec_routes, to_dashboard

MAX_REQUEST_BYTES = MAX_BODY_BYTES
"""aiohttp's body limit: the pipeline's, so a chunked body is refused where a declared length would be."""
MAX_LINE_BYTES = 32 * 1024
"""Longest request line and header field aiohttp accepts (its default, 8190 bytes, would answer a plain-text
400 before the pipeline to spec-valid requests such as a 1024-character storage key, percent-encoded)."""
SERVER_HANDLER_ARGS = {"max_line_size": MAX_LINE_BYTES, "max_field_size": MAX_LINE_BYTES}
"""HTTP parser limits of every server serving an app from ``create_app`` (``web.run_app``, ``AppRunner``)."""


def create_app(settings: Settings, mock: Mock | None = None) -> web.Application:
    """The aiohttp application: ``/<id>/...`` per provider (or one at the root) and ``/_mock/...``."""
    mock = mock or build_mock(settings)
    # handler_args travel with the app, so every runner serving it (the CLI, test servers, the conformance
    # suite's embedded mock) gets the same parser limits.
    # The keep-alive timer also ends a connection that never completes a request head (aiohttp arms it at
    # connect): with ``web.run_app`` too, a slow client is cut after this long; ``serving.MockRunner`` cuts
    # slow heads sooner, with a 408.
    handler_args = {**SERVER_HANDLER_ARGS, "keepalive_timeout": settings.keepalive_timeout}
    app = web.Application(client_max_size=MAX_REQUEST_BYTES, handler_args=handler_args)
    app[MOCK] = mock
    # Provider responses carry CORS headers from the request pipeline; a signal on the root app would run
    # for each of them too, so only the control API has one (its own policy: core/cors.py).
    app.add_subapp("/_mock", build_control_app(mock))
    for service in mock.providers.values():
        _mount(app.router, service, settings)
    if not settings.provider:  # with --provider ID, "/" belongs to that provider
        app.router.add_get("/", to_dashboard)

    async def lifecycle(_: web.Application) -> AsyncIterator[None]:
        await mock.open()  # the state: connect, then seed it or join it
        try:
            await mock.start()
            try:
                yield
            finally:
                await mock.stop()
        finally:
            await mock.close()

    app.cleanup_ctx.append(lifecycle)
    return app


def _mount(router: web.UrlDispatcher, service: ProviderService, settings: Settings) -> None:
    """One provider's routes under its mount prefix: its operations, then its fallback for the rest."""
    for method, path, handler in [*service.routes(), *spec_routes(service.id)]:
        router.add_route(method, service.mount + path, handler)
    add_fallback(router, service.mount + CATCH_ALL, service.handle, settings)
