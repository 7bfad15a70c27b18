"""Issue 15 end to end: traffic recorded by ``conformance proxy --record`` replays in ``mockserver --replay``.

The official ``openai`` client talks to a seed-1 mock through the recording proxy (plain and streamed); a
seed-2 mock replaying that folder gives the client the seed-1 content, while a request that was never
recorded falls through to the seed-2 mock's own behaviour. The proxy saw no violation on the way.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai
from _proxy_helpers import proxy_thread, violations

from mockserver.testing.control import MockControl

PROVIDER = "spaceai"
MODEL = "gpt-4o"
ASKED = [{"role": "user", "content": "Tell me about kites."}]


def client_for(base_url: str, api_key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{base_url}/v1", api_key=api_key, max_retries=0, timeout=20)


def ask(client: openai.OpenAI, messages: list[dict[str, str]] = ASKED) -> tuple[dict[str, Any], list[Any]]:
    """One plain and one streamed completion (with the usage chunk), as the client parses them."""
    plain = client.chat.completions.create(model=MODEL, messages=messages, max_tokens=30)  # type: ignore[arg-type]
    stream = client.chat.completions.create(
        model=MODEL,
        messages=messages,  # type: ignore[arg-type]
        max_tokens=30,
        stream=True,
        stream_options={"include_usage": True},
    )
    return plain.model_dump(exclude_unset=True), [c.model_dump(exclude_unset=True) for c in stream]


def test_recorded_through_the_proxy_replays_into_another_seed(
    start_mock: Callable[..., MockControl], tmp_path: Path
) -> None:
    upstream = start_mock(seed=1, provider=PROVIDER)
    key = upstream.provider(PROVIDER).api_key
    proxy = proxy_thread(PROVIDER, upstream.base_url, record=tmp_path)
    try:
        with client_for(proxy.url, key) as client:
            recorded_plain, recorded_chunks = ask(client)
        assert violations(proxy.url) == []
    finally:
        proxy.stop()
    files = sorted((tmp_path / PROVIDER).glob("*.yaml"))
    assert len(files) == 2
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert key not in path.read_text(errors="replace"), f"the API key is in {path.name}"

    own = start_mock(seed=2, provider=PROVIDER)  # what seed 2 says by itself
    with client_for(own.base_url, key) as client:
        own_plain, own_chunks = ask(client)
    assert own_chunks != recorded_chunks
    assert own_plain["choices"] != recorded_plain["choices"]

    replaying = start_mock(seed=2, provider=PROVIDER, replay=tmp_path, replay_speed=0)
    with client_for(replaying.base_url, key) as client:
        plain, chunks = ask(client)
        assert plain == recorded_plain
        assert chunks == recorded_chunks
        assert chunks[-1]["usage"] == recorded_chunks[-1]["usage"]
        # Never recorded: the seed-2 mock's own answer.
        other = [{"role": "user", "content": "Something else entirely."}]
        unrecorded, _ = ask(client, other)
    with client_for(own.base_url, key) as client:
        expected, _ = ask(client, other)
    assert unrecorded["choices"] == expected["choices"]
    status = replaying.control("GET", "/replay")
    assert status["replayed"] == 2
    assert status["drift"] == []
