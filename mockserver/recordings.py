"""Recorded exchanges: the on-disk format shared by the recording proxy and the mock's replay.

A neutral module (like ``resources``): the standard library, PyYAML and ``errors`` only, so ``core``
and ``conformance`` may both import it. One exchange is one human-editable YAML file::

    DIR/<provider>/<seq>-<METHOD>-<slug>.yaml            the exchange
    DIR/<provider>/<seq>-<METHOD>-<slug>.<part>.<ext>    a binary body beside it (part: request|response)

``RecordingWriter`` redacts every secret before anything reaches the disk; ``load_recordings`` reads a
folder back, and a malformed file is a ``FixtureError`` naming the file and the problem.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mockserver import resources
from mockserver.errors import FixtureError

FORMAT = 1
"""The format version written in every file (``format: 1``)."""
REDACTED = "[REDACTED]"
"""What replaces a secret value (the value only, never the text around it)."""
HEADER_COMMENT = (
    '# Recorded by `python -m conformance proxy`; edit freely (see README "Recording and replaying").\n'
)

CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        "set-cookie",
        "webhook-signature",
        "x-amz-security-token",
    }
)
"""Headers never recorded, whatever their value."""
HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        # Bodies are stored decoded, so an encoding header would describe bytes that are not there.
        "content-encoding",
        "host",
    }
)
"""Headers that describe one connection or the bytes on the wire, not the exchange: dropped."""
SIGNED_QUERY_NAMES = frozenset(
    {
        "signature",
        "sig",
        "token",
        "x-amz-signature",
        "x-goog-signature",
        "x-amz-security-token",
        "x-amz-credential",
        "access_token",
        "api_key",
        "apikey",
        "api-key",
    }
)
"""Query parameters whose values are redacted in any URL (signed URLs' signatures and tokens)."""

_SIGNED_QUERY = re.compile(
    r"(?i)((?<=[?&;])(?:" + "|".join(map(re.escape, sorted(SIGNED_QUERY_NAMES))) + r")=)[^&\s'\"#<>]+"
)
_SEQ = re.compile(r"^(\d{6,})-")
_SLUG_CUT = re.compile(r"[^a-z0-9]+")
_EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/webp": "webp",
    "image/gif": "gif",
    "video/mp4": "mp4",
    "audio/mpeg": "mp3",
    "audio/wav": "wav",
    "application/octet-stream": "bin",
}


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """One server-sent event: ``t`` seconds after the response headers, its data, and event/id if sent."""

    t: float
    data: str
    event: str | None = None
    id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedMessage:
    """A request or a response: headers (lower-case names) and a body or, for a stream, events."""

    headers: dict[str, str] = field(default_factory=dict)
    body: Any = None
    """Parsed JSON (dict, list, number...), ``str`` for a text body, ``bytes`` for a binary one, or None.

    A JSON document whose top level is a string is given as its text: ``str`` always means ``body_text``.
    """
    events: tuple[RecordedEvent, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedRequest(RecordedMessage):
    """The request: method, path relative to the provider's root, query pairs in order."""

    method: str
    path: str
    query: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordedResponse(RecordedMessage):
    """The response: its status."""

    status: int


@dataclass(frozen=True, slots=True)
class Exchange:
    """One recorded request and its response; ``source`` is the file it was loaded from."""

    provider: str
    request: RecordedRequest
    response: RecordedResponse
    recorded_at: str
    source: Path | None = None


# --- redaction -------------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """``url`` (or any text holding URLs) with signed-URL signatures and tokens redacted, value only."""
    return _SIGNED_QUERY.sub(rf"\g<1>{REDACTED}", url)


class _Redactor:
    """Replaces the given secret values and URL signatures in text, bytes and JSON structures."""

    def __init__(self, secrets: Iterable[str], query_names: Iterable[str]) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s and s.strip()}, key=len, reverse=True)
        self._query_names = frozenset(n.lower() for n in query_names) | SIGNED_QUERY_NAMES

    def text(self, value: str) -> str:
        for secret in self._secrets:
            value = value.replace(secret, REDACTED)
        return redact_url(value)

    def raw(self, value: bytes) -> bytes:
        for secret in self._secrets:
            value = value.replace(secret.encode(), REDACTED.encode())
        return value

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.json(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.json(v) for v in value]
        return value

    def headers(self, headers: Mapping[str, str], drop: frozenset[str]) -> dict[str, str]:
        return {
            name.lower(): self.text(str(value))
            for name, value in headers.items()
            if name.lower() not in drop and name.lower() not in CREDENTIAL_HEADERS
        }

    def query(self, pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        return tuple(
            (self.text(name), REDACTED if name.lower() in self._query_names and value else self.text(value))
            for name, value in pairs
        )

    def events(self, events: Iterable[RecordedEvent]) -> tuple[RecordedEvent, ...]:
        return tuple(
            RecordedEvent(
                t=e.t,
                data=self.text(e.data),
                event=None if e.event is None else self.text(e.event),
                id=None if e.id is None else self.text(e.id),
            )
            for e in events
        )

    def body(self, body: Any) -> Any:
        if isinstance(body, bytes | bytearray):
            return self.raw(bytes(body))
        return self.json(body)


def _spec_credentials(provider: str) -> tuple[set[str], set[str]]:
    """The header and query names the provider's spec declares as ``apiKey`` security schemes."""
    headers: set[str] = set()
    query: set[str] = set()
    path = resources.spec_path(provider) if provider in resources.PROVIDER_IDS else None
    if path is None or not path.is_file():
        return headers, query
    with path.open(encoding="utf-8") as handle:
        spec = yaml.safe_load(handle) or {}
    schemes = (spec.get("components") or {}).get("securitySchemes") or {}
    for scheme in schemes.values():
        if (
            isinstance(scheme, dict)
            and scheme.get("type") == "apiKey"
            and isinstance(scheme.get("name"), str)
        ):
            (headers if scheme.get("in") == "header" else query).add(scheme["name"].lower())
    return headers, query


# --- writing ---------------------------------------------------------------------------------------


class _Flow(list[Any]):
    """A list dumped in YAML flow style (``[[limit, "2"]]``)."""


class _FlowMap(dict[str, Any]):
    """A mapping dumped in YAML flow style (one event per line)."""


_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"


class _Dumper(yaml.SafeDumper):
    pass


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    # Multi-line text as a literal block, so a recorded text body reads as it was sent.
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)


