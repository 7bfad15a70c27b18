"""StudioAICore and SpaceAI behaviour: deterministic chat, token accounting, models, SSE streaming, pacing."""

from __future__ import annotations

import functools
import json
import logging
import time
from typing import Any

import httpx
import pytest
from httpx_sse import connect_sse

from mockserver.core.spec import SchemaValidator, load_spec
from mockserver.resources import spec_path

CHAT = {
    "studioaicore": ("/v1/chat", "studiocore-1", "chat-"),
    "spaceai": ("/v1/chat/completions", "gpt-4o", "chatcmpl-"),
}
"""Each provider's chat path, a seeded model and its completion id prefix."""
PROMPT = "Explain quantum computing in simple terms"

both_providers = pytest.mark.parametrize("provider", list(CHAT))


@functools.cache
def schema(provider: str, name: str) -> SchemaValidator:
    """A validator for ``components/schemas/<name>`` of a provider's spec."""
    return load_spec(spec_path(provider)).schema(name)


def chat_body(provider: str, content: str = PROMPT, **extra: Any) -> dict[str, Any]:
    """A valid chat request."""
    return {"model": CHAT[provider][1], "messages": [{"role": "user", "content": content}], **extra}


def complete(mock: Any, provider: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST a chat request; the 200 body, validated against the provider's ``ChatCompletion``."""
    response = mock.post(provider, CHAT[provider][0], json=body)
    assert response.status_code == 200, response.text
    completion: dict[str, Any] = response.json()
    assert list(schema(provider, "ChatCompletion").errors(completion)) == []
    return completion


def content(completion: dict[str, Any]) -> str:
    """The assistant message's text."""
    text: str = completion["choices"][0]["message"]["content"]
    return text


def stream_events(mock: Any, body: dict[str, Any]) -> tuple[httpx.Response, list[str]]:
    """Stream a SpaceAI chat request; the response and every event's ``data``, parsed by httpx-sse."""
    info = mock.provider("spaceai")
    with (
        httpx.Client(timeout=10) as client,
        connect_sse(
            client, "POST", info.base_url + "/v1/chat/completions", json=body, headers=info.auth_headers()
        ) as source,
    ):
        data = [event.data for event in source.iter_sse()]
        return source.response, data


def chunks_of(data: list[str]) -> list[dict[str, Any]]:
    """The JSON chunks of a stream (everything but the ``[DONE]`` terminator), each schema-checked."""
    assert data.count("[DONE]") == 1, data[-3:]
    assert data[-1] == "[DONE]", data[-3:]
    chunks = [json.loads(item) for item in data[:-1]]
    validator = schema("spaceai", "ChatCompletionChunk")
    for chunk in chunks:
        assert list(validator.errors(chunk)) == [], chunk
    return chunks


def streamed_text(chunks: list[dict[str, Any]]) -> str:
    """The concatenated content deltas."""
    return "".join(c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"])


# -- chat completions -------------------------------------------------------------------------------------


@both_providers
def test_same_request_same_content(chat_mock: Any, provider: str) -> None:
    first = complete(chat_mock, provider, chat_body(provider))
    second = complete(chat_mock, provider, chat_body(provider))
    assert content(first) == content(second)
    assert first["id"] != second["id"]


@both_providers
def test_different_prompt_different_content(chat_mock: Any, provider: str) -> None:
    quantum = content(complete(chat_mock, provider, chat_body(provider)))
    gardens = content(complete(chat_mock, provider, chat_body(provider, "Describe Japanese rock gardens")))
    assert quantum != gardens


@both_providers
def test_server_seed_changes_content(chat_mock: Any, start_chat_mock: Any, provider: str) -> None:
    seed0 = content(complete(chat_mock, provider, chat_body(provider)))
    seed1 = content(complete(start_chat_mock(seed=1), provider, chat_body(provider)))
    assert seed0 != seed1


@both_providers
def test_content_is_about_the_prompt(chat_mock: Any, provider: str) -> None:
    text = content(complete(chat_mock, provider, chat_body(provider, "Tell me about volcanoes in Iceland")))
    assert "volcanoes" in text.lower() or "iceland" in text.lower()


@both_providers
def test_max_tokens_cuts_with_length(chat_mock: Any, provider: str) -> None:
    full = complete(chat_mock, provider, chat_body(provider))
    cut = complete(chat_mock, provider, chat_body(provider, max_tokens=5))
    assert full["choices"][0]["finish_reason"] == "stop"
    assert full["usage"]["completion_tokens"] > 5
    assert cut["choices"][0]["finish_reason"] == "length"
    assert cut["usage"]["completion_tokens"] == 5
    assert content(full).startswith(content(cut))


@both_providers
def test_integral_float_max_tokens_is_an_integer(chat_mock: Any, provider: str) -> None:
    # JSON Schema's `integer` admits 5.0; the mock must treat it as 5, not fail.
    cut = complete(chat_mock, provider, chat_body(provider, max_tokens=5.0))
    assert cut["usage"]["completion_tokens"] == 5
    assert cut["choices"][0]["finish_reason"] == "length"


@both_providers
def test_usage_adds_up_and_grows_with_the_prompt(chat_mock: Any, provider: str) -> None:
    short = complete(chat_mock, provider, chat_body(provider, "Hi"))["usage"]
    long_prompt = "Tell me everything about the long history of maritime navigation and its instruments. " * 5
    long = complete(chat_mock, provider, chat_body(provider, long_prompt))["usage"]
    for usage in (short, long):
        assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
        assert usage["prompt_tokens"] > 0
        assert usage["completion_tokens"] > 0
    assert long["prompt_tokens"] > short["prompt_tokens"]
    two_messages = chat_body(provider, "Hi")
    two_messages["messages"].insert(0, {"role": "system", "content": "You are terse."})
    assert complete(chat_mock, provider, two_messages)["usage"]["prompt_tokens"] > short["prompt_tokens"]


@both_providers
def test_completion_metadata(chat_mock: Any, provider: str) -> None:
    before = time.time()
    completion = complete(chat_mock, provider, chat_body(provider))
    assert completion["id"].startswith(CHAT[provider][2])
    assert completion["object"] == "chat.completion"
    assert completion["model"] == CHAT[provider][1]
    assert before - 2 <= completion["created"] <= time.time() + 2
    assert completion["choices"][0]["index"] == 0
    assert completion["choices"][0]["message"]["role"] == "assistant"


def test_created_follows_the_mock_clock(chat_mock: Any) -> None:
    now = chat_mock.advance(86_400)
    completion = complete(chat_mock, "spaceai", chat_body("spaceai"))
    assert abs(completion["created"] - now) <= 2


def test_other_models_are_echoed(chat_mock: Any) -> None:
    body = chat_body("spaceai")
    body["model"] = "claude-3.7-sonnet"
    assert complete(chat_mock, "spaceai", body)["model"] == "claude-3.7-sonnet"


@both_providers
def test_unknown_model_is_404(chat_mock: Any, provider: str) -> None:
    body = chat_body(provider)
    body["model"] = "no-such-model-9"
    response = chat_mock.post(provider, CHAT[provider][0], json=body)
    assert response.status_code == 404
    error = response.json()["error"]
    assert error["type"] == "not_found_error"
    assert error["code"] == 404
    assert "no-such-model-9" in error["message"]


def test_studioaicore_ignores_stream(chat_mock: Any) -> None:
    # No streaming is documented for StudioAICore: the answer stays one JSON completion.
    response = chat_mock.post("studioaicore", "/v1/chat", json=chat_body("studioaicore", stream=True))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")


# -- SpaceAI models ---------------------------------------------------------------------------------------


def test_spaceai_lists_the_documented_models(chat_mock: Any) -> None:
    response = chat_mock.get("spaceai", "/v1/models")
    assert response.status_code == 200
    listing = response.json()
    assert list(schema("spaceai", "ModelList").errors(listing)) == []
    assert listing["object"] == "list"
    models = {m["id"]: m for m in listing["data"]}
    assert list(models) == ["gpt-4o", "claude-3.5-sonnet", "claude-3.7-sonnet"]
    # The guide's table: $ per 1K tokens, served per token.
    assert models["gpt-4o"]["pricing"] == {"input": 0.00003, "output": 0.00006}
    assert models["claude-3.5-sonnet"]["pricing"] == {"input": 0.00002, "output": 0.00005}
    assert models["claude-3.7-sonnet"]["pricing"] == {"input": 0.00005, "output": 0.0001}
    assert models["gpt-4o"]["capabilities"] == ["chat", "completions"]
    assert models["claude-3.5-sonnet"]["capabilities"] == ["chat"]
    assert models["gpt-4o"]["owned_by"] == "openai-internal"
    assert {m["owned_by"] for m in listing["data"][1:]} == {"anthropic"}


# -- SpaceAI streaming ------------------------------------------------------------------------------------


def test_stream_matches_the_completion(chat_mock: Any) -> None:
    plain = complete(chat_mock, "spaceai", chat_body("spaceai"))
    response, data = stream_events(chat_mock, chat_body("spaceai", stream=True))
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    chunks = chunks_of(data)
    assert streamed_text(chunks) == content(plain)
    assert {c["id"] for c in chunks} == {chunks[0]["id"]}
    assert chunks[0]["id"].startswith("chatcmpl-")
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "stop"
    assert set(finishes[:-1]) == {None}
    # No usage chunk unless asked for.
    assert all(c["choices"] and c.get("usage") is None for c in chunks)


def test_stream_usage_chunk_when_asked(chat_mock: Any) -> None:
    plain = complete(chat_mock, "spaceai", chat_body("spaceai", max_tokens=12))
    body = chat_body("spaceai", max_tokens=12, stream=True, stream_options={"include_usage": True})
    chunks = chunks_of(stream_events(chat_mock, body)[1])
    usage_chunks = [c for c in chunks if c.get("usage")]
    assert usage_chunks == [chunks[-1]]
    assert chunks[-1]["choices"] == []
    usage = chunks[-1]["usage"]
    assert usage == plain["usage"]
    assert usage["completion_tokens"] == 12
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "length"
    assert streamed_text(chunks) == content(plain)


def test_stream_without_usage_when_include_usage_false(chat_mock: Any) -> None:
    body = chat_body("spaceai", stream=True, stream_options={"include_usage": False})
    chunks = chunks_of(stream_events(chat_mock, body)[1])
    assert all(c.get("usage") is None for c in chunks)


def test_stream_is_deterministic(chat_mock: Any) -> None:
    body = chat_body("spaceai", stream=True)
    first = streamed_text(chunks_of(stream_events(chat_mock, body)[1]))
    second = streamed_text(chunks_of(stream_events(chat_mock, body)[1]))
    assert first == second


def test_streams_are_fast_by_default(chat_mock: Any) -> None:
    started = time.perf_counter()
    data = stream_events(chat_mock, chat_body("spaceai", max_tokens=20, stream=True))[1]
    assert len(data) == 23  # role, 20 tokens, finish, [DONE]
    assert time.perf_counter() - started < 0.3


def test_tokens_per_second_paces_the_stream(start_chat_mock: Any) -> None:
    mock = start_chat_mock(tokens_per_second=50)
    started = time.perf_counter()
    data = stream_events(mock, chat_body("spaceai", max_tokens=20, stream=True))[1]
    elapsed = time.perf_counter() - started
    assert len(data) == 23
    assert elapsed >= 0.3  # 20 tokens at 50/s is 0.4 s of pacing
    assert elapsed < 5


def test_client_leaving_mid_stream_is_quiet(start_chat_mock: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    # Paced, so the server is still writing when the client goes away.
    mock = start_chat_mock(tokens_per_second=100)
    info = mock.provider("spaceai")
    body = chat_body("spaceai", "Write a very long story about the sea", stream=True)
    received = []
    with (
        httpx.Client(timeout=10) as client,
        connect_sse(
            client, "POST", info.base_url + "/v1/chat/completions", json=body, headers=info.auth_headers()
        ) as source,
    ):
        for event in source.iter_sse():
            received.append(event.data)
            if len(received) == 2:
                break
    assert len(received) == 2
    # The journal records a request once its handler has finished: wait (bounded) for that.
    deadline = time.monotonic() + 5
    while not mock.journal("spaceai") and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [e["status"] for e in mock.journal("spaceai")] == [200]
    assert mock.get("spaceai", "/v1/models").status_code == 200
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert any("client left a stream" in r.getMessage() for r in caplog.records)
    # start_chat_mock checks at teardown that the server stops with no task left pending.
