"""The mock's generic behaviour over real HTTP: listing, auth, errors, validation, limits, CORS, faults."""

from __future__ import annotations

import functools
import json
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from mockserver.core.calls import EventReply
from mockserver.core.spec import SchemaValidator, load_spec
from mockserver.resources import spec_path

CHAT = {
    "studioaicore": ("/v1/chat", "studiocore-1"),
    "spaceai": ("/v1/chat/completions", "gpt-4o"),
}
"""Each OpenAI-style provider's chat path and a seeded model."""
SEED_KEYS = {"studioaicore": "sac_test_mockkey_0001", "spaceai": "sk-spaceai-mockkey-0001"}
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")

both_providers = pytest.mark.parametrize("provider", list(CHAT))


def chat_body(provider: str, content: str = "Hello!", **extra: Any) -> dict[str, Any]:
    """A valid chat request for a provider."""
    return {"model": CHAT[provider][1], "messages": [{"role": "user", "content": content}], **extra}


@functools.cache
def schema(provider: str, name: str) -> SchemaValidator:
    """A validator for ``components/schemas/<name>`` of a provider's spec."""
    return load_spec(spec_path(provider)).schema(name)


def assert_error(response: Any, provider: str, status: int, error_type: str | None = None) -> dict[str, Any]:
    """The response is ``status`` in the provider's documented envelope; returns its ``error`` object."""
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    problems = list(schema(provider, "Error").errors(body))
    assert problems == [], problems
    assert body["error"]["code"] == status
    if error_type is not None:
        assert body["error"]["type"] == error_type
    error: dict[str, Any] = body["error"]
    return error


def assert_rate_headers(response: Any) -> dict[str, int]:
    """Every rate-limit header is present and an integer; returns them."""
    values = {}
    for name in RATE_HEADERS:
        assert name in response.headers, f"{name} missing on a {response.status_code}"
        values[name] = int(response.headers[name])
    return values


def start_fresh_window(mock: Any) -> float:
    """Advance the mock's clock to just past a minute boundary, so a test has a whole rate window."""
    now = mock.now()
    return float(mock.advance(math.floor(now / 60) * 60 + 60 - now + 0.01))


# -- /_mock/providers -------------------------------------------------------------------------------------


def test_providers_listing_shape(chat_mock: Any) -> None:
    listing = chat_mock.control("GET", "/providers")["providers"]
    assert [p["id"] for p in listing] == ["studioaicore", "spaceai"]
    by_id = {p["id"]: p for p in listing}
    for provider_id, entry in by_id.items():
        assert set(entry) == {"id", "base_url", "api_key", "extra_keys", "organization_id", "models"}
        assert entry["extra_keys"] == {}  # one seeded key each
        assert entry["base_url"] == f"{chat_mock.base_url}/{provider_id}"
        assert entry["api_key"] == SEED_KEYS[provider_id]
        assert entry["organization_id"] is None
    assert by_id["studioaicore"]["models"] == ["studiocore-1"]
    assert by_id["spaceai"]["models"] == ["gpt-4o", "claude-3.5-sonnet", "claude-3.7-sonnet"]


def test_only_modelstudio_lists_an_organization(mock: Any) -> None:
    for provider_id, info in mock.providers.items():
        assert info.base_url == f"{mock.base_url}/{provider_id}"
        assert info.api_key
        if provider_id == "modelstudio":
            assert isinstance(info.organization_id, str)
            assert info.organization_id
        else:
            assert info.organization_id is None, provider_id


