"""Routing a request to its operation and judging it: credential, parameters and body, as the spec says."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from multidict import MultiMapping

from conformance.spec import JSON, OperationInfo, SpecInfo, pointer_escape
from mockserver.core.spec import Operation, Parameter

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
    path_values: dict[str, str] = field(default_factory=dict)
    """The path parameters' values, by name."""

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


class Router:
    """A spec's operations by method and path template, and the request checks."""

    def __init__(self, spec: SpecInfo, compiled: list[Operation]) -> None:
        by_id = {op.operation_id: op for op in compiled}
        self._routes = sorted(
            (_route(info, by_id[info.operation_id]) for info in spec.operations),
            key=lambda route: route.params,
        )

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
        values = matched.path_values = _path_values(info.path, path)
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
                Finding("request", "request.body", where, f"{instance_pointer(path)}: {message}")
                for path, message in list(body_schema.errors(matched.body))[:MAX_SCHEMA_ERRORS]
            ]
        if spec.accepts_any() or media in spec.media_types:
            return []
        message = f"Content-Type {media or '(none)'} is not declared; send {', '.join(spec.media_types)}"
        return [Finding("request", "request.body", f"{pointer}/content", message)]


def instance_pointer(path: list[str | int]) -> str:
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


def typed(text: str, schema: Mapping[str, Any]) -> Any:
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
        value: Any = [typed(p, items) for p in parts]
    else:
        value = typed(values[-1], param.schema)
    return [
        Finding(
            "request", "request.parameters", pointer, f"{param.location} parameter {param.name}: {message}"
        )
        for _, message in list(param.validator.errors(value))[:MAX_SCHEMA_ERRORS]
    ]
