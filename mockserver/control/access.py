"""Who may use the control API: the one check every ``/_mock`` request passes (``base.guarded`` calls it).

- With a control token (required on a non-loopback bind, optional on loopback): ``Authorization: Bearer
  TOKEN``, compared in constant time; anything else is a 401 with ``WWW-Authenticate: Bearer``.
- Without one (loopback only): a ``Host`` that is not a loopback name or address is refused (403), so a
  page whose domain is rebound to 127.0.0.1 cannot reach the mock; a state change from a browser origin
  other than the mock's own or a listed one is refused (403).
- Always: a state change (POST, PUT, PATCH, DELETE) takes a JSON body, or none; a form type (even with an
  empty body) or a body of any other type is a 415, so neither a cross-site ``<form>`` nor a
  CORS-safelisted ``fetch`` can make one without a preflight.

CORS preflights (which carry no credentials) are answered by ``preflight``, for the origins
``core.cors.control_origin_allowed`` names.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web

from mockserver.core.cors import control_origin_allowed, is_preflight, preflight_headers, split_host
from mockserver.errors import ConfigError
from mockserver.settings import Settings, is_loopback

ControlHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON_MEDIA_TYPE = "application/json"
FORM_MEDIA_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data", "text/plain"})
"""The CORS-safelisted types: what a cross-site ``<form>`` or ``fetch`` sends without a preflight."""
REALM = 'Bearer realm="mockserver control API"'


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the control API refuses a request: rendered as its JSON error."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)


class ControlAccess:
    """The control API's access policy, built once from the settings."""

    def __init__(self, settings: Settings) -> None:
        token = settings.control_token
        if token is None and not settings.loopback:
            raise ConfigError(
                f"the control API on the non-loopback host {settings.host!r} needs a control token "
                "(--control-token or MOCKSERVER_CONTROL_TOKEN)"
            )
        self.settings = settings
        self._token = token.encode() if token is not None else None

    def refusal(self, request: web.Request, *, public: bool = False) -> Refusal | None:
        """Why ``request`` may not reach a control route, or ``None`` when it may. A ``public`` route (the
        dashboard's static files: no data) needs no token, since a browser cannot send one with a page load;
        every other rule still applies."""
        if self._token is None and not _loopback_host(request):
            return Refusal(
                403,
                "forbidden",
                "the control API on a loopback bind answers only a loopback Host (127.0.0.1, ::1, localhost)",
            )
        if is_preflight(request):  # no credentials in a preflight: only its origin counts
            origin = request.headers["Origin"]
            if self.settings.cors and control_origin_allowed(self.settings, request, origin):
                return None
            return Refusal(403, "forbidden", f"no cross-origin requests from {origin!r} to the control API")
        if self._token is not None and not public:
            refused = _unauthorized(request, self._token)
            if refused is not None:
                return refused
        elif request.method in STATE_CHANGING:
            cross = request.headers.get("Origin")
            if cross is not None and not control_origin_allowed(self.settings, request, cross):
                return Refusal(403, "forbidden", f"no state changes from the browser origin {cross!r}")
        if request.method in STATE_CHANGING and not _json_or_empty(request):
            return Refusal(
                415, "unsupported_media_type", "a state change takes an application/json body, or no body"
            )
        return None


def _unauthorized(request: web.Request, token: bytes) -> Refusal | None:
    """A 401 unless the request carries ``Authorization: Bearer <token>``."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if not scheme:
        return Refusal(
            401,
            "unauthorized",
            "the control API needs 'Authorization: Bearer <control token>'",
            {"WWW-Authenticate": REALM},
        )
    presented = credentials.strip().encode("utf-8", "surrogatepass")
    # In time independent of where the two differ (and compared whatever the scheme).
    matches = hmac.compare_digest(presented, token)
    if scheme.lower() != "bearer" or not matches:
        return Refusal(
            401,
            "unauthorized",
            "invalid control token",
            {"WWW-Authenticate": REALM + ', error="invalid_token"'},
        )
    return None


def _loopback_host(request: web.Request) -> bool:
    host = request.headers.get("Host")
    return host is None or is_loopback(split_host(host)[0])


def _json_or_empty(request: web.Request) -> bool:
    """A JSON body, or an empty one under no type or a type no page can send without a preflight (aiohttp's
    client labels an empty POST ``application/octet-stream``)."""
    content_type = request.headers.get("Content-Type")
    media_type = content_type.split(";", 1)[0].strip().lower() if content_type is not None else None
    if media_type == JSON_MEDIA_TYPE:
        return True
    return media_type not in FORM_MEDIA_TYPES and not request.body_exists


def preflight(fallback: ControlHandler) -> ControlHandler:
    """An ``OPTIONS`` handler answering the preflights ``ControlAccess`` let through (from an allowed
    origin), and handing any other ``OPTIONS`` to ``fallback``."""

    async def options(request: web.Request) -> web.StreamResponse:
        if not is_preflight(request):
            return await fallback(request)
        headers = preflight_headers(request, request.headers["Origin"], credentials=False)
        return web.Response(status=204, headers=headers)

    return options


ACCESS = web.AppKey("control_access", ControlAccess)
"""The control app's access policy (``base.guarded`` reads it on every request)."""
