"""Judging live traffic: a request against its operation, the response and each event with the suite's checks.

The rules are the suite's own (``conformance/checks``: envelope, rate-limit headers, streams, usage and
billing arithmetic), called on one exchange at a time. What the suite leaves to schemathesis (declared status,
required headers, content type, body schema) is judged here on the compiled spec, under the same ``schema.*``
names.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from multidict import MultiMapping

from conformance.checks.billing import money_problems, quote_problems
from conformance.checks.envelope import envelope_problems
from conformance.checks.ratelimit import header_problems
from conformance.checks.streaming import event_problems, framing_problems, stream_pointer
from conformance.checks.usage import streamed_usage, usage_operations, usage_problems
from conformance.client import Exchange
from conformance.profiles import profile
from conformance.spec import JSON, SSE, OperationInfo, SpecInfo, pointer_escape
from mockserver.core.spec import Operation, Parameter, load_spec

Side = Literal["request", "response"]
MAX_SCHEMA_ERRORS = 3
"""Schema errors listed per body (the first ones say what is wrong; the rest repeat it)."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One violation of the contract in one exchange: whose (side), which check, where in the spec, what."""

    side: Side
    check: str
    pointer: str
    message: str


@dataclass(slots=True)
class Matched:
    """The operation a request was routed to (``None`` when the spec declares none) and what it asked for."""

    info: OperationInfo | None
    compiled: Operation | None
    body: Any = None
    """The request's JSON body, when it had one."""

    @property
    def operation_id(self) -> str:
        """The operation id, or ``-`` for a request no operation matches."""
        return self.info.operation_id if self.info else "-"

    def include_usage(self) -> bool:
        """Whether the request asked for the usage chunk (``stream_options.include_usage``)."""
        options = self.body.get("stream_options") if isinstance(self.body, dict) else None
        return isinstance(options, dict) and options.get("include_usage") is True

    def max_tokens(self) -> Any:
        """The request's ``max_tokens``, if it set one."""
        return self.body.get("max_tokens") if isinstance(self.body, dict) else None


@dataclass(slots=True)
class _Route:
    pattern: re.Pattern[str]
    info: OperationInfo
    compiled: Operation
    params: int


def _route(info: OperationInfo, compiled: Operation) -> _Route:
    parts = re.split(r"(\{[^}]+\})", info.path)
    regex = "".join(
        f"(?P<p{i}>[^/]+)" if part.startswith("{") else re.escape(part) for i, part in enumerate(parts)
    )
    return _Route(re.compile(f"^{regex}$"), info, compiled, info.path.count("{"))


class Checker:
    """One provider's spec, compiled once, judging requests, responses and events."""

    def __init__(self, provider: str) -> None:
        self.spec = SpecInfo(provider)
        self.profile = profile(provider)
        self._compiled = load_spec(self.spec.path).operations
        compiled = {op.operation_id: op for op in self._compiled}
        self._routes = sorted(
            (_route(info, compiled[info.operation_id]) for info in self.spec.operations),
            key=lambda route: route.params,
        )
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

    # -- requests -----------------------------------------------------------------------------------

    def route(self, method: str, path: str) -> tuple[Matched, list[Finding]]:
        """The operation of a method and path (a static path wins over a template)."""
        on_path = [r for r in self._routes if r.pattern.match(path)]
        for found in on_path:
            if found.info.method == method:
                return Matched(found.info, found.compiled), []
        if on_path:
            allowed = ", ".join(sorted({r.info.method for r in on_path}))
            message = f"{method} is not declared for {on_path[0].info.path} (declared: {allowed})"
            pointer = f"#/paths/{pointer_escape(on_path[0].info.path)}"
        else:
            message, pointer = f"no operation of the spec serves {method} {path}", "#/paths"
        return Matched(None, None), [Finding("request", "request.operation", pointer, message)]

    def check_request(
        self,
        method: str,
        path: str,
        query: MultiMapping[str],
        headers: Mapping[str, str],
        body: bytes,
    ) -> tuple[Matched, list[Finding]]:
        """Route a request and judge it against its operation: credential, parameters, body."""
        matched, found = self.route(method, path)
        if matched.info is None or matched.compiled is None:
            return matched, found
        op, info = matched.compiled, matched.info
        lowered = {k.lower(): v for k, v in headers.items()}
        if op.security and not any(_carries(lowered, s.kind, s.header) for s in op.security):
            names = " or ".join(s.header for s in op.security)
            found.append(Finding("request", "request.security", info.pointer, f"no credential ({names})"))
        values = _path_values(info.path, path)
        for param in op.parameters:
            found += _parameter_findings(info, param, values, query, lowered)
        found += self._body_findings(matched, lowered.get("content-type", ""), body)
        return matched, found

    def _body_findings(self, matched: Matched, content_type: str, raw: bytes) -> list[Finding]:
        info, spec = matched.info, matched.compiled.body if matched.compiled else None
        if info is None or spec is None:
            return []
        pointer = f"{info.pointer}/requestBody"
        if not raw:
            return (
                [Finding("request", "request.body", pointer, "the body is required")] if spec.required else []
            )
        media = content_type.split(";")[0].strip().lower()
        if media in ("", JSON) and JSON in spec.media_types:
            try:
                matched.body = json.loads(raw)
            except (ValueError, UnicodeDecodeError) as exc:
                return [Finding("request", "request.body", pointer, f"the body is not JSON: {exc}")]
            body_schema = spec.media_types[JSON]
            if body_schema is None:
                return []
            where = f"{pointer}/content/{pointer_escape(JSON)}/schema"
            return [
                Finding("request", "request.body", where, f"{_where(path)}: {message}")
                for path, message in list(body_schema.errors(matched.body))[:MAX_SCHEMA_ERRORS]
            ]
        if spec.accepts_any() or media in spec.media_types:
            return []
        message = f"Content-Type {media or '(none)'} is not declared; send {', '.join(spec.media_types)}"
        return [Finding("request", "request.body", f"{pointer}/content", message)]

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
            if value is not None and not validator.is_valid(_scalar(value, validator.schema)):
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
                Finding("response", "schema.response_schema_conformance", where, f"{_where(path)}: {message}")
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


