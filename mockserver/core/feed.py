"""The live feed of answered requests: subscribers (the dashboard's ``GET /_mock/events``) and a bounded ring
of recent request and response bodies for the detail view.

The request path pays for none of this while nobody listens: the journal calls its taps only when the list
is non-empty, and a feed puts itself on that list with its first subscriber and takes itself off with its
last. Captured details never hold a credential: credential headers are dropped and every key the mock
knows is masked wherever it appears (path, headers, bodies).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from aiohttp import web

from mockserver.core.journal import Entry, Journal
from mockserver.recordings import CREDENTIAL_HEADERS

RING_SIZE = 200
"""Requests whose bodies are kept for the detail view."""
MAX_BODY_CAPTURE = 64 * 1024
"""Bytes kept of each body; the rest is counted, not stored."""
QUEUE_SIZE = 1000
"""Events buffered per subscriber; a subscriber that falls this far behind misses events (told so)."""
REDACTED = "[redacted]"

Secrets = Callable[[], Iterable[str]]
"""Every key the mock knows (of any provider: a client may send one to the wrong provider), to mask."""


class Feed:
    """Subscribers to new journal entries and spec violations, and the ring of captured details."""

    def __init__(self, journal: Journal, secrets: Secrets, ring_size: int = RING_SIZE) -> None:
        self._journal = journal
        self._secrets = secrets
        self._ring_size = ring_size
        self._details: OrderedDict[int, dict[str, Any]] = OrderedDict()
        self._queues: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._pending_violations: list[dict[str, Any]] = []

    # -- subscribers ------------------------------------------------------------------------------

    def subscribe(self) -> asyncio.Queue[dict[str, Any] | None]:
        """A queue of events (``None`` when the feed closes); the first one starts the capture."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(QUEUE_SIZE)
        self._queues.add(queue)
        if self not in self._journal.taps:
            self._journal.taps.append(self)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any] | None]) -> None:
        """Stop sending to ``queue``; with the last subscriber gone, the request path stops calling us."""
        self._queues.discard(queue)
        if not self._queues and self in self._journal.taps:
            self._journal.taps.remove(self)

    def close(self) -> None:
        """End every subscription (server shutdown)."""
        for queue in list(self._queues):
            while queue.full():  # the end marker must get through
                queue.get_nowait()
            queue.put_nowait(None)
        self._queues.clear()
        if self in self._journal.taps:
            self._journal.taps.remove(self)

    def publish(self, event: dict[str, Any]) -> None:
        """Send ``event`` to every subscriber (one ``QUEUE_SIZE`` events behind misses it)."""
        for queue in self._queues:
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(event)

    # -- what the journal calls (only while someone listens) ----------------------------------------

    def on_request(self, entry: Entry, request: web.BaseRequest, response: web.StreamResponse) -> None:
        """A request was answered: capture its details and tell the subscribers."""
        problems = [v["problem"] for v in self._pending_violations if _same_call(v, entry)]
        self._pending_violations = [v for v in self._pending_violations if not _same_call(v, entry)]
        detail = self._capture(entry, request, response)
        detail["violations"] = problems
        self._details[entry.id] = detail
        while len(self._details) > self._ring_size:
            self._details.popitem(last=False)
        self.publish({"type": "request", "entry": summary(entry, problems)})

    def on_violation(self, violation: dict[str, Any]) -> None:
        """A response broke the spec: kept for the entry the journal records next for that call."""
        self._pending_violations.append(violation)
        del self._pending_violations[:-50]  # a violation whose entry never comes must not pile up
        self.publish({"type": "violation", "violation": violation})

    # -- details ----------------------------------------------------------------------------------

    def detail(self, entry_id: int) -> dict[str, Any] | None:
        """The captured request and response of a recent entry, or None (not captured, or gone)."""
        return self._details.get(entry_id)

    def clear(self) -> None:
        """Forget captured details (the journal was cleared)."""
        self._details.clear()
        self._pending_violations.clear()

    def _capture(
        self, entry: Entry, request: web.BaseRequest, response: web.StreamResponse
    ) -> dict[str, Any]:
        masks = [s for s in self._secrets() if s]
        body = response.body if isinstance(response, web.Response) else None
        return {
            **summary(entry, []),
            "request": {
                "method": request.method,
                "path": _mask(request.path_qs, masks),
                "headers": _headers(request.headers, masks),
                # The body the pipeline read (aiohttp keeps it on the request); None when none was read.
                "body": _body(getattr(request, "_read_bytes", None), masks),
            },
            "response": {
                "status": response.status,
                "headers": _headers(response.headers, masks),
                "body": _body(body, masks) if isinstance(body, bytes) else None,
                "streamed": not isinstance(response, web.Response),
            },
        }


def summary(entry: Entry, violations: list[str]) -> dict[str, Any]:
    """An entry as the journal lists it, plus the violations found on it."""
    return {**entry._asdict(), "latency_ms": round(entry.latency_ms, 3), "violations": violations}


def _same_call(violation: dict[str, Any], entry: Entry) -> bool:
    return bool(
        violation.get("provider") == entry.provider and violation.get("operation_id") == entry.operation_id
    )


def _mask(text: str, masks: list[str]) -> str:
    for secret in masks:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _headers(headers: Mapping[str, str], masks: list[str]) -> dict[str, str]:
    # Credential headers (the recording format's one list) keep their name, never their value; any other
    # header carrying a known key is masked too.
    return {
        name: REDACTED if name.lower() in CREDENTIAL_HEADERS else _mask(value, masks)
        for name, value in headers.items()
    }


def _body(raw: bytes | None, masks: list[str]) -> dict[str, Any] | None:
    """A body as text (masked) when it decodes as UTF-8, else base64; at most ``MAX_BODY_CAPTURE`` bytes."""
    if not raw:
        return None
    kept = raw[:MAX_BODY_CAPTURE]
    found: dict[str, Any] = {"size": len(raw), "truncated": len(raw) > len(kept)}
    try:
        found["text"] = _mask(kept.decode("utf-8"), masks)
    except UnicodeDecodeError:
        # A cut may split a character: what decodes up to the cut is still text.
        text = kept.decode("utf-8", "ignore") if found["truncated"] else None
        if text is not None and len(text.encode()) >= len(kept) - 3:
            found["text"] = _mask(text, masks)
        else:
            found["base64"] = base64.b64encode(kept).decode()
    return found
