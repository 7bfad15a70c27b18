"""The control API under ``/_mock/``: what tests use to steer the mock (described in specs/control.yaml)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from mockserver.core.pipeline import request_origin
from mockserver.mock import Mock

ControlHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_MOCK = web.AppKey("control_mock", Mock)


class ControlError(Exception):
    """A control request the mock cannot honour (rendered as a JSON 4xx)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    if not request.body_exists:
        return {}
    try:
        data = json.loads(await request.read())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ControlError(400, f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ControlError(400, "body must be a JSON object")
    return data


def _number(data: dict[str, Any], name: str, *, minimum: float = 0, integer: bool = False) -> Any:
    value = data.get(name)
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or value < minimum:
        kind = "an integer" if integer else "a number"
        raise ControlError(400, f"'{name}' must be {kind} >= {minimum}")
    return value


@web.middleware
async def _errors(request: web.Request, handler: ControlHandler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ControlError as exc:
        return _json({"error": {"code": "invalid_request", "message": exc.message}}, exc.status)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _json(
            {"error": {"code": exc.reason.lower().replace(" ", "_"), "message": exc.text}}, exc.status
        )


def _mock(request: web.Request) -> Mock:
    return request.app[_MOCK]


async def providers(request: web.Request) -> web.Response:
    """``GET /_mock/providers``: base URL, key, organization and models of each provider."""
    mock = _mock(request)
    origin = request_origin(request)
    listing = []
    for provider_id, service in mock.providers.items():
        state = mock.services.store[provider_id]
        described = service.module.describe(state)
        listing.append(
            {
                "id": provider_id,
                "base_url": origin + service.mount,
                "api_key": state.primary_key().key,
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
    now = clock.advance(float(_number(data, "seconds")))
    # Let jobs due by now finish before answering, so tests see their effects at once.
    await _mock(request).services.jobs.settle()
    return _json({"now": now, "offset": clock.offset})


async def requests_journal(request: web.Request) -> web.Response:
    """``GET /_mock/requests?provider=&limit=``: the request journal, oldest first."""
    provider = request.query.get("provider")
    limit_text = request.query.get("limit")
    if limit_text is not None and not limit_text.isdigit():
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
    provider = data.get("provider")
    if provider is not None and provider not in mock.providers:
        raise ControlError(400, f"unknown provider {provider!r}")
    status = data.get("status")
    if status is not None and (not isinstance(status, int) or not 400 <= status <= 599):
        raise ControlError(400, "'status' must be an HTTP error status (400-599)")
    count = data.get("count", 1)
    if count is not None and (not isinstance(count, int) or count < 1):
        raise ControlError(400, "'count' must be a positive integer or null (until cleared)")
    latency = _number(data, "latency_ms") if "latency_ms" in data else 0.0
    cut = _number(data, "cut_after_events", integer=True) if "cut_after_events" in data else None
    if status is None and not latency and cut is None:
        raise ControlError(400, "a fault needs 'status', 'latency_ms' or 'cut_after_events'")
    fault = mock.faults.add(
        provider=provider,
        operation_id=data.get("operation_id"),
        remaining=count,
        status=status,
        message=data.get("message"),
        body=data.get("body"),
        headers={str(k): str(v) for k, v in (data.get("headers") or {}).items()},
        latency_ms=float(latency),
        cut_after_events=cut,
    )
    return _json({"id": fault.id}, 201)


async def list_faults(request: web.Request) -> web.Response:
    """``GET /_mock/faults``: the active faults."""
    return _json({"faults": _mock(request).faults.list()})


async def clear_faults(request: web.Request) -> web.Response:
    """``DELETE /_mock/faults``: remove every fault."""
    _mock(request).faults.clear()
    return _json({"faults": []})


def build_control_app(mock: Mock) -> web.Application:
    """The ``/_mock`` sub-application."""
    app = web.Application(middlewares=[_errors])
    app[_MOCK] = mock
    app.router.add_get("/providers", providers)
    app.router.add_post("/reset", reset)
    app.router.add_get("/clock", get_clock)
    app.router.add_post("/clock/advance", advance_clock)
    app.router.add_get("/requests", requests_journal)
    app.router.add_get("/violations", violations)
    app.router.add_post("/faults", add_fault)
    app.router.add_get("/faults", list_faults)
    app.router.add_delete("/faults", clear_faults)
    return app
