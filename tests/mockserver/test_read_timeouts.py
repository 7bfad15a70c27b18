"""Read timeouts over real sockets: slow request headers, a stalled body, idle keep-alive connections.

The servers here run with the timeouts lowered to 1 s. Every wait is bounded well above that, so the tests
hold on a loaded machine; they assert what the server sent and that it closed, not how fast.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest

SPACEAI_KEY = "sk-spaceai-mockkey-0001"
CHAT_PATH = "/spaceai/v1/chat/completions"
WAIT = 15.0
"""Longest a test waits for the server to answer or close (the timeouts under test are 1 s)."""


@pytest.fixture
def timed_mock(start_mock: Callable[..., Any]) -> Any:
    """A SpaceAI server whose read timeout is 1 s (and keep-alive timeout the default, 75 s)."""
    return start_mock(providers=("spaceai",), read_timeout=1.0)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def connect(mock: Any) -> socket.socket:
    return socket.create_connection(("127.0.0.1", mock.server.port), timeout=WAIT)


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails after ``WAIT`` seconds)."""
    received = b""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk
    raise AssertionError(f"the server kept the connection open; it sent {received!r}")


def chat_head(length: int) -> bytes:
    return (
        f"POST {CHAT_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {SPACEAI_KEY}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n"
    ).encode()


def test_headers_that_never_end_get_408_and_the_connection_closes(timed_mock: Any) -> None:
    with connect(timed_mock) as sock:
        sock.sendall(f"GET {CHAT_PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\n".encode())
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert b"Connection: close" in answer


def test_headers_sent_a_byte_at_a_time_are_cut_off(timed_mock: Any) -> None:
    # A slowloris keeps sending, so there is always progress: what counts is the time since the first byte.
    header = f"GET /spaceai/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Padding: {'a' * 400}".encode()
    with connect(timed_mock) as sock:
        sock.settimeout(0.2)
        deadline = time.monotonic() + WAIT
        answer = b""
        for byte in header:
            assert time.monotonic() < deadline, "the server let the headers trickle in for the whole test"
            try:
                sock.sendall(bytes([byte]))
                answer += sock.recv(65536)
            except TimeoutError:
                continue  # nothing from the server yet
            except OSError:
                break  # the server closed while we were still sending
            if answer:
                break
    assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_a_stalled_body_gets_the_providers_408_and_the_connection_closes(timed_mock: Any) -> None:
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()
    with connect(timed_mock) as sock:
        sock.sendall(chat_head(len(body) + 100) + body)  # 100 bytes short, and nothing more comes
        answer = read_until_closed(sock)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"Connection: close" in head
    assert b"X-RateLimit-Remaining" in head  # rendered by the provider's pipeline
    assert json.loads(payload) == {
        "error": {
            "type": "invalid_request_error",
            "message": "The request body stopped arriving for more than 1 s.",
            "code": 408,
        }
    }
    entries = timed_mock.journal("spaceai")
    assert [e["status"] for e in entries] == [408]
    assert timed_mock.violations() == []


def test_a_slow_body_that_keeps_arriving_is_served(timed_mock: Any) -> None:
    # No gap as long as the timeout: the body is read however long it takes in all.
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi " * 10}]}).encode()
    with connect(timed_mock) as sock:
        sock.sendall(chat_head(len(body)))
        for start in range(0, len(body), len(body) // 4 + 1):
            time.sleep(0.4)
            sock.sendall(body[start : start + len(body) // 4 + 1])
        answer = sock.recv(65536)
    assert answer.startswith(b"HTTP/1.1 200 "), answer


def test_an_idle_keep_alive_connection_is_closed(start_mock: Callable[..., Any]) -> None:
    mock = start_mock(providers=("spaceai",), keepalive_timeout=1.0)
    request = (
        f"GET /spaceai/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {SPACEAI_KEY}\r\n\r\n"
    )
    with connect(mock) as sock:
        sock.sendall(request.encode())
        answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 200 "), answer
    assert answer.count(b"HTTP/1.1 ") == 1  # one answer, then the idle connection was closed
    # The control client's pooled connections were closed the same way: start afresh for the teardown.
    mock.http.close()


def test_the_cli_flags_reach_the_server(mock_cli: Callable[..., Any]) -> None:
    with mock_cli("--read-timeout", "1", "--keepalive-timeout", "1") as origin:
        port = int(origin.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            sock.sendall(chat_head(1000) + b'{"model": ')
            answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b'"code":408' in answer


def test_the_cli_times_out_slow_headers(mock_cli: Callable[..., Any]) -> None:
    # The CLI serves on the same connections as the test servers: headers that never end get a 408.
    with mock_cli("--read-timeout", "1") as origin:
        port = int(origin.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=WAIT) as sock:
            sock.sendall(b"GET /spaceai/v1/models HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
