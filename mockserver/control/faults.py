"""Control routes for injected faults: ``/_mock/faults``."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from mockserver.control.base import (
    ControlError,
    ControlHandler,
    json_reply,
    mock_of,
    number,
    optional_text,
    read_body,
)
from mockserver.state.records import FaultRecord

_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_HEADER_VALUE = re.compile(r"[^\x00-\x08\x0a-\x1f\x7f]*")
"""A header value aiohttp can send: no control characters but horizontal tab."""

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
    data = await read_body(request)
    unknown = set(data) - _FAULT_FIELDS
    if unknown:
        raise ControlError(400, f"unknown fault fields: {sorted(unknown)}")
    mock = mock_of(request)
    provider = optional_text(data, "provider")
    if provider is not None and provider not in mock.providers:
        raise ControlError(400, f"unknown provider {provider!r}")
    status = None
    if data.get("status") is not None:
        status = number(data, "status", minimum=400, maximum=599, integer=True)
    count = None
    if data.get("count", 1) is not None:
        count = number({"count": 1, **data}, "count", minimum=1, integer=True)
    latency = number(data, "latency_ms") if "latency_ms" in data else 0.0
    cut = number(data, "cut_after_events", integer=True) if "cut_after_events" in data else None
    if status is None and not latency and cut is None:
        raise ControlError(400, "a fault needs 'status', 'latency_ms' or 'cut_after_events'")
    fault = await mock.state.add_fault(
        FaultRecord(
            id=0,
            provider=provider,
            operation_id=optional_text(data, "operation_id"),
            remaining=count,
            status=status,
            message=optional_text(data, "message"),
            body=data.get("body"),
            headers=_fault_headers(data.get("headers")),
            latency_ms=float(latency),
            cut_after_events=cut,
        )
    )
    return json_reply({"id": fault.id}, 201)


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
    return json_reply({"faults": [fault.to_json() for fault in await mock_of(request).state.faults()]})


async def clear_faults(request: web.Request) -> web.Response:
    """``DELETE /_mock/faults``: remove every fault."""
    await mock_of(request).state.clear_faults()
    return json_reply({"faults": []})


FAULT_ROUTES: list[tuple[str, str, ControlHandler]] = [
    ("POST", "/faults", add_fault),
    ("GET", "/faults", list_faults),
    ("DELETE", "/faults", clear_faults),
]
"""Fault routes, relative to ``/_mock``."""
