"""Fixtures for the state backends' contract: a seed of our own and opened states on either backend.

``backend`` is parametrized over ``memory`` and ``redis``; ``pair`` is two states sharing one backend (two
``RedisState`` instances on one prefix; for memory, the one state twice, since memory is one process's).
"""

from __future__ import annotations

import importlib.util
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from mockserver.core.clock import Clock
from mockserver.settings import Settings
from mockserver.state.api import State
from mockserver.state.factory import create_state
from mockserver.state.seed import Seed, parse_seed

MEMORY_READY = importlib.util.find_spec("mockserver.state.memory") is not None
BACKENDS = [
    pytest.param(
        "memory",
        marks=pytest.mark.skipif(
            not MEMORY_READY, reason="the memory backend (state/memory.py) is not here yet"
        ),
    ),
    "redis",
]

PROVIDER = "pahlavan"
OTHER = "modelstudio"
SEED_DATA: dict[str, Any] = {
    "defaults": {"rate_limit_per_minute": 60},
    "accounts": [
        {"id": "acc_rich", "wallet_cents": 1000, "name": "Rich"},
        {"id": "acc_poor", "wallet_cents": 1},
        {"id": "acc_free"},
    ],
    "keys": [
        {"key": "key-rich-00000001", "account": "acc_rich", "name": "first"},
        {"key": "key-limited-000002", "account": "acc_rich", "spend_limit_cents": 50},
        {"key": "key-poor-000000003", "account": "acc_poor"},
    ],
    "models": [{"id": "model-a"}],
    "tools": [{"id": "tool-1"}],
}
OTHER_SEED: dict[str, Any] = {"keys": [{"key": "other-key-00000001", "account": "acc_other"}]}


def seeds() -> dict[str, Seed]:
    """The contract's seed: two providers, wallets, a key with a spend limit."""
    return {
        PROVIDER: parse_seed(PROVIDER, SEED_DATA, "test seed"),
        OTHER: parse_seed(OTHER, OTHER_SEED, "test seed"),
    }


StateMaker = Callable[..., Awaitable[State]]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """``memory`` or ``redis``."""
    return str(request.param)


@pytest.fixture
async def make_state(request: pytest.FixtureRequest, backend: str) -> AsyncIterator[StateMaker]:
    """``await make_state(**settings)``: an opened state on the test's backend (closed after the test);
    on Redis every state of one test shares a fresh prefix unless ``state_prefix`` is given."""
    opened: list[State] = []
    url, prefix = "memory", ""
    if backend == "redis":
        url = request.getfixturevalue("redis_server").url
        prefix = request.getfixturevalue("redis_prefix")

    async def make(**changes: Any) -> State:
        settings = Settings(state=url, **({"state_prefix": prefix} if prefix else {})).with_changes(**changes)
        state = create_state(settings, seeds(), Clock())
        await state.open()
        opened.append(state)
        return state

    yield make
    for state in opened:
        await state.close()


@pytest.fixture
async def state(make_state: StateMaker) -> State:
    """One opened state."""
    return await make_state()


@pytest.fixture
async def pair(make_state: StateMaker, backend: str) -> tuple[State, State]:
    """Two states sharing one backend (memory: the same state twice)."""
    first = await make_state()
    return (first, first) if backend == "memory" else (first, await make_state())


@pytest.fixture
def start_mock(start_server_as_set: Callable[..., Any]) -> Callable[..., Any]:
    """``start_mock(**settings)`` without the root fixture's ``state_backend`` parameter: the tests here
    name their backend (``state=...``) themselves, so running them once per backend would repeat them."""
    return start_server_as_set
