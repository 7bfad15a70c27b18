"""CORS for browser clients: allowed origins, preflights, and headers on every response (streams included).

Two policies. Providers: the ``--cors-origin`` list, ``*`` (the default) reflecting any origin. The control
API (``/_mock``): only its own origin (the listening address the request came in on, as a dashboard page
served by the mock would send) and origins listed by name; never ``*``, never credentials.

No middleware: a middleware anywhere in an aiohttp app wraps every request of every sub-app (about 7 us
each, a sixth of a bare aiohttp request). Preflights are ``OPTIONS`` routes placed before each fallback
route (``preflight``). Provider responses get their headers in the request pipeline's render stage
(``response_headers``); the control API's from its own ``on_response_prepare`` signal (``install_cors``),
which is not on the root app, since a root signal runs for every provider request too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from mockserver.settings import Settings, is_loopback

EXPOSED_HEADERS = "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After, Location"
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


def allowed_origin(settings: Settings, origin: str) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for a request from ``origin``, or None if not allowed."""
    if "*" in settings.cors_origins:
        return origin
    return origin if origin in settings.cors_origins else None


def split_host(host: str) -> tuple[str, int | None]:
    """A ``Host`` header's name (lower case, IPv6 without brackets) and port (``None`` if absent or bad)."""
    host = host.strip().lower()
    if host.startswith("["):
        name, _, rest = host[1:].partition("]")
        port_text = rest.removeprefix(":") if rest.startswith(":") else ""
    elif host.count(":") == 1:
        name, _, port_text = host.partition(":")
    else:
        name, port_text = host, ""
    return name, int(port_text) if port_text.isascii() and port_text.isdigit() else None


def own_origin(request: web.Request) -> str | None:
    """``scheme://host[:port]`` of the request when its ``Host`` names the address it came in on (the
    socket's own address, or a loopback name for a loopback socket): the origin of a page the mock served."""
    host = request.headers.get("Host")
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not host or not isinstance(sockname, tuple):
        return None
    name, port = split_host(host)
    local_address, local_port = str(sockname[0]), int(sockname[1])
    if (port or (443 if request.secure else 80)) != local_port:
        return None
    if name != local_address.lower() and not (is_loopback(local_address) and is_loopback(name)):
        return None
    return f"{request.scheme}://{host.strip().lower()}"


def control_origin_allowed(settings: Settings, request: web.Request, origin: str) -> bool:
    """Whether the control API takes cross-origin requests from ``origin``: its own or one listed by name."""
    return (origin != "*" and origin in settings.cors_origins) or origin == own_origin(request)


def control_response_headers(settings: Settings, request: web.Request) -> dict[str, str]:
    """The CORS headers of a control API response (none without CORS or for an origin not allowed)."""
    origin = request.headers.get("Origin")
    if not settings.cors or not origin or not control_origin_allowed(settings, request, origin):
        return {}
    # No Access-Control-Allow-Credentials: the control API uses no cookies; its token is a plain header.
    return {"Access-Control-Allow-Origin": origin, "Access-Control-Expose-Headers": "Allow", "Vary": "Origin"}


def is_preflight(request: web.Request) -> bool:
    """Whether a request is a CORS preflight."""
    return (
        request.method == "OPTIONS"
        and "Origin" in request.headers
        and "Access-Control-Request-Method" in request.headers
    )


def preflight_headers(request: web.Request, origin: str, *, credentials: bool) -> dict[str, str]:
    """The headers of a preflight answered for ``origin``."""
    headers = {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": request.headers.get(
            "Access-Control-Request-Headers", "Authorization, Content-Type"
        ),
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }
    if credentials:
        headers["Access-Control-Allow-Credentials"] = "true"
    return headers


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
        if not is_preflight(request):
            return await fallback(request)
        allowed = allowed_origin(settings, request.headers["Origin"])
        if allowed is None:
            return web.Response(status=403, text="CORS origin not allowed")
        return web.Response(status=204, headers=preflight_headers(request, allowed, credentials=True))

    return options


def add_fallback(router: web.UrlDispatcher, path: str, fallback: RequestHandler, settings: Settings) -> None:
    """Route every method on ``path`` to ``fallback``, preflights (when CORS is on) to ``preflight``."""
    if settings.cors:
        router.add_route("OPTIONS", path, preflight(settings, fallback))
    router.add_route("*", path, fallback)


def install_control_cors(app: web.Application, settings: Settings) -> None:
    """Add the control API's CORS headers to every response of ``app`` (the ``/_mock`` sub-app) that has
    none yet (a preflight sets its own)."""

    async def add_headers(request: web.Request, response: web.StreamResponse) -> None:
        if "Origin" in request.headers and "Access-Control-Allow-Origin" not in response.headers:
            response.headers.update(control_response_headers(settings, request))

    app.on_response_prepare.append(add_headers)
