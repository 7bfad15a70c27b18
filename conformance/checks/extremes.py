"""Schema-valid extremes in every body field: never a server error, and every job started reaches its end.

For each operation with a JSON body, the documented examples (models filled in; one variant per value of a
top-level enum field, such as a request ``type``, with a model of that type) are the bases. Every scalar field
the body schema declares, present in the base or not, is then set, one at a time, to the extremes its schema
allows: the largest integer (the ``maximum``, else 2^63-1 and 1e20 written as a float) and number (the
``maximum``, else the largest double), the empty string, a lone UTF-16 surrogate and a string as long as
``maxLength`` (else 10,000 characters). Only bodies the schema accepts are sent. An answer is a violation
when it is a 5xx the operation does not declare (500 never is), or a 2xx that is not the JSON its schema
says. A 2xx that starts a job (the answer's ``links`` name a poll operation the profile knows the terminal
statuses of) is polled until it ends, within ``--poll-timeout``.

``extremes.values`` covers the operations that cost nothing; ``extremes.costly`` the ones that cost money,
only with ``--allow-spend full`` (each extreme is another billed request).
"""

from __future__ import annotations

import copy
import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from conformance.checks import BehaviourCheck, Outcome
from conformance.checks.bodies import MODEL_FIELDS, PLACEHOLDER, documented_bodies, fill
from conformance.checks.jobs import FIRST_POLL, MAX_POLL
from conformance.client import Exchange
from conformance.context import Context, NotApplicable, Skip
from conformance.spec import JSON, OperationInfo, SpecInfo
from mockserver.core.spec import resolve

LONG_STRING = 10_000
"""Length of the long string where the schema sets no ``maxLength``."""
SURROGATE = "\ud800"
MAX_DEPTH = 4
MAX_PER_OPERATION = 150
"""Requests per operation at most; the cases are ordered so that a cut keeps every kind of extreme."""
MAX_JOBS = 30
"""Jobs polled per check at most (each to its terminal state)."""

Path = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Case:
    """One request: a base body with one field set to an extreme."""

    base: str
    path: Path
    value: Any
    body: dict[str, Any]

    @property
    def label(self) -> str:
        """``example 'documented' with settings.max_tokens = 9223372036854775807``."""
        return f"example {self.base!r} with {_dotted(self.path)} = {_show(self.value)}"


def _dotted(path: Path) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def _show(value: Any) -> str:
    if isinstance(value, str) and len(value) > 40:
        return f"{value[:12]!r}... ({len(value)} characters)"
    return ascii(value) if isinstance(value, str) else json.dumps(value)


def _types(schema: dict[str, Any]) -> set[str]:
    declared = schema.get("type")
    return (
        set(declared) if isinstance(declared, list) else ({declared} if isinstance(declared, str) else set())
    )


def extremes(schema: dict[str, Any]) -> list[Any]:
    """The extreme values a scalar schema allows (filtered later against the whole body schema)."""
    if "enum" in schema or "const" in schema or str(schema.get("format", "")).startswith("uri"):
        return []
    types, found = _types(schema), list[Any]()
    if "integer" in types:
        if "maximum" in schema:
            found.append(int(schema["maximum"]))
        elif "exclusiveMaximum" in schema:
            found.append(int(schema["exclusiveMaximum"]) - 1)
        else:
            found += [2**63 - 1, 1e20]
    elif "number" in types:
        if "maximum" in schema:
            found.append(schema["maximum"])
        else:
            found.append(sys.float_info.max)
    if "string" in types:
        length = int(schema.get("maxLength", LONG_STRING))
        found += ["", SURROGATE, "x" * length]
    return found


def _branches(spec: SpecInfo, schema: dict[str, Any]) -> list[dict[str, Any]]:
    parts = [schema]
    for key in ("allOf", "oneOf", "anyOf"):
        parts += [resolve(spec.document, b) for b in schema.get(key, [])]
    return parts


