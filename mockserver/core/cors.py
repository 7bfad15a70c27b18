"""CORS for browser clients: allowed origins, preflights, and headers on every response (streams included).

No middleware: a middleware anywhere in an aiohttp app wraps every request of every sub-app (about 7 us
each, a sixth of a bare aiohttp request). Preflights are ``OPTIONS`` routes placed before each fallback
route (``preflight``). Provider responses get their headers in the request pipeline's render stage
(``response_headers``); the control API's from its own ``on_response_prepare`` signal (``install_cors``),
which is not on the root app, since a root signal runs for every provider request too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from mockserver.settings import Settings

EXPOSED_HEADERS = "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After, Location"
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


def allowed_origin(settings: Settings, origin: str) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for a request from ``origin``, or None if not allowed."""
    if "*" in settings.cors_origins:
        return origin
    return origin if origin in settings.cors_origins else None


def response_headers(settings: Settings, origin: str | None) -> dict[str, str]:
    """The CORS headers of a response to a request from ``origin`` (none without CORS or an origin)."""
    if not settings.cors or not origin:
        return {}
    allowed = allowed_origin(settings, origin)
    if allowed is None:
        return {}
    return {
        "Access-Control-Allow-Origin": allowed,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        "Vary": "Origin",
    }


RequestHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
CATCH_ALL = r"/{tail:[\s\S]*}"
"""The path of a fallback route: every path, even one with an encoded newline (``.`` would miss it and let
aiohttp answer a plain-text 404 outside the provider's envelope)."""


def preflight(settings: Settings, fallback: RequestHandler) -> RequestHandler:
    """An ``OPTIONS`` handler that answers CORS preflights and hands any other ``OPTIONS`` to ``fallback``."""

    async def options(request: web.Request) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if not origin or "Access-Control-Request-Method" not in request.headers:
            return await fallback(request)
        allowed = allowed_origin(settings, origin)
        if allowed is None:
            return web.Response(status=403, text="CORS origin not allowed")
        return web.Response(
            status=204,
            headers={
                "Access-Control-Allow-Origin": allowed,
                "Access-Control-Allow-Methods": ALLOWED_METHODS,
                "Access-Control-Allow-Headers": request.headers.get(
                    "Access-Control-Request-Headers", "Authorization, Content-Type"
                ),
                "Access-Control-Allow-Credentials": "true",
                "Access-Control-Max-Age": "600",
                "Vary": "Origin",
            },
        )

    return options


def add_fallback(router: web.UrlDispatcher, path: str, fallback: RequestHandler, settings: Settings) -> None:
    """Route every method on ``path`` to ``fallback``, preflights (when CORS is on) to ``preflight``."""
    if settings.cors:
        router.add_route("OPTIONS", path, preflight(settings, fallback))
    router.add_route("*", path, fallback)


def install_cors(app: web.Application, settings: Settings) -> None:
    """Add CORS headers to every response of ``app`` (and of its sub-apps) that has none yet."""

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        if "Access-Control-Allow-Origin" not in response.headers:
            response.headers.update(response_headers(settings, request.headers.get("Origin")))

    app.on_response_prepare.append(add_headers)
