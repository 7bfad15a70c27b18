"""Helpers shared by the tests in this folder (imported by name: pytest puts this folder on the path)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web


@asynccontextmanager
async def listen(app: web.Application) -> AsyncIterator[str]:
    """Serve ``app`` (a webhook receiver, say) on a free loopback port; yields its origin."""
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


def sweep_run(max_examples: int) -> dict[str, Any]:
    """The phases and generation every sweep of a spec uses: all three phases, both modes, deterministic."""
    return {
        "phases": {
            "examples": {"enabled": True},
            "coverage": {"enabled": True},
            "fuzzing": {"enabled": True},
            "stateful": {"enabled": False},
        },
        "generation": {
            "mode": "all",
            "max-examples": max_examples,
            "deterministic": True,
            "database": "none",
        },
    }


def healthy_state(server: Any) -> dict[str, Any]:
    """What ``GET /_mock/health`` says of a healthy state on ``server``'s backend (Redis adds its URL and
    this instance's number: the first instance on a fresh prefix is 1)."""
    if server.settings.state == "memory":
        return {"backend": "memory", "status": "ok"}
    return {"backend": "redis", "url": server.settings.state, "instance": 1, "status": "ok"}
