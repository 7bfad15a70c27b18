"""Load an OpenAPI 3.1 document and compile it once into typed operations with ready validators."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import jsonschema_rs
import yaml

from mockserver.errors import SpecError

HTTP_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
SSE_MEDIA_TYPE = "text/event-stream"
JSON_MEDIA_TYPE = "application/json"
ParamLocation = Literal["path", "query", "header", "cookie"]
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
"""libyaml's safe loader when PyYAML was built with it (10x faster on the specs), else the pure one."""


class SchemaValidator:
    """A compiled JSON Schema (2020-12) whose ``#/components/...`` references resolve in its spec."""

    __slots__ = ("_validator", "schema")

    def __init__(self, schema: Mapping[str, Any], components: Mapping[str, Any]) -> None:
        self.schema = schema
        root = {**schema, "components": components}
        try:
            # 2020-12 makes `format` an annotation; providers (and schemathesis' negative cases) treat a
            # webhook that is not a URI as invalid, so formats are asserted in requests and responses alike.
            self._validator = jsonschema_rs.validator_for(root, validate_formats=True)
        except Exception as exc:  # jsonschema_rs raises ValueError/ReferencingError subclasses
            raise SpecError(f"cannot compile schema {json.dumps(schema)[:200]}: {exc}") from exc

    def is_valid(self, instance: Any) -> bool:
        """True when the instance matches the schema."""
        try:
            return bool(self._validator.is_valid(instance))
        except ValueError:  # nested past jsonschema_rs' recursion limit (255 levels)
            return False

    def errors(self, instance: Any) -> Iterator[tuple[list[str | int], str]]:
        """Each violation as (path into the instance, message)."""
        try:
            for error in self._validator.iter_errors(instance):
                yield list(error.instance_path), str(error.message)
        except ValueError as exc:
            # jsonschema_rs refuses values nested past its recursion limit (255 levels): that is bad
            # input to reject, not a crash.
            yield [], f"is nested too deeply to validate ({exc})"


@dataclass(frozen=True, slots=True)
class Parameter:
    """One declared parameter of an operation."""

    name: str
    location: ParamLocation
    required: bool
    schema: Mapping[str, Any]
    validator: SchemaValidator
    explode: bool = True


@dataclass(frozen=True, slots=True)
class RequestBody:
    """The declared request body: its media types and their validators (``None`` for raw bytes)."""

    required: bool
    media_types: Mapping[str, SchemaValidator | None]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    """The JSON body's top-level ``default`` values, by property (the validator does not fill them in)."""

    def accepts_any(self) -> bool:
        """Whether the body is raw bytes of any (or an octet-stream) type."""
        return any(m in ("*/*", "application/octet-stream") for m in self.media_types)


@dataclass(frozen=True, slots=True)
class EventStream:
    """The schema of one server-sent event's ``data``: a JSON payload schema and a literal terminator."""

    payload: SchemaValidator
    terminator: str | None

    def problem(self, data: Any) -> str | None:
        """What in one event's data breaks the schema (None when nothing does).

        ``data`` is the event's text, or the JSON value it encodes (checked as is, as a plain response's
        body is: the mock streams its own values, and parsing back what it just encoded only costs time).
        """
        if isinstance(data, str):
            if data == self.terminator:
                return None
            try:
                data = json.loads(data)
            except json.JSONDecodeError:
                return f"data is not JSON: {data[:80]!r}"
        # Valid is the common case: ``is_valid`` answers it without building the errors' iterator.
        if self.payload.is_valid(data):
            return None
        for path, message in self.payload.errors(data):
            return f"{'/'.join(map(str, path)) or '(root)'}: {message}"
        return None


@dataclass(frozen=True, slots=True)
class ResponseSpec:
    """One declared response of an operation."""

    status: str
    headers: Mapping[str, SchemaValidator]
    required_headers: frozenset[str]
    content: Mapping[str, SchemaValidator | None]
    events: EventStream | None = None


