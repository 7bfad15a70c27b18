"""A client that leaves half-way through sending its body is a non-event: no 500, traceback or violation.

Each test speaks raw HTTP over a socket so it can declare a ``Content-Length``, send part of the body and
close, which no HTTP client library does on purpose.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

PAHLAVAN = "pahlavan"
CLIENT_CLOSED_REQUEST = 499
"""What the journal records for a request whose client left before it was answered (nginx's code)."""


@pytest.fixture(scope="session")
def drop_server(server_pool: Callable[..., Any]) -> Any:
    """A Pahlavan + SpaceAI server (strict response validation)."""
    return server_pool(providers=(PAHLAVAN, "spaceai"))


@pytest.fixture
def mock(drop_server: Any, attach_mock: Callable[[Any], Any]) -> Any:
    return attach_mock(drop_server)


def send_half_and_close(port: int, head: str, body: bytes) -> None:
    """Send ``head`` (request line and headers, without the blank line) declaring ``body``'s length, then
    only the first half of ``body``, and close the connection."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        request = f"{head}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        sock.sendall(request + body[: len(body) // 2])
        time.sleep(0.1)  # let the server start reading the body before the client vanishes


def journal_entry(mock: Any, operation_id: str) -> dict[str, Any]:
    """The journal's entry for the dropped request, once the server has dealt with it (bounded wait)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        entries = [e for e in mock.journal() if e["operation_id"] == operation_id]
        if entries:
            return entries[-1]
        time.sleep(0.02)
    raise AssertionError(f"no journal entry for {operation_id}: {mock.journal()}")


def assert_non_event(mock: Any, operation_id: str, caplog: pytest.LogCaptureFixture) -> None:
    entry = journal_entry(mock, operation_id)
    assert entry["status"] == CLIENT_CLOSED_REQUEST
    assert mock.violations() == []
    problems = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert problems == [], [r.getMessage() for r in problems]
    # The server still answers on a new connection.
    assert mock.get(PAHLAVAN, "/api/health").status_code == 200


def test_drop_during_a_presigned_upload(mock: Any, caplog: pytest.LogCaptureFixture) -> None:
    body = bytes(range(256)) * 64
    presigned = mock.post(
        PAHLAVAN,
        "/api/v1/storage/presign",
        json={"filename": "a.bin", "content_type": "application/octet-stream", "bytes": len(body)},
    ).json()
    url = urlsplit(presigned["upload_url"])
    caplog.clear()
    head = (
        f"PUT {url.path}?{url.query} HTTP/1.1\r\nHost: {url.netloc}\r\nContent-Type: application/octet-stream"
    )
    send_half_and_close(mock.server.port, head, body)
    assert_non_event(mock, "uploadObject", caplog)
    # Nothing was stored: the object still has no bytes to commit.
    commit = mock.post(PAHLAVAN, "/api/v1/storage/commit", json={"key": presigned["key"]})
    assert commit.status_code == 404, commit.text


def test_drop_during_a_json_body(mock: Any, caplog: pytest.LogCaptureFixture) -> None:
    info = mock.provider(PAHLAVAN)
    body = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "' + b"x" * 4000 + b'"}]}'
    path = urlsplit(info.url("/api/v1/chat/completions")).path
    ((name, value),) = info.auth_headers().items()
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n{name}: {value}\r\nContent-Type: application/json"
    caplog.clear()
    send_half_and_close(mock.server.port, head, body)
    assert_non_event(mock, "createChatCompletion", caplog)
