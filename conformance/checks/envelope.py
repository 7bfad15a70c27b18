"""Error envelope: every error response is the spec's ``Error`` schema (echoing the status where it says so).

Looks at every error response schemathesis received, plus errors the check provokes on purpose: a missing
and a wrong key (401), malformed JSON (400), an unknown path (404) and an undeclared method (405).
"""

from __future__ import annotations

import json
from typing import Any

from conformance.checks import BehaviourCheck, Outcome
from conformance.client import Exchange
from conformance.context import Context, NotApplicable
from conformance.spec import OperationInfo, SpecInfo

WRONG_KEY = "conformance-invalid-key-0000"
UNKNOWN_PATH = "/conformance-no-such-path"


def _pointer_value(document: Any, pointer: str) -> Any:
    node = document
    for part in pointer.lstrip("/").split("/"):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(pointer)
        node = node[part]
    return node


def envelope_problems(spec: SpecInfo, status_pointer: str | None, exchange: Exchange) -> list[str]:
    """Why an error response is not in the spec's ``Error`` envelope (empty when it is)."""
    body = exchange.json()
    if exchange.media_type != "application/json" or body is None:
        return [
            f"the {exchange.status} response is not JSON (Content-Type {exchange.media_type or 'missing'})"
        ]
    found = [f"envelope {e}" for e in spec.errors({"$ref": "#/components/schemas/Error"}, body)]
    if status_pointer:
        try:
            value = _pointer_value(body, status_pointer)
        except KeyError:
            found.append(f"the envelope has no {status_pointer} to echo the status {exchange.status}")
        else:
            if value != exchange.status:
                found.append(
                    f"{status_pointer} is {json.dumps(value)} but the HTTP status is {exchange.status}"
                )
    return found


def problems(ctx: Context, exchange: Exchange) -> list[str]:
    """Why an error response is not in the provider's envelope (empty when it is)."""
    return envelope_problems(ctx.spec, ctx.profile.status_pointer, exchange)


def _cheap_authenticated(spec: SpecInfo, ctx: Context) -> OperationInfo | None:
    ops = [op for op in spec.operations if not op.public]
    ops.sort(key=lambda op: (op.operation_id in ctx.profile.costly, op.method != "GET", "{" in op.path))
    return ops[0] if ops else None


def _json_body_operation(spec: SpecInfo, ctx: Context) -> OperationInfo | None:
    ops = [op for op in spec.operations if spec.request_schema(op) is not None and not op.public]
    ops.sort(key=lambda op: (op.operation_id in ctx.profile.costly, "{" in op.path))
    return ops[0] if ops else None


def _provoke(ctx: Context) -> list[tuple[OperationInfo | str, Exchange, int | None]]:
    """Requests that must fail, with the status each must fail with (``None``: any 4xx)."""
    provoked: list[tuple[OperationInfo | str, Exchange, int | None]] = []
    op = _cheap_authenticated(ctx.spec, ctx)
    if op is not None:
        path = ctx.path(op, job_id="job_conformance0000", id="0" * 24)
        provoked.append((op, ctx.client.request(op.method, path, auth=False), 401))
        wrong = ctx.spec.auth_headers(WRONG_KEY)
        provoked.append((op, ctx.client.request(op.method, path, auth=False, headers=wrong), 401))
    op = _json_body_operation(ctx.spec, ctx)
    if op is not None:
        malformed = b'{"this is": not json'
        exchange = ctx.call(op, data=malformed, headers={"Content-Type": "application/json"})
        provoked.append((op, exchange, 400))
    provoked.append((f"GET {UNKNOWN_PATH}", ctx.client.request("GET", UNKNOWN_PATH), 404))
    declared = {o.method for o in ctx.spec.operations if o.path == ctx.spec.operations[0].path}
    undeclared = next(m for m in ("DELETE", "PATCH", "PUT", "POST", "GET") if m not in declared)
    first = ctx.spec.operations[0]
    path = ctx.path(first, job_id="job_conformance0000", id="0" * 24)
    # 405 is required only where the spec defines the response; elsewhere any client error will do.
    defines_405 = "MethodNotAllowed" in ctx.spec.document.get("components", {}).get("responses", {})
    exchange = ctx.client.request(undeclared, path)
    provoked.append((f"{undeclared} {first.path}", exchange, 405 if defines_405 else None))
    return provoked


def check_envelope(ctx: Context) -> Outcome:
    """Every error response matches ``components/schemas/Error``."""
    if not ctx.spec.has_schema("Error"):
        raise NotApplicable("the spec defines no Error schema")
    out = Outcome()
    pointer = "#/components/schemas/Error"
    checked = 0
    for op, exchange in ctx.observed:
        if exchange.status < 400:
            continue
        checked += 1
        label = op or f"{exchange.method} {exchange.url}"
        for problem in problems(ctx, exchange):
            violation = ctx.violation("envelope.errors", label, problem, exchange, pointer)
            out.add(violation, key=f"{violation.operation}|{exchange.status}|{problem.split(':')[0]}")
    for target, exchange, expected in _provoke(ctx):
        checked += 1
        wrong = exchange.status != expected if expected else not 400 <= exchange.status < 500
        if wrong:
            message = f"expected {expected or 'a 4xx status'}, got {exchange.status}"
            out.add(ctx.violation("envelope.errors", target, message, exchange))
        if exchange.status < 400:
            continue
        for problem in problems(ctx, exchange):
            out.add(ctx.violation("envelope.errors", target, problem, exchange, pointer))
    out.detail = f"{checked} error responses checked"
    return out


CHECKS = [
    BehaviourCheck(
        id="envelope.errors",
        title="Every error response is in the provider's envelope",
        applies=lambda spec: None if spec.has_schema("Error") else "the spec defines no Error schema",
        run=check_envelope,
    ),
]
