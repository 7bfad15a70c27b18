"""Control route for ``--replay``: ``GET /_mock/replay`` lists the recordings and how they drifted."""

from __future__ import annotations

from aiohttp import web

from mockserver.control.base import ControlHandler, json_reply, mock_of


async def replay_status(request: web.Request) -> web.Response:
    """``GET /_mock/replay``: the folder, exchanges per provider, drift found at load, counts since reset."""
    mock = mock_of(request)
    if mock.replay is not None:
        return json_reply(mock.replay.describe())
    settings = mock.settings
    return json_reply(
        {
            "enabled": False,
            "folder": None,
            "speed": settings.replay_speed,
            "strict": settings.replay_strict,
            "exchanges": {},
            "drift": [],
            "replayed": 0,
            "unmatched": 0,
        }
    )


REPLAY_ROUTES: list[tuple[str, str, ControlHandler]] = [("GET", "/replay", replay_status)]
"""Replay routes, relative to ``/_mock``."""
