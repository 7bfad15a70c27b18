"""CORS for browser clients: preflight answered, headers on every response (streams included)."""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from mockserver.settings import Settings

EXPOSED_HEADERS = "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After, Location"
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


def _allowed_origin(settings: Settings, origin: str) -> str | None:
    if "*" in settings.cors_origins:
        return origin
    return origin if origin in settings.cors_origins else None


def install_cors(app: web.Application, settings: Settings) -> None:
    """Answer preflights and add CORS headers to every response of ``app`` and its sub-apps."""

    @web.middleware
    async def preflight(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if request.method == "OPTIONS" and origin and "Access-Control-Request-Method" in request.headers:
            allowed = _allowed_origin(settings, origin)
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
        return await handler(request)

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        origin = request.headers.get("Origin")
        if not origin or "Access-Control-Allow-Origin" in response.headers:
            return
        allowed = _allowed_origin(settings, origin)
        if allowed is not None:
            response.headers["Access-Control-Allow-Origin"] = allowed
            response.headers["Access-Control-Allow-Credentials"] = "true"
            response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
            response.headers["Vary"] = "Origin"

    app.middlewares.append(preflight)
    app.on_response_prepare.append(add_headers)