def test_base_urls_follow_host_header(chat_mock: Any, start_chat_mock: Any) -> None:
    response = chat_mock.http.get(f"{chat_mock.base_url}/_mock/providers", headers={"Host": "localhost:9000"})
    urls = {p["id"]: p["base_url"] for p in response.json()["providers"]}
    assert urls == {
        "studioaicore": "http://localhost:9000/studioaicore",
        "spaceai": "http://localhost:9000/spaceai",
    }
    # Any other Host needs a token-protected control API (open on loopback, it answers loopback Hosts only).
    guarded = start_chat_mock(control_token="host-test-token")
    headers = {"Host": "mock.test:9000", "Authorization": "Bearer host-test-token"}
    response = guarded.http.get(f"{guarded.base_url}/_mock/providers", headers=headers)
    assert {p["base_url"] for p in response.json()["providers"]} == {
        "http://mock.test:9000/studioaicore",
        "http://mock.test:9000/spaceai",
    }


def test_base_urls_honour_forwarded_headers(chat_mock: Any) -> None:
    response = chat_mock.http.get(
        f"{chat_mock.base_url}/_mock/providers",
        headers={"X-Forwarded-Host": "api.example.org", "X-Forwarded-Proto": "https"},
    )
    urls = {p["id"]: p["base_url"] for p in response.json()["providers"]}
    assert urls["spaceai"] == "https://api.example.org/spaceai"


def test_reset_restores_the_seed_state(chat_mock: Any) -> None:
    chat_mock.post("spaceai", "/v1/chat/completions", json=chat_body("spaceai"))
    chat_mock.advance(3600)
    chat_mock.fault(provider="spaceai", status=500)
    assert chat_mock.journal()
    assert chat_mock.control("GET", "/faults")["faults"]

    assert chat_mock.control("POST", "/reset") == {"status": "reset"}

    assert chat_mock.journal() == []
    assert chat_mock.control("GET", "/faults")["faults"] == []
    assert chat_mock.control("GET", "/clock")["offset"] == 0
    assert chat_mock.get("spaceai", "/v1/models").status_code == 200


# -- authentication ---------------------------------------------------------------------------------------


@both_providers
@pytest.mark.parametrize(
    ("case", "authorization"),
    [
        ("missing", None),
        ("wrong key", "Bearer sk-not-a-real-key"),
        ("no Bearer prefix", "{own}"),
        ("lowercase scheme only", "Bearer"),
        ("another provider's key", "Bearer {other}"),
    ],
)
def test_unauthorized_in_envelope(
    chat_mock: Any, provider: str, case: str, authorization: str | None
) -> None:
    other = next(key for pid, key in SEED_KEYS.items() if pid != provider)
    headers = {}
    if authorization is not None:
        headers["Authorization"] = authorization.format(own=SEED_KEYS[provider], other=other)
    response = chat_mock.post(
        provider, CHAT[provider][0], json=chat_body(provider), auth=False, headers=headers
    )
    error = assert_error(response, provider, 401, "authentication_error")
    assert_rate_headers(response)
    if case == "missing":
        assert "Bearer" in error["message"]


# -- routing ----------------------------------------------------------------------------------------------


@both_providers
def test_unknown_path_is_404_in_envelope(chat_mock: Any, provider: str) -> None:
    response = chat_mock.post(provider, "/v1/nowhere", json={})
    error = assert_error(response, provider, 404, "not_found_error")
    assert "/v1/nowhere" in error["message"]
    assert_rate_headers(response)


@pytest.mark.parametrize("path", ["/v1/models%0A", "/v1/%0D%0Amodels", "/v1/models/%00", "/v1/\u00e9t\u00e9"])
def test_odd_paths_are_404_in_envelope(chat_mock: Any, path: str) -> None:
    response = chat_mock.get("spaceai", path)
    assert_error(response, "spaceai", 404, "not_found_error")
    assert_rate_headers(response)


@pytest.mark.parametrize(
    ("provider", "method", "path", "allow"),
    [
        ("studioaicore", "GET", "/v1/chat", "POST"),
        ("spaceai", "DELETE", "/v1/models", "GET"),
        ("spaceai", "PUT", "/v1/chat/completions", "POST"),
    ],
)
def test_wrong_method_is_405_with_allow(
    chat_mock: Any, provider: str, method: str, path: str, allow: str
) -> None:
    response = chat_mock.request(provider, method, path)
    assert_error(response, provider, 405, "method_not_allowed")
    assert response.headers["Allow"] == allow
    assert_rate_headers(response)


