"""Recorded exchanges: the on-disk format shared by the recording proxy and the mock's replay.

A neutral package (like ``resources``): the standard library, PyYAML, ``resources`` and ``errors`` only,
so ``core`` and ``conformance`` may both import it. Modules: ``model`` (the dataclasses), ``redaction``,
``writer``, ``reader``; everything public is imported here. One exchange is one human-editable YAML file::

    DIR/<provider>/<seq>-<METHOD>-<slug>.yaml            the exchange
    DIR/<provider>/<seq>-<METHOD>-<slug>.<part>.<ext>    a binary body beside it (part: request|response)

``RecordingWriter`` redacts every secret before anything reaches the disk; ``load_recordings`` reads a
folder back, and a malformed file is a ``FixtureError`` naming the file and the problem.
"""

from mockserver.recordings.model import (
    FORMAT,
    HEADER_COMMENT,
    REDACTED,
    REDACTED_IN_URL,
    Exchange,
    RecordedEvent,
    RecordedMessage,
    RecordedRequest,
    RecordedResponse,
)
from mockserver.recordings.reader import iter_exchanges, load_exchange, load_recordings
from mockserver.recordings.redaction import (
    CREDENTIAL_HEADERS,
    HOP_BY_HOP_HEADERS,
    SIGNED_QUERY_NAMES,
    redact_url,
)
from mockserver.recordings.writer import RecordingWriter, slug

__all__ = [
    "CREDENTIAL_HEADERS",
    "FORMAT",
    "HEADER_COMMENT",
    "HOP_BY_HOP_HEADERS",
    "REDACTED",
    "REDACTED_IN_URL",
    "SIGNED_QUERY_NAMES",
    "Exchange",
    "RecordedEvent",
    "RecordedMessage",
    "RecordedRequest",
    "RecordedResponse",
    "RecordingWriter",
    "iter_exchanges",
    "load_exchange",
    "load_recordings",
    "redact_url",
    "slug",
]
