"""Check a recorded exchange against the provider's spec: what a real provider answered outside its documents.

Used by ``replay`` at load: each problem is a warning and an entry of ``GET /_mock/replay``, never a refusal.
The compiled validators are the request path's own (``core.spec``, ``core.validation``).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import unquote

from multidict import CIMultiDict, MultiDict

from mockserver.core.router import Router
from mockserver.core.spec import JSON_MEDIA_TYPE, SSE_MEDIA_TYPE, ResponseSpec
from mockserver.core.validation import validate_request
from mockserver.errors import ApiError
from mockserver.recordings import REDACTED, SIGNED_QUERY_NAMES, Exchange, RecordedEvent, RecordedMessage

MAX_PROBLEMS = 5
"""Problems reported per exchange (a body far off its schema would otherwise list dozens)."""


@dataclass(frozen=True, slots=True)
class Drift:
    """One way a recording breaks its provider's spec."""

    file: str
    """The recording, relative to the replay folder (``spaceai/000001-POST-v1-chat-completions.yaml``)."""
    provider: str
    operation: str | None
    problem: str

    def as_dict(self) -> dict[str, Any]:
        """As listed by ``GET /_mock/replay``."""
        return asdict(self)


def check_exchange(exchange: Exchange, router: Router) -> tuple[str | None, list[str]]:
    """The exchange's operation id (None when no operation answers it) and what in it breaks the spec."""
    request, response = exchange.request, exchange.response
    path = unquote(request.path)
    try:
        route = router.match(request.method, path)
    except ApiError:
        return None, [f"no operation of the spec answers {request.method} {path}"]
    op = route.operation
    problems: list[str] = []
    content_type = request.headers.get("content-type", "")
    raw = _raw(request)
    try:
        validate_request(
            op,
            route.path_params,
            MultiDict(request.query),
            CIMultiDict(request.headers),
            _media(content_type) if raw else "",
            raw,
        )
    except ApiError as exc:
        # A signature the recorder redacted is no value to check: a client sends its own.
        if not (str(exc.details.get("field", "")).lower() in SIGNED_QUERY_NAMES and REDACTED in exc.message):
            problems.append(
                f"the request breaks the spec, so the mock answers it {exc.status}: {exc.message}"
            )
    declared = op.response(response.status)
    if declared is None:
        problems.append(f"status {response.status} is not declared for {op.operation_id}")
    elif response.events is not None:
        problems.extend(_check_events(declared, response.events))
    else:
        problems.extend(_check_body(declared, response))
    return op.operation_id, problems[:MAX_PROBLEMS]


def _media(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _raw(message: RecordedMessage) -> bytes:
    body = message.body
    if body is None:
        return b""
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")


def _check_events(declared: ResponseSpec, events: tuple[RecordedEvent, ...]) -> list[str]:
    schema = declared.events
    if schema is None:
        return [f"a stream is not declared for status {declared.status} ({SSE_MEDIA_TYPE})"]
    problems = []
    for index, event in enumerate(events):
        problem = schema.problem(event.data)
        if problem is not None:
            problems.append(f"event {index}: {problem}")
    return problems


def _check_body(declared: ResponseSpec, message: RecordedMessage) -> list[str]:
    media = _media(message.headers.get("content-type", ""))
    body = message.body
    if body is None:
        return []
    is_json = not isinstance(body, bytes | str)
    if is_json and not media:
        media = JSON_MEDIA_TYPE
    content = declared.content
    if (
        content
        and media not in content
        and not any(_covers(declared_type, media) for declared_type in content)
    ):
        return [
            f"content type {media or '(none)'} is not declared for status {declared.status}: "
            f"{', '.join(sorted(content))}"
        ]
    validator = content.get(media)
    if not is_json or validator is None:
        return []
    return [
        f"body {'/'.join(map(str, path)) or '(root)'}: {problem}" for path, problem in validator.errors(body)
    ][:MAX_PROBLEMS]


def _covers(declared: str, media: str) -> bool:
    if declared == "*/*":
        return True
    if declared.endswith("/*"):
        return media.startswith(declared[:-1])
    return False
