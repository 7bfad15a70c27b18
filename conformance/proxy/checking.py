"""Judging live traffic: a request against its operation, the response and each event with the suite's checks.

The rules are the suite's own (``conformance/checks``: envelope, rate-limit headers, streams, usage and
billing arithmetic), called on one exchange at a time. What the suite leaves to schemathesis (declared status,
response headers, content type, body schema) is judged by schemathesis' own check functions
(``conformance.proxy.verdict``), under the same ``schema.*`` names.
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
from conformance.proxy.routing import Finding, Matched, Router
from conformance.proxy.verdict import BODY_CHECKS, HEAD_CHECKS, SchemaVerdict
from conformance.spec import JSON, SSE, OperationInfo, SpecInfo
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
        self.verdict = SchemaVerdict(self.spec)

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

    def check_response(self, matched: Matched, exchange: Exchange) -> list[Finding]:
        """A whole answer (not streamed): status, headers, content type and body schema, then the rest."""
        return self._head(matched, exchange, HEAD_CHECKS + BODY_CHECKS) + self.check_body(matched, exchange)

    def check_head(self, matched: Matched, exchange: Exchange) -> list[Finding]:
        """A stream's status line and headers, before its body flows: status, headers, content type."""
        return self._head(matched, exchange, HEAD_CHECKS)

    def _head(self, matched: Matched, exchange: Exchange, checks: tuple[str, ...]) -> list[Finding]:
        info = matched.info
        if info is None:
            return []
        found = self.verdict.judge(matched, exchange, checks)
        if self._rate_limited:
            found += [
                Finding("response", "ratelimit.headers", info.response_pointer(exchange.status), problem)
                for problem in header_problems(exchange)
            ]
        return found

    def check_body(self, matched: Matched, exchange: Exchange) -> list[Finding]:
        """What a whole body must hold beyond its schema: the error envelope, usage and money arithmetic."""
        found: list[Finding] = []
        if exchange.status >= 400 and self._has_error:
            pointer = "#/components/schemas/Error"
            found += [
                Finding("response", "envelope.errors", pointer, problem)
                for problem in envelope_problems(self.spec, self.profile.status_pointer, exchange)
            ]
        info = matched.info
        if info is not None and exchange.status == 200 and exchange.media_type == JSON:
            body = exchange.json()
            if isinstance(body, dict):
                found += self._arithmetic(matched, info, body, info.response_pointer(exchange.status))
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


__all__ = ["SSE", "Checker", "Finding", "Matched", "StreamJudge"]
