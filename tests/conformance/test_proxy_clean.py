"""Through the proxy to the real mock: the whole conformance suite and the official ``openai`` client.

The mock keeps its contract, so the proxy must report no response violation for any of the five providers
while the suite runs every check through it (the suite's deliberately bad requests, a missing key or an
undeclared method, are the client's violations: reported as ``side: request``, and only those). The
``openai`` client, plain and streamed, must cause no violation at all.
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest
import requests
from _proxy_helpers import AppThread, proxy_thread, violations
from _suite_helpers import Target, implemented

from conformance.client import Redactor
from conformance.embedded import EmbeddedMock, mock_settings
from conformance.mock_run import mock_targets
from conformance.report import summary
from conformance.results import exit_code
from conformance.settings import Settings
from conformance.suite import run_provider
from mockserver.resources import PROVIDER_IDS

MAX_EXAMPLES = 5
SEED = 0


@pytest.fixture(scope="module")
def own_mock() -> Iterator[Target]:
    """A mock of its own (the default rate limit: the suite's 429 probe runs through the proxy too)."""
    with EmbeddedMock(mock_settings()) as mock:
        yield Target(mock)


@pytest.mark.parametrize("provider", PROVIDER_IDS)
def test_the_whole_suite_through_the_proxy_finds_no_response_violation(provider: str) -> None:
    if provider not in implemented():
        pytest.skip(f"the mock does not serve {provider}")
    # The provider at the mock's root, as a deployment serves it: the file URLs it builds from the proxy's
    # X-Forwarded-Host (/_mock/files/...) then resolve through the proxy too.
    with EmbeddedMock(mock_settings(provider=provider)) as mock:
        template = Settings(provider="", base_url="", api_key="", thorough=True, progress=False)
        (direct,) = mock_targets(mock, template)
        _suite_through_proxy(provider, direct)


def _suite_through_proxy(provider: str, direct: Settings) -> None:
    proxy = proxy_thread(provider, direct.base)
    try:
        settings = direct.with_changes(base_url=proxy.url, seed=SEED, max_examples=MAX_EXAMPLES)
        run = run_provider(settings)
        assert exit_code([run]) == 0, summary([run], Redactor(()))
        exchanges = requests.get(f"{proxy.url}/_proxy/exchanges", timeout=10).json()["exchanges"]
        assert len(exchanges) >= 20, "the suite's requests went through the proxy"
        assert violations(proxy.url, side="response") == []
        # The suite provokes errors on purpose (no key, wrong method, bad JSON): the client's, seen as such.
        assert {v["check"] for v in violations(proxy.url, side="request")} <= {
            "request.operation",
            "request.security",
            "request.parameters",
            "request.body",
        }
    finally:
        proxy.stop()


@pytest.fixture
def spaceai_proxy(own_mock: Target) -> Iterator[tuple[AppThread, str]]:
    own_mock.reset()
    entry = own_mock.provider("spaceai")
    proxy = proxy_thread("spaceai", entry["base_url"])
    yield proxy, entry["api_key"]
    proxy.stop()


def test_the_openai_client_plain_and_streamed_causes_no_violation(
    spaceai_proxy: tuple[AppThread, str],
) -> None:
    proxy, key = spaceai_proxy
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=key, max_retries=0)
    messages: list[openai.types.chat.ChatCompletionMessageParam] = [{"role": "user", "content": "Hello!"}]
    plain = client.chat.completions.create(model="gpt-4o", messages=messages, max_tokens=12)
    assert plain.choices[0].message.content
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o", messages=messages, stream=True, stream_options={"include_usage": True}
        )
    )
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed
    assert chunks[-1].usage is not None
    assert list(client.chat.completions.create(model="gpt-4o", messages=messages, stream=True))
    assert [m.id for m in client.models.list()]
    exchanges = requests.get(f"{proxy.url}/_proxy/exchanges", timeout=10).json()["exchanges"]
    assert [e["status"] for e in exchanges] == [200, 200, 200, 200]
    assert [e["operation"] for e in exchanges][:3] == ["createChatCompletion"] * 3
    assert violations(proxy.url) == []