# -- request validation -----------------------------------------------------------------------------------


@both_providers
@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda b: {**b, "messages": "hello"}, "messages"),
        (lambda b: {**b, "temperature": 3}, "temperature"),
        (lambda b: {**b, "temperature": "warm"}, "temperature"),
        (lambda b: {**b, "max_tokens": 0}, "max_tokens"),
        (lambda b: {k: v for k, v in b.items() if k != "model"}, "model"),
        (lambda b: {k: v for k, v in b.items() if k != "messages"}, "messages"),
        (lambda b: {**b, "messages": []}, "messages"),
        (lambda b: {**b, "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
        (lambda b: {**b, "messages": [{"role": "user"}]}, "content"),
    ],
    ids=["wrong-type", "out-of-range", "string-number", "below-minimum", "no-model", "no-messages",
         "empty-messages", "bad-enum", "no-content"],
)  # fmt: skip
def test_invalid_body_is_400_naming_the_field(chat_mock: Any, provider: str, mutate: Any, field: str) -> None:
    response = chat_mock.post(provider, CHAT[provider][0], json=mutate(chat_body(provider)))
    error = assert_error(response, provider, 400, "invalid_request_error")
    assert field in error["message"]


@both_providers
def test_malformed_json_is_400(chat_mock: Any, provider: str) -> None:
    response = chat_mock.post(
        provider, CHAT[provider][0], data=b'{"model": "x", ', headers={"Content-Type": "application/json"}
    )
    error = assert_error(response, provider, 400, "invalid_request_error")
    assert "JSON" in error["message"]


@both_providers
def test_wrong_content_type_is_400_naming_it(chat_mock: Any, provider: str) -> None:
    response = chat_mock.post(
        provider,
        CHAT[provider][0],
        data=json.dumps(chat_body(provider)),
        headers={"Content-Type": "text/plain"},
    )
    error = assert_error(response, provider, 400, "invalid_request_error")
    assert "Content-Type" in error["message"]


@both_providers
def test_missing_body_is_400(chat_mock: Any, provider: str) -> None:
    response = chat_mock.post(provider, CHAT[provider][0])
    assert_error(response, provider, 400, "invalid_request_error")


