"""The proxy forwards as a reverse proxy does, records streams with their timing, survives broken streams."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from _proxy_helpers import SLOW_PAUSE, AppThread, proxy_thread, violations

from mockserver.recordings import load_recordings

GOOD_KEY = "Bearer sk-test-key-good"
STREAMED = {
    "model": "gpt-4o",
    "messages": [{"role": "user", "content": "Hi"}],
    "stream": True,
    "stream_options": {"include_usage": True},
}


@pytest.fixture
def proxy(upstream: AppThread, tmp_path: Path) -> Iterator[AppThread]:
    started = proxy_thread("spaceai", upstream.url, record=tmp_path / "rec")
    yield started
    started.stop()


def _raw_request(url: str, head: str, body: bytes) -> tuple[str, bytes]:
    """Send bytes exactly as written (requests would normalize the query and the hop-by-hop headers)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode() + b"\r\n" + body)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    headers, _, rest = data.partition(b"\r\n\r\n")
    return headers.decode(), rest


def test_a_request_is_forwarded_as_a_reverse_proxy_would(upstream: AppThread, proxy: AppThread) -> None:
    body = bytes(range(256))
    query = "/echo/x?b=%2F%20y&a=1&a=2&flag&q=caf%C3%A9"
    host = f"127.0.0.1:{proxy.port}"
    head = (
        f"PUT {query} HTTP/1.1\nHost: {host}\nContent-Type: application/octet-stream\n"
        f"Content-Length: {len(body)}\nX-Forwarded-For: 203.0.113.7\nConnection: close, X-Hop\nX-Hop: 1\n"
        "Keep-Alive: timeout=5\nTE: trailers\nX-Keep: yes\n"
    )
    response_head, response_body = _raw_request(proxy.url, head, body)
    assert response_head.startswith("HTTP/1.1 200")
    assert "x-upstream-hop" not in response_head.lower()
    seen = json.loads(response_body)
    headers = {k.lower(): v for k, v in seen["headers"]}
    assert seen["method"] == "PUT"
    assert seen["raw_path"] == query
    assert bytes.fromhex(seen["body"]) == body
    assert headers["host"] == f"127.0.0.1:{upstream.port}"
    assert headers["x-forwarded-for"] == "203.0.113.7, 127.0.0.1"
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-host"] == host
    assert headers["x-keep"] == "yes"
    assert headers["content-type"] == "application/octet-stream"
    for hop in ("x-hop", "keep-alive", "te"):
        assert hop not in headers, hop


def test_the_proxy_keeps_no_cookies(upstream: AppThread) -> None:
    """An upstream's Set-Cookie goes to the client that got it, never into another client's request."""
    # By name, not by address: a client library's cookie jar may ignore cookies of bare IP addresses.
    proxy = proxy_thread("spaceai", f"http://localhost:{upstream.port}")
    try:
        first = requests.get(f"{proxy.url}/echo/one", timeout=10)
        assert first.headers["Set-Cookie"] == "upstream=1; Path=/"
        second = requests.get(f"{proxy.url}/echo/two", timeout=10).json()
    finally:
        proxy.stop()
    assert "cookie" not in {name.lower() for name, _ in second["headers"]}


def test_a_stream_is_recorded_with_its_timing(proxy: AppThread, tmp_path: Path) -> None:
    headers = {"Authorization": GOOD_KEY, "X-Break": "slow"}
    answer = requests.post(f"{proxy.url}/v1/chat/completions", json=STREAMED, headers=headers, timeout=30)
    assert answer.status_code == 200
    assert violations(proxy.url) == []
    (recorded,) = load_recordings(tmp_path / "rec")["spaceai"]
    events = recorded.response.events
    assert events is not None
    assert [e.data for e in events][-1] == "[DONE]"
    assert events[0].t < SLOW_PAUSE / 2
    assert events[1].t >= SLOW_PAUSE * 0.9
    assert recorded.request.body == STREAMED
    assert "authorization" not in recorded.request.headers
    assert recorded.response.headers["x-ratelimit-limit"] == "60"


def test_a_client_leaving_mid_stream_is_noted_not_judged(proxy: AppThread) -> None:
    headers = {"Authorization": GOOD_KEY, "X-Break": "slow"}
    with requests.post(
        f"{proxy.url}/v1/chat/completions", json=STREAMED, headers=headers, stream=True, timeout=30
    ) as response:
        next(response.iter_lines())
    deadline = time.monotonic() + 10
    while not (listed := requests.get(f"{proxy.url}/_proxy/exchanges", timeout=10).json()["exchanges"]):
        assert time.monotonic() < deadline, "the exchange was never noted"
        time.sleep(0.05)
    assert listed[0]["note"] == "the client went away mid-stream"
    assert violations(proxy.url) == []


def test_an_upstream_breaking_off_a_stream_is_reported(proxy: AppThread) -> None:
    headers = {"Authorization": GOOD_KEY, "X-Break": "cut"}
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        requests.post(f"{proxy.url}/v1/chat/completions", json=STREAMED, headers=headers, timeout=30)
    deadline = time.monotonic() + 10
    while not (listed := requests.get(f"{proxy.url}/_proxy/exchanges", timeout=10).json()["exchanges"]):
        assert time.monotonic() < deadline, "the exchange was never noted"
        time.sleep(0.05)
    assert listed[0]["note"].startswith("the upstream broke off the stream")
    assert "the last event is not [DONE]" in {v["message"] for v in violations(proxy.url, side="response")}
