"""Judging live traffic: a request against its operation, the response and each event with the suite's checks.

The rules are the suite's own (``conformance/checks``: envelope, rate-limit headers, streams, usage and
billing arithmetic), called on one exchange at a time. What the suite leaves to schemathesis (declared status,
required headers, content type, body schema) is judged here on the compiled spec, under the same ``schema.*``
names.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from multidict import MultiMapping

from conformance.checks.billing import money_problems, quote_problems
from conformance.checks.envelope import envelope_problems
from conformance.checks.ratelimit import header_problems
from conformance.checks.streaming import event_problems, framing_problems, stream_pointer
from conformance.checks.usage import streamed_usage, usage_operations, usage_problems
from conformance.client import Exchange
from conformance.profiles import profile
from conformance.proxy.routing import MAX_SCHEMA_ERRORS, Finding, Matched, Router, instance_pointer, typed
from conformance.spec import JSON, SSE, OperationInfo, SpecInfo, pointer_escape
from mockserver.core.spec import Operation, load_spec


class Checker:
    """One provider's spec, compiled once, judging requests, responses and events."""

    def __init__(self, provider: str) -> None:
        self.spec = SpecInfo(provider)
        self.profile = profile(provider)
        self._compiled = load_spec(self.spec.path).operations
        self.router = Router(self.spec, self._compiled)
        self._streaming = {op.operation_id for op in self.spec.streaming_operations()}
        self._usage = {op.operation_id for op in usage_operations(self.spec)}
        self._rate_limited = self.spec.rate_limited()
        self._has_error = self.spec.has_schema("Error")

    def applies(self, check: str) -> str | None:
        """``None`` when the proxy applies a check to this spec, else why not."""
        quotes = None if self.spec.has("createQuote") else "the spec has no createQuote operation"
        reasons = {
            "envelope.errors": None if self._has_error else "the spec defines no Error schema",
            "ratelimit.headers": None if self._rate_limited else "the spec declares no rate-limit headers",
            "streaming.events": None if self._streaming else "the spec has no text/event-stream response",
            "usage.arithmetic": None if self._usage else "no operation answers with token usage",
            "billing.quote": quotes,
            "billing.charges": quotes,
        }
        return reasons.get(check)

    def compiled_operations(self) -> list[Operation]:
        """The spec's operations, compiled (parameters, security schemes, validators)."""
        return list(self._compiled)

    def check_request(
        self, method: str, path: str, query: MultiMapping[str], headers: Mapping[str, str], body: bytes
    ) -> tuple[Matched, list[Finding]]:
        """Route a request and judge it against its operation: credential, parameters, body."""
        return self.router.check_request(method, path, query, headers, body)

    # -- responses ----------------------------------------------------------------------------------

    def check_response(self, matched: Matched, exchange: Exchange, *, streamed: bool) -> list[Finding]:
        """Status, headers, content type and (for a whole body) its schema, envelope, rate limit, money."""
        found: list[Finding] = []
        info, op = matched.info, matched.compiled
        if exchange.status >= 400 and self._has_error:
            pointer = "#/components/schemas/Error"
            found += [
                Finding("response", "envelope.errors", pointer, problem)
                for problem in envelope_problems(self.spec, self.profile.status_pointer, exchange)
            ]
        if info is None or op is None:
            return found
        if self._rate_limited:
            found += [
                Finding("response", "ratelimit.headers", info.response_pointer(exchange.status), problem)
                for problem in header_problems(exchange)
            ]
        declared = op.response(exchange.status)
        if declared is None:
            message = f"status {exchange.status} is not declared (declared: {', '.join(op.responses)})"
            found.append(
                Finding("response", "schema.status_code_conformance", f"{info.pointer}/responses", message)
            )
            return found
        pointer = info.response_pointer(exchange.status)
        for name in sorted(declared.required_headers):
            if exchange.header(name) is None:
                message = f"the required header {name} is missing"
                found.append(
                    Finding("response", "schema.response_headers_conformance", f"{pointer}/headers", message)
                )
        for name, validator in declared.headers.items():
            value = exchange.header(name)
            if value is not None and not validator.is_valid(typed(value, validator.schema)):
                message = f"header {name}: {value!r} does not match its schema"
                found.append(
                    Finding("response", "schema.response_headers_conformance", f"{pointer}/headers", message)
                )
        media = exchange.media_type
        if declared.content and not _media_declared(media, declared.content):
            message = f"Content-Type {media or '(none)'} is not declared ({', '.join(declared.content)})"
            found.append(
                Finding("response", "schema.content_type_conformance", f"{pointer}/content", message)
            )
            return found
        if streamed or media != JSON:
            return found
        body = exchange.json()
        schema = declared.content.get(JSON)
        if schema is not None:
            if body is None:
                found.append(
                    Finding("response", "schema.response_schema_conformance", pointer, "the body is not JSON")
                )
                return found
            where = f"{pointer}/content/{pointer_escape(JSON)}/schema"
            found += [
                Finding(
                    "response",
                    "schema.response_schema_conformance",
                    where,
                    f"{instance_pointer(path)}: {message}",
                )
                for path, message in list(schema.errors(body))[:MAX_SCHEMA_ERRORS]
            ]
        if exchange.status == 200 and isinstance(body, dict):
            found += self._arithmetic(matched, info, body, pointer)
        return found

    def _arithmetic(
        self, matched: Matched, info: OperationInfo, body: dict[str, Any], pointer: str
    ) -> list[Finding]:
        found = []
        # Usage is optional in some answers (an image generation): the schema says where it is required.
        if info.operation_id in self._usage and body.get("usage") is not None:
            found += [
                Finding("response", "usage.arithmetic", pointer, problem)
                for problem in usage_problems(body.get("usage"), matched.max_tokens())
            ]
        quote = info.operation_id == "createQuote"
        check = "billing.quote" if quote else "billing.charges"
        problems = money_problems(body) + (quote_problems(body) if quote else [])
        return found + [Finding("response", check, pointer, problem) for problem in problems]

    def stream(self, matched: Matched) -> StreamJudge | None:
        """A judge for the events of a streamed answer to an operation that may stream, else ``None``."""
        info = matched.info
        if info is None or info.operation_id not in self._streaming:
            return None
        return StreamJudge(self, matched, info)


