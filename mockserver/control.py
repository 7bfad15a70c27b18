"""The control API under ``/_mock/``: what tests use to steer the mock (described in specs/control.yaml)."""

from __future__ import annotations

import functools
import json
import math
import re
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from mockserver.core.calls import request_origin
from mockserver.cors import CATCH_ALL, add_fallback
from mockserver.mock import Mock

ControlHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_MOCK = web.AppKey("control_mock", Mock)


MAX_ADVANCE_SECONDS = 10 * 365 * 24 * 3600
"""One clock advance moves at most ten years: far beyond any test, and far from the year 9999 where dates
stop being representable (providers format the clock as dates)."""
_DIGITS = re.compile(r"[0-9]+")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
"""A header value aiohttp can send: no control characters but horizontal tab."""


class ControlError(Exception):
    """A control request the mock cannot honour (rendered as a JSON 4xx)."""

    def __init__(self, status: int, message: str, code: str = "invalid_request") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
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


def _number(
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


def _optional_text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ControlError(400, f"'{name}' must be a string or null")
    return value


def _error_response(exc: ControlError | web.HTTPException) -> web.Response:
    if isinstance(exc, ControlError):
        return _json({"error": {"code": exc.code, "message": exc.message}}, exc.status)
    code = exc.reason.lower().replace(" ", "_")
    response = _json({"error": {"code": code, "message": exc.text}}, exc.status)
    if "Allow" in exc.headers:  # a 405 names the methods the resource does accept
        response.headers["Allow"] = exc.headers["Allow"]
    return response


def _guarded(handler: ControlHandler) -> ControlHandler:
    """``handler`` with its ``ControlError``s and HTTP errors answered as JSON (a wrapper, not a middleware:
    any middleware would also wrap every provider request)."""

    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except ControlError as exc:
            return _error_response(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return _error_response(exc)

    return guarded


def _unrouted(router: web.UrlDispatcher) -> ControlHandler:
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

    return _guarded(unrouted)


def _mock(request: web.Request) -> Mock:
    return request.app[_MOCK]


async def providers(request: web.Request) -> web.Response:
    """``GET /_mock/providers``: base URL, keys, organization and models of each provider."""
    mock = _mock(request)
    origin = request_origin(request)
    listing = []
    for provider_id, service in mock.providers.items():
        state = mock.services.store[provider_id]
        described = service.module.describe(state)
        primary = state.primary_key()
        # The other seeded keys by name (keys created at runtime are shown once, at creation, never here):
        # clients find special-purpose accounts (a nearly empty wallet...) without knowing a provider.
        extra_keys: dict[str, str] = {}
        for key in state.keys.values():
            if key.seeded and key is not primary:
                extra_keys.setdefault(key.name, key.key)
        listing.append(
            {
                "id": provider_id,
                "base_url": origin + service.mount,
                "api_key": primary.key,
                "extra_keys": extra_keys,
                "organization_id": described.get("organization_id"),
                "models": described.get("models", []),
            }
        )
    return _json({"providers": listing})


async def reset(request: web.Request) -> web.Response:
    """``POST /_mock/reset``: back to the seed state."""
    _mock(request).reset()
    return _json({"status": "reset"})


async def get_clock(request: web.Request) -> web.Response:
    """``GET /_mock/clock``: the mock's time and its offset from real time."""
    clock = _mock(request).services.clock
    return _json({"now": clock.now(), "offset": clock.offset})


async def advance_clock(request: web.Request) -> web.Response:
    """``POST /_mock/clock/advance {"seconds"}``: move time forward instantly."""
    data = await _body(request)
    clock = _mock(request).services.clock
    now = clock.advance(float(_number(data, "seconds", maximum=MAX_ADVANCE_SECONDS)))
    # Let jobs due by now finish before answering, so tests see their effects at once.
    await _mock(request).services.jobs.settle()
    # Likewise webhook attempts that became due (bounded by one attempt's timeout).
    await _mock(request).services.webhooks.settle()
    return _json({"now": now, "offset": clock.offset})


async def requests_journal(request: web.Request) -> web.Response:
    """``GET /_mock/requests?provider=&limit=``: the request journal, oldest first."""
    provider = request.query.get("provider")
    limit_text = request.query.get("limit")
    # ASCII digits only: str.isdigit() also accepts digits int() cannot read, such as '²'.
    if limit_text is not None and (not _DIGITS.fullmatch(limit_text) or int(limit_text) < 1):
        raise ControlError(400, "'limit' must be a positive integer")
    entries = _mock(request).journal.entries(provider, int(limit_text) if limit_text else None)
    return _json({"requests": entries})


async def violations(request: web.Request) -> web.Response:
    """``GET /_mock/violations``: responses the mock sent that broke its own spec (should be empty)."""
    return _json({"violations": list(_mock(request).journal.violations)})


_FAULT_FIELDS = {
    "provider",
    "operation_id",
    "count",
    "status",
    "message",
    "body",
    "headers",
    "latency_ms",
    "cut_after_events",
}


async def add_fault(request: web.Request) -> web.Response:
    """``POST /_mock/faults``: inject a fault for the next ``count`` matching calls."""
    data = await _body(request)
    unknown = set(data) - _FAULT_FIELDS
    if unknown:
        raise ControlError(400, f"unknown fault fields: {sorted(unknown)}")
    mock = _mock(request)
    provider = _optional_text(data, "provider")
    if provider is not None and provider not in mock.providers:
        raise ControlError(400, f"unknown provider {provider!r}")
    status = None
    if data.get("status") is not None:
        status = _number(data, "status", minimum=400, maximum=599, integer=True)
    count = None
    if data.get("count", 1) is not None:
        count = _number({"count": 1, **data}, "count", minimum=1, integer=True)
    latency = _number(data, "latency_ms") if "latency_ms" in data else 0.0
    cut = _number(data, "cut_after_events", integer=True) if "cut_after_events" in data else None
    if status is None and not latency and cut is None:
        raise ControlError(400, "a fault needs 'status', 'latency_ms' or 'cut_after_events'")
    fault = mock.faults.add(
        provider=provider,
        operation_id=_optional_text(data, "operation_id"),
        remaining=count,
        status=status,
        message=_optional_text(data, "message"),
        body=data.get("body"),
        headers=_fault_headers(data.get("headers")),
        latency_ms=float(latency),
        cut_after_events=cut,
    )
    return _json({"id": fault.id}, 201)


def _fault_headers(value: Any) -> dict[str, str]:
    """Extra response headers of a fault: names and values the server can really send."""
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(
        isinstance(v, str) and _HEADER_NAME.fullmatch(k) and _HEADER_VALUE.fullmatch(v)
        for k, v in value.items()
    ):
        raise ControlError(400, "'headers' must map header names to values without control characters")
    return dict(value)


async def list_faults(request: web.Request) -> web.Response:
    """``GET /_mock/faults``: the active faults."""
    return _json({"faults": _mock(request).faults.list()})


async def clear_faults(request: web.Request) -> web.Response:
    """``DELETE /_mock/faults``: remove every fault."""
    _mock(request).faults.clear()
    return _json({"faults": []})


async def get_file(request: web.Request) -> web.Response:
    """``GET /_mock/files/{file_id}/{filename}``: a generated output, with its content type."""
    stored = _mock(request).services.files.get(request.match_info["file_id"])
    if stored is None or stored.filename != request.match_info["filename"]:
        raise web.HTTPNotFound(text="no such file")
    return web.Response(body=stored.data, content_type=stored.content_type)


async def list_webhooks(request: web.Request) -> web.Response:
    """``GET /_mock/webhooks?provider=``: webhook deliveries and their attempts, oldest first."""
    deliveries = _mock(request).services.webhooks.deliveries(request.query.get("provider"))
    return _json({"deliveries": [d.public() for d in deliveries]})


async def webhook_secrets(request: web.Request) -> web.Response:
    """``GET /_mock/webhooks/secrets``: the signing secret of each key, for receivers to verify with."""
    mock = _mock(request)
    primary: dict[str, str] = {}
    keys: list[dict[str, str]] = []
    for provider_id, service in mock.providers.items():
        if not service.spec.webhooks:
            continue
        state = mock.services.store[provider_id]
        primary[provider_id] = mock.services.webhooks.secret_for(provider_id, state.primary_key().key)
        for key in state.keys.values():
            secret = mock.services.webhooks.secret_for(provider_id, key.key)
            keys.append({"provider": provider_id, "key_id": key.key_id, "name": key.name, "secret": secret})
    return _json({"secrets": primary, "keys": keys})


async def get_webhook(request: web.Request) -> web.Response:
    """``GET /_mock/webhooks/{delivery_id}``: one delivery."""
    delivery = _mock(request).services.webhooks.get(request.match_info["delivery_id"])
    if delivery is None:
        raise web.HTTPNotFound(text="no such webhook delivery")
    return _json(delivery.public())


async def resend_webhook(request: web.Request) -> web.Response:
    """``POST /_mock/webhooks/{delivery_id}/resend``: a new attempt series with the same webhook-id."""
    webhooks = _mock(request).services.webhooks
    delivery = webhooks.get(request.match_info["delivery_id"])
    if delivery is None:
        raise web.HTTPNotFound(text="no such webhook delivery")
    if delivery.status == "pending":
        raise ControlError(409, "the delivery is still pending; advance the clock to retry it", "conflict")
    webhooks.resend(delivery.id)
    await webhooks.settle()
    return _json(delivery.public(), 202)


ROUTES: list[tuple[str, str, ControlHandler]] = [
    ("GET", "/providers", providers),
    ("POST", "/reset", reset),
    ("GET", "/clock", get_clock),
    ("POST", "/clock/advance", advance_clock),
    ("GET", "/requests", requests_journal),
    ("GET", "/violations", violations),
    ("POST", "/faults", add_fault),
    ("GET", "/faults", list_faults),
    ("DELETE", "/faults", clear_faults),
    ("GET", "/files/{file_id}/{filename}", get_file),
    ("GET", "/webhooks", list_webhooks),
    ("GET", "/webhooks/secrets", webhook_secrets),
    ("GET", "/webhooks/{delivery_id}", get_webhook),
    ("POST", "/webhooks/{delivery_id}/resend", resend_webhook),
]
"""The control API's routes (``specs/control.yaml`` describes them), relative to ``/_mock``."""


def build_control_app(mock: Mock) -> web.Application:
    """The ``/_mock`` sub-application."""
    from mockserver.control_accounts import ACCOUNT_ROUTES  # not at the top: it imports this module

    app = web.Application()
    app[_MOCK] = mock
    for method, path, handler in [*ROUTES, *ACCOUNT_ROUTES]:
        app.router.add_route(method, path, _guarded(handler))
    add_fallback(app.router, CATCH_ALL, _unrouted(app.router), mock.settings)
    return app
