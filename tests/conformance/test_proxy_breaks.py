"""The proxy in front of a contract-breaking upstream: each break is reported, naming its check; a stream
passes through unbuffered.

The upstream (``_proxy_helpers.breaking_app``) breaks one thing per request, named by the ``X-Break`` header;
the same request without it gets a conforming answer, which must report nothing (so each case can fail).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from _proxy_helpers import SLOW_PAUSE, AppThread, proxy_thread, violations

GOOD_KEY = "Bearer sk-test-key-good"
SPACEAI_CHAT = "/v1/chat/completions"
PAHLAVAN_CHAT = "/api/v1/chat/completions"
PLAIN = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
STREAMED = {**PLAIN, "stream": True, "stream_options": {"include_usage": True}}
BILLED = {"model": "glm-4.5", "messages": [{"role": "user", "content": "Hi"}]}

# (break, provider, path, body, key, the check that must name it)
CASES = [
    ("chunk_object", "spaceai", SPACEAI_CHAT, STREAMED, GOOD_KEY, "streaming.events"),
    ("no_done", "spaceai", SPACEAI_CHAT, STREAMED, GOOD_KEY, "streaming.events"),
    ("created_string", "spaceai", SPACEAI_CHAT, PLAIN, GOOD_KEY, "schema.response_schema_conformance"),
    ("flat_error", "spaceai", SPACEAI_CHAT, PLAIN, "Bearer sk-test-key-revoked", "envelope.errors"),
    ("no_ratelimit", "spaceai", SPACEAI_CHAT, PLAIN, GOOD_KEY, "ratelimit.headers"),
    ("billing_mismatch", "pahlavan", PAHLAVAN_CHAT, BILLED, GOOD_KEY, "billing.charges"),
]


@pytest.fixture
def proxies(upstream: AppThread) -> Iterator[dict[str, AppThread]]:
    started = {provider: proxy_thread(provider, upstream.url) for provider in ("spaceai", "pahlavan")}
    yield started
    for proxy in started.values():
        proxy.stop()


def _send(proxy: AppThread, path: str, body: dict[str, Any], key: str, breaks: str) -> requests.Response:
    headers = {"Authorization": key, "X-Break": breaks}
    response = requests.post(proxy.url + path, json=body, headers=headers, timeout=30)
    response.content  # noqa: B018 - read the whole answer (a stream included) before asking for violations
    return response


@pytest.mark.parametrize(
    ("breaks", "provider", "path", "body", "key", "check"), CASES, ids=[c[0] for c in CASES]
)
def test_each_break_is_reported_under_its_check(
    proxies: dict[str, AppThread],
    breaks: str,
    provider: str,
    path: str,
    body: dict[str, Any],
    key: str,
    check: str,
) -> None:
    proxy = proxies[provider]
    _send(proxy, path, body, key, "ok")
    assert violations(proxy.url) == [], "the conforming answer must report nothing"
    answer = _send(proxy, path, body, key, breaks)
    assert answer.status_code in (200, 401)
    found = violations(proxy.url, side="response")
    assert check in {v["check"] for v in found}, found
    named = next(v for v in found if v["check"] == check)
    assert named["exchange"] == 2
    assert named["operation"] == "createChatCompletion"
    assert named["pointer"].startswith("#/")
    assert violations(proxy.url, side="request") == []


def test_the_break_is_passed_on_unchanged(proxies: dict[str, AppThread]) -> None:
    """The proxy reports; it never repairs: the client gets exactly what the upstream sent."""
    answer = _send(proxies["spaceai"], SPACEAI_CHAT, STREAMED, GOOD_KEY, "no_done")
    assert answer.headers["Content-Type"].startswith("text/event-stream")
    assert b"[DONE]" not in answer.content
    assert answer.content.count(b"data: ") == 5
    answer = _send(proxies["spaceai"], SPACEAI_CHAT, PLAIN, GOOD_KEY, "created_string")
    assert answer.json()["created"] == "1796000000"


def _first_event_after(url: str) -> tuple[float, float]:
    """Seconds to the first event and to the end of a ``slow`` stream."""
    started = time.monotonic()
    headers = {"Authorization": GOOD_KEY, "X-Break": "slow"}
    with requests.post(
        url + SPACEAI_CHAT, json=STREAMED, headers=headers, stream=True, timeout=30
    ) as response:
        first = None
        for line in response.iter_lines():
            if line.startswith(b"data: ") and first is None:
                first = time.monotonic() - started
        assert first is not None
        return first, time.monotonic() - started


def test_a_stream_is_not_buffered(upstream: AppThread, proxies: dict[str, AppThread]) -> None:
    """The upstream sends one event, then waits a second: through the proxy it arrives as soon as directly."""
    direct, direct_total = _first_event_after(upstream.url)
    through, through_total = _first_event_after(proxies["spaceai"].url)
    print(f"time to first event: direct {direct * 1000:.1f} ms, through the proxy {through * 1000:.1f} ms")
    assert direct_total >= SLOW_PAUSE
    assert through_total >= SLOW_PAUSE
    # A buffering proxy would hand the first event over only with the rest, after the pause.
    assert through < direct + 0.5 < SLOW_PAUSE
    assert violations(proxies["spaceai"].url) == []