def _hostile_bodies() -> list[bytes]:
    msg = '[{"role":"user","content":"hi"}]'
    variants = [
        "", "null", "true", "0", "-1", '"text"', "[]", "{}", "[{}]", "[null]",
        "[" * 100_000 + "]" * 100_000,
        '{"a":' * 50_000 + "1" + "}" * 50_000,
        f'{{"model":"gpt-4o","messages":{msg},"max_tokens":1{"0" * 5000}}}',
        f'{{"model":"gpt-4o","messages":{msg},"max_tokens":-1{"0" * 400}}}',
        f'{{"model":"gpt-4o","messages":{msg},"temperature":1e999}}',
        f'{{"model":"gpt-4o","messages":{msg},"temperature":-1e999}}',
        f'{{"model":"gpt-4o","messages":{msg},"temperature":NaN}}',
        f'{{"model":"gpt-4o","messages":{msg},"temperature":Infinity}}',
        f'{{"model":"gpt-4o","messages":{msg},"max_tokens":1.5}}',
        f'{{"model":"gpt-4o","messages":{msg},"max_tokens":"10"}}',
        f'{{"model":null,"messages":{msg}}}',
        f'{{"model":["gpt-4o"],"messages":{msg}}}',
        f'{{"model":{{"id":"gpt-4o"}},"messages":{msg}}}',
        '{"model":"gpt-4o","messages":null}',
        '{"model":"gpt-4o","messages":[null]}',
        '{"model":"gpt-4o","messages":[[[[[]]]]]}',
        '{"model":"gpt-4o","messages":' + "[" * 900 + "]" * 900 + "}",
        '{"model":"gpt-4o","messages":[{"role":"user","content":"hi","x":' + '{"a":' * 900 + "1" + "}" * 902
        + "]}",
        '{"model":"gpt-4o","messages":[{"role":"user","content":null}]}',
        '{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}]}',
        '{"model":"gpt-4o","messages":[{"role":null,"content":"hi"}]}',
        '{"model":"\\ud800","messages":[{"role":"user","content":"hi"}]}',
        '{"model":"gpt-4o","messages":[{"role":"user","content":"\\udfff\\u0000"}]}',
        '{"model":"\\u0000","messages":[{"role":"user","content":"hi"}]}',
        '{"model":"模型🚀","messages":[{"role":"user","content":"ǅ ﷽ 👩‍👩‍👧‍👦 \\u202e"}]}',
        f'{{"model":"{"x" * 100_000}","messages":{msg}}}',
        f'{{"model":"gpt-4o","messages":{msg},"stream":"yes"}}',
        f'{{"model":"gpt-4o","messages":{msg},"stream":true,"stream_options":[]}}',
        f'{{"model":"gpt-4o","messages":{msg},"stream_options":{{"include_usage":"no"}}}}',
        f'{{"model":"gpt-4o","model":"other","messages":{msg}}}',
        f'{{"model":"gpt-4o","messages":{msg},"extra":{{"deep":[1,2,{{"x":null}}]}}}}',
        f'{{"model":"gpt-4o","messages":{msg}}}   trailing',
    ]  # fmt: skip
    bodies = [v.encode() for v in variants]
    bodies += [b"\xff\xfe\x00garbage", b"\xef\xbb\xbf{}", b'{"model": "\xc3\x28"}', bytes(range(256))]
    return bodies


HOSTILE_BODIES = _hostile_bodies()


@both_providers
def test_garbage_never_causes_a_server_error(chat_mock: Any, provider: str) -> None:
    path = CHAT[provider][0]
    for index, body in enumerate(HOSTILE_BODIES):
        response = chat_mock.post(provider, path, data=body, headers={"Content-Type": "application/json"})
        assert response.status_code < 500, f"body #{index} {body[:60]!r} -> {response.text[:300]}"
        if response.status_code >= 400:
            assert_error(response, provider, response.status_code)
    # Wrong JSON types at the root, sent the ordinary way.
    for root in (None, 1, 1.5, "x", [], [1, {}], True):
        response = chat_mock.post(provider, path, json=root)
        assert_error(response, provider, 400, "invalid_request_error")


# -- rate limits ------------------------------------------------------------------------------------------


def test_rate_limit_counts_down_then_429_and_recovers(start_chat_mock: Any) -> None:
    mock = start_chat_mock(rate_limit=3)
    now = start_fresh_window(mock)
    seen = [assert_rate_headers(mock.get("spaceai", "/v1/models")) for _ in range(3)]
    assert [s["X-RateLimit-Limit"] for s in seen] == [3, 3, 3]
    assert [s["X-RateLimit-Remaining"] for s in seen] == [2, 1, 0]
    reset = seen[0]["X-RateLimit-Reset"]
    assert {s["X-RateLimit-Reset"] for s in seen} == {reset}
    assert reset % 60 == 0
    assert now < reset <= now + 60

    limited = mock.get("spaceai", "/v1/models")
    error = assert_error(limited, "spaceai", 429, "rate_limit_exceeded")
    assert error["code"] == 429
    assert assert_rate_headers(limited) == {
        "X-RateLimit-Limit": 3,
        "X-RateLimit-Remaining": 0,
        "X-RateLimit-Reset": reset,
    }
    retry_after = int(limited.headers["Retry-After"])
    assert 1 <= retry_after <= math.ceil(reset - now)

    mock.advance(reset - mock.now() + 0.5)
    again = mock.get("spaceai", "/v1/models")
    assert again.status_code == 200
    assert assert_rate_headers(again)["X-RateLimit-Remaining"] == 2
    assert assert_rate_headers(again)["X-RateLimit-Reset"] == reset + 60


