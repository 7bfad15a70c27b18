"""The example payloads printed in the seed documents (transcribed in documented_examples.yaml) fit the specs.

The transcription itself is checked against the seed documents when they are available, so a typo in the
YAML cannot hide a spec defect.
"""

from __future__ import annotations

import copy
import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import yaml
from _spec_helpers import (
    PROVIDER_DOCS,
    Operation,
    deref,
    find_operation,
    is_success_status,
    iter_embedded_examples,
    iter_responses,
    join_pointer,
    load_spec,
    resolve_pointer,
    schema_errors,
)
from jsonschema import Draft202012Validator

from mockserver.resources import PROVIDER_IDS

EXAMPLES_FILE = Path(__file__).with_name("documented_examples.yaml")
DEFAULT_SEEDS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "seeds"
JSON_MEDIA_TYPE = "application/json"

_SEED_NAMES = sorted(doc.seed for doc in PROVIDER_DOCS.values())
_ENTRY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["seed", "provider", "kind", "source", "payload"],
    "additionalProperties": False,
    "properties": {
        "seed": {"enum": _SEED_NAMES},
        "provider": {"enum": list(PROVIDER_IDS)},
        "operationId": {"type": "string"},
        "component": {"type": "string"},
        "kind": {"enum": ["request", "response", "query"]},
        "status": {"anyOf": [{"type": "integer", "minimum": 100, "maximum": 599}, {"const": "2XX"}]},
        "media_type": {"type": "string"},
        "source": {"type": "string", "minLength": 1},
        "syntax": {"enum": ["json", "javascript"]},
        "placeholder_values": {"type": "object"},
        "payload": {},
    },
    "oneOf": [{"required": ["operationId"]}, {"required": ["component"]}],
    "allOf": [
        {
            "if": {"properties": {"kind": {"const": "query"}}},
            "then": {"properties": {"payload": {"type": "object"}}},
        },
        {
            "if": {"required": ["operationId"], "properties": {"kind": {"const": "response"}}},
            "then": {"required": ["status"]},
        },
    ],
}
_FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["examples", "not_payloads"],
    "additionalProperties": False,
    "properties": {
        "examples": {"type": "array", "minItems": 1, "items": _ENTRY_SCHEMA},
        "not_payloads": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["seed", "reason", "payload"],
                "additionalProperties": False,
                "properties": {"seed": {"enum": _SEED_NAMES}, "reason": {"type": "string"}, "payload": {}},
            },
        },
    },
}

# What each document shows an example of: (provider, operationId or component, kind, status).
DOCUMENTED: set[tuple[str, str, str, int | str | None]] = {
    ("studioaicore", "createChat", "request", None),
    ("studioaicore", "createChat", "response", "2XX"),
    ("studioaicore", "createChat", "response", 429),
    ("modelstudio", "createGenerationJob", "request", None),
    ("modelstudio", "createGenerationJob", "response", "2XX"),
    ("modelstudio", "getGenerationJob", "response", "2XX"),
    ("artificialstudio", "createRun", "request", None),
    ("artificialstudio", "createRun", "response", "2XX"),
    ("artificialstudio", "getGeneration", "response", "2XX"),
    ("pahlavan", "listModels", "query", None),
    ("pahlavan", "createQuote", "request", None),
    ("pahlavan", "createGeneration", "request", None),
    ("pahlavan", "createChatCompletion", "request", None),
    ("pahlavan", "presignUpload", "request", None),
    ("pahlavan", "commitUpload", "request", None),
    ("pahlavan", "signUrl", "request", None),
    ("pahlavan", "Error", "response", None),
    ("spaceai", "listModels", "response", "2XX"),
    ("spaceai", "createChatCompletion", "request", None),
    ("spaceai", "createChatCompletion", "response", "2XX"),
}


def _load_examples_file() -> dict[str, Any]:
    with EXAMPLES_FILE.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.safe_load(handle)
    return document


EXAMPLES_DOCUMENT = _load_examples_file()
ENTRIES: list[dict[str, Any]] = EXAMPLES_DOCUMENT.get("examples") or []


def _target(entry: dict[str, Any]) -> str:
    return str(entry.get("operationId") or entry.get("component"))


