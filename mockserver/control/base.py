"""What every control route shares: the app key, JSON errors, body and number parsing, error guarding."""

from __future__ import annotations

import functools
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from mockserver.control.access import ACCESS, Refusal
from mockserver.errors import StateError
from mockserver.mock import Mock

log = logging.getLogger("mockserver")

ControlHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MOCK = web.AppKey("control_mock", Mock)
RETRY_AFTER_SECONDS = "1"
"""The ``Retry-After`` of the 503 a control route answers while the state backend does not answer."""


class ControlError(Exception):
    """A control request the mock cannot honour (rendered as a JSON 4xx)."""

    def __init__(self, status: int, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def json_reply(body: Any, status: int = 200) -> web.Response:
    """A JSON answer."""
    return web.json_response(body, status=status)


async def read_body(request: web.Request) -> dict[str, Any]:
    """The request's JSON object body (``{}`` without a body); anything else is a 400."""
    if not request.body_exists:
        return {}
    try:
        data = json.loads(await request.read())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(400, f"body is not valid JSON: {exc}") from exc
    except RecursionError as exc:
        raise ControlError(400, "body is nested too deeply") from exc
    if not isinstance(data, dict):
        raise ControlError(400, "body must be a JSON object")
    return data


def number(
    data: dict[str, Any], name: str, *, minimum: float = 0, maximum: float = math.inf, integer: bool = False
) -> Any:
    """A finite JSON number in range; with ``integer``, any number without a fraction (as JSON Schema)."""
    raw: Any = data.get(name)
    value: int | float | None = None
    if isinstance(raw, int) and not isinstance(raw, bool):
        value = raw
    elif isinstance(raw, float) and math.isfinite(raw) and (raw.is_integer() or not integer):
        value = int(raw) if integer else raw
    if value is None or not minimum <= value <= maximum:
        kind = "an integer" if integer else "a number"
        bound = f"from {minimum:g} to {maximum:.15g}" if math.isfinite(maximum) else f">= {minimum:g}"
        raise ControlError(400, f"'{name}' must be {kind} {bound}")
    return value


def optional_text(data: dict[str, Any], name: str) -> str | None:
    """A string field that may be absent or null."""
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ControlError(400, f"'{name}' must be a string or null")
    return value


def _error_response(exc: ControlError | web.HTTPException) -> web.Response:
    if isinstance(exc, ControlError):
        return json_reply({"error": {"code": exc.code, "message": exc.message}}, exc.status)
    code = exc.reason.lower().replace(" ", "_")
    response = json_reply({"error": {"code": code, "message": exc.text}}, exc.status)
    if "Allow" in exc.headers:  # a 405 names the methods the resource does accept
        response.headers["Allow"] = exc.headers["Allow"]
    return response


def _refusal_response(refusal: Refusal) -> web.Response:
    response = json_reply({"error": {"code": refusal.code, "message": refusal.message}}, refusal.status)
    response.headers.update(refusal.headers)
    return response


def guarded(handler: ControlHandler, *, public: bool = False) -> ControlHandler:
    """``handler`` behind the control API's access check (``access.ControlAccess``), with its
    ``ControlError``s and HTTP errors answered as JSON (a wrapper, not a middleware: any middleware would
    also wrap every provider request). Every control route, the 404/405 fallback included, is one; a
    ``public`` one (the dashboard's static files) skips only the token. A failing state backend
    (``StateError``) is a JSON 503."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        refusal = request.app[ACCESS].refusal(request, public=public)
        if refusal is not None:
            return _refusal_response(refusal)
        try:
            return await handler(request)
        except ControlError as exc:
            return _error_response(exc)
        except StateError as exc:
            # The state backend failed: a 503 to retry, one log line, no traceback.
            request.app[MOCK].services.state.errors += 1
            log.warning("control %s %s: the state backend failed: %s", request.method, request.path, exc)
            response = _error_response(
                ControlError(503, f"the state backend is unavailable: {exc}", "unavailable")
            )
            response.headers["Retry-After"] = RETRY_AFTER_SECONDS  # as the providers' own 503 says
            return response
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _error_response(exc)

    return guarded


def unrouted(router: web.UrlDispatcher) -> ControlHandler:
    """The control API's answer to what its routes (all registered by now) do not serve: 404, or 405."""
    routed = list(router.resources())

    async def unrouted(request: web.Request) -> web.StreamResponse:
        allowed: set[str] = set()
        for resource in routed:
            _, methods = await resource.resolve(request)
            allowed |= methods
        if allowed:
            raise web.HTTPMethodNotAllowed(request.method, sorted(allowed))
        raise web.HTTPNotFound()

    return guarded(unrouted)


def mock_of(request: web.Request) -> Mock:
    """The mock a control request steers."""
    return request.app[MOCK]
