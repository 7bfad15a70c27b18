"""The core on the state layer: ids that mix in the instance, the shared signing secret, the clock offset a
backend reports, and the notices a running mock acts on (reset and keys from another instance)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from mockserver.core.calls import IdFactory
from mockserver.core.clock import Clock
from mockserver.core.signing import SigningKeys
from mockserver.core.textgen import TextGenerator
from mockserver.resources import PROVIDER_IDS, fixtures_dir
from mockserver.settings import Settings
from mockserver.state.factory import create_state
from mockserver.state.seed import read_seeds

SPACEAI = "spaceai"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


def test_ids_mix_in_the_instance_and_instance_zero_keeps_todays_ids() -> None:
    unbound, zero, first, second = (IdFactory(TextGenerator(7)) for _ in range(4))
    zero.bind(0)
    first.bind(1)
    second.bind(2)
    ids = [[factory.new("x_") for _ in range(3)] for factory in (unbound, zero, first, second)]
    assert ids[0] == ids[1]  # memory (instance 0): exactly the ids a seed always gave
    assert ids[0][0] == "x_" + TextGenerator(7).short_id("ids", length=16) + "00000001"
    assert len({i for batch in ids[1:] for i in batch}) == 9  # instances never hand out the same id


async def test_instances_sharing_a_state_sign_with_the_first_ones_secret() -> None:
    state = create_state(Settings(), read_seeds(fixtures_dir(), PROVIDER_IDS), Clock())
    first, later = SigningKeys.from_settings(Settings()), SigningKeys.from_settings(Settings())
    assert first.url_signer("storage").sign("a") != later.url_signer("storage").sign("a")
    await first.share(state)
    await later.share(state)
    assert first.url_signer("storage").sign("a") == later.url_signer("storage").sign("a")
    assert first.webhook_secret(SPACEAI, "k") == later.webhook_secret(SPACEAI, "k")


async def test_an_offset_set_by_a_backend_wakes_sleepers() -> None:
    clock = Clock()
    sleeper = asyncio.create_task(clock.sleep_until(clock.now() + 3600))
    await asyncio.sleep(0.01)
    assert not sleeper.done()
    clock.set_offset(7200)
    await asyncio.wait_for(sleeper, 5)
    assert clock.offset == 7200


def notice(mock: Any, topic: str) -> None:
    """Raise a state notice on the running server's loop, as another instance's change would, and wait
    until the server's watcher has taken it (it clears the event, then acts, in one step)."""
    server = mock.server

    async def raise_and_wait() -> None:
        changed = server.mock.state.changed(topic)
        changed.set()
        while changed.is_set():  # noqa: ASYNC110  (the watcher clears it: nothing to wait on)
            await asyncio.sleep(0.01)

    asyncio.run_coroutine_threadsafe(raise_and_wait(), server._loop).result(timeout=10)


def wait_for(condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_a_reset_notice_resets_this_instances_local_parts(start_mock: Any) -> None:
    mock = start_mock(providers=(SPACEAI,))
    first = mock.post(SPACEAI, "/v1/chat/completions", json=CHAT).json()["id"]
    assert mock.post(SPACEAI, "/v1/chat/completions", json=CHAT).json()["id"] != first
    notice(mock, "reset")  # another instance reset the shared state: the id counters start over
    assert mock.post(SPACEAI, "/v1/chat/completions", json=CHAT).json()["id"] == first


def test_keys_created_at_runtime_are_masked_in_the_feed(start_mock: Any) -> None:
    mock = start_mock(providers=(SPACEAI,))
    created = mock.control("POST", "/keys", {"provider": SPACEAI, "name": "ci"})["key"]
    wait_for(lambda: created in mock.server.mock.secrets)
