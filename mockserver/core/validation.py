"""Validate a request against its operation: parameters (coerced from strings) and the JSON body."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import orjson
from multidict import MultiMapping

from mockserver.core.spec import JSON_MEDIA_TYPE, Operation, Parameter, SchemaValidator
from mockserver.errors import ApiError, invalid_request


@dataclass(slots=True)
class ValidRequest:
    """Parameters and body, typed as the spec declares them."""

    # No defaults: default factories cost a call each, and one of these is made per request.
    path: dict[str, Any]
    query: dict[str, Any]
    headers: dict[str, Any]
    body: Any
    raw_body: bytes
    content_type: str


def field_name(location: str, path: list[str | int]) -> str:
    """A readable name for a place in the input: ``messages[0].role``."""
    name = ""
    for part in path:
        name += f"[{part}]" if isinstance(part, int) else (f".{part}" if name else str(part))
    return name or location


def _first_error(validator: SchemaValidator, value: Any, location: str, root: str = "") -> ApiError | None:
    if validator.is_valid(value):  # the common case; collecting errors costs more than a yes/no
        return None
    for path, message in validator.errors(value):
        where = field_name(location, [root, *path] if root else path)
        return invalid_request(
            f"Invalid {location} field '{where}': {message}", field=where, location=location
        )
    return None


def _types(schema: Mapping[str, Any]) -> set[str]:
    declared = schema.get("type")
    if isinstance(declared, list):
        return set(declared)
    if isinstance(declared, str):
        return {declared}
    if "enum" in schema and all(isinstance(v, str) for v in schema["enum"]):
        return {"string"}
    return set()


def _coerce_scalar(text: str, types: set[str]) -> Any:
    """Turn a query/path string into the declared scalar type; leave it a string when it does not parse."""
    if "integer" in types:
        try:
            return int(text)
        except ValueError:
            pass
    if "number" in types:
        try:
            return float(text)
        except ValueError:
            pass
    if "boolean" in types and text in ("true", "false"):
        return text == "true"
    return text


def _coerce(param: Parameter, values: list[str]) -> Any:
    types = _types(param.schema)
    if "array" in types:
        items = param.schema.get("items", {})
        parts = values if param.explode else [p for v in values for p in v.split(",")]
        return [_coerce_scalar(p, _types(items)) for p in parts]
    return _coerce_scalar(values[-1], types)


def _json_number(text: str) -> float | int:
    """A JSON fraction; integral values become ints, since JSON Schema's ``integer`` admits ``5.0``.

    Exactly the integer written (``1e23`` is 10**23, not the nearest double), at any magnitude a double
    reaches: an integer field written ``1e20`` must not reach a handler as a float (Decimal arithmetic
    refuses floats). Past the double range (``1e400``) the value stays ``inf``, which no schema accepts.
    """
    value = float(text)
    if not value.is_integer():
        return value
    exact = Decimal(text)
    return int(exact) if exact == exact.to_integral_value() else value


def _scrub(value: Any) -> Any:
    """``value`` with every lone UTF-16 surrogate (``"\\ud800"``, legal JSON) replaced by U+FFFD.

    Such a string cannot be encoded as UTF-8: not in a JSON answer, a rendered file or a webhook. The
    replacement is what a UTF-8 service (Go's, for one) makes of it, so the request is served as sent.
    """
    if isinstance(value, str):
        return _LONE_SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    if isinstance(value, dict):
        return {_scrub(key): _scrub(item) for key, item in value.items()}
    return value


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")
_DECODER = json.JSONDecoder(parse_float=_json_number)
"""Built once: json.loads with a hook constructs a new decoder on every call."""
_FRACTION_MARKS = bytes.maketrans(b"123456789eE", b"000000000..")
"""Every digit a 0, every exponent mark a dot: a number with a fraction or an exponent shows as ``0.``."""


def _parse_json(raw: bytes) -> Any:
    # orjson is several times faster, but it would keep 5.0 a float (the standard library decoder with
    # _json_number makes it 5) and it rejects a few inputs the standard library accepts (lone surrogate
    # escapes, integers past 64 bits). So: orjson when the body can hold no fraction, the standard
    # library otherwise or when orjson refuses; both paths give the same value.
    # translate() and find() run in C over the bytes; a regular expression cost as much as parsing the
    # body. Not `b"0." in marked`: bytes.__contains__ first tries its argument as an integer and builds a
    # TypeError to discard (~2k instructions each time); find() takes bytes directly. A string such as
    # "gpt-4e" also shows "0.": it only sends that body down the slower path, which gives the same value.
    if raw.translate(_FRACTION_MARKS).find(b"0.") < 0:
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError:
            pass
    try:
        value = _DECODER.decode(raw.decode("utf-8"))
        # orjson refuses lone surrogate escapes, so only this path can meet them; valid pairs are one
        # character once decoded.
        return _scrub(value) if b"\\ud" in raw or b"\\uD" in raw else value
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError, and integers past Python's digit limit
        raise invalid_request(f"Request body is not valid JSON: {exc}", location="body") from exc
    except RecursionError as exc:
        # Pathologically deep nesting ([[[[...]]]]) exhausts the parser's stack: bad input, not our failure.
        raise invalid_request("Request body is nested too deeply.", location="body") from exc


def validate_request(
    operation: Operation,
    path_params: Mapping[str, str],
    query: MultiMapping[str],
    headers: Mapping[str, str],
    content_type: str,
    raw_body: bytes,
) -> ValidRequest:
    """Check every declared parameter and the body; the first violation becomes a 400 naming the field."""
    result = ValidRequest({}, {}, {}, None, raw_body, content_type)
    for param in operation.parameters:
        if param.location == "path":
            present, values = param.name in path_params, [path_params.get(param.name, "")]
            target = result.path
        elif param.location == "query":
            values = list(query.getall(param.name, []))
            present, target = bool(values), result.query
        elif param.location == "header":
            present, values = param.name in headers, [headers.get(param.name, "")]
            target = result.headers
        else:
            continue
        if not present:
            if param.required:
                raise invalid_request(
                    f"Missing required {param.location} parameter '{param.name}'.",
                    field=param.name,
                    location=param.location,
                )
            if "default" in param.schema:
                target[param.name] = param.schema["default"]
            continue
        value = _coerce(param, values)
        error = _first_error(param.validator, value, param.location, param.name)
        if error is not None:
            raise error
        target[param.name] = value

    spec = operation.body
    if spec is None:
        return result
    if not raw_body:
        if spec.required:
            raise invalid_request("Request body is required.", location="body")
        return result
    if (not content_type or content_type == JSON_MEDIA_TYPE) and JSON_MEDIA_TYPE in spec.media_types:
        body = _parse_json(raw_body)
        validator = spec.media_types[JSON_MEDIA_TYPE]
        if validator is not None:
            error = _first_error(validator, body, "body")
            if error is not None:
                raise error
        result.body = body
        return result
    if spec.accepts_any() or content_type in spec.media_types:
        result.body = raw_body
        return result
    expected = ", ".join(spec.media_types)
    raise invalid_request(
        f"Unsupported Content-Type '{content_type}'; send {expected}.",
        field="Content-Type",
        location="header",
    )
