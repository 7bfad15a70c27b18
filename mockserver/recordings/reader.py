"""Reading exchanges back: every file of a folder, checked; a malformed one is a FixtureError naming it."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from mockserver.errors import FixtureError
from mockserver.recordings.model import (
    FORMAT,
    SEQ_PREFIX,
    Exchange,
    RecordedEvent,
    RecordedRequest,
    RecordedResponse,
)


class _Loader(yaml.SafeLoader):
    """SafeLoader without timestamps: a JSON body has no dates, so ``2026-12-03`` stays a string."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}

_TOP_KEYS = {"format", "provider", "recorded_at", "request", "response"}
_REQUEST_KEYS = {"method", "path", "query", "headers", "body", "body_text", "body_file"}
_RESPONSE_KEYS = {"status", "headers", "body", "body_text", "body_file", "events"}
_EVENT_KEYS = {"t", "data", "event", "id"}


class _Bad(Exception):
    """A problem in one file (turned into a FixtureError naming it)."""


def load_recordings(root: Path) -> dict[str, list[Exchange]]:
    """Every exchange under ``root``, by provider folder, in seq order; FixtureError naming a bad file."""
    root = Path(root)
    if not root.is_dir():
        raise FixtureError(f"recordings folder {root} does not exist or is not a folder")
    out: dict[str, list[Exchange]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        exchanges = [load_exchange(path) for path in _exchange_files(folder)]
        if exchanges:
            out[folder.name] = exchanges
    return out


def _exchange_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix == ".yaml" and not p.name.startswith(".")]

    def order(path: Path) -> tuple[int, str]:
        match = SEQ_PREFIX.match(path.name)
        return (int(match.group(1)) if match else 1 << 62, path.name)

    return sorted(files, key=order)


def load_exchange(path: Path) -> Exchange:
    """One exchange file; FixtureError naming the file and the problem."""
    try:
        with path.open(encoding="utf-8") as handle:
            document = yaml.load(handle, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise FixtureError(f"recording {path}: not valid YAML{where}: {exc.problem}") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise FixtureError(f"recording {path}: cannot be read: {exc}") from None
    try:
        return _exchange(document, path)
    except _Bad as exc:
        raise FixtureError(f"recording {path}: {exc}") from None


def _exchange(doc: Any, path: Path) -> Exchange:
    doc = _mapping(doc, "the file", _TOP_KEYS)
    if doc.get("format") != FORMAT:
        raise _Bad(f"format must be {FORMAT}, not {doc.get('format')!r}")
    provider = _string(doc.get("provider"), "provider")
    if provider != path.parent.name:
        raise _Bad(f"provider {provider!r} does not match its folder {path.parent.name!r}")
    recorded_at = _string(doc.get("recorded_at", ""), "recorded_at", empty=True)
    req = _mapping(doc.get("request"), "request", _REQUEST_KEYS)
    resp = _mapping(doc.get("response"), "response", _RESPONSE_KEYS)
    method = _string(req.get("method"), "request.method").upper()
    target = _string(req.get("path"), "request.path")
    if not target.startswith("/"):
        raise _Bad(f"request.path must start with '/', not {target!r}")
    request = RecordedRequest(
        method=method,
        path=target,
        query=_query(req.get("query", [])),
        headers=_headers(req.get("headers", {}), "request.headers"),
        body=_body(req, "request", path.parent),
    )
    status = resp.get("status")
    if isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599:
        raise _Bad(f"response.status must be an HTTP status (100-599), not {status!r}")
    events = None
    if "events" in resp:
        if any(k in resp for k in ("body", "body_text", "body_file")):
            raise _Bad("response has both events and a body; a stream has events only")
        events = _events(resp["events"])
    response = RecordedResponse(
        status=status,
        headers=_headers(resp.get("headers", {}), "response.headers"),
        body=None if events is not None else _body(resp, "response", path.parent),
        events=events,
    )
    return Exchange(provider, request, response, recorded_at, source=path)


def _mapping(value: Any, what: str, allowed: set[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _Bad(f"{what} must be a mapping, not {type(value).__name__}")
    unknown = sorted(str(k) for k in value if k not in allowed)
    if unknown:
        raise _Bad(f"{what} has unknown keys {unknown} (allowed: {sorted(allowed)})")
    return value


def _string(value: Any, what: str, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty):
        raise _Bad(f"{what} must be a non-empty string, not {value!r}")
    return value


def _scalar(value: Any, what: str) -> str:
    # A hand-edited `x-ratelimit-limit: 60` or `[limit, 2]` means the text "60" / "2".
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    raise _Bad(f"{what} must be a string, not {value!r}")


def _headers(value: Any, what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Bad(f"{what} must be a mapping of names to values")
    return {_scalar(k, f"{what} name").lower(): _scalar(v, f"{what}.{k}") for k, v in value.items()}


def _query(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise _Bad("request.query must be a list of [name, value] pairs")
    pairs = []
    for item in value:
        if not isinstance(item, list) or len(item) != 2:
            raise _Bad(f"request.query item {item!r} is not a [name, value] pair")
        pairs.append((_scalar(item[0], "request.query name"), _scalar(item[1], f"request.query {item[0]}")))
    return tuple(pairs)


def _body(message: dict[str, Any], part: str, folder: Path) -> Any:
    forms = [k for k in ("body", "body_text", "body_file") if k in message]
    if len(forms) > 1:
        raise _Bad(f"{part} has more than one body ({', '.join(forms)}); keep one")
    if not forms:
        return None
    if forms[0] == "body":
        try:
            json.dumps(message["body"], allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise _Bad(f"{part}.body is not JSON: {exc}") from None
        return message["body"]
    if forms[0] == "body_text":
        return _string(message["body_text"], f"{part}.body_text", empty=True)
    name = _string(message["body_file"], f"{part}.body_file")
    if "/" in name or "\\" in name or name.startswith("."):
        raise _Bad(f"{part}.body_file must name a file beside the recording, not {name!r}")
    try:
        return (folder / name).read_bytes()
    except OSError as exc:
        raise _Bad(f"{part}.body_file {name!r} cannot be read: {exc.strerror}") from None


def _events(value: Any) -> tuple[RecordedEvent, ...]:
    if not isinstance(value, list):
        raise _Bad("response.events must be a list of events")
    return tuple(_event(item, i) for i, item in enumerate(value))


def _event(item: Any, index: int) -> RecordedEvent:
    what = f"response.events[{index}]"
    item = _mapping(item, what, _EVENT_KEYS)
    t = item.get("t")
    if isinstance(t, bool) or not isinstance(t, int | float) or t < 0:
        raise _Bad(f"{what}.t must be seconds since the headers (a number >= 0), not {t!r}")
    if "data" not in item:
        raise _Bad(f"{what} has no data")
    data = item["data"]
    if isinstance(data, dict | list):  # a hand-written `data: {id: x}` is sent as compact JSON
        data = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    optional = {k: None if item.get(k) is None else _scalar(item[k], f"{what}.{k}") for k in ("event", "id")}
    return RecordedEvent(t=float(t), data=_scalar(data, f"{what}.data"), **optional)


def iter_exchanges(recordings: Mapping[str, list[Exchange]]) -> Iterator[Exchange]:
    """Every exchange of a ``load_recordings`` result, provider by provider."""
    for exchanges in recordings.values():
        yield from exchanges
