"""Control routes for the mock as a whole: providers, reset, the clock, the journal, generated files."""

from __future__ import annotations

import re

from aiohttp import web

from mockserver.control.base import ControlError, ControlHandler, json_reply, mock_of, number, read_body
from mockserver.core.calls import request_origin

MAX_ADVANCE_SECONDS = 10 * 365 * 24 * 3600
"""One clock advance moves at most ten years: far beyond any test, and far from the year 9999 where dates
stop being representable (providers format the clock as dates)."""
_DIGITS = re.compile(r"[0-9]+")
PAGE_SIZE = 100
"""Journal entries in a page when ``limit`` is not given."""
MAX_PAGE_SIZE = 1000
"""Largest ``limit``: one read never builds more than a bounded answer (a larger one is a 400)."""
MAX_CURSOR = 2**53
"""Largest cursor accepted (ids are counters; JSON readers keep integers exact up to here)."""


async def providers(request: web.Request) -> web.Response:
    """``GET /_mock/providers``: base URL, keys, organization and models of each provider."""
    mock = mock_of(request)
    origin = request_origin(request)
    listing = []
    for provider_id, service in mock.providers.items():
        described = service.module.describe(service.provider_state)
        seeded = service.provider_state.seed.keys
        primary = seeded[0]
        # The other seeded keys by name (keys created at runtime are shown once, at creation, never here):
        # clients find special-purpose accounts (a nearly empty wallet...) without knowing a provider.
        extra_keys: dict[str, str] = {}
        for key in seeded[1:]:
            extra_keys.setdefault(key.name, key.key)
        listing.append(
            {
                "id": provider_id,
                "base_url": origin + service.mount,
                "api_key": primary.key,
                "extra_keys": extra_keys,
                "organization_id": described.get("organization_id"),
                "models": described.get("models", []),
            }
        )
    return json_reply({"providers": listing})


async def reset(request: web.Request) -> web.Response:
    """``POST /_mock/reset``: back to the seed state (for every instance sharing the state)."""
    await mock_of(request).reset()
    return json_reply({"status": "reset"})


async def get_clock(request: web.Request) -> web.Response:
    """``GET /_mock/clock``: the mock's time and its offset from real time."""
    clock = mock_of(request).services.clock
    return json_reply({"now": clock.now(), "offset": clock.offset})


async def advance_clock(request: web.Request) -> web.Response:
    """``POST /_mock/clock/advance {"seconds"}``: move time forward instantly."""
    data = await read_body(request)
    mock = mock_of(request)
    clock = mock.services.clock
    now = await mock.state.advance_clock(float(number(data, "seconds", maximum=MAX_ADVANCE_SECONDS)))
    # Let jobs due by now finish before answering, so tests see their effects at once.
    await mock_of(request).services.jobs.settle()
    # Likewise webhook attempts that became due (bounded by one attempt's timeout).
    await mock_of(request).services.webhooks.settle()
    return json_reply({"now": now, "offset": clock.offset})


async def requests_journal(request: web.Request) -> web.Response:
    """``GET /_mock/requests?provider=&limit=&after=&before=``: one page of the request journal, oldest first.

    Without a cursor, the newest ``limit`` entries; ``next`` (a path, or null) reads the page after it:
    ``before`` goes to older entries, ``after`` (``after=0``: from the oldest) to newer ones (up to
    ``before`` when both are given).
    """
    limit = _query_int(request, "limit", minimum=1, maximum=MAX_PAGE_SIZE)
    after = _query_int(request, "after", minimum=0)
    before = _query_int(request, "before", minimum=1)
    entries, cursor = await mock_of(request).state.journal_page(
        request.query.get("provider"), limit or PAGE_SIZE, after=after, before=before
    )
    following = None
    if cursor is not None:
        following = str(request.rel_url.update_query({"after" if after is not None else "before": cursor}))
    return json_reply({"requests": entries, "next": following})


def _query_int(request: web.Request, name: str, *, minimum: int, maximum: int = MAX_CURSOR) -> int | None:
    """An optional integer query parameter in range; anything else is a 400."""
    text = request.query.get(name)
    if text is None:
        return None
    # ASCII digits only (str.isdigit() also accepts digits int() cannot read, such as '²'), and not so many
    # that int() refuses them.
    if not _DIGITS.fullmatch(text) or len(text) > len(str(maximum)) or not minimum <= int(text) <= maximum:
        raise ControlError(400, f"'{name}' must be an integer from {minimum} to {maximum}")
    return int(text)


async def violations(request: web.Request) -> web.Response:
    """``GET /_mock/violations``: responses the mock sent that broke its own spec (should be empty)."""
    return json_reply({"violations": await mock_of(request).state.violations()})


async def get_file(request: web.Request) -> web.Response:
    """``GET /_mock/files/{file_id}/{filename}``: a generated output, with its content type."""
    stored = mock_of(request).services.files.get(request.match_info["file_id"])
    if stored is None or stored.filename != request.match_info["filename"]:
        raise web.HTTPNotFound(text="no such file")
    return web.Response(body=stored.data, content_type=stored.content_type)


STATE_ROUTES: list[tuple[str, str, ControlHandler]] = [
    ("GET", "/providers", providers),
    ("POST", "/reset", reset),
    ("GET", "/clock", get_clock),
    ("POST", "/clock/advance", advance_clock),
    ("GET", "/requests", requests_journal),
    ("GET", "/violations", violations),
    ("GET", "/files/{file_id}/{filename}", get_file),
]
"""Routes of the mock as a whole, relative to ``/_mock``."""
