"""Write a server-sent event stream: validated, paced, cut on demand, quiet when the client leaves."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Mapping

from aiohttp import web

from mockserver.core.calls import EventReply, dump_bytes
from mockserver.core.pacing import Pacer
from mockserver.core.spec import EventStream

log = logging.getLogger("mockserver.streaming")


async def send_events(
    request: web.Request,
    reply: EventReply,
    *,
    headers: Mapping[str, str],
    schema: EventStream | None,
    pacer: Pacer | None,
    cut_after: int | None,
    on_violation: Callable[[str], None],
) -> web.StreamResponse:
    """Stream ``reply``'s events as ``data:`` lines; returns the (already finished) response.

    Each event is checked against ``schema`` (None: not checked), a problem passed to ``on_violation``;
    ``pacer`` (None: as fast as the client reads) waits after each event.
    """
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
    # Read once, not per event: this loop runs for every event of every stream.
    pace, write = pacer.wait if pacer is not None else None, response.write
    try:
        await response.prepare(request)
        async for item in reply.events:
            if cut_after is not None and sent >= cut_after:
                # A network cut, not a clean end: drop the connection without the final chunk.
                if request.transport is not None:
                    request.transport.abort()
                break
            if schema is not None and (problem := schema.problem(item)) is not None:
                on_violation(f"event {sent}: {problem}")
            # The event's bytes built as bytes: no str round trip of the encoded JSON.
            data = item.encode() if isinstance(item, str) else dump_bytes(item)
            await write(b"data: " + data + b"\n\n")
            sent += 1
            if pace is not None:
                await pace()
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
