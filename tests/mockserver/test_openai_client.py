"""The official ``openai`` client works unchanged against the mock's OpenAI-compatible providers."""

from __future__ import annotations

from typing import Any

import openai
import pytest

OPENAI_COMPATIBLE = [
    pytest.param("spaceai", "/v1", "gpt-4o", True, id="spaceai"),
    # Pahlavan joins here once its module exists:
    # pytest.param("pahlavan", "/api/v1", "<seeded chat model>", <rate limited?>, id="pahlavan"),
]
"""The parametrization point: (provider id, API root under its base URL, a seeded chat model, whether the
spec declares rate limits)."""

MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Summarise the history of the printing press"},
]

every_target = pytest.mark.parametrize(("provider", "api_root", "model", "rate_limited"), OPENAI_COMPATIBLE)


def client_for(mock: Any, provider: str, api_root: str, *, api_key: str | None = None) -> openai.OpenAI:
    """An ``openai.OpenAI`` pointed at the mock (no retries, so errors surface at once)."""
    info = mock.provider(provider)
    return openai.OpenAI(
        base_url=info.base_url + api_root,
        api_key=info.api_key if api_key is None else api_key,
        max_retries=0,
        timeout=10,
    )


@every_target
def test_models_list(chat_mock: Any, provider: str, api_root: str, model: str, rate_limited: bool) -> None:
    with client_for(chat_mock, provider, api_root) as client:
        ids = [m.id for m in client.models.list()]
    assert model in ids
    assert ids == chat_mock.provider(provider).models


@every_target
def test_chat_completion(
    chat_mock: Any, provider: str, api_root: str, model: str, rate_limited: bool
) -> None:
    with client_for(chat_mock, provider, api_root) as client:
        completion = client.chat.completions.create(model=model, messages=MESSAGES, max_tokens=40)
    assert completion.model == model
    assert completion.object == "chat.completion"
    choice = completion.choices[0]
    assert choice.message.role == "assistant"
    assert choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert completion.usage is not None
    assert (
        completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    )


@every_target
def test_streaming_with_usage(
    chat_mock: Any, provider: str, api_root: str, model: str, rate_limited: bool
) -> None:
    with client_for(chat_mock, provider, api_root) as client:
        plain = client.chat.completions.create(model=model, messages=MESSAGES)
        stream = client.chat.completions.create(
            model=model,
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
        chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.model_dump() == plain.usage.model_dump()
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"


@every_target
def test_bad_key_raises_authentication_error(
    chat_mock: Any, provider: str, api_root: str, model: str, rate_limited: bool
) -> None:
    with (
        client_for(chat_mock, provider, api_root, api_key="sk-wrong") as client,
        pytest.raises(openai.AuthenticationError) as caught,
    ):
        client.chat.completions.create(model=model, messages=MESSAGES)
    assert caught.value.status_code == 401


@every_target
def test_rate_limit_raises_rate_limit_error(
    start_mock: Any, provider: str, api_root: str, model: str, rate_limited: bool
) -> None:
    if not rate_limited:
        pytest.skip(f"{provider} declares no rate limit")
    mock = start_mock(providers=(provider,), rate_limit=2)
    now = mock.now()
    mock.advance(60 - now % 60 + 0.01)  # a whole fresh rate window
    with client_for(mock, provider, api_root) as client:
        client.models.list()
        client.models.list()
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(model=model, messages=MESSAGES)
    assert caught.value.status_code == 429
    assert int(caught.value.response.headers["retry-after"]) >= 1