def _entry_id(index: int, entry: dict[str, Any]) -> str:
    status = f"-{entry['status']}" if "status" in entry else ""
    return f"{index:02d}-{entry.get('provider')}-{_target(entry)}-{entry.get('kind')}{status}"


ENTRY_PARAMS = [pytest.param(entry, id=_entry_id(index, entry)) for index, entry in enumerate(ENTRIES)]
# Entries of an operation's body, which CONVENTIONS.md wants embedded in the spec as examples.
BODY_ENTRY_PARAMS = [
    pytest.param(entry, id=_entry_id(index, entry))
    for index, entry in enumerate(ENTRIES)
    if "operationId" in entry and entry["kind"] in {"request", "response"}
]


def _canonical(value: Any) -> str:
    """A key equal for equal JSON values and distinct across types (1, 1.0, true, "1")."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def _validated_payload(entry: dict[str, Any]) -> Any:
    """The payload with the document's placeholders replaced by the values they stand for."""
    payload = copy.deepcopy(entry["payload"])
    for pointer, value in (entry.get("placeholder_values") or {}).items():
        parent_pointer, _, token = pointer.rpartition("/")
        parent = resolve_pointer(payload, parent_pointer)
        key = token.replace("~1", "/").replace("~0", "~")
        assert key in parent, f"placeholder {pointer} is not in the payload"
        parent[key] = value
    return payload


def _body_schema_pointers(spec: dict[str, Any], entry: dict[str, Any]) -> list[str]:
    """The schemas an entry's payload must satisfy (for a "2XX" response: one of them)."""
    media_type = entry.get("media_type", JSON_MEDIA_TYPE)
    if "component" in entry:
        return [join_pointer("/components/schemas", entry["component"])]
    operation = find_operation(spec, entry["operationId"])
    if entry["kind"] == "request":
        body, pointer = deref(
            spec, operation.node.get("requestBody", {}), join_pointer(operation.pointer, "requestBody")
        )
        holders = [(body, pointer)]
    else:
        holders = [
            (response, pointer)
            for status, response, pointer in iter_responses(spec, operation)
            if status == str(entry["status"]) or (entry["status"] == "2XX" and is_success_status(status))
        ]
    return [
        join_pointer(pointer, "content", media_type, "schema")
        for holder, pointer in holders
        if "schema" in holder.get("content", {}).get(media_type, {})
    ]


def _query_schema_pointers(spec: dict[str, Any], operation: Operation) -> dict[str, str]:
    """Query parameter name -> pointer of its schema (operation parameters override path-item ones)."""
    pointers = {}
    for owner_pointer in (operation.pointer.rsplit("/", 1)[0], operation.pointer):
        for index, raw in enumerate(resolve_pointer(spec, owner_pointer).get("parameters") or []):
            parameter, pointer = deref(spec, raw, join_pointer(owner_pointer, "parameters", index))
            if parameter["in"] == "query":
                pointers[parameter["name"]] = join_pointer(pointer, "schema")
    return pointers


def _query_errors(spec: dict[str, Any], entry: dict[str, Any]) -> list[str]:
    pointers = _query_schema_pointers(spec, find_operation(spec, entry["operationId"]))
    problems = []
    for name, value in entry["payload"].items():
        if name not in pointers:
            problems.append(f"no query parameter {name!r}")
        else:
            problems += [f"{name}: {message}" for message in schema_errors(spec, pointers[name], value)]
    return problems


def test_examples_file_shape() -> None:
    errors = sorted(
        error.message for error in Draft202012Validator(_FILE_SCHEMA).iter_errors(EXAMPLES_DOCUMENT)
    )
    assert not errors, "documented_examples.yaml:\n  " + "\n  ".join(errors)
    for entry in ENTRIES:
        assert entry["seed"] == PROVIDER_DOCS[entry["provider"]].seed, (
            f"{entry['source']}: seed/provider mismatch"
        )


def test_every_documented_example_is_transcribed() -> None:
    transcribed = {(e["provider"], _target(e), e["kind"], e.get("status")) for e in ENTRIES}
    assert transcribed >= DOCUMENTED, f"not transcribed: {sorted(DOCUMENTED - transcribed, key=str)}"
    assert {e["provider"] for e in ENTRIES} == set(PROVIDER_IDS)


