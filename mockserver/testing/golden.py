"""Golden payloads: the documented request and response bodies of every operation, one JSON file each.

Layout under ``fixtures/golden/`` (or any folder laid out the same way)::

    <provider>/<operationId>.request[.<example>].json
    <provider>/<operationId>.response.<status>[.<example>].json
    <provider>/<operationId>.response.<status>.stream[.<example>].json   (SSE: a list of {"data": ...} events)

A file without ``.<example>`` holds the first documented example; the others are named after the spec's
example. ``golden_errors`` checks any payload against the schema of its place in the spec, so files added
by hand (a captured real response, an edge case) are held to the contract like the shipped ones.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mockserver.core.spec import JSON_MEDIA_TYPE, SSE_MEDIA_TYPE, SchemaValidator, load_document, resolve
from mockserver.resources import fixtures_dir, spec_path

Kind = Literal["request", "response"]
STREAM = "stream"
_HTTP_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
_NAME = re.compile(
    r"(?P<operation_id>[A-Za-z][A-Za-z0-9_]*)\."
    r"(?:(?P<request>request)|response\.(?P<status>[1-5](?:[0-9]{2}|XX)))"
    r"(?P<stream>\.stream)?(?:\.(?P<example>[A-Za-z0-9_-]+))?\.json"
)


@dataclass(frozen=True, slots=True)
class GoldenName:
    """What a golden file holds, as its file name says."""

    operation_id: str
    kind: Kind
    status: str | None = None
    example: str | None = None
    stream: bool = False

    @property
    def filename(self) -> str:
        """``<operationId>.<request|response.<status>>[.stream][.<example>].json``."""
        if (self.kind == "response") != (self.status is not None):
            raise ValueError("a response golden needs a status, a request golden none")
        if self.example == STREAM:
            raise ValueError(f"{STREAM!r} cannot name an example (it marks event streams)")
        parts = [self.operation_id, self.kind if self.status is None else f"response.{self.status}"]
        parts += [STREAM] if self.stream else []
        parts += [self.example] if self.example else []
        return ".".join(parts) + ".json"

    @classmethod
    def parse(cls, filename: str) -> GoldenName:
        """The name's parts (``ValueError`` for a name outside the layout)."""
        match = _NAME.fullmatch(filename)
        if match is None:
            raise ValueError(
                f"{filename!r} is not <operationId>.<request|response.<status>>[.<example>].json"
            )
        return cls(
            operation_id=match["operation_id"],
            kind="request" if match["request"] else "response",
            status=match["status"],
            example=match["example"],
            stream=bool(match["stream"]),
        )


@dataclass(frozen=True, slots=True)
class Slot:
    """A place in a spec that holds a JSON body: a request body, or a response's JSON or SSE content."""

    provider: str
    operation_id: str
    kind: Kind
    status: str | None
    media_type: str
    pointer: str
    """JSON pointer of the media type object in the spec (after following ``$ref``s)."""
    schema: Mapping[str, Any] = field(repr=False)
    documented: dict[str | None, Any] = field(repr=False)
    """The spec's examples as golden payloads: ``None`` for the first, else by example name."""

    @property
    def stream(self) -> bool:
        """Whether the slot is an event stream (its golden payload is a list of events)."""
        return self.media_type == SSE_MEDIA_TYPE

    def name(self, example: str | None = None) -> GoldenName:
        """The golden file name for one of this slot's payloads."""
        return GoldenName(self.operation_id, self.kind, self.status, example, self.stream)


def golden_dir() -> Path:
    """The shipped golden payloads (``fixtures/golden``)."""
    return fixtures_dir() / "golden"


def _escape(token: str) -> str:
    return token.replace("~", "~0").replace("/", "~1")


def _follow(document: Mapping[str, Any], node: Any, pointer: str) -> tuple[Any, str]:
    """A node with its ``$ref`` chain followed, and the pointer where it is defined."""
    while isinstance(node, Mapping) and isinstance(node.get("$ref"), str):
        pointer = node["$ref"].removeprefix("#")
        node = resolve(document, node)
    return node, pointer


def _operations(document: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any], str]]:
    """(operationId, operation, pointer) of every path operation and webhook of a spec."""
    for section in ("paths", "webhooks"):
        for key, item in (document.get(section) or {}).items():
            item, item_pointer = _follow(document, item, f"/{section}/{_escape(key)}")
            for method in _HTTP_METHODS:
                if method in item:
                    yield str(item[method]["operationId"]), item[method], f"{item_pointer}/{method}"


def _documented(media: Mapping[str, Any], stream: bool) -> dict[str | None, Any]:
    values: list[tuple[str | None, Any]] = []
    if "example" in media:
        values.append((None, media["example"]))
    values += [(name, example.get("value")) for name, example in (media.get("examples") or {}).items()]
    if not values:
        return {}
    if stream:  # the documented events, in order, make one documented stream
        return {None: [value for _, value in values]}
    first, *others = values
    return {None: first[1], **{name: value for name, value in others}}