def test_rate_limit_headers_on_error_responses_count_too(start_chat_mock: Any) -> None:
    mock = start_chat_mock(rate_limit=3)
    start_fresh_window(mock)
    unknown = mock.get("studioaicore", "/v1/unknown")
    wrong_method = mock.get("studioaicore", "/v1/chat")
    invalid = mock.post("studioaicore", "/v1/chat", json={})
    assert [r.status_code for r in (unknown, wrong_method, invalid)] == [404, 405, 400]
    assert [assert_rate_headers(r)["X-RateLimit-Remaining"] for r in (unknown, wrong_method, invalid)] == [
        2,
        1,
        0,
    ]
    assert_error(mock.post("studioaicore", "/v1/chat", json=chat_body("studioaicore")), "studioaicore", 429)
    # Each provider (and each key) has its own window.
    assert mock.get("spaceai", "/v1/models").status_code == 200


def test_unauthenticated_requests_carry_rate_headers(start_chat_mock: Any) -> None:
    mock = start_chat_mock(rate_limit=3)
    start_fresh_window(mock)
    responses = [mock.get("spaceai", "/v1/models", auth=False) for _ in range(4)]
    # Authentication comes before the limit (pipeline order), so the 4th is still a 401, counted as over.
    assert [r.status_code for r in responses] == [401, 401, 401, 401]
    assert [assert_rate_headers(r)["X-RateLimit-Remaining"] for r in responses] == [2, 1, 0, 0]
    # The client address is the bucket without a key: a valid key still has its own quota.
    assert mock.get("spaceai", "/v1/models").status_code == 200


@both_providers
def test_default_per_key_limit_is_120(start_chat_mock: Any, provider: str) -> None:
    mock = start_chat_mock(rate_limit=None)
    start_fresh_window(mock)
    response = mock.post(provider, CHAT[provider][0], json=chat_body(provider))
    assert response.status_code == 200
    assert assert_rate_headers(response)["X-RateLimit-Limit"] == 120
    assert assert_rate_headers(response)["X-RateLimit-Remaining"] == 119


# -- CORS -------------------------------------------------------------------------------------------------

ORIGIN = "http://app.example.test"