_Dumper.add_representer(str, _str)
_Dumper.add_representer(_Flow, lambda d, v: d.represent_sequence("tag:yaml.org,2002:seq", v, flow_style=True))
_Dumper.add_representer(
    _FlowMap, lambda d, v: d.represent_mapping("tag:yaml.org,2002:map", v, flow_style=True)
)


def slug(path: str) -> str:
    """The file-name slug of a request path: its segments joined by '-', [a-z0-9-] only, at most 60 chars."""
    text = _SLUG_CUT.sub("-", path.lower()).strip("-")
    return text[:60].rstrip("-") or "root"


def _extension(content_type: str | None) -> str:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    if media in _EXTENSIONS:
        return _EXTENSIONS[media]
    guessed = mimetypes.guess_extension(media) if media else None
    return guessed.lstrip(".") if guessed else "bin"


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class RecordingWriter:
    """Writes exchanges under ``root/<provider>/``, redacted, one YAML file each (atomically)."""

    def __init__(self, root: Path, provider: str, secrets: Iterable[str] = ()) -> None:
        self.folder = Path(root) / provider
        self.provider = provider
        spec_headers, spec_query = _spec_credentials(provider)
        self._drop = HOP_BY_HOP_HEADERS | spec_headers
        self._redactor = _Redactor(secrets, spec_query)
        self._lock = threading.Lock()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._seq = max((int(m.group(1)) for m in map(_SEQ.match, os.listdir(self.folder)) if m), default=0)

    def write(self, exchange: Exchange) -> Path:
        """Redact ``exchange`` and write it; the path of its YAML file."""
        with self._lock:
            self._seq += 1
            stem = f"{self._seq:06d}-{exchange.request.method.upper()}-{slug(exchange.request.path)}"
            while (self.folder / f"{stem}.yaml").exists():  # another recorder shares the folder
                self._seq += 1
                stem = f"{self._seq:06d}-{exchange.request.method.upper()}-{slug(exchange.request.path)}"
            document = self._document(exchange, stem)
            text = HEADER_COMMENT + yaml.dump(
                document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=1_000_000
            )
            target = self.folder / f"{stem}.yaml"
            _atomic_write(target, text.encode("utf-8"))
            return target

    def _document(self, exchange: Exchange, stem: str) -> dict[str, Any]:
        r = self._redactor
        req, resp = exchange.request, exchange.response
        request: dict[str, Any] = {
            "method": req.method.upper(),
            "path": r.text(req.path),
            "query": _Flow(_Flow(pair) for pair in r.query(req.query)),
            "headers": r.headers(req.headers, self._drop),
        }
        request.update(self._body(req, "request", stem))
        response: dict[str, Any] = {
            "status": int(resp.status),
            "headers": r.headers(resp.headers, self._drop),
        }
        if resp.events is not None:
            response["events"] = [_event_map(e) for e in r.events(resp.events)]
        else:
            response.update(self._body(resp, "response", stem))
        return {
            "format": FORMAT,
            "provider": exchange.provider,
            "recorded_at": exchange.recorded_at,
            "request": request,
            "response": response,
        }

    def _body(self, message: RecordedMessage, part: str, stem: str) -> dict[str, Any]:
        body = self._redactor.body(message.body)
        if body is None or body == b"" or body == "":
            return {}
        if isinstance(body, bytes):
            name = f"{stem}.{part}.{_extension(message.headers.get('content-type'))}"
            # The body goes first, so a YAML file on disk never names a file that is not there yet.
            _atomic_write(self.folder / name, body)
            return {"body_file": name}
        if isinstance(body, str):
            return {"body_text": body}
        return {"body": body}


def _event_map(event: RecordedEvent) -> _FlowMap:
    out = _FlowMap(t=round(float(event.t), 3))
    if event.event is not None:
        out["event"] = event.event
    if event.id is not None:
        out["id"] = event.id
    out["data"] = event.data
    return out


# --- loading ---------------------------------------------------------------------------------------


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
        match = _SEQ.match(path.name)
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