@dataclass(frozen=True, slots=True)
class SecurityScheme:
    """Where a credential travels: ``bearer`` (Authorization: Bearer x) or a raw ``header``."""

    name: str
    kind: Literal["bearer", "header"]
    header: str


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of a spec, compiled."""

    operation_id: str
    method: str
    path: str
    parameters: tuple[Parameter, ...]
    body: RequestBody | None
    responses: Mapping[str, ResponseSpec]
    security: tuple[SecurityScheme, ...]
    """Accepted schemes (any one suffices); empty means public."""
    tags: tuple[str, ...] = ()

    @property
    def public(self) -> bool:
        """True when the operation needs no credential."""
        return not self.security

    def response(self, status: int) -> ResponseSpec | None:
        """The declared response for a status (exact, then ``4XX``-style, then ``default``)."""
        key = str(status)
        return self.responses.get(key) or self.responses.get(f"{key[0]}XX") or self.responses.get("default")


@dataclass(slots=True)
class Spec:
    """A loaded provider spec: its document and compiled operations."""

    provider_id: str
    path: Path
    document: dict[str, Any]
    operations: list[Operation]
    webhooks: dict[str, Any] = field(default_factory=dict)

    def operation(self, operation_id: str) -> Operation:
        """The operation with that id."""
        for op in self.operations:
            if op.operation_id == operation_id:
                return op
        raise KeyError(operation_id)

    def schema(self, name: str) -> SchemaValidator:
        """A validator for ``components/schemas/<name>``."""
        components = self.document.get("components", {})
        if name not in components.get("schemas", {}):
            raise KeyError(name)
        return _Compiler(components).compile({"$ref": f"#/components/schemas/{name}"})


def load_document(path: Path) -> dict[str, Any]:
    """Read a YAML or JSON OpenAPI document."""
    try:
        with path.open(encoding="utf-8") as fh:
            document = yaml.load(fh, Loader=SAFE_LOADER)
    except (OSError, yaml.YAMLError) as exc:
        raise SpecError(f"cannot read spec {path.name}: {exc}") from exc
    if not isinstance(document, dict) or not str(document.get("openapi", "")).startswith("3.1"):
        raise SpecError(f"{path.name} is not an OpenAPI 3.1 document")
    return document


def resolve(document: Mapping[str, Any], node: Any) -> Any:
    """Follow local ``$ref``s (``#/...``) until a non-reference node."""
    seen: set[str] = set()
    while isinstance(node, Mapping) and "$ref" in node:
        ref = node["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#/") or ref in seen:
            raise SpecError(f"unresolvable or circular reference {ref!r}")
        seen.add(ref)
        target: Any = document
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            if not isinstance(target, Mapping) or part not in target:
                raise SpecError(f"reference {ref!r} does not resolve")
            target = target[part]
        node = target
    return node


class _Compiler:
    """Compiles schemas once, sharing validators between identical schemas."""

    def __init__(self, components: Mapping[str, Any]) -> None:
        self._components = components
        self._cache: dict[str, SchemaValidator] = {}

    def compile(self, schema: Mapping[str, Any]) -> SchemaValidator:
        key = json.dumps(schema, sort_keys=True, default=str)
        if key not in self._cache:
            self._cache[key] = SchemaValidator(schema, self._components)
        return self._cache[key]


def _event_stream(document: Mapping[str, Any], schema: Mapping[str, Any], compiler: _Compiler) -> EventStream:
    """Read the CONVENTIONS form of an SSE event schema: ``data`` is a terminator or JSON of a schema."""
    event = resolve(document, schema)
    data = resolve(document, event.get("properties", {}).get("data", {}))
    payload: Mapping[str, Any] | None = None
    terminator: str | None = None
    for branch in data.get("oneOf", data.get("anyOf", [data])):
        branch = resolve(document, branch)
        if "const" in branch:
            terminator = branch["const"]
        elif "contentSchema" in branch:
            payload = branch["contentSchema"]
    if payload is None:
        raise SpecError("a text/event-stream schema must give its data's contentSchema")
    return EventStream(payload=compiler.compile(payload), terminator=terminator)


def _security(document: Mapping[str, Any], requirements: Any) -> tuple[SecurityScheme, ...]:
    schemes = document.get("components", {}).get("securitySchemes", {})
    result: list[SecurityScheme] = []
    for requirement in requirements or []:
        for name in requirement:
            scheme = resolve(document, schemes.get(name))
            if not isinstance(scheme, Mapping):
                raise SpecError(f"unknown security scheme {name!r}")
            if scheme.get("type") == "http" and str(scheme.get("scheme", "")).lower() == "bearer":
                result.append(SecurityScheme(name, "bearer", "Authorization"))
            elif scheme.get("type") == "apiKey" and scheme.get("in") == "header":
                result.append(SecurityScheme(name, "header", str(scheme["name"])))
            else:
                raise SpecError(f"unsupported security scheme {name!r}: {scheme}")
    return tuple(result)


def _compile_operation(
    document: Mapping[str, Any],
    path: str,
    method: str,
    path_item: Mapping[str, Any],
    raw: Mapping[str, Any],
    compiler: _Compiler,
) -> Operation:
    operation_id = raw.get("operationId")
    if not operation_id:
        raise SpecError(f"{method.upper()} {path} has no operationId")
    merged: dict[tuple[str, str], Mapping[str, Any]] = {}
    for param in [*path_item.get("parameters", []), *raw.get("parameters", [])]:
        param = resolve(document, param)
        merged[(param["name"], param["in"])] = param
    parameters = tuple(
        Parameter(
            name=p["name"],
            location=p["in"],
            required=bool(p.get("required", p["in"] == "path")),
            schema=p.get("schema", {}),
            validator=compiler.compile(p.get("schema", {})),
            explode=bool(p.get("explode", p.get("style", "form") == "form")),
        )
        for p in merged.values()
    )
    body: RequestBody | None = None
    if "requestBody" in raw:
        rb = resolve(document, raw["requestBody"])
        media_types: dict[str, SchemaValidator | None] = {}
        for media_type, media in rb.get("content", {}).items():
            schema = media.get("schema")
            binary = media_type not in (JSON_MEDIA_TYPE,) or schema is None
            media_types[media_type] = None if binary else compiler.compile(schema)
        json_schema = resolve(document, rb.get("content", {}).get(JSON_MEDIA_TYPE, {}).get("schema") or {})
        properties = {name: resolve(document, p) for name, p in json_schema.get("properties", {}).items()}
        body = RequestBody(
            required=bool(rb.get("required", False)),
            media_types=media_types,
            defaults={name: p["default"] for name, p in properties.items() if "default" in p},
        )
    responses: dict[str, ResponseSpec] = {}
    for status, response in raw.get("responses", {}).items():
        response = resolve(document, response)
        headers: dict[str, SchemaValidator] = {}
        required_headers: set[str] = set()
        for name, header in response.get("headers", {}).items():
            header = resolve(document, header)
            headers[name.lower()] = compiler.compile(header.get("schema", {}))
            if header.get("required"):
                required_headers.add(name.lower())
        content: dict[str, SchemaValidator | None] = {}
        events: EventStream | None = None
        for media_type, media in response.get("content", {}).items():
            schema = media.get("schema")
            if media_type == SSE_MEDIA_TYPE and schema is not None:
                events = _event_stream(document, schema, compiler)
                content[media_type] = None
            elif media_type == JSON_MEDIA_TYPE and schema is not None:
                content[media_type] = compiler.compile(schema)
            else:
                content[media_type] = None
        responses[str(status)] = ResponseSpec(
            status=str(status),
            headers=headers,
            required_headers=frozenset(required_headers),
            content=content,
            events=events,
        )
    security = _security(document, raw.get("security", document.get("security")))
    return Operation(
        operation_id=str(operation_id),
        method=method.upper(),
        path=path,
        parameters=parameters,
        body=body,
        responses=responses,
        security=security,
        tags=tuple(raw.get("tags", ())),
    )


def load_spec(path: Path) -> Spec:
    """Load and compile a provider spec; raises ``SpecError`` with the reason when it cannot."""
    document = load_document(path)
    components = document.get("components", {})
    compiler = _Compiler(components)
    operations: list[Operation] = []
    for api_path, path_item in document.get("paths", {}).items():
        path_item = resolve(document, path_item)
        for method in HTTP_METHODS:
            if method in path_item:
                operations.append(
                    _compile_operation(document, api_path, method, path_item, path_item[method], compiler)
                )
    provider_id = str(document.get("info", {}).get("x-provider-id", path.stem))
    return Spec(
        provider_id=provider_id,
        path=path,
        document=document,
        operations=operations,
        webhooks=dict(document.get("webhooks", {})),
    )