@pytest.mark.parametrize("entry", ENTRY_PARAMS)
def test_documented_payload_fits_spec(entry: dict[str, Any]) -> None:
    spec = load_spec(entry["provider"])
    if entry["kind"] == "query":
        problems = _query_errors(spec, entry)
        assert not problems, f"{entry['provider']} {_target(entry)} ({entry['source']}): {problems}"
        return
    pointers = _body_schema_pointers(spec, entry)
    assert pointers, (
        f"{entry['provider']} {_target(entry)}: no {entry['kind']} schema for {entry.get('status', '')}"
    )
    payload = _validated_payload(entry)
    errors = {pointer: schema_errors(spec, pointer, payload) for pointer in pointers}
    assert any(not messages for messages in errors.values()), (
        f"{entry['provider']} {_target(entry)} ({entry['source']}) does not fit:\n"
        + "\n".join(f"  #{pointer}:\n    " + "\n    ".join(messages) for pointer, messages in errors.items())
    )


@pytest.mark.parametrize("entry", BODY_ENTRY_PARAMS)
def test_documented_payload_is_embedded(entry: dict[str, Any]) -> None:
    """CONVENTIONS.md: the document's own example payloads go under ``examples:`` of the media type."""
    spec = load_spec(entry["provider"])
    media_type = entry.get("media_type", JSON_MEDIA_TYPE)
    holders = _body_schema_pointers(spec, entry)
    media_pointers = {pointer.rsplit("/", 1)[0] for pointer in holders}
    embedded = {
        _canonical(example.value)
        for example in iter_embedded_examples(spec)
        if example.media_type == media_type
        and example.schema_pointer
        and example.schema_pointer.rsplit("/", 1)[0] in media_pointers
    }
    assert _canonical(entry["payload"]) in embedded, (
        f"{entry['provider']} {_target(entry)} ({entry['source']}): payload not among the examples of "
        f"{sorted(media_pointers)}"
    )


# --- the transcription against the seed documents -------------------------------------------------


def _seeds_dir() -> Path:
    return Path(os.environ.get("SEEDS_DIR") or DEFAULT_SEEDS_DIR)


def _top_level_json_objects(text: str) -> Iterator[Any]:
    """The JSON objects printed in a text that are not nested in another ``{...}`` (code blocks included)."""
    decoder = json.JSONDecoder()
    depth = 0
    index = 0
    while index < len(text):
        char = text[index]
        if char == "{" and depth == 0:
            try:
                value, index = decoder.raw_decode(text, index)
            except ValueError:
                depth, index = 1, index + 1
            else:
                yield value
            continue
        if char == "{":
            depth += 1
        elif char == "}":
            depth = max(depth - 1, 0)
        index += 1


def _without_quotes_and_space(text: str) -> str:
    return re.sub(r"[\s'\"]", "", text)


@pytest.mark.parametrize("provider", PROVIDER_IDS)
def test_transcription_matches_seed(provider: str) -> None:
    seed = PROVIDER_DOCS[provider].seed
    seed_file = _seeds_dir() / seed
    if not seed_file.is_file():
        pytest.skip(f"seed document {seed} not found in {_seeds_dir()} (set SEEDS_DIR to the seeds folder)")
    text = seed_file.read_text(encoding="utf-8")
    entries = [e for e in ENTRIES if e["seed"] == seed]

    printed = Counter(_canonical(value) for value in _top_level_json_objects(text))
    transcribed = Counter(
        _canonical(e["payload"])
        for e in entries
        if e["kind"] != "query" and e.get("syntax", "json") == "json"
    )
    transcribed.update(
        _canonical(p["payload"]) for p in EXAMPLES_DOCUMENT["not_payloads"] if p["seed"] == seed
    )
    assert printed == transcribed, (
        f"{seed}: JSON objects printed but not transcribed: {list((printed - transcribed).elements())}\n"
        f"transcribed but not printed (typo?): {list((transcribed - printed).elements())}"
    )

    for entry in entries:
        if entry["kind"] == "query":
            assert urlencode(entry["payload"]) in text, (
                f"{seed}: query {urlencode(entry['payload'])!r} not printed"
            )
        elif entry.get("syntax") == "javascript":
            compact = _without_quotes_and_space(json.dumps(entry["payload"], ensure_ascii=False))
            assert compact in _without_quotes_and_space(text), (
                f"{seed}: JavaScript payload of {entry['source']!r} not printed"
            )
