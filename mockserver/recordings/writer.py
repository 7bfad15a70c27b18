"""Writing exchanges: one block-style YAML file each (binary bodies beside it), redacted, atomically."""

from __future__ import annotations

import mimetypes
import os
import re
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from mockserver.recordings.model import (
    FORMAT,
    HEADER_COMMENT,
    SEQ_PREFIX,
    Exchange,
    RecordedEvent,
    RecordedMessage,
)
from mockserver.recordings.redaction import HOP_BY_HOP_HEADERS, Redactor, spec_credentials

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
        spec_headers, spec_query = spec_credentials(provider)
        self._drop = HOP_BY_HOP_HEADERS | spec_headers
        self._redactor = Redactor(secrets, spec_query)
        self._lock = threading.Lock()
        self.folder.mkdir(parents=True, exist_ok=True)
        self._seq = max(
            (int(m.group(1)) for m in map(SEQ_PREFIX.match, os.listdir(self.folder)) if m), default=0
        )

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
