"""What the suite reads from a provider's OpenAPI document: operations, auth, headers, schemas, pointers."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema_rs

from mockserver.core.spec import load_document, resolve
from mockserver.resources import spec_path

HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
SSE = "text/event-stream"
JSON = "application/json"
RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def pointer_escape(part: str) -> str:
    """One JSON-pointer segment (RFC 6901)."""
    return part.replace("~", "~0").replace("/", "~1")


@dataclass(frozen=True, slots=True)
class OperationInfo:
    """One operation of the spec, as the behaviour checks need it."""

    operation_id: str
    method: str
    path: str
    raw: Mapping[str, Any]
    public: bool

    @property
    def pointer(self) -> str:
        """The operation's JSON pointer in the spec, e.g. ``#/paths/~1v1~1chat/post``."""
        return f"#/paths/{pointer_escape(self.path)}/{self.method.lower()}"

    @property
    def label(self) -> str:
        """``POST /v1/chat (createChat)``."""
        return f"{self.method} {self.path} ({self.operation_id})"

    def response_key(self, status: int) -> str | None:
        """The declared response key matching a status: exact, ``4XX``-style, then ``default``."""
        responses = self.raw.get("responses", {})
        for key in (str(status), f"{str(status)[0]}XX", "default"):
            if key in responses:
                return key
        return None

    def response_pointer(self, status: int) -> str:
        """Pointer to the declared response for a status (the operation's ``responses`` if undeclared)."""
        key = self.response_key(status)
        return f"{self.pointer}/responses/{key}" if key else f"{self.pointer}/responses"


class SpecInfo:
    """A provider spec, loaded once, with validators for its component schemas."""

    def __init__(self, provider: str, path: Path | None = None) -> None:
        self.provider = provider
        self.path = path or spec_path(provider)
        self.document: dict[str, Any] = load_document(self.path)
        self.operations: list[OperationInfo] = []
        self._validators: dict[str, Any] = {}
        top_security = self.document.get("security", [])
        for api_path, item in self.document.get("paths", {}).items():
            item = resolve(self.document, item)
            for method in HTTP_METHODS:
                if method in item:
                    raw = item[method]
                    security = raw.get("security", top_security)
                    self.operations.append(
                        OperationInfo(
                            operation_id=str(raw.get("operationId", f"{method} {api_path}")),
                            method=method.upper(),
                            path=api_path,
                            raw=raw,
                            public=not security or all(not req for req in security),
                        )
                    )

    @property
    def file_name(self) -> str:
        """``spaceai.yaml``: the name reports use in spec locations."""
        return self.path.name

    def location(self, pointer: str) -> str:
        """A spec location for reports, e.g. ``spaceai.yaml#/paths/~1v1~1models/get``."""
        return f"{self.file_name}{pointer}"

    def operation(self, operation_id: str) -> OperationInfo | None:
        """The operation with that id, if the spec has it."""
        return next((op for op in self.operations if op.operation_id == operation_id), None)

    def has(self, *operation_ids: str) -> bool:
        """Whether the spec declares every one of these operations."""
        return all(self.operation(op) is not None for op in operation_ids)

    def find(self, method: str, path: str) -> OperationInfo | None:
        """The operation declared for a method and path template."""
        return next((op for op in self.operations if op.method == method and op.path == path), None)

    # -- auth ---------------------------------------------------------------------------------------

    def auth_headers(self, api_key: str) -> dict[str, str]:
        """The header carrying the key, as the top-level security scheme says."""
        requirement: dict[str, Any] = next(iter(self.document.get("security", [{}])), {})
        schemes = self.document.get("components", {}).get("securitySchemes", {})
        for name in requirement:
            scheme = resolve(self.document, schemes.get(name, {}))
            if scheme.get("type") == "http" and str(scheme.get("scheme", "")).lower() == "bearer":
                return {"Authorization": f"Bearer {api_key}"}
            if scheme.get("type") == "apiKey" and scheme.get("in") == "header":
                return {str(scheme["name"]): api_key}
        return {"Authorization": f"Bearer {api_key}"}

    # -- derived facts ------------------------------------------------------------------------------

    def rate_limited(self) -> bool:
        """Whether responses declare the rate-limit headers (the CONVENTIONS' marker of a limited API)."""
        return any(
            RATE_LIMIT_HEADERS[0] in resolve(self.document, response).get("headers", {})
            for op in self.operations
            for response in op.raw.get("responses", {}).values()
        )

    def streaming_operations(self) -> list[OperationInfo]:
        """Operations whose 200 response may be ``text/event-stream``."""
        found = []
        for op in self.operations:
            ok = resolve(self.document, op.raw.get("responses", {}).get("200", {}))
            if SSE in ok.get("content", {}):
                found.append(op)
        return found

    def has_schema(self, name: str) -> bool:
        """Whether ``components/schemas/<name>`` exists."""
        return name in self.document.get("components", {}).get("schemas", {})

    def event_payload_schema(self, op: OperationInfo) -> dict[str, Any] | None:
        """The JSON schema of one SSE event's ``data`` (the CONVENTIONS ``contentSchema``)."""
        ok = resolve(self.document, op.raw["responses"]["200"])
        event = resolve(self.document, ok["content"][SSE].get("schema", {}))
        data = resolve(self.document, event.get("properties", {}).get("data", {}))
        for branch in data.get("oneOf", data.get("anyOf", [data])):
            branch = resolve(self.document, branch)
            if "contentSchema" in branch:
                return dict(branch["contentSchema"])
        return None

    def request_schema(self, op: OperationInfo) -> dict[str, Any] | None:
        """The JSON request body schema of an operation."""
        body = resolve(self.document, op.raw.get("requestBody", {}))
        schema = body.get("content", {}).get(JSON, {}).get("schema")
        return dict(schema) if schema is not None else None

    def response_schema(self, op: OperationInfo, status: int) -> dict[str, Any] | None:
        """The JSON schema of a declared response."""
        key = op.response_key(status)
        if key is None:
            return None
        response = resolve(self.document, op.raw["responses"][key])
        schema = response.get("content", {}).get(JSON, {}).get("schema")
        return dict(schema) if schema is not None else None

    def examples(self, op: OperationInfo) -> dict[str, Any]:
        """The documented request examples of an operation, by name."""
        body = resolve(self.document, op.raw.get("requestBody", {}))
        media = body.get("content", {}).get(JSON, {})
        return {
            name: resolve(self.document, ex).get("value") for name, ex in media.get("examples", {}).items()
        }

    # -- validation ---------------------------------------------------------------------------------

    def validator(self, schema: Mapping[str, Any]) -> Any:
        """A compiled validator for a schema whose ``#/components/...`` references resolve in this spec."""
        key = json.dumps(schema, sort_keys=True, default=str)
        if key not in self._validators:
            root = {**schema, "components": self.document.get("components", {})}
            self._validators[key] = jsonschema_rs.validator_for(root)
        return self._validators[key]

    def errors(self, schema: Mapping[str, Any], instance: Any) -> list[str]:
        """Every violation of a schema, as ``path: message`` lines (empty when valid)."""
        found = []
        for error in self.validator(schema).iter_errors(instance):
            where = "/".join(str(p) for p in error.instance_path) or "(root)"
            found.append(f"{where}: {error.message}")
        return found
