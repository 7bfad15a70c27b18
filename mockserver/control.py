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
    # Likewise webhook attempts that became due (bounded by one attempt's timeout).
    await _mock(request).services.webhooks.settle()
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
        raise ControlError(409, "the delivery is still pending; advance the clock to retry it")
    webhooks.resend(delivery.id)
    await webhooks.settle()
    return _json(delivery.public(), 202)


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
    app.router.add_get("/files/{file_id}/{filename}", get_file)
    app.router.add_get("/webhooks", list_webhooks)
    app.router.add_get("/webhooks/secrets", webhook_secrets)
    app.router.add_get("/webhooks/{delivery_id}", get_webhook)
    app.router.add_post("/webhooks/{delivery_id}/resend", resend_webhook)
    from mockserver.control_accounts import add_account_routes  # not at the top: it imports this module

    add_account_routes(app)
    return app
