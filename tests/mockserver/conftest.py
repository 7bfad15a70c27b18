"""Fixtures for the tests of the two OpenAI-style providers (StudioAICore and SpaceAI)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

CHAT_PROVIDERS = ("studioaicore", "spaceai")
"""The providers these tests serve, so they run whatever state the other provider modules are in."""


@pytest.fixture(scope="session")
def chat_server(server_pool: Callable[..., Any]) -> Any:
    """A shared server with only StudioAICore and SpaceAI (strict validation, seed 0, no rate limiting)."""
    return server_pool(providers=CHAT_PROVIDERS)


@pytest.fixture
def chat_mock(chat_server: Any, attach_mock: Callable[[Any], Any]) -> Any:
    """A reset handle on ``chat_server``; it must report no spec violations after the test."""
    return attach_mock(chat_server)


@pytest.fixture
def start_chat_mock(start_mock: Callable[..., Any]) -> Callable[..., Any]:
    """``start_chat_mock(**settings)``: a dedicated StudioAICore + SpaceAI server for this test."""

    def start(**changes: Any) -> Any:
        changes.setdefault("providers", CHAT_PROVIDERS)
        return start_mock(**changes)

    return start
