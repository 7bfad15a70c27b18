"""The recorded-exchange data: what one exchange holds, the format version and the redaction marker."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT = 1
"""The format version written in every file (``format: 1``)."""
REDACTED = "[REDACTED]"
"""What replaces a secret value (the value only, never the text around it)."""
REDACTED_IN_URL = "%5BREDACTED%5D"
"""``REDACTED`` percent-encoded, as it replaces a value in a URL's query: the URL stays a valid URI (a
``format: uri`` check passes) and its decoded query value is ``REDACTED``."""
HEADER_COMMENT = (
    '# Recorded by `python -m conformance proxy`; edit freely (see README "Recording and replaying").\n'
)

SEQ_PREFIX = re.compile(r"^(\d{6,})-")
"""An exchange file's sequence number, at the start of its name (``000001-POST-...``)."""


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
