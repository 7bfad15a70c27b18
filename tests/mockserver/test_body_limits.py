"""JSON bodies have their own size limit (``--max-json-body``, default 8 MiB); uploads keep the larger one."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from mockserver.settings import MAX_JSON_BODY

SPACEAI_ERROR = {"type": "invalid_request_error", "message": "Request body is too large.", "code": 413}


def chat_body(padding: int) -> bytes:
    """A valid SpaceAI chat request of about ``padding`` bytes."""
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "x" * padding}]}
    return json.dumps(body).encode()


def in_chunks(data: bytes, size: int = 1 << 20) -> Iterator[bytes]:
    """The body sent chunked (no Content-Length)."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


@pytest.mark.parametrize("chunked", [False, True], ids=["with-length", "chunked"])
def test_json_body_over_the_default_limit_is_413(mock: Any, chunked: bool) -> None:
    body = chat_body(MAX_JSON_BODY + 1024)
    payload: Any = in_chunks(body) if chunked else body
    response = mock.post(
        "spaceai", "/v1/chat/completions", data=payload, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413, response.text[:300]
    assert response.json() == {"error": SPACEAI_ERROR}
    # Just under the limit is served.
    fits = mock.post(
        "spaceai",
        "/v1/chat/completions",
        data=chat_body(MAX_JSON_BODY - 4096),
        headers={"Content-Type": "application/json"},
    )
    assert fits.status_code == 200, fits.text[:300]


def test_a_lower_json_limit_leaves_uploads_their_own(start_mock: Callable[..., Any]) -> None:
    mock = start_mock(providers=("pahlavan",), max_json_body=2048)
    too_big = {"key": "user/user_123/" + "k" * 4096}
    refused = mock.post("pahlavan", "/api/v1/storage/commit", json=too_big)
    assert refused.status_code == 413, refused.text
    assert refused.json()["details"]["code"] == "PAYLOAD_TOO_LARGE"
    # A presigned upload of 64 KiB (32 times the JSON limit) still goes through.
    data = bytes(range(256)) * 256
    presigned = mock.post(
        "pahlavan",
        "/api/v1/storage/presign",
        json={"filename": "a.bin", "content_type": "application/octet-stream", "bytes": len(data)},
    ).json()
    upload = mock.http.put(
        presigned["upload_url"], data=data, headers={"Content-Type": "application/octet-stream"}, timeout=10
    )
    assert upload.status_code == 200, upload.text
    assert upload.json()["bytes"] == len(data)