@functools.cache
def slots(provider: str) -> tuple[Slot, ...]:
    """Every JSON request body and JSON/SSE response of a provider's spec, in spec order."""
    document = load_document(spec_path(provider))
    found: list[Slot] = []

    def add(operation_id: str, kind: Kind, status: str | None, holder: Any, pointer: str) -> None:
        holder, pointer = _follow(document, holder, pointer)
        for media_type in (JSON_MEDIA_TYPE, SSE_MEDIA_TYPE):
            media = (holder.get("content") or {}).get(media_type)
            if media is None or "schema" not in media:
                continue
            where = f"{pointer}/content/{_escape(media_type)}"
            documented = _documented(media, media_type == SSE_MEDIA_TYPE)
            found.append(
                Slot(provider, operation_id, kind, status, media_type, where, media["schema"], documented)
            )

    for operation_id, operation, pointer in _operations(document):
        if "requestBody" in operation:
            add(operation_id, "request", None, operation["requestBody"], f"{pointer}/requestBody")
        for status, response in (operation.get("responses") or {}).items():
            if str(status) != "default":
                add(operation_id, "response", str(status), response, f"{pointer}/responses/{status}")
    return tuple(found)


def slot_for(provider: str, name: GoldenName) -> Slot:
    """The place in the spec a golden file name points at (``KeyError`` if the spec has none)."""
    media_type = SSE_MEDIA_TYPE if name.stream else JSON_MEDIA_TYPE
    for slot in slots(provider):
        if (slot.operation_id, slot.kind, slot.status, slot.media_type) == (
            name.operation_id,
            name.kind,
            name.status,
            media_type,
        ):
            return slot
    raise KeyError(
        f"{provider} has no {media_type} {name.kind} {name.status or ''} for {name.operation_id!r}"
    )


@functools.cache
def _validator(provider: str, pointer: str, stream: bool) -> tuple[SchemaValidator, str | None]:
    """The validator of a slot's payload (of each event's JSON data for streams) and a stream's terminator."""
    document = load_document(spec_path(provider))
    components = document.get("components", {})
    schema = resolve(document, resolve(document, {"$ref": "#" + pointer})["schema"])
    if not stream:
        return SchemaValidator(schema, components), None
    data = resolve(document, schema.get("properties", {}).get("data", {}))
    terminator, payload = None, None
    for branch in data.get("oneOf", data.get("anyOf", [data])):
        branch = resolve(document, branch)
        terminator = branch.get("const", terminator)
        payload = branch.get("contentSchema", payload)
    if payload is None:
        raise ValueError(f"{provider} {pointer}: the event schema gives no contentSchema")
    return SchemaValidator(payload, components), terminator


def golden_errors(provider: str, name: GoldenName | str, payload: Any) -> list[str]:
    """Why ``payload`` does not fit its place in the spec (empty when it fits)."""
    golden = GoldenName.parse(name) if isinstance(name, str) else name
    slot = slot_for(provider, golden)
    validator, terminator = _validator(provider, slot.pointer, slot.stream)
    if not slot.stream:
        return [f"/{'/'.join(map(str, path))}: {message}" for path, message in validator.errors(payload)]
    if not isinstance(payload, list) or not payload:
        return ["a stream golden is a non-empty list of events"]
    errors: list[str] = []
    for index, event in enumerate(payload):
        data = event.get("data") if isinstance(event, dict) else None
        if not isinstance(data, str):
            errors.append(f"/{index}: an event is an object with a string 'data'")
        elif data != terminator:
            try:
                decoded = json.loads(data)
            except ValueError as exc:
                errors.append(f"/{index}/data: not JSON ({exc})")
                continue
            errors += [f"/{index}/data/{'/'.join(map(str, p))}: {m}" for p, m in validator.errors(decoded)]
    return errors


def golden_path(
    provider: str,
    operation_id: str,
    kind: Kind = "request",
    status: int | str | None = None,
    example: str | None = None,
    *,
    stream: bool = False,
    root: Path | None = None,
) -> Path:
    """Where a golden payload lives (``root`` defaults to the shipped ``fixtures/golden``)."""
    name = GoldenName(operation_id, kind, None if status is None else str(status), example, stream)
    return (root or golden_dir()) / provider / name.filename


def load_golden(
    provider: str,
    operation_id: str,
    kind: Kind = "request",
    status: int | str | None = None,
    example: str | None = None,
    *,
    stream: bool = False,
    root: Path | None = None,
) -> Any:
    """A golden payload, parsed: ``load_golden("spaceai", "createChatCompletion", "response", 200)``."""
    path = golden_path(provider, operation_id, kind, status, example, stream=stream, root=root)
    return json.loads(path.read_text(encoding="utf-8"))