def leaves(spec: SpecInfo, schema: Any, value: Any, path: Path = ()) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every scalar field of a schema, with the path to it in a body like ``value``.

    Objects are entered whether the body has them or not; arrays only where the body has a first item.
    """
    schema = resolve(spec.document, schema or {})
    if len(path) > MAX_DEPTH or not isinstance(schema, dict):
        return
    for part in _branches(spec, schema):
        properties = part.get("properties", {})
        for name, child in properties.items():
            inner = value.get(name) if isinstance(value, dict) else None
            yield from leaves(spec, child, inner, (*path, name))
        items = part.get("items")
        if items is not None and isinstance(value, list) and value:
            yield from leaves(spec, items, value[0], (*path, 0))
        if not properties and items is None and path:
            yield path, part


def _valid(spec: SpecInfo, schema: dict[str, Any], body: Any) -> bool:
    """Whether the schema accepts the body; a lone surrogate is judged as the one character it is (the
    validator cannot take strings that are not UTF-8)."""
    return not spec.errors(schema, _without_surrogates(body))


def _without_surrogates(value: Any) -> Any:
    if isinstance(value, str):
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in value)
    if isinstance(value, list):
        return [_without_surrogates(v) for v in value]
    if isinstance(value, dict):
        return {_without_surrogates(k): _without_surrogates(v) for k, v in value.items()}
    return value


def set_path(body: dict[str, Any], path: Path, value: Any) -> dict[str, Any] | None:
    """A copy of ``body`` with ``value`` at ``path`` (missing objects created), or None when it can't be."""
    copied = copy.deepcopy(body)
    node: Any = copied
    for part in path[:-1]:
        if isinstance(part, int):
            if not isinstance(node, list) or len(node) <= part:
                return None
            node = node[part]
        else:
            if not isinstance(node, dict):
                return None
            node = node.setdefault(part, {})
    if isinstance(path[-1], int) or not isinstance(node, dict):
        return None
    node[path[-1]] = value
    return copied


def bases(ctx: Context, op: OperationInfo) -> list[tuple[str, dict[str, Any]]]:
    """The documented bodies, and one variant per value of each top-level enum field they carry."""
    schema = resolve(ctx.spec.document, ctx.spec.request_schema(op) or {})
    found = documented_bodies(ctx, op)
    for name, body in list(found):
        for field_name, prop in schema.get("properties", {}).items():
            prop = resolve(ctx.spec.document, prop)
            if field_name not in body or "enum" not in prop:
                continue
            for choice in prop["enum"]:
                if choice == body[field_name]:
                    continue
                changed = {**body, field_name: choice}
                changed.update({m: "<model-id>" for m in MODEL_FIELDS if m in body})
                variant = fill(ctx, op, changed, str(choice))
                unknown = any(PLACEHOLDER.search(str(variant.get(m, ""))) for m in MODEL_FIELDS)
                if not unknown and not ctx.spec.errors(schema, variant):
                    found.append((f"{name}, {field_name} {choice}", variant))
    return found


def cases(ctx: Context, op: OperationInfo) -> list[Case]:
    """Every schema-valid extreme body of an operation, interleaved across bases so a cut keeps variety."""
    schema = ctx.spec.request_schema(op)
    if schema is None:
        return []
    per_base: list[list[Case]] = []
    seen: set[str] = set()
    for name, body in bases(ctx, op):
        found = []
        for path, leaf in leaves(ctx.spec, schema, body):
            for value in extremes(leaf):
                changed = set_path(body, path, value)
                if changed is None or not _valid(ctx.spec, schema, changed):
                    continue
                key = json.dumps(changed, sort_keys=True)
                if key not in seen:
                    seen.add(key)
                    found.append(Case(name, path, value, changed))
        per_base.append(found)
    ordered = [case for row in _zip_longest(per_base) for case in row]
    return ordered[:MAX_PER_OPERATION]


def _zip_longest(rows: list[list[Case]]) -> Iterator[list[Case]]:
    for index in range(max((len(r) for r in rows), default=0)):
        yield [row[index] for row in rows if index < len(row)]


@dataclass(slots=True)
class _Job:
    op: OperationInfo
    params: dict[str, str]
    field: str
    statuses: tuple[str, ...]
    origin: str
    exchange: Exchange


def _allowed_5xx(op: OperationInfo) -> set[int]:
    """Server-side statuses the operation declares as behaviour (a 502 for a failed upstream); never 500."""
    return {int(k) for k in op.raw.get("responses", {}) if k.isdigit() and k.startswith("5") and k != "500"}


def _jobs_started(ctx: Context, op: OperationInfo, exchange: Exchange, case: Case) -> list[_Job]:
    """The poll operations the answer links to, with their parameters filled from the request and answer."""
    key = op.response_key(exchange.status)
    response = resolve(ctx.spec.document, op.raw.get("responses", {}).get(key or "", {}))
    body = exchange.json()
    found = []
    for link in response.get("links", {}).values():
        link = resolve(ctx.spec.document, link)
        poll = ctx.spec.operation(str(link.get("operationId")))
        if poll is None or poll.operation_id not in ctx.profile.terminal:
            continue
        params: dict[str, str] = {}
        for name, expression in link.get("parameters", {}).items():
            expression = str(expression)
            if expression.startswith("$response.body#/") and isinstance(body, dict):
                value = body.get(expression.removeprefix("$response.body#/"))
                if value is not None:
                    params[name] = str(value)
            elif expression.startswith("$request.path.") and ctx.settings.org_id:
                params[name] = ctx.settings.org_id
        field, statuses = ctx.profile.terminal[poll.operation_id]
        if isinstance(body, dict) and body.get(field) in statuses:
            continue
        found.append(_Job(poll, params, field, statuses, case.label, exchange))
    return found


