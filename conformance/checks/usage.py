"""Token usage adds up: ``total_tokens == prompt_tokens + completion_tokens``, plain and streamed.

Applies to every operation whose JSON answer declares a ``usage`` object with the three OpenAI-style counts.
Each documented example is sent as it is documented (models filled in); an operation that may stream is also
sent every example streamed with ``stream_options.include_usage`` where its request schema has that option,
and the usage chunk is held to the same arithmetic. A ``max_tokens`` in the request also bounds
``completion_tokens``.
"""

from __future__ import annotations

import json
from typing import Any

from conformance.checks import BehaviourCheck, Outcome
from conformance.checks.bodies import documented_bodies
from conformance.client import Exchange
from conformance.context import Context, Skip
from conformance.spec import SSE, OperationInfo, SpecInfo
from mockserver.core.spec import resolve

CHECK = "usage.arithmetic"
COUNTS = ("prompt_tokens", "completion_tokens", "total_tokens")
DONE = "[DONE]"


def _has_usage(spec: SpecInfo, schema: Any, depth: int = 0) -> bool:
    schema = resolve(spec.document, schema or {})
    if not isinstance(schema, dict) or depth > 4:
        return False
    usage = resolve(spec.document, schema.get("properties", {}).get("usage", {}))
    if all(name in usage.get("properties", {}) for name in COUNTS):
        return True
    return any(_has_usage(spec, b, depth + 1) for k in ("allOf", "oneOf", "anyOf") for b in schema.get(k, []))


def usage_operations(spec: SpecInfo) -> list[OperationInfo]:
    """Operations whose 200 JSON answer declares OpenAI-style ``usage``."""
    return [op for op in spec.operations if _has_usage(spec, spec.response_schema(op, 200))]


def _applies(spec: SpecInfo) -> str | None:
    return None if usage_operations(spec) else "no operation answers with prompt/completion/total usage"


def _streams_usage(spec: SpecInfo, op: OperationInfo) -> bool:
    """Whether the operation may stream and its request can ask for a usage chunk."""
    if op not in spec.streaming_operations():
        return False
    schema = resolve(spec.document, spec.request_schema(op) or {})
    options = resolve(spec.document, schema.get("properties", {}).get("stream_options", {}))
    return "include_usage" in options.get("properties", {})


def usage_problems(usage: Any, max_tokens: Any = None) -> list[str]:
    """What is wrong with a usage object: missing or non-integer counts, a wrong total, too many tokens."""
    if not isinstance(usage, dict):
        return ["the answer carries no usage object"]
    raw = [usage.get(name) for name in COUNTS]
    counts = [c for c in raw if isinstance(c, int) and not isinstance(c, bool)]
    if len(counts) != len(COUNTS):
        return [f"usage lacks integer token counts: {json.dumps(usage)}"]
    prompt, completion, total = counts
    problems = []
    if prompt + completion != total:
        problems.append(f"usage does not add up: {prompt} + {completion} != total_tokens {total}")
    if min(counts) < 0:
        problems.append(f"negative token count in usage {json.dumps(usage)}")
    if isinstance(max_tokens, int) and completion > max_tokens:
        problems.append(f"completion_tokens {completion} exceeds the request's max_tokens {max_tokens}")
    return problems


def streamed_usage(exchange: Exchange) -> tuple[Any, str | None]:
    """The usage of a streamed answer and, when there is not exactly one usage chunk, why."""
    found = []
    for data in exchange.events or []:
        if data == DONE:
            continue
        try:
            chunk = json.loads(data)
        except ValueError:
            continue
        if isinstance(chunk, dict) and chunk.get("usage") is not None:
            found.append(chunk["usage"])
    if len(found) != 1:
        return None, f"include_usage asked for one usage chunk, the stream carried {len(found)}"
    return found[0], None


def check_arithmetic(ctx: Context) -> Outcome:
    """Every documented chat example, plain and streamed: the usage counts add up."""
    out = Outcome()
    operations = usage_operations(ctx.spec)
    if ctx.settings.spend == "none" and all(op.operation_id in ctx.profile.costly for op in operations):
        ctx.require_spend("billed completions")
    plain = streamed = 0
    for op in operations:
        if op.operation_id in ctx.profile.costly and ctx.settings.spend == "none":
            continue
        for name, body in documented_bodies(ctx, op):
            body = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
            exchange = ctx.call(op, json_body=body)
            if exchange.status == 200:
                plain += 1
                for problem in usage_problems(_usage(exchange.json()), body.get("max_tokens")):
                    message = f"example {name!r}, not streamed: {problem}"
                    out.add(ctx.violation(CHECK, op, message, exchange, f"{op.pointer}/responses/200"))
            if not _streams_usage(ctx.spec, op):
                continue
            asked = {**body, "stream": True, "stream_options": {"include_usage": True}}
            exchange = ctx.call(op, json_body=asked, stream=True)
            if exchange.status != 200 or exchange.media_type != SSE:
                continue
            streamed += 1
            usage, missing = streamed_usage(exchange)
            problems = [missing] if missing else usage_problems(usage, body.get("max_tokens"))
            for problem in problems:
                message = f"example {name!r}, streamed: {problem}"
                pointer = f"{op.pointer}/responses/200/content/{SSE.replace('/', '~1')}"
                out.add(ctx.violation(CHECK, op, message, exchange, pointer))
    if not plain and not streamed:
        raise Skip("no documented example was answered 200")
    out.detail = f"{plain} plain and {streamed} streamed answers checked"
    return out


def _usage(body: Any) -> Any:
    return body.get("usage") if isinstance(body, dict) else None


CHECKS = [BehaviourCheck(CHECK, "Usage totals add up, plain and streamed", _applies, check_arithmetic)]
