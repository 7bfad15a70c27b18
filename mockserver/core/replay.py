"""Replay recorded exchanges (``--replay DIR``): a recording replaces the behaviour stage of a request.

The pipeline asks ``ProviderReplay.answer`` instead of the operation's handler once authentication, rate
limiting, request validation and injected faults are done, so those apply to a replayed request as to any.
A request matches an exchange on method, path, query (pairs in any order; a signature's or token's value,
redacted in recordings, matches any value) and body (JSON compared canonically: key order and number
formatting do not matter; other bodies byte for byte, a multipart body apart from its boundary).
Identical requests get the recorded answers in order, the last one repeating; ``reset()`` starts the
sequences over. Recordings are checked against the spec at load (``drift.py``): what breaks it is logged
and listed, not refused, and a replayed answer is not checked again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from mockserver.core.calls import BytesReply, Call, EventReply, Handler, JsonReply, Reply, dump_bytes
from mockserver.core.drift import Drift, check_exchange
from mockserver.core.router import Router
from mockserver.core.spec import JSON_MEDIA_TYPE, Spec
from mockserver.errors import ApiError, ErrorKind
from mockserver.recordings import (
    REDACTED,
    SIGNED_QUERY_NAMES,
    Exchange,
    RecordedEvent,
    RecordedMessage,
    load_recordings,
)
from mockserver.resources import PROVIDER_IDS

log = logging.getLogger("mockserver.replay")

_BOUNDARY = re.compile(r"""boundary="?([^";,]+)"?""", re.IGNORECASE)
_MOCK_HEADERS = frozenset(
    {
        # The mock's render stage and SSE writer set these itself (a second copy would be sent otherwise).
        "content-type",
        "content-length",
        "content-encoding",
        "transfer-encoding",
        "connection",
        "keep-alive",
        "date",
        "server",
        "vary",
    }
)
_MOCK_HEADER_PREFIXES = ("x-ratelimit-", "ratelimit-", "access-control-")
_STREAM_HEADERS = frozenset({"cache-control", "x-accel-buffering"})
"""Set by the SSE writer too, for streams only."""
BodyKey = str | None
RequestKey = tuple[str, str, tuple[tuple[str, str], ...], BodyKey]


class ReplayedJson(JsonReply):
    """A recorded JSON answer (checked against the spec at load, not again when served)."""

    __slots__ = ()


class ReplayedBytes(BytesReply):
    """A recorded text or binary answer, byte for byte."""

    __slots__ = ()


class ReplayedEvents(EventReply):
    """A recorded stream, re-emitted with its recorded timing."""

    __slots__ = ()


class NoRecording(ApiError):
    """``--replay-strict``: no recording matches the request (a 404 in the provider's envelope)."""


_REPLAYED = (ReplayedJson, ReplayedBytes, ReplayedEvents)


def replayed(reply: Reply | None, error: ApiError | None) -> bool:
    """Whether a response comes from the recordings (its drift was reported at load, not per request)."""
    return isinstance(reply, _REPLAYED) or isinstance(error, NoRecording)