def _poll_all(ctx: Context, check: str, jobs: list[_Job], out: Outcome) -> int:
    """Poll every job round-robin until each ends; a job still running at the deadline is a violation."""
    deadline = time.monotonic() + ctx.settings.poll_timeout
    pending, delay, ended = list(jobs), FIRST_POLL, 0
    while pending:
        still = []
        for job in pending:
            exchange = ctx.call(job.op, params=job.params)
            body = exchange.json()
            if exchange.status >= 500 and exchange.status not in _allowed_5xx(job.op):
                message = f"polling the job started by {job.origin} answered {exchange.status}"
                out.add(ctx.violation(check, job.op, message, exchange))
            elif (
                exchange.status == 200 and isinstance(body, dict) and body.get(job.field) not in job.statuses
            ):
                still.append(job)
            else:
                ended += 1
        pending = still
        if pending and time.monotonic() + delay > deadline:
            for job in pending:
                message = (
                    f"the job started by {job.origin} did not reach {' or '.join(job.statuses)} within "
                    f"{ctx.settings.poll_timeout:g} s (--poll-timeout)"
                )
                out.add(ctx.violation(check, job.op, message, job.exchange))
            break
        if pending:
            time.sleep(delay)
            delay = min(MAX_POLL, delay * 1.6)
    return ended


def _judge(ctx: Context, check: str, op: OperationInfo, case: Case, exchange: Exchange, out: Outcome) -> None:
    status = exchange.status
    if status >= 500 and status not in _allowed_5xx(op):
        message = f"{status} answered to {case.label}"
        out.add(ctx.violation(check, op, message, exchange), key=f"{op.label}|{status}|{_dotted(case.path)}")
        return
    if 200 <= status < 300 and op.response_key(status) is not None and exchange.media_type == JSON:
        schema = ctx.spec.response_schema(op, status)
        if schema is None:
            return
        try:
            body = json.loads(exchange.content)
        except ValueError:
            message = f"the {status} answer to {case.label} is not valid JSON"
            out.add(ctx.violation(check, op, message, exchange), key=f"{op.label}|json|{_dotted(case.path)}")
            return
        for error in ctx.spec.errors(schema, _without_surrogates(body))[:1]:
            message = f"the {status} answer to {case.label}: {error}"
            out.add(
                ctx.violation(check, op, message, exchange), key=f"{op.label}|schema|{_dotted(case.path)}"
            )


def _run(ctx: Context, check: str, chosen: Callable[[OperationInfo], bool]) -> Outcome:
    out = Outcome()
    operations = [op for op in ctx.spec.operations if chosen(op) and ctx.spec.request_schema(op) is not None]
    if not operations:
        which = "costs money" if check == "extremes.values" else "costs nothing"
        raise NotApplicable(f"every operation with a JSON request body {which}")
    sent, jobs = 0, list[_Job]()
    for op in operations:
        for case in cases(ctx, op):
            exchange = ctx.call(op, json_body=case.body)
            sent += 1
            _judge(ctx, check, op, case, exchange, out)
            if 200 <= exchange.status < 300 and len(jobs) < MAX_JOBS:
                jobs += _jobs_started(ctx, op, exchange, case)
    if not sent:
        raise NotApplicable("no documented example to build extreme requests from")
    ended = _poll_all(ctx, check, jobs[:MAX_JOBS], out) if jobs else 0
    out.detail = f"{sent} extreme requests to {len(operations)} operations; {ended} of {len(jobs)} jobs ended"
    return out


def _free(ctx: Context) -> Callable[[OperationInfo], bool]:
    return lambda op: op.operation_id not in ctx.profile.costly


def check_values(ctx: Context) -> Outcome:
    """Extremes in the bodies of the operations that cost nothing."""
    return _run(ctx, "extremes.values", _free(ctx))


def check_costly(ctx: Context) -> Outcome:
    """Extremes in the bodies of the operations that cost money (``--allow-spend full`` only)."""
    if ctx.settings.spend != "full":
        raise Skip(
            "each extreme is another billed request: run with --allow-spend full", needs="--allow-spend full"
        )
    return _run(ctx, "extremes.costly", lambda op: op.operation_id in ctx.profile.costly)


def _has_body(spec: SpecInfo) -> str | None:
    return (
        None if any(spec.request_schema(op) for op in spec.operations) else "no operation takes a JSON body"
    )


CHECKS = [
    BehaviourCheck("extremes.values", "Extreme body values: no 5xx, jobs end", _has_body, check_values),
    BehaviourCheck("extremes.costly", "Extremes in billed operations (spend full)", _has_body, check_costly),
]
