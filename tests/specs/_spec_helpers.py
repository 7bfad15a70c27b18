"""Helpers shared by the spec tests: loading specs, JSON pointers, walking operations, validating instances.

Named ``_spec_helpers`` (not ``_helpers``) because pytest's default import mode puts every test folder on
``sys.path`` and a second ``_helpers`` module elsewhere under ``tests/`` would shadow this one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from mockserver.resources import PROVIDER_IDS, spec_path

HTTP_METHODS: tuple[str, ...] = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
ERROR_SCHEMA_REF = "#/components/schemas/Error"
SSE_MEDIA_TYPE = "text/event-stream"
SSE_DONE = "[DONE]"
_SPEC_URI = "urn:openapi-spec"


@dataclass(frozen=True)
class ProviderDoc:
    """What the published document of a provider fixes about its spec."""

    seed: str
    product: str
    base_url: str


PROVIDER_DOCS: dict[str, ProviderDoc] = {
    "studioaicore": ProviderDoc("000_9af6a9fc11991a0d.txt", "StudioAICore", "https://api.studioaicore.com"),
    "modelstudio": ProviderDoc("001_0cc1d232e0b3bafa.txt", "ModelStudio", "https://api.modelstudio.app"),
    "artificialstudio": ProviderDoc(
        "002_da62495cce96caaa.txt", "Artificial Studio", "https://api.artificialstudio.ai"
    ),
    "pahlavan": ProviderDoc("003_f11de4036c91343d.txt", "Pahlavan", "https://studio.pahlavan.co.uk"),
    "spaceai": ProviderDoc("004_1b2a7dc5ddf16a65.txt", "SpaceAI", "https://api.example.com"),
}
assert set(PROVIDER_DOCS) == set(PROVIDER_IDS)


def spec_names() -> list[str]:
    """Every spec the generic checks cover: the five providers, plus ``control`` once it exists."""
    names = list(PROVIDER_IDS)
    if spec_path("control").is_file():
        names.append("control")
    return names


def load_spec_file(path: Path) -> dict[str, Any]:
    with path.open(encoding="utf-8") as handle:
        document = yaml.safe_load(handle)
    assert isinstance(document, dict), f"{path} does not hold a YAML mapping"
    return document


@cache
def load_spec(name: str) -> dict[str, Any]:
    """The parsed spec ``specs/<name>.yaml``; shared between tests, so never mutate it."""
    return load_spec_file(spec_path(name))


# --- JSON pointers --------------------------------------------------------------------------------


def escape_token(token: str | int) -> str:
    return str(token).replace("~", "~0").replace("/", "~1")


def join_pointer(pointer: str, *tokens: str | int) -> str:
    return pointer + "".join("/" + escape_token(token) for token in tokens)


def resolve_pointer(document: Any, pointer: str) -> Any:
    """The node at a JSON pointer (``/a/b``, without ``#``); raises ``LookupError`` naming the pointer."""
    node = document
    if not pointer:
        return node
    if not pointer.startswith("/"):
        raise LookupError(f"{pointer!r} is not a JSON pointer")
    for raw in pointer[1:].split("/"):
        token = raw.replace("~1", "/").replace("~0", "~")
        try:
            node = node[int(token)] if isinstance(node, list) else node[token]
        except (LookupError, ValueError, TypeError):
            raise LookupError(f"{pointer!r} does not resolve (no {token!r})") from None
    return node


def ref_pointer(ref: str) -> str:
    """The JSON pointer of a local ``$ref`` (``#/components/...``, percent-encoding allowed)."""
    if not ref.startswith("#"):
        raise LookupError(f"{ref!r} is not a local reference")
    return unquote(ref[1:])


def deref(spec: Mapping[str, Any], node: Any, pointer: str) -> tuple[Any, str]:
    """Follow a chain of ``$ref`` objects; returns the target node and its pointer."""
    seen = {pointer}
    while isinstance(node, dict) and isinstance(node.get("$ref"), str):
        pointer = ref_pointer(node["$ref"])
        if pointer in seen:
            raise LookupError(f"reference cycle through {pointer!r}")
        seen.add(pointer)
        node = resolve_pointer(spec, pointer)
    return node, pointer


def walk(node: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:
    """Every node of a document with its JSON pointer, depth first."""
    yield pointer, node
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, join_pointer(pointer, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from walk(value, join_pointer(pointer, index))


# --- operations -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    """One operation of ``paths`` (or ``webhooks``) with where it sits."""

    pointer: str
    path: str
    method: str
    node: dict[str, Any]
    path_item: dict[str, Any]
    webhook: bool

    @property
    def operation_id(self) -> str:
        return str(self.node.get("operationId", f"<{self.method.upper()} {self.path}>"))


def iter_operations(spec: Mapping[str, Any], *, webhooks: bool = False) -> Iterator[Operation]:
    """The operations under ``paths``, then (when asked) those under ``webhooks``."""
    sections = [("paths", False)] + ([("webhooks", True)] if webhooks else [])
    for section, is_webhook in sections:
        for path, raw_item in (spec.get(section) or {}).items():
            path_item, item_pointer = deref(spec, raw_item, join_pointer("", section, path))
            for method in HTTP_METHODS:
                if method in path_item:
                    yield Operation(
                        pointer=join_pointer(item_pointer, method),
                        path=path,
                        method=method,
                        node=path_item[method],
                        path_item=path_item,
                        webhook=is_webhook,
                    )


def find_operation(spec: Mapping[str, Any], operation_id: str) -> Operation:
    for operation in iter_operations(spec, webhooks=True):
        if operation.node.get("operationId") == operation_id:
            return operation
    raise LookupError(f"no operation with operationId {operation_id!r}")


def operation_parameters(spec: Mapping[str, Any], operation: Operation) -> list[dict[str, Any]]:
    """Path-item and operation parameters, resolved (the operation's win on the same name and location)."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for owner, pointer in (
        (operation.path_item, operation.pointer.rsplit("/", 1)[0]),
        (operation.node, operation.pointer),
    ):
        for index, raw in enumerate(owner.get("parameters") or []):
            parameter, _ = deref(spec, raw, join_pointer(pointer, "parameters", index))
            merged[(parameter["name"], parameter["in"])] = parameter
    return list(merged.values())


def effective_security(spec: Mapping[str, Any], operation: Operation) -> list[dict[str, list[str]]]:
    security = operation.node.get("security", spec.get("security", []))
    return list(security)


def requires_auth(spec: Mapping[str, Any], operation: Operation) -> bool:
    """Whether some security requirement of the operation names a scheme."""
    return any(requirement for requirement in effective_security(spec, operation))


def iter_responses(
    spec: Mapping[str, Any], operation: Operation
) -> Iterator[tuple[str, dict[str, Any], str]]:
    """``(status, resolved response, pointer of the resolved response)`` for each declared response."""
    for status, raw in (operation.node.get("responses") or {}).items():
        response, pointer = deref(spec, raw, join_pointer(operation.pointer, "responses", status))
        yield str(status), response, pointer


def is_error_status(status: str) -> bool:
    return status[:1] in {"4", "5"}


def is_success_status(status: str) -> bool:
    return status[:1] == "2"


# --- schema validation ----------------------------------------------------------------------------


def schema_validator(spec: Mapping[str, Any], pointer: str) -> Draft202012Validator:
    """A 2020-12 validator for the schema at ``pointer`` with the whole spec reachable for ``$ref``."""
    registry: Registry[Any] = Registry().with_resource(_SPEC_URI, DRAFT202012.create_resource(dict(spec)))
    return Draft202012Validator(
        {"$ref": f"{_SPEC_URI}#{quote(pointer, safe='/~')}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def schema_errors(spec: Mapping[str, Any], pointer: str, instance: Any) -> list[str]:
    """Readable validation errors of ``instance`` against the schema at ``pointer`` (empty when valid)."""
    errors = schema_validator(spec, pointer).iter_errors(instance)
    return sorted(f"at /{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in errors)


def content_schema_pointers(spec: Mapping[str, Any], event_schema_pointer: str) -> list[str]:
    """The ``contentSchema`` pointers of an SSE event schema's ``data`` (on ``data`` or its branches)."""
    event, pointer = deref(spec, resolve_pointer(spec, event_schema_pointer), event_schema_pointer)
    if "data" not in event.get("properties", {}):
        return []
    data, data_pointer = deref(spec, event["properties"]["data"], join_pointer(pointer, "properties", "data"))
    candidates = [(data, data_pointer)]
    for keyword in ("oneOf", "anyOf"):
        for index, branch in enumerate(data.get(keyword, [])):
            candidates.append(deref(spec, branch, join_pointer(data_pointer, keyword, index)))
    return [
        join_pointer(node_pointer, "contentSchema")
        for node, node_pointer in candidates
        if "contentSchema" in node
    ]


def sse_event_errors(spec: Mapping[str, Any], event_schema_pointer: str, event: Any) -> list[str]:
    """Errors of one SSE event against the event schema, then of its JSON ``data`` against ``contentSchema``.

    jsonschema treats ``contentMediaType``/``contentSchema`` as annotations only, so the data is decoded and
    checked here.
    """
    errors = schema_errors(spec, event_schema_pointer, event)
    if errors or not isinstance(event, dict):
        return errors
    data = event.get("data")
    pointers = content_schema_pointers(spec, event_schema_pointer)
    if not isinstance(data, str) or data == SSE_DONE or not pointers:
        return []
    try:
        decoded = json.loads(data)
    except ValueError as error:
        return [f"at /data: not JSON ({error})"]
    return [
        f"at /data (decoded): {message}"
        for pointer in pointers
        for message in schema_errors(spec, pointer, decoded)
    ]


def required_properties(spec: Mapping[str, Any], pointer: str) -> set[str]:
    """The property names a schema requires, including those required by its ``allOf`` parts."""
    schema, schema_pointer = deref(spec, resolve_pointer(spec, pointer), pointer)
    required = set(schema.get("required", []))
    for index in range(len(schema.get("allOf", []))):
        required |= required_properties(spec, join_pointer(schema_pointer, "allOf", index))
    return required


# --- embedded examples ----------------------------------------------------------------------------

_SUBSCHEMA_KEYWORDS = (
    "items",
    "additionalProperties",
    "not",
    "if",
    "then",
    "else",
    "contains",
    "propertyNames",
    "unevaluatedItems",
    "unevaluatedProperties",
    "contentSchema",
)
_SUBSCHEMA_LIST_KEYWORDS = ("allOf", "anyOf", "oneOf", "prefixItems")
_SUBSCHEMA_MAP_KEYWORDS = ("properties", "patternProperties", "$defs", "dependentSchemas")


@dataclass(frozen=True)
class EmbeddedExample:
    """One example value in a spec and the schema it must satisfy.

    ``schema_pointer`` is None when the example has no schema to sit under; ``media_type`` is set for the
    examples of a media type object.
    """

    pointer: str
    value: Any
    schema_pointer: str | None
    media_type: str | None = None


def _schema_examples(schema: Any, pointer: str) -> Iterator[EmbeddedExample]:
    if not isinstance(schema, dict):
        return
    for index, value in enumerate(schema.get("examples", [])):
        yield EmbeddedExample(join_pointer(pointer, "examples", index), value, pointer)
    if "example" in schema:
        yield EmbeddedExample(join_pointer(pointer, "example"), schema["example"], pointer)
    for keyword in _SUBSCHEMA_KEYWORDS:
        if keyword in schema:
            yield from _schema_examples(schema[keyword], join_pointer(pointer, keyword))
    for keyword in _SUBSCHEMA_LIST_KEYWORDS:
        for index, subschema in enumerate(schema.get(keyword, [])):
            yield from _schema_examples(subschema, join_pointer(pointer, keyword, index))
    for keyword in _SUBSCHEMA_MAP_KEYWORDS:
        for name, subschema in schema.get(keyword, {}).items():
            yield from _schema_examples(subschema, join_pointer(pointer, keyword, name))


def _schema_holder_examples(
    spec: Mapping[str, Any], holder: dict[str, Any], pointer: str, media_type: str | None = None
) -> Iterator[EmbeddedExample]:
    """Examples of an object with ``schema``, ``example`` and ``examples`` (media type, parameter, header)."""
    schema_pointer = join_pointer(pointer, "schema") if "schema" in holder else None
    if schema_pointer is not None:
        yield from _schema_examples(holder["schema"], schema_pointer)
    if "example" in holder:
        yield EmbeddedExample(join_pointer(pointer, "example"), holder["example"], schema_pointer, media_type)
    for name, raw in (holder.get("examples") or {}).items():
        example, example_pointer = deref(spec, raw, join_pointer(pointer, "examples", name))
        if "value" in example:
            yield EmbeddedExample(
                join_pointer(example_pointer, "value"), example["value"], schema_pointer, media_type
            )
    for content_type, media in (holder.get("content") or {}).items():
        yield from _schema_holder_examples(
            spec, media, join_pointer(pointer, "content", content_type), content_type
        )


def _response_examples(
    spec: Mapping[str, Any], response: dict[str, Any], pointer: str
) -> Iterator[EmbeddedExample]:
    for name, header in (response.get("headers") or {}).items():
        if "$ref" not in header:
            yield from _schema_holder_examples(spec, header, join_pointer(pointer, "headers", name))
    yield from _schema_holder_examples(spec, {"content": response.get("content") or {}}, pointer)


def iter_embedded_examples(spec: Mapping[str, Any]) -> Iterator[EmbeddedExample]:
    """Every example of a spec: schema ``examples``/``example``, parameter, header and media type examples.

    Referenced components are visited once, where they are defined, not at each use.
    """
    components = spec.get("components", {})
    for name, schema in components.get("schemas", {}).items():
        yield from _schema_examples(schema, join_pointer("/components/schemas", name))
    for section in ("parameters", "headers", "requestBodies"):
        for name, holder in components.get(section, {}).items():
            if "$ref" not in holder:
                yield from _schema_holder_examples(spec, holder, join_pointer("/components", section, name))
    for name, response in components.get("responses", {}).items():
        if "$ref" not in response:
            yield from _response_examples(spec, response, join_pointer("/components/responses", name))
    path_item_pointers: set[str] = set()
    for operation in iter_operations(spec, webhooks=True):
        owners = [(operation.node, operation.pointer)]
        item_pointer = operation.pointer.rsplit("/", 1)[0]
        if item_pointer not in path_item_pointers:
            path_item_pointers.add(item_pointer)
            owners.append((operation.path_item, item_pointer))
        for owner, owner_pointer in owners:
            for index, parameter in enumerate(owner.get("parameters") or []):
                if "$ref" not in parameter:
                    yield from _schema_holder_examples(
                        spec, parameter, join_pointer(owner_pointer, "parameters", index)
                    )
        body = operation.node.get("requestBody")
        if body and "$ref" not in body:
            yield from _schema_holder_examples(spec, body, join_pointer(operation.pointer, "requestBody"))
        for status, response in (operation.node.get("responses") or {}).items():
            if "$ref" not in response:
                yield from _response_examples(
                    spec, response, join_pointer(operation.pointer, "responses", status)
                )