def test_cors_preflight(chat_mock: Any) -> None:
    response = chat_mock.http.options(
        chat_mock.url("spaceai", "/v1/chat/completions"),
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "authorization" in response.headers["Access-Control-Allow-Headers"].lower()


def test_cors_headers_on_responses_and_errors(chat_mock: Any) -> None:
    ok = chat_mock.get("spaceai", "/v1/models", headers={"Origin": ORIGIN})
    denied = chat_mock.get("spaceai", "/v1/models", auth=False, headers={"Origin": ORIGIN})
    for response in (ok, denied):
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
        assert set(RATE_HEADERS) <= exposed


def test_cors_headers_on_streams(chat_mock: Any) -> None:
    body = chat_body("spaceai", stream=True)
    with chat_mock.post(
        "spaceai", "/v1/chat/completions", json=body, headers={"Origin": ORIGIN}, stream=True
    ) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert "X-RateLimit-Limit" in r.headers["Access-Control-Expose-Headers"]
        assert b"[DONE]" in r.content


def test_no_cors_sends_no_cors_headers(start_chat_mock: Any) -> None:
    mock = start_chat_mock(cors=False)
    preflight = mock.http.options(
        mock.url("spaceai", "/v1/models"), headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"}
    )
    normal = mock.get("spaceai", "/v1/models", headers={"Origin": ORIGIN})
    assert preflight.status_code != 204
    assert normal.status_code == 200
    for response in (preflight, normal):
        assert not any(h.lower().startswith("access-control-") for h in response.headers)


# -- single-provider mode ---------------------------------------------------------------------------------


def test_single_provider_mode_serves_at_the_root(start_mock: Any) -> None:
    mock = start_mock(provider="spaceai")
    listing = mock.control("GET", "/providers")["providers"]
    assert [(p["id"], p["base_url"]) for p in listing] == [("spaceai", mock.base_url)]
    response = mock.get("spaceai", "/v1/models")
    assert response.url == f"{mock.base_url}/v1/models"
    assert response.status_code == 200
    prefixed = mock.http.get(
        f"{mock.base_url}/spaceai/v1/models", headers=mock.provider("spaceai").auth_headers()
    )
    assert_error(prefixed, "spaceai", 404, "not_found_error")


# -- journal ----------------------------------------------------------------------------------------------


def test_journal_lists_requests_without_credentials(chat_mock: Any) -> None:
    key = SEED_KEYS["spaceai"]
    chat_mock.get("spaceai", "/v1/models")
    chat_mock.get("spaceai", f"/v1/models?api_key={key}")
    chat_mock.post("spaceai", "/v1/chat/completions", json={})
    chat_mock.get("spaceai", "/v1/models", auth=False)
    chat_mock.post("studioaicore", "/v1/chat", json=chat_body("studioaicore"))

    raw = chat_mock.http.get(f"{chat_mock.base_url}/_mock/requests?provider=spaceai").text
    entries = json.loads(raw)["requests"]
    assert [(e["method"], e["path"], e["status"]) for e in entries] == [
        ("GET", "/spaceai/v1/models", 200),
        ("GET", "/spaceai/v1/models", 200),
        ("POST", "/spaceai/v1/chat/completions", 400),
        ("GET", "/spaceai/v1/models", 401),
    ]
    assert all(e["provider"] == "spaceai" and e["latency_ms"] >= 0 for e in entries)
    assert entries[0]["operation_id"] == "listModels"
    for secret in SEED_KEYS.values():
        assert secret not in raw
    assert len(chat_mock.journal()) == 5


# -- faults -----------------------------------------------------------------------------------------------


def test_forced_status_for_n_calls_then_normal(chat_mock: Any) -> None:
    chat_mock.fault(provider="spaceai", operation_id="listModels", status=500, count=2, message="Boom.")
    first, second, third = (chat_mock.get("spaceai", "/v1/models") for _ in range(3))
    for response in (first, second):
        error = assert_error(response, "spaceai", 500, "server_error")
        assert error["message"] == "Boom."
        assert_rate_headers(response)
    assert third.status_code == 200
    assert chat_mock.control("GET", "/faults")["faults"] == []


def test_forced_status_outside_the_spec_is_sent_as_asked(chat_mock: Any) -> None:
    chat_mock.fault(provider="spaceai", operation_id="listModels", status=503)
    chat_mock.fault(provider="spaceai", operation_id="listModels", status=418, body={"teapot": True})
    unavailable = chat_mock.get("spaceai", "/v1/models")
    assert_error(unavailable, "spaceai", 503, "server_error")
    raw = chat_mock.get("spaceai", "/v1/models")
    assert raw.status_code == 418
    assert raw.json() == {"teapot": True}
    assert_rate_headers(raw)
    # Injected on purpose, so not a violation (the fixture checks /_mock/violations after the test).


def test_forced_429_uses_the_envelope(chat_mock: Any) -> None:
    chat_mock.fault(provider="studioaicore", status=429, headers={"Retry-After": "7"})
    response = chat_mock.post("studioaicore", "/v1/chat", json=chat_body("studioaicore"))
    assert_error(response, "studioaicore", 429, "rate_limit_exceeded")
    assert response.headers["Retry-After"] == "7"
    assert chat_mock.post("studioaicore", "/v1/chat", json=chat_body("studioaicore")).status_code == 200


def test_fault_only_hits_its_operation(chat_mock: Any) -> None:
    chat_mock.fault(provider="spaceai", operation_id="createChatCompletion", status=500, count=None)
    assert chat_mock.get("spaceai", "/v1/models").status_code == 200
    assert chat_mock.post("studioaicore", "/v1/chat", json=chat_body("studioaicore")).status_code == 200
    for _ in range(3):
        assert chat_mock.post("spaceai", "/v1/chat/completions", json=chat_body("spaceai")).status_code == 500
    chat_mock.control("DELETE", "/faults")
    assert chat_mock.post("spaceai", "/v1/chat/completions", json=chat_body("spaceai")).status_code == 200


def test_fault_latency(chat_mock: Any) -> None:
    chat_mock.fault(provider="spaceai", latency_ms=300)
    started = time.perf_counter()
    slow = chat_mock.get("spaceai", "/v1/models")
    slow_elapsed = time.perf_counter() - started
    started = time.perf_counter()
    chat_mock.get("spaceai", "/v1/models")
    fast_elapsed = time.perf_counter() - started
    assert slow.status_code == 200
    assert slow_elapsed >= 0.3
    assert fast_elapsed < slow_elapsed


def test_cut_after_events_breaks_the_stream(chat_mock: Any) -> None:
    chat_mock.fault(provider="spaceai", operation_id="createChatCompletion", cut_after_events=3)
    info = chat_mock.provider("spaceai")
    events: list[str] = []
    with (
        httpx.Client(timeout=10) as client,
        connect_sse(
            client,
            "POST",
            info.base_url + "/v1/chat/completions",
            json=chat_body("spaceai", stream=True),
            headers=info.auth_headers(),
        ) as source,
    ):
        assert source.response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            events.extend(event.data for event in source.iter_sse())  # keeps what arrived before the cut
    assert len(events) == 3
    assert "[DONE]" not in events
    # The next stream is whole again.
    whole = chat_mock.post("spaceai", "/v1/chat/completions", json=chat_body("spaceai", stream=True))
    assert whole.text.rstrip().endswith("data: [DONE]")


@pytest.mark.parametrize("mode", ["warn", "off"])
def test_a_streamed_event_outside_the_spec_is_flagged_unless_the_check_is_off(
    start_chat_mock: Any, mode: str
) -> None:
    mock = start_chat_mock(response_validation=mode)
    service = mock.server.mock.providers["spaceai"]

    async def broken(call: Any) -> EventReply:
        async def events() -> AsyncIterator[Any]:
            yield {
                "object": "chat.completion.chunk",
                "choices": [],
            }  # no id, created, model: outside the spec
            yield "[DONE]"

        return EventReply(events())

    service.handlers["createChatCompletion"] = broken
    response = mock.post("spaceai", "/v1/chat/completions", json=chat_body("spaceai", stream=True))
    # Sent as the handler made it either way: the check flags, it does not alter a stream.
    assert response.status_code == 200
    assert response.content == b'data: {"object":"chat.completion.chunk","choices":[]}\n\ndata: [DONE]\n\n'
    found = mock.violations()
    if mode == "off":
        assert found == []
    else:
        assert [(v["operation_id"], v["status"]) for v in found] == [("createChatCompletion", 200)]
        assert found[0]["problem"].startswith("event 0: ")
        assert '"id" is a required property' in found[0]["problem"]
        mock.reset()  # the violation was on purpose: the fixture's check must not see it


@pytest.mark.parametrize("chunked", [True, False], ids=["chunked", "with-length"])
def test_body_over_the_size_limit_is_413_in_envelope(start_chat_mock: Any, chunked: bool) -> None:
    # The real JSON limit is 8 MiB; a server with a 1 KiB one takes the same path without the upload.
    mock = start_chat_mock(max_json_body=1024)
    body = json.dumps(chat_body("spaceai") | {"user": "x" * 4096}).encode()
    payload: Any = iter([body[:2000], body[2000:]]) if chunked else body
    response = mock.post(
        "spaceai", "/v1/chat/completions", data=payload, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json()["error"] == {
        "type": "invalid_request_error",
        "message": "Request body is too large.",
        "code": 413,
    }
    assert "X-RateLimit-Remaining" in response.headers