def canonical_json(value: Any) -> str:
    """JSON text that is equal for equal documents: sorted keys, ``1.0`` written as ``1``."""
    return json.dumps(_canonical(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _canonical(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_canonical(v) for v in value]
    return value


def body_key(raw: bytes, content_type: str) -> BodyKey:
    """What a request body is compared by: canonical JSON, or a digest of the bytes (boundary masked)."""
    if not raw:
        return None
    media = content_type.split(";", 1)[0].strip().lower()
    if not media or "json" in media:
        try:
            return "json:" + canonical_json(json.loads(raw))
        except (ValueError, RecursionError):
            pass  # not JSON after all: compared as bytes
    if media.startswith("multipart/") and (found := _BOUNDARY.search(content_type)):
        raw = raw.replace(found.group(1).encode("latin-1", "replace"), b"BOUNDARY")
    return "raw:" + hashlib.sha256(raw).hexdigest()


def _recorded_body_key(message: RecordedMessage) -> BodyKey:
    body = message.body
    content_type = message.headers.get("content-type", "")
    if body is None:
        return None
    if isinstance(body, bytes):
        return body_key(body, content_type)
    if isinstance(body, str):
        return body_key(body.encode("utf-8"), content_type)
    return "json:" + canonical_json(body)


def _query_key(pairs: Any) -> tuple[tuple[str, str], ...]:
    # A recorder redacts signatures and tokens in URLs: whatever value the client sends for one matches.
    return tuple(
        sorted((str(k), REDACTED if str(k).lower() in SIGNED_QUERY_NAMES else str(v)) for k, v in pairs)
    )


def exchange_key(exchange: Exchange) -> RequestKey:
    """The key a recorded request is found by."""
    request = exchange.request
    return (
        request.method.upper(),
        unquote(request.path),
        _query_key(request.query),
        _recorded_body_key(request),
    )


class ProviderReplay:
    """One provider's recordings, indexed by request; answers requests in recorded order."""

    def __init__(self, replay: Replay, provider_id: str, exchanges: list[Exchange]) -> None:
        self.replay = replay
        self.provider_id = provider_id
        self.exchanges = exchanges
        self._by_key: dict[RequestKey, list[Exchange]] = {}
        for exchange in exchanges:
            self._by_key.setdefault(exchange_key(exchange), []).append(exchange)
        self._next: dict[RequestKey, int] = {}

    def reset(self) -> None:
        """Start every sequence of identical requests over."""
        self._next.clear()

    def match(self, call: Call) -> Exchange | None:
        """The next recorded answer to this request (the last one repeating), or None."""
        request = call.request
        raw_type = request.headers.get("Content-Type", "") if call.input.raw_body else ""
        key = (
            request.method,
            request.path[len(call.mount) :] or "/",
            _query_key(request.query.items()),
            body_key(call.input.raw_body, raw_type),
        )
        answers = self._by_key.get(key)
        if answers is None:
            return None
        index = self._next.get(key, 0)
        self._next[key] = index + 1
        return answers[min(index, len(answers) - 1)]

    async def answer(self, call: Call, handler: Handler) -> Reply:
        """The recorded answer to ``call``; else the handler's (or, strict, a 404 naming the miss)."""
        exchange = self.match(call)
        if exchange is None:
            self.replay.unmatched += 1
            if self.replay.strict:
                raise NoRecording(
                    404,
                    ErrorKind.NOT_FOUND,
                    f"No recording matches {call.request.method} {call.request.path} (--replay-strict).",
                )
            return await handler(call)
        self.replay.replayed += 1
        return self.replay.reply(exchange)


class Replay:
    """Every served provider's recordings from one folder, with what drifted from the specs."""

    def __init__(
        self, folder: Path, recordings: Mapping[str, list[Exchange]], speed: float, strict: bool
    ) -> None:
        self.folder = folder
        self.speed = speed
        self.strict = strict
        self.recordings = recordings
        self.providers: dict[str, ProviderReplay] = {}
        self.drift: list[Drift] = []
        self.replayed = 0
        self.unmatched = 0
        for provider_id in recordings:
            if provider_id not in PROVIDER_IDS:
                self._drifted(
                    Drift(self._name(recordings[provider_id][0]), provider_id, None, "no such provider")
                )

    @classmethod
    def load(cls, folder: Path, speed: float = 1.0, strict: bool = False) -> Replay:
        """Read ``folder`` (``FixtureError`` naming a malformed file)."""
        return cls(folder, load_recordings(folder), speed, strict)

    def attach(self, provider_id: str, spec: Spec) -> ProviderReplay:
        """The served provider's recordings, checked against its spec (what drifted is logged and listed)."""
        exchanges = list(self.recordings.get(provider_id, []))
        router = Router(spec.operations)
        for exchange in exchanges:
            operation, problems = check_exchange(exchange, router)
            for problem in problems:
                self._drifted(Drift(self._name(exchange), provider_id, operation, problem))
        self.providers[provider_id] = ProviderReplay(self, provider_id, exchanges)
        return self.providers[provider_id]

    def reset(self) -> None:
        """Start every sequence over and zero the counters (``POST /_mock/reset``)."""
        for provider in self.providers.values():
            provider.reset()
        self.replayed = self.unmatched = 0

    def describe(self) -> dict[str, Any]:
        """``GET /_mock/replay``."""
        return {
            "enabled": True,
            "folder": str(self.folder),
            "speed": self.speed,
            "strict": self.strict,
            "exchanges": {pid: len(p.exchanges) for pid, p in self.providers.items()},
            "drift": [d.as_dict() for d in self.drift],
            "replayed": self.replayed,
            "unmatched": self.unmatched,
        }

    def reply(self, exchange: Exchange) -> Reply:
        """The recorded response as the pipeline renders it."""
        response = exchange.response
        headers = _headers(response.headers, stream=response.events is not None)
        content_type = response.headers.get("content-type")
        if response.events is not None:
            if response.status == 200:
                return ReplayedEvents(_paced(response.events, self.speed), headers)
            # The SSE writer answers 200 only: another status is sent as its recorded text at once.
            text = "".join(_frame(e) for e in response.events)
            return ReplayedBytes(text.encode(), content_type or "text/event-stream", response.status, headers)
        body = response.body
        if isinstance(body, bytes):
            return ReplayedBytes(body, content_type or "application/octet-stream", response.status, headers)
        if isinstance(body, str):
            return ReplayedBytes(
                body.encode(), content_type or "text/plain; charset=utf-8", response.status, headers
            )
        if body is None:
            return ReplayedBytes(b"", content_type or "application/octet-stream", response.status, headers)
        if content_type and not content_type.lower().startswith(JSON_MEDIA_TYPE):
            # A JSON document of another type (application/problem+json...) keeps the type it was sent with.
            return ReplayedBytes(dump_bytes(body), content_type, response.status, headers)
        return ReplayedJson(body, response.status, headers)

    def _name(self, exchange: Exchange) -> str:
        source = exchange.source
        if source is None:
            return "(unnamed)"
        try:
            return source.relative_to(self.folder).as_posix()
        except ValueError:
            return source.as_posix()

    def _drifted(self, drift: Drift) -> None:
        self.drift.append(drift)
        log.warning("recording %s: your provider drifted from its documents: %s", drift.file, drift.problem)


def _headers(recorded: Mapping[str, str], *, stream: bool) -> dict[str, str]:
    return {
        name: value
        for name, value in recorded.items()
        if name not in _MOCK_HEADERS
        and not name.startswith(_MOCK_HEADER_PREFIXES)
        and not (stream and name in _STREAM_HEADERS)
    }


def _frame(event: RecordedEvent) -> str:
    lines = [f"event: {event.event}"] if event.event is not None else []
    if event.id is not None:
        lines.append(f"id: {event.id}")
    lines.extend(f"data: {line}" for line in event.data.split("\n"))
    return "\n".join(lines) + "\n\n"


def _item(event: RecordedEvent) -> str:
    # The SSE writer frames an item as "data: <item>\n\n": what follows a newline in the item is the
    # frame's next line, so a multi-line data and the event/id fields travel as further lines of the frame.
    extra = [f"event: {event.event}"] if event.event is not None else []
    if event.id is not None:
        extra.append(f"id: {event.id}")
    return "\n".join([event.data.replace("\n", "\ndata: "), *extra])


async def _paced(events: tuple[RecordedEvent, ...], speed: float) -> AsyncIterator[str]:
    """The events as the SSE writer's items, each at its recorded time divided by ``speed`` (0: at once)."""
    loop = asyncio.get_running_loop()
    start = loop.time()  # the writer sent the headers just before it asked for the first event
    for event in events:
        if speed > 0:
            delay = start + event.t / speed - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        yield _item(event)
