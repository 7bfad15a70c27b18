"""The contract between the core and a provider module: what a handler gets and what it returns."""

from __future__ import annotations

import itertools
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from aiohttp import web

from mockserver.core.clock import Clock
from mockserver.core.jobs import JobEngine
from mockserver.core.media import FileStore
from mockserver.core.signing import SigningKeys
from mockserver.core.spec import Operation, Spec
from mockserver.core.textgen import TextGenerator
from mockserver.core.validation import ValidRequest
from mockserver.core.webhooks import WebhookDispatcher
from mockserver.errors import ApiError
from mockserver.settings import Settings
from mockserver.state.api import ProviderState, State
from mockserver.state.records import KeyRecord


class IdFactory:
    """Fresh ids, deterministic under a seed: a stem derived from the seed, then a hex counter.

    Unique for 2**32 ids per stem width, and cheap: a hash per id cost a tenth of a chat completion. The
    stem also derives from the state's instance number (``State.instance``), so instances sharing a state
    under one seed never hand out the same id; instance 0 (memory, or the first instance) keeps the ids a
    single mock always gave.
    """

    COUNTER_DIGITS = 8

    def __init__(self, text: TextGenerator, instance: int = 0) -> None:
        self._text = text
        self._counter = itertools.count(1)
        self._stems: dict[int, str] = {}
        self._instance = instance

    def bind(self, instance: int) -> None:
        """Mix the instance number the opened state assigned into every id from now on."""
        if instance != self._instance:
            self._instance = instance
            self._stems.clear()

    def new(self, prefix: str, length: int = 24) -> str:
        """``prefix`` followed by ``length`` (9 to 64) lowercase hex characters."""
        stem = self._stems.get(length)
        if stem is None:
            parts = ("ids", self._instance) if self._instance else ("ids",)
            stem = self._stems[length] = self._text.short_id(*parts, length=length - self.COUNTER_DIGITS)
        return f"{prefix}{stem}{next(self._counter) & 0xFFFFFFFF:08x}"

    def reset(self) -> None:
        """Start the sequence over (after a state reset)."""
        self._counter = itertools.count(1)


@dataclass(slots=True)
class Services:
    """Shared, provider-neutral machinery handed to every handler."""

    settings: Settings
    clock: Clock
    state: State
    """Everything the mock remembers (``state.api``): keys, wallets, resources, jobs, the journal..."""
    text: TextGenerator
    ids: IdFactory
    jobs: JobEngine
    files: FileStore
    webhooks: WebhookDispatcher
    signing: SigningKeys
    """The one place every signing key comes from (storage URLs, webhook secrets)."""


def request_origin(request: web.Request) -> str:
    """``scheme://host`` as the client reached us, honouring ``X-Forwarded-Proto``/``-Host``."""
    proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip() or "http"
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return f"{proto}://{host}"


@dataclass(slots=True)
class Call:
    """One authenticated, validated request as a provider handler sees it."""

    request: web.Request
    operation: Operation
    input: ValidRequest
    key: KeyRecord | None
    state: ProviderState
    services: Services
    mount: str
    """The provider's path prefix on this server (``/spaceai``, or empty when served at the root)."""

    @property
    def body(self) -> Any:
        """The validated JSON body (or raw bytes for binary operations)."""
        return self.input.body

    @property
    def origin(self) -> str:
        """``scheme://host[:port]`` as the client reached us (proxy headers honoured)."""
        # Worked out on demand: most calls hand out no URL.
        return request_origin(self.request)

    @property
    def base_url(self) -> str:
        """The provider's base URL as the client reached it (origin + mount prefix)."""
        return self.origin + self.mount

    def now(self) -> float:
        """The mock's current time."""
        return self.services.clock.now()


@dataclass(slots=True)
class JsonReply:
    """A JSON response."""

    body: Any
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class BytesReply:
    """A raw response (files)."""

    data: bytes
    content_type: str
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class EventReply:
    """A server-sent event stream: each item is a JSON-able payload or a literal string (``[DONE]``)."""

    events: AsyncIterator[Any]
    headers: Mapping[str, str] = field(default_factory=dict)
    on_close: Callable[[bool], Awaitable[None]] | None = None
    """Called once when the stream ends: True if every event was sent, False if the client went away."""


Reply = JsonReply | BytesReply | EventReply
Handler = Callable[[Call], Awaitable[Reply]]


class ProviderModule(Protocol):
    """What a provider adds on top of the core: its envelope, its handlers, its listing."""

    id: str

    def handlers(self) -> Mapping[str, Handler]:
        """Behaviour per operationId."""
        ...

    def render_error(self, error: ApiError) -> dict[str, Any]:
        """The provider's error envelope for an error."""
        ...

    def describe(self, state: ProviderState) -> dict[str, Any]:
        """Extra fields for ``/_mock/providers`` (``organization_id``, ``models``)."""
        ...


@dataclass(slots=True)
class LoadedProvider:
    """A provider module with its compiled spec."""

    module: ProviderModule
    spec: Spec


# Built once: json.dumps() with non-default options constructs a new encoder on every call.
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)
_COMPACT_ASCII = json.JSONEncoder(separators=(",", ":"))


def dump_bytes(value: Any) -> bytes:
    """Compact JSON as UTF-8 bytes, as the mock writes it."""
    try:
        return orjson.dumps(value)
    except TypeError:
        pass  # integers past 64 bits or lone surrogates: the standard library handles both
    try:
        return _COMPACT.encode(value).encode("utf-8")
    except UnicodeEncodeError:
        # A lone surrogate echoed from a client's "\ud800" escape has no UTF-8 form: escape it instead.
        return _COMPACT_ASCII.encode(value).encode("ascii")


def dumps(value: Any) -> str:
    """Compact JSON, as the mock writes it (always encodable as UTF-8)."""
    return dump_bytes(value).decode("utf-8")
