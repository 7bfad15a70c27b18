"""The proxy's ``schema.*`` verdicts are schemathesis' own: one break per check, over HTTP through the proxy.

The upstream (``_proxy_helpers.breaking_app``) breaks one thing per request (header ``X-Break``). Each break
must be reported under the suite's name for the schemathesis check that catches it, with schemathesis' own
failure title in the message and a pointer into the spec where the broken rule is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from _proxy_helpers import AppThread, proxy_thread, violations
from multidict import MultiDict

from conformance.client import Exchange
from conformance.proxy.checking import Checker
from conformance.proxy.verdict import BODY_CHECKS

GOOD_KEY = "Bearer sk-test-key-good"
CHAT = "/v1/chat/completions"
OPERATION = "#/paths/~1v1~1chat~1completions/post"
PLAIN = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hi"}]}
STREAMED = {**PLAIN, "stream": True}

# (break, body, check, schemathesis' failure title, pointer)
CASES = [
    ("teapot", PLAIN, "status_code_conformance", "Undocumented status code", f"{OPERATION}/responses"),
    (
        "text_plain",
        PLAIN,
        "content_type_conformance",
        "Undocumented Content-Type",
        f"{OPERATION}/responses/200/content",
    ),
    (
        "bad_ratelimit",
        PLAIN,
        "response_headers_conformance",
        "Response header does not conform to the schema",
        f"{OPERATION}/responses/200/headers",
    ),
    (
        "no_ratelimit",
        STREAMED,
        "response_headers_conformance",
        "Missing required response headers",
        f"{OPERATION}/responses/200/headers",
    ),
    (
        "created_string",
        PLAIN,
        "response_schema_conformance",
        "Response violates schema",
        "#/components/schemas/ChatCompletion/properties/created",
    ),
]


@pytest.fixture
def proxy(upstream: AppThread) -> Iterator[AppThread]:
    started = proxy_thread("spaceai", upstream.url, quiet=True)
    yield started
    started.stop()


def _send(proxy: AppThread, body: dict[str, Any], breaks: str) -> requests.Response:
    headers = {"Authorization": GOOD_KEY, "X-Break": breaks}
    response = requests.post(proxy.url + CHAT, json=body, headers=headers, timeout=30)
    response.content  # noqa: B018 - the whole answer (a stream included) before asking for violations
    return response


@pytest.mark.parametrize(
    ("breaks", "body", "check", "title", "pointer"),
    CASES,
    ids=[f"{c[0]}-{'stream' if c[1] is STREAMED else 'plain'}" for c in CASES],
)
def test_each_schema_break_is_schemathesis_verdict(
    proxy: AppThread, breaks: str, body: dict[str, Any], check: str, title: str, pointer: str
) -> None:
    _send(proxy, body, "ok")
    assert violations(proxy.url) == [], "the conforming answer must report nothing"
    _send(proxy, body, breaks)
    found = [v for v in violations(proxy.url, side="response") if v["check"] == f"schema.{check}"]
    assert found, violations(proxy.url)
    named = found[0]
    assert named["exchange"] == 2
    assert named["operation"] == "createChatCompletion"
    assert named["pointer"] == pointer
    assert title in named["message"]


def test_an_event_stream_body_is_judged_event_by_event_not_as_one_body(proxy: AppThread) -> None:
    """The stream's own break is the events' verdict; schemathesis' body check is not run on a stream."""
    _send(proxy, {**STREAMED, "stream_options": {"include_usage": True}}, "chunk_object")
    checks = {v["check"] for v in violations(proxy.url)}
    assert "streaming.events" in checks
    assert "schema.response_schema_conformance" not in checks


def test_json_too_deep_to_parse_is_schemathesis_finding_not_an_error() -> None:
    """JSON nested deeper than the parser goes: schemathesis' body check says so (no exception escapes)."""

    checker = Checker("spaceai")
    request = json.dumps(PLAIN).encode()
    headers = {"Authorization": GOOD_KEY, "Content-Type": "application/json"}
    matched, _ = checker.check_request("POST", CHAT, MultiDict(), headers, request)
    exchange = Exchange(
        method="POST",
        url=f"http://127.0.0.1:9{CHAT}",
        request_headers=headers,
        request_body=request,
        status=200,
        headers={"Content-Type": "application/json"},
        content=b"[" * 100_000,
    )
    found = checker.verdict.judge(matched, exchange, BODY_CHECKS)
    assert [f.check for f in found] == ["schema.response_schema_conformance"]
    assert "Failed to deserialize response content" in found[0].message


def test_json_too_deep_to_parse_is_reported_and_forwarded(proxy: AppThread) -> None:
    """An answer nested past the parser's depth is forwarded as sent and reported, never a proxy 500."""
    response = _send(proxy, PLAIN, "deep_json")
    assert response.status_code == 200
    assert response.content == b"[" * 100_000
    checks = [v["check"] for v in violations(proxy.url, side="response")]
    assert checks == ["schema.response_schema_conformance"], checks
