"""Control routes the dashboard reads: the live event stream, one request's details, the resources.

* ``GET /_mock/events``: Server-Sent Events, one ``request`` event per answered request (and ``violation``
  events), from the moment the client connects.
* ``GET /_mock/requests/{entry_id}``: a recent request and its response, bodies included (captured while a
  client listens to ``/events``; credentials redacted).
* ``GET /_mock/resources?provider=``: jobs (generations, videos...) with their state and progress, and how
  many objects of each kind each provider's state holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re

from aiohttp import web

from mockserver.control.base import MOCK, ControlError, ControlHandler, json_reply, mock_of
from mockserver.core.jobs import Job
from mockserver.mock import Mock

HEARTBEAT_SECONDS = 15.0
"""A comment line this often keeps proxies from closing an idle stream."""
GONE_CHECK_SECONDS = 0.5
"""How often an idle stream checks whether its client left."""
_DIGITS = re.compile(r"[0-9]{1,18}")


async def events(request: web.Request) -> web.StreamResponse:
    """``GET /_mock/events``: answered requests as Server-Sent Events, until the client goes away."""
    feed = mock_of(request).feed
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream; charset=utf-8",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    queue = feed.subscribe()
    try:
        await response.prepare(request)
        # A first event at once: the client knows it is connected (and the headers are flushed).
        await response.write(b"event: hello\ndata: {}\n\n")
        idle = 0.0
        while True:
            try:
                event = await asyncio.wait_for(queue.get(), GONE_CHECK_SECONDS)
            except TimeoutError:
                # aiohttp does not cancel a handler whose client left: look, so that the feed (and the
                # request path's tap) stops soon after the last dashboard closes.
                if request.transport is None or request.transport.is_closing():
                    break
                idle += GONE_CHECK_SECONDS
                if idle >= HEARTBEAT_SECONDS:
                    idle = 0.0
                    await response.write(b": keep-alive\n\n")
                continue
            if event is None:  # the server is shutting down
                break
            data = json.dumps(event, separators=(",", ":"))
            await response.write(f"event: {event['type']}\ndata: {data}\n\n".encode())
    except (ConnectionResetError, ConnectionError):
        pass  # the client left: nothing to tell anyone
    finally:
        feed.unsubscribe(queue)
    with contextlib.suppress(ConnectionError):
        await response.write_eof()
    return response


async def request_detail(request: web.Request) -> web.Response:
    """``GET /_mock/requests/{entry_id}``: a captured request and response (recent ones only)."""
    text = request.match_info["entry_id"]
    found = mock_of(request).feed.detail(int(text)) if _DIGITS.fullmatch(text) else None
    if found is None:
        raise web.HTTPNotFound(
            text=f"no details for request {text!r}: bodies are kept for the most recent requests answered "
            "while a client listened to /_mock/events"
        )
    return json_reply(found)


async def resources(request: web.Request) -> web.Response:
    """``GET /_mock/resources?provider=``: jobs with state and progress, and the store's object counts."""
    mock = mock_of(request)
    provider = request.query.get("provider")
    if provider is not None and provider not in mock.providers:
        raise ControlError(400, f"unknown provider {provider!r}")
    served = [provider] if provider else list(mock.providers)
    kept = await mock.state.counts()
    counts = {pid: kept.get(pid, {}) for pid in served}
    jobs = [_job_view(mock, job) for job in mock.services.jobs.jobs() if job.provider in counts]
    return json_reply({"jobs": jobs, "counts": counts})


def _job_view(mock: Mock, job: Job) -> dict[str, object]:
    view = mock.services.jobs.view(job)
    # The kind of resource the job makes (generations, videos...), as its provider noted it in its data.
    kind = job.data.get("kind", "job")
    return {
        "provider": job.provider,
        "id": job.id,
        "kind": kind,
        "state": view.state.value,
        "tasks": len(view.tasks),
        "completed_tasks": view.completed_tasks,
        "progress": round(view.completed_tasks / len(view.tasks), 3),
        "created_at": job.created_at,
        "done_at": job.done_at,
    }


EVENT_ROUTES: list[tuple[str, str, ControlHandler]] = [
    ("GET", "/events", events),
    ("GET", "/requests/{entry_id}", request_detail),
    ("GET", "/resources", resources),
]
"""Dashboard data routes, relative to ``/_mock``."""


async def close_feed(app: web.Application) -> None:
    """End every event stream (an ``on_shutdown`` hook): shutdown must not wait for clients that stay."""
    app[MOCK].feed.close()
