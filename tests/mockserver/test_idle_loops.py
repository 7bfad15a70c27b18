"""An idle mock on the memory backend leaves the state alone: the job and webhook loops wake on its change
events and due times, not on a timer (``State.lossless_notices``)."""

from __future__ import annotations

import time
from typing import Any

import pytest

SPACEAI = "spaceai"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}


# About the memory backend: Redis keeps a 1 s re-check (its pub/sub notices can be lost).
@pytest.mark.parametrize("state_backend", ["memory"], indirect=True)
def test_an_idle_mock_on_memory_does_not_re_read_the_state_every_second(
    start_mock: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    mock = start_mock(providers=(SPACEAI,))
    state = mock.server.mock.state
    assert state.lossless_notices
    reads: list[str] = []
    job_due, delivery_due = state.next_job_due, state.next_delivery_due

    async def counted_job_due() -> float | None:
        reads.append("jobs")
        return await job_due()

    async def counted_delivery_due() -> float | None:
        reads.append("deliveries")
        return await delivery_due()

    # The loops look these up on the state at every turn: each turn from now on is counted.
    monkeypatch.setattr(state, "next_job_due", counted_job_due)
    monkeypatch.setattr(state, "next_delivery_due", counted_delivery_due)
    assert mock.post(SPACEAI, "/v1/chat/completions", json=CHAT).status_code == 200
    time.sleep(0.3)  # a turn the reset before the test set off, if any, is over
    reads.clear()
    time.sleep(2.5)
    # Re-checking every second, as a backend whose notices can be lost must, made 4 or more turns here.
    assert reads == []
