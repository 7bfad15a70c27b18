"""Streaming chat (operations whose 200 may be ``text/event-stream``): events, ``[DONE]``, usage, consistency.

One streamed request with ``stream_options.include_usage``; then the same request twice without streaming.
When those two agree the target is deterministic, and the streamed text must equal the plain one.
"""

from __future__ import annotations

import json
from typing import Any

from conformance.checks import BehaviourCheck, Outcome
from conformance.client import Exchange
from conformance.context import Context, Skip
from conformance.spec import SSE, OperationInfo, SpecInfo

DONE = "[DONE]"
PROMPT = "Reply with a short greeting for a conformance test."
MAX_TOKENS = 24


def _applies(spec: SpecInfo) -> str | None:
    return None if spec.streaming_operations() else "the spec has no text/event-stream response"


def chat_body(ctx: Context, op: OperationInfo, *, stream: bool) -> dict[str, Any]:
    """An OpenAI-style chat request for a known model, checked against the operation's request schema."""
    body: dict[str, Any] = {
        "model": ctx.model("language"),
        "messages": [{"role": "user", "content": PROMPT}],
        "max_tokens": MAX_TOKENS,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    schema = ctx.spec.request_schema(op)
    if schema is not None and (errors := ctx.spec.errors(schema, body)):
        raise Skip(f"cannot build a valid chat request for {op.operation_id}: {errors[0]}")
    return body


def _usage_problems(usage: Any) -> list[str]:
    if not isinstance(usage, dict):
        return ["usage is missing"]
    try:
        prompt, completion, total = (
            int(usage[k]) for k in ("prompt_tokens", "completion_tokens", "total_tokens")
        )
    except (KeyError, TypeError, ValueError):
        return [f"usage lacks integer token counts: {json.dumps(usage)}"]
    if prompt + completion != total:
        return [f"usage does not add up: {prompt} + {completion} != {total}"]
    return []


def stream_pointer(op: OperationInfo) -> str:
    """The spec pointer of an operation's event-stream response."""
    return f"{op.pointer}/responses/200/content/{SSE.replace('/', '~1')}"


def event_problems(spec: SpecInfo, op: OperationInfo, index: int, data: str) -> list[str]:
    """What is wrong with one event's ``data`` as it passes: not JSON, or not the spec's chunk schema."""
    if data == DONE:
        return []
    try:
        chunk = json.loads(data)
    except ValueError:
        return [f"event {index} is not JSON: {data[:80]!r}"]
    payload = spec.event_payload_schema(op) or {}
    return [f"event {index}: {error}" for error in spec.errors(payload, chunk)[:3]]


def _chunks(events: list[str]) -> list[dict[str, Any]]:
    chunks = []
    for data in events:
        if data != DONE:
            try:
                chunk = json.loads(data)
            except ValueError:
                continue
            if isinstance(chunk, dict):
                chunks.append(chunk)
    return chunks


def framing_problems(events: list[str], include_usage: bool) -> list[str]:
    """What is wrong with a whole stream: ``[DONE]`` once and last, one id, usage chunk, a finish_reason."""
    found = []
    if not events or events[-1] != DONE:
        found.append(f"the last event is not {DONE}")
    if events.count(DONE) != 1:
        found.append(f"{DONE} was sent {events.count(DONE)} times")
    chunks = _chunks(events)
    ids = {chunk.get("id") for chunk in chunks}
    if len(ids) > 1:
        found.append(f"the chunks carry {len(ids)} different ids")
    if include_usage:
        usage_chunks = [c for c in chunks if c.get("usage") is not None]
        if len(usage_chunks) != 1:
            found.append(f"include_usage asked for one usage chunk, got {len(usage_chunks)}")
        elif usage_chunks[0] is not chunks[-1] or usage_chunks[0].get("choices"):
            found.append("the usage chunk must be last before [DONE], with choices []")
        if usage_chunks:
            found += _usage_problems(usage_chunks[0]["usage"])
    finishes = [
        ch.get("finish_reason") for c in chunks for ch in c.get("choices") or [] if isinstance(ch, dict)
    ]
    if not any(finishes):
        found.append("no chunk carries a finish_reason")
    return found


def streamed(ctx: Context) -> dict[str, Any]:
    """The streamed answer (sent once per run and cached): exchange, chunks, content, usage."""
    if "stream" not in ctx.cache:
        op = ctx.spec.streaming_operations()[0]
        body = chat_body(ctx, op, stream=True)
        exchange = ctx.call(op, json_body=body, stream=True)
        chunks: list[Any] = []
        for data in exchange.events or []:
            if data != DONE:
                try:
                    chunks.append(json.loads(data))
                except ValueError:
                    chunks.append(None)
        content = "".join(
            str(choice.get("delta", {}).get("content") or "")
            for chunk in chunks
            if isinstance(chunk, dict)
            for choice in chunk.get("choices") or []
            if isinstance(choice, dict)
        )
        usage = next(
            (c["usage"] for c in chunks if isinstance(c, dict) and isinstance(c.get("usage"), dict)), None
        )
        ctx.cache["stream"] = {
            "op": op,
            "body": body,
            "exchange": exchange,
            "chunks": chunks,
            "content": content,
            "usage": usage,
        }
    cached: dict[str, Any] = ctx.cache["stream"]
    return cached


def check_events(ctx: Context) -> Outcome:
    """Every event validates, ``[DONE]`` comes last and once, the usage chunk is there and adds up."""
    ctx.require_spend("a streamed chat completion")
    out = Outcome()
    result = streamed(ctx)
    op: OperationInfo = result["op"]
    exchange: Exchange = result["exchange"]
    check = "streaming.events"
    if exchange.status != 200 or exchange.media_type != SSE:
        out.add(ctx.violation(check, op, f"expected a 200 {SSE} answer to stream: true", exchange))
        return out
    events = exchange.events or []
    pointer = stream_pointer(op)
    for index, data in enumerate(events):
        for problem in event_problems(ctx.spec, op, index, data):
            # One schema error is listed once, whichever event carried it.
            schema_error = problem.startswith("event ") and " is not JSON: " not in problem
            key = f"schema|{problem.split(': ', 1)[-1]}" if schema_error else None
            out.add(ctx.violation(check, op, problem, exchange, pointer), key=key)
    for problem in framing_problems(events, include_usage=True):
        out.add(ctx.violation(check, op, problem, exchange, pointer))
    out.detail = f"{len(events)} events, {len(result['content'])} characters streamed"
    return out


def check_consistency(ctx: Context) -> Outcome:
    """Streamed content equals the non-streamed content of the same request (on a deterministic target)."""
    ctx.require_spend("streamed and plain chat completions")
    result = streamed(ctx)
    op: OperationInfo = result["op"]
    if result["exchange"].status != 200:
        raise Skip("the streamed request failed (see streaming.events)")
    out = Outcome()
    body = {k: v for k, v in result["body"].items() if k not in ("stream", "stream_options")}
    plain = [ctx.call(op, json_body=body) for _ in range(2)]
    answers = []
    for exchange in plain:
        data = exchange.json()
        try:
            answers.append((str(data["choices"][0]["message"]["content"]), data.get("usage")))
        except (TypeError, KeyError, IndexError):
            out.add(ctx.violation("streaming.consistency", op, "no choices[0].message.content", exchange))
    if out.violations:
        return out
    (first, usage), (second, _) = answers
    if first != second:
        raise Skip("the target is not deterministic: the same request answered differently twice")
    if result["content"] != first:
        message = f"streamed content {result['content'][:120]!r} != non-streamed {first[:120]!r}"
        out.add(ctx.violation("streaming.consistency", op, message, result["exchange"]))
    streamed_usage = result["usage"] or {}
    for key in ("prompt_tokens", "completion_tokens"):
        if isinstance(usage, dict) and streamed_usage.get(key) != usage.get(key):
            message = f"streamed usage {key} {streamed_usage.get(key)} != non-streamed {usage.get(key)}"
            out.add(ctx.violation("streaming.consistency", op, message, result["exchange"]))
    out.detail = "deterministic target; streamed and plain answers compared"
    return out


CHECKS = [
    BehaviourCheck("streaming.events", "SSE chunks, [DONE] once and last, usage", _applies, check_events),
    BehaviourCheck(
        "streaming.consistency", "Streamed text equals the plain answer", _applies, check_consistency
    ),
]
