"""``--record DIR``: each exchange written by the recording format's writer (``mockserver.recordings``).

The proxy builds the format's ``Exchange`` (streams as events with their times since the response headers,
binary bodies as bytes) and hands the writer every credential value seen, so it redacts them everywhere.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from conformance.client import Exchange
from conformance.proxy.ledger import Secrets
from conformance.proxy.sse import Event
from mockserver import recordings

KEPT_REQUEST_HEADERS = ("content-type", "accept")
"""Request headers worth replaying; credentials never (the writer drops them too)."""
DROPPED_RESPONSE_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "connection", "keep-alive", "content-encoding", "date", "server"}
)


class Recorder:
    """Writes exchanges under ``root/<provider>/`` (one writer, renewed when a new secret is learned)."""

    def __init__(self, root: Path, provider: str, header_params: Iterable[str] = ()) -> None:
        self._format = recordings
        self.root = root
        self.provider = provider
        self.header_params = frozenset(h.lower() for h in header_params)
        # Made now, so a folder that cannot be created stops the start (exit 2), not the first exchange.
        self._writer = recordings.RecordingWriter(root, provider)
        self._known: frozenset[str] = frozenset()
        self.written = 0

    def write(
        self,
        request: web.Request,
        exchange: Exchange,
        events: list[tuple[float, Event]] | None,
        secrets: Secrets,
    ) -> Path:
        """Record one exchange; returns the file written."""
        fmt = self._format
        if secrets.values != self._known:
            self._known = frozenset(secrets.values)
            self._writer = fmt.RecordingWriter(self.root, self.provider, secrets=sorted(self._known))
        kept = KEPT_REQUEST_HEADERS + tuple(self.header_params)
        req_headers = {k.lower(): v for k, v in request.headers.items() if k.lower() in kept}
        resp_headers = {
            k.lower(): v
            for k, v in exchange.headers.items()
            if k.lower() not in DROPPED_RESPONSE_HEADERS
            and k.lower() not in secrets.headers
            and k.lower() != "set-cookie"
        }
        recorded_request = fmt.RecordedRequest(
            headers=req_headers,
            body=_body(exchange.request_body or b"", req_headers.get("content-type", "")),
            method=request.method,
            path=request.path,
            query=tuple((k, v) for k, v in request.query.items()),
        )
        if events is not None:
            recorded_events = tuple(
                fmt.RecordedEvent(t=round(t, 3), data=e.data, event=e.event, id=e.id) for t, e in events
            )
            response = fmt.RecordedResponse(
                headers=resp_headers, events=recorded_events, status=exchange.status
            )
        else:
            content_type = exchange.header("content-type") or ""
            response = fmt.RecordedResponse(
                headers=resp_headers, body=_body(exchange.content, content_type), status=exchange.status
            )
        now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        recorded = fmt.Exchange(
            provider=self.provider, request=recorded_request, response=response, recorded_at=now
        )
        path: Path = self._writer.write(recorded)
        self.written += 1
        return path


def _body(raw: bytes, content_type: str) -> Any:
    """Parsed JSON, text for other text types, bytes for binary, ``None`` when empty."""
    if not raw:
        return None
    media = content_type.split(";")[0].strip().lower()
    textual = media.startswith("text/") or media.endswith(("+json", "/json", "/xml", "/yaml"))
    if media == "application/json" or media.endswith("+json"):
        try:
            parsed = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            pass
        else:
            # A top-level JSON string is kept as its text: to the format, ``str`` means ``body_text``.
            return raw.decode("utf-8") if isinstance(parsed, str) else parsed
    if textual or media in ("", "application/x-www-form-urlencoded"):
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
    return raw
