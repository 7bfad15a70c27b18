"""Write a server-sent event stream: validated, paced, cut on demand, quiet when the client leaves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable, Mapping

from aiohttp import web

from mockserver.core.calls import EventReply, dumps
from mockserver.core.spec import EventStream

log = logging.getLogger("mockserver.streaming")


def _check_event(events: EventStream, data: str) -> str | None:
    if events.terminator is not None and data == events.terminator:
        return None
    try:
        payload = json.loads(data)
    except json.JSONDecodeError:
        return f"event data is not JSON: {data[:80]!r}"
    for path, message in events.payload.errors(payload):
        return f"event {'/'.join(map(str, path))}: {message}"
    return None


async def send_events(
    request: web.Request,
    reply: EventReply,
    *,
    headers: Mapping[str, str],
    schema: EventStream | None,
    tokens_per_second: float | None,
    cut_after: int | None,
    on_violation: Callable[[str], None],
) -> web.StreamResponse:
    """Stream ``reply``'s events as ``data:`` lines; returns the (already finished) response."""
    response = web.StreamResponse(
        status=200,
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
            **headers,
            **reply.headers,
        },
    )
    completed = False
    sent = 0
    try:
        await response.prepare(request)
        async for item in reply.events:
            if cut_after is not None and sent >= cut_after:
                # A network cut, not a clean end: drop the connection without the final chunk.
                if request.transport is not None:
                    request.transport.abort()
                break
            data = item if isinstance(item, str) else dumps(item)
            if schema is not None and (problem := _check_event(schema, data)) is not None:
                on_violation(problem)
            await response.write(f"data: {data}\n\n".encode())
            sent += 1
            if tokens_per_second:
                await asyncio.sleep(1.0 / tokens_per_second)
        else:
            completed = True
            await response.write_eof()
    except (ConnectionResetError, ConnectionError, asyncio.CancelledError):
        # The client went away mid-stream: nothing to report, nothing left running.
        log.debug("client left a stream after %d events", sent)
    finally:
        aclose = getattr(reply.events, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(Exception):
                await aclose()
        if reply.on_close is not None:
            await reply.on_close(completed)
    return response