@dataclass(slots=True)
class StreamJudge:
    """Judges each event of one stream as it passes, then the stream's framing when it ends."""

    checker: Checker
    matched: Matched
    info: OperationInfo
    events: list[str] = field(default_factory=list)

    def event(self, data: str) -> list[Finding]:
        """One event's ``data``: JSON of the spec's chunk schema (or the terminator)."""
        index = len(self.events)
        self.events.append(data)
        pointer = stream_pointer(self.info)
        return [
            Finding("response", "streaming.events", pointer, problem)
            for problem in event_problems(self.checker.spec, self.info, index, data)
        ]

    def end(self, exchange: Exchange) -> list[Finding]:
        """The whole stream: ``[DONE]`` once and last, one id, a finish_reason, the usage chunk if asked."""
        pointer = stream_pointer(self.info)
        asked = self.matched.include_usage()
        found = [
            Finding("response", "streaming.events", pointer, problem)
            for problem in framing_problems(self.events, include_usage=asked)
        ]
        if asked and self.info.operation_id in self.checker._usage:
            usage, missing = streamed_usage(exchange)
            problems = [missing] if missing else usage_problems(usage, self.matched.max_tokens())
            found += [Finding("response", "usage.arithmetic", pointer, problem) for problem in problems]
        return found


# -- helpers --------------------------------------------------------------------------------------------


def _media_declared(media: str, content: Mapping[str, Any]) -> bool:
    for declared in content:
        if declared in ("*/*", media) or (declared.endswith("/*") and media.startswith(declared[:-1])):
            return True
    return False


__all__ = ["SSE", "Checker", "Finding", "Matched", "StreamJudge"]
