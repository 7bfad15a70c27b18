"""Hypothesis strategies for schema-valid extremes of an OpenAPI schema (imported by name, like the helpers).

Values sit at the edges a schema allows: the bounds of integers and numbers (2^63-1, 1e20 written as a float,
the largest double where none is declared), empty strings, strings as long as ``maxLength`` (10,000
characters where none is declared), lone UTF-16 surrogates, NUL and emoji, empty and full arrays, objects
with and without their optional fields, and free-form objects nested 100 levels deep. Generated bodies are
kept only when the schema accepts them (see ``valid``), so every request is one the contract allows.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from hypothesis import strategies as st

from mockserver.core.spec import resolve

LONG = 10_000
DEEP = 100
"""Nesting depth of a free-form object: deep, yet well inside every JSON parser's and validator's limit."""
STRINGS = ("\ud800", "", "\udfff", "a\ud800b", "\x00", "\U0001f600", "é" * 3)
_SURROGATE = re.compile("[\ud800-\udfff]")


def types(schema: Mapping[str, Any]) -> set[str]:
    """The JSON types a schema declares (inferred from ``properties``/``items`` when it declares none)."""
    declared = schema.get("type")
    if isinstance(declared, list):
        return set(declared)
    if isinstance(declared, str):
        return {declared}
    if "properties" in schema:
        return {"object"}
    return {"array"} if "items" in schema else set()


def _integers(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    low = schema.get("minimum", schema.get("exclusiveMinimum", -(2**63)) + ("exclusiveMinimum" in schema))
    high = schema.get("maximum", schema.get("exclusiveMaximum", 2**63 - 1) - ("exclusiveMaximum" in schema))
    low, high = int(low), int(high)
    edges = [high, low, min(max(0, low), high), min(max(1, low), high)]
    if "maximum" not in schema and "exclusiveMaximum" not in schema:
        # First, as hypothesis draws early elements more often: an integer written with an exponent (a
        # float on the wire), and one past 64 bits.
        edges = [1e20, 10**30, *edges]
    # Edges twice as likely as any other integer: they are what this is about.
    return st.one_of(st.sampled_from(edges), st.sampled_from(edges), st.integers(low, high))


def _numbers(schema: Mapping[str, Any]) -> st.SearchStrategy[Any]:
    low = float(schema.get("minimum", -sys.float_info.max))
    high = float(schema.get("maximum", sys.float_info.max))
    edges = [low, high, min(max(0.0, low), high), min(max(5e-324, low), high)]
    return st.one_of(
        st.sampled_from(edges),
        st.sampled_from(edges),
        st.floats(low, high, allow_nan=False, allow_infinity=False),
    )


def _strings(schema: Mapping[str, Any], *, url_safe: bool) -> st.SearchStrategy[Any]:
    shortest, longest = int(schema.get("minLength", 0)), int(schema.get("maxLength", LONG))
    edges = [s for s in STRINGS if shortest <= len(s) <= longest]
    edges += ["x" * longest, "x" * max(shortest, 1)]
    edges += [str(e) for e in schema.get("examples", []) if isinstance(e, str)]
    found: st.SearchStrategy[str] = st.text(min_size=shortest, max_size=min(longest, 50))
    if "pattern" in schema:
        pattern = re.compile(schema["pattern"])
        edges = [e for e in edges if pattern.search(e)]
        found = st.from_regex(pattern, fullmatch=True).filter(lambda s: shortest <= len(s) <= longest)
    found = st.sampled_from(edges) | found if edges else found
    return found.filter(lambda s: not _SURROGATE.search(s)) if url_safe else found


def _deep() -> Any:
    value: Any = {"leaf": "\ud800"}
    for depth in range(DEEP):
        value = {f"level{depth}": value, "n": 2**63 - 1}
    return value


def _objects(
    document: Mapping[str, Any],
    schema: Mapping[str, Any],
    overrides: Mapping[str, st.SearchStrategy[Any]],
    depth: int,
) -> st.SearchStrategy[Any]:
    properties = schema.get("properties", {})
    required = set(schema.get("required", ()))
    if not properties:
        return st.sampled_from([{}, _deep(), {"k" * 1000: ""}])
    strategies = {
        name: overrides[name] if name in overrides else strategy(document, prop, overrides, depth + 1)
        for name, prop in properties.items()
        if not str(resolve(document, prop).get("format", "")).startswith("uri")
    }
    return st.fixed_dictionaries(
        {name: s for name, s in strategies.items() if name in required},
        optional={name: s for name, s in strategies.items() if name not in required},
    )


def strategy(
    document: Mapping[str, Any],
    schema: Any,
    overrides: Mapping[str, st.SearchStrategy[Any]] | None = None,
    depth: int = 0,
    *,
    url_safe: bool = False,
) -> st.SearchStrategy[Any]:
    """Extreme values for a schema; ``overrides`` replace properties by name (e.g. known model ids)."""
    schema = resolve(document, schema or {})
    overrides = overrides or {}
    if "const" in schema:
        return st.just(schema["const"])
    if "enum" in schema:
        return st.sampled_from(list(schema["enum"]))
    for key in ("oneOf", "anyOf"):
        if key in schema:
            return st.one_of(
                [strategy(document, b, overrides, depth, url_safe=url_safe) for b in schema[key]]
            )
    if "allOf" in schema:
        merged: dict[str, Any] = {"type": "object", "properties": {}, "required": []}
        for part in [schema, *schema["allOf"]]:
            part = resolve(document, part)
            merged["properties"].update(part.get("properties", {}))
            merged["required"] += part.get("required", [])
        schema = merged
    if depth > 8:
        return st.nothing()
    options: list[st.SearchStrategy[Any]] = []
    for kind in sorted(types(schema)):
        if kind == "null":
            options.append(st.none())
        elif kind == "boolean":
            options.append(st.booleans())
        elif kind == "integer":
            options.append(_integers(schema))
        elif kind == "number":
            options.append(_numbers(schema))
        elif kind == "string":
            options.append(_strings(schema, url_safe=url_safe))
        elif kind == "array":
            items = strategy(document, schema.get("items", {}), overrides, depth + 1)
            low, high = int(schema.get("minItems", 0)), int(schema.get("maxItems", 3))
            options.append(st.lists(items, min_size=low, max_size=min(high, max(low, 3))))
        elif kind == "object":
            options.append(_objects(document, schema, overrides, depth))
    return st.one_of(options) if options else st.just({})


def without_surrogates(value: Any) -> Any:
    """The value with each surrogate as U+FFFD: what the validator (UTF-8 only) can judge, same lengths."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, Sequence) and not isinstance(value, str | bytes):
        return [without_surrogates(v) for v in value]
    if isinstance(value, Mapping):
        return {without_surrogates(k): without_surrogates(v) for k, v in value.items()}
    return value
