"""Pick the backend a ``Settings.state`` URL names: the one place that knows which backends exist."""

from __future__ import annotations

from collections.abc import Mapping

from mockserver.core.clock import Clock
from mockserver.errors import ConfigError
from mockserver.settings import Settings
from mockserver.state.api import State
from mockserver.state.seed import Seed


def create_state(settings: Settings, seeds: Mapping[str, Seed], clock: Clock) -> State:
    """The state backend ``settings.state`` names (not opened yet: ``await state.open()``)."""
    url = settings.state
    if url == "memory":
        from mockserver.state.memory import MemoryState

        return MemoryState(settings, seeds, clock)
    if url.startswith(("redis://", "rediss://", "unix://")):
        # Imported only when asked for: the memory default never loads the Redis client.
        from mockserver.state.redis import RedisState

        return RedisState(settings, seeds, clock)
    raise ConfigError(f"--state must be 'memory' or a redis:// URL, not {url.split('@')[-1]!r}")