def _where(path: list[str | int]) -> str:
    """A JSON pointer into the instance (``/choices/0/delta``), ``(root)`` for the whole of it."""
    return "/" + "/".join(pointer_escape(str(p)) for p in path) if path else "(root)"


def _carries(headers: Mapping[str, str], kind: str, name: str) -> bool:
    value = headers.get(name.lower(), "")
    if kind == "bearer":
        scheme, _, token = value.partition(" ")
        return scheme.lower() == "bearer" and bool(token.strip())
    return bool(value)


def _path_values(template: str, path: str) -> dict[str, str]:
    names = re.findall(r"\{([^}]+)\}", template)
    regex = re.sub(r"\\\{[^}]+\\\}", "([^/]+)", re.escape(template))
    found = re.match(f"^{regex}$", path)
    return dict(zip(names, found.groups(), strict=True)) if found else {}


def _types(schema: Mapping[str, Any]) -> set[str]:
    declared = schema.get("type")
    if isinstance(declared, list):
        return {str(t) for t in declared}
    return {declared} if isinstance(declared, str) else set()


def _scalar(text: str, schema: Mapping[str, Any]) -> Any:
    """A parameter or header string as the type its schema declares (left a string when it does not parse)."""
    types = _types(schema)
    for kind, parse in (("integer", int), ("number", float)):
        if kind in types:
            try:
                return parse(text)
            except ValueError:
                pass
    if "boolean" in types and text in ("true", "false"):
        return text == "true"
    return text


def _parameter_findings(
    info: OperationInfo,
    param: Parameter,
    path_values: Mapping[str, str],
    query: MultiMapping[str],
    headers: Mapping[str, str],
) -> list[Finding]:
    if param.location == "path":
        values = [path_values[param.name]] if param.name in path_values else []
    elif param.location == "query":
        values = list(query.getall(param.name, []))
    elif param.location == "header":
        values = [headers[param.name.lower()]] if param.name.lower() in headers else []
    else:
        return []
    pointer = f"{info.pointer}/parameters"
    if not values:
        message = f"the required {param.location} parameter {param.name} is missing"
        return [Finding("request", "request.parameters", pointer, message)] if param.required else []
    if "array" in _types(param.schema):
        items = param.schema.get("items", {})
        parts = values if param.explode else [p for v in values for p in v.split(",")]
        value: Any = [_scalar(p, items) for p in parts]
    else:
        value = _scalar(values[-1], param.schema)
    return [
        Finding(
            "request", "request.parameters", pointer, f"{param.location} parameter {param.name}: {message}"
        )
        for _, message in list(param.validator.errors(value))[:MAX_SCHEMA_ERRORS]
    ]


def _media_declared(media: str, content: Mapping[str, Any]) -> bool:
    for declared in content:
        if declared in ("*/*", media) or (declared.endswith("/*") and media.startswith(declared[:-1])):
            return True
    return False


__all__ = ["SSE", "Checker", "Finding", "Matched", "StreamJudge"]
