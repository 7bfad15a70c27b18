"""The request journal and the violations on Redis: rows buffered here, written in batches, read in pages.

``record`` runs for every request and is synchronous: it gives the row its id and appends it to a local
buffer; a background flush writes the buffer in one script call (a sorted set scored by id, capped in
entries and bytes as ``core.journal`` caps memory). Every read flushes first. Ids are unique across
instances and ordered by time: the milliseconds since the epoch times 1024 plus the instance's number
modulo 1024 (below 2**53, exact as a score and in JavaScript, until the year 2248).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import orjson

from mockserver.core.journal import ENTRY_BYTES, MAX_PATH_CHARS, TRUNCATED, VIOLATIONS
from mockserver.errors import StateError
from mockserver.state.api import JournalRow
from mockserver.state.redis.connection import Conn, dumps
from mockserver.state.redis.keys import KeyNames
from mockserver.state.redis.scripts import Scripts

FLUSH_SECONDS = 0.02
"""How long a recorded row may wait in the buffer before it is written."""
FLUSH_ROWS = 256
"""Rows written per script call."""
PAGE_CHUNK = 512
"""Entries read per round trip while filtering a page by provider."""
_FIELDS = ("id", "time", "provider", "method", "path", "operation_id", "status", "latency_ms")


def _entry(member: bytes) -> dict[str, Any]:
    row = orjson.loads(member.split(b"|", 1)[1])
    entry = dict(zip(_FIELDS, row, strict=True))
    entry["latency_ms"] = round(entry["latency_ms"], 3)
    return entry


class JournalStore:
    """The shared journal and violations, with this instance's unwritten rows."""

    def __init__(
        self, conn: Conn, names: KeyNames, scripts: Scripts, max_entries: int, max_bytes: int
    ) -> None:
        self._conn = conn
        self._names = names
        self._scripts = scripts
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._buffer: list[tuple[int, int, bytes]] = []
        self._last_id = 0
        self._generation = 0
        self._flusher: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None
        self.instance = 0

    def record(self, row: JournalRow) -> int:
        """Buffer one answered request; its id."""
        when, provider, method, path, operation_id, status, latency_ms = row
        if len(path) > MAX_PATH_CHARS:
            path = path[:MAX_PATH_CHARS] + TRUNCATED
        entry_id = max((int(time.time() * 1000) << 10) | (self.instance & 1023), self._last_id + 1024)
        self._last_id = entry_id
        member = orjson.dumps([entry_id, when, provider, method, path, operation_id, status, latency_ms])
        cost = ENTRY_BYTES + len(path)
        self._buffer.append((entry_id, cost, b"%d|%s" % (cost, member)))
        if len(self._buffer) > self._max_entries:
            del self._buffer[: len(self._buffer) - self._max_entries]  # Redis down: keep the newest only
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().call_later(FLUSH_SECONDS, self._flush_soon)
        return entry_id

    def _flush_soon(self) -> None:
        self._flusher = None
        if self._writing is None or self._writing.done():
            self._writing = asyncio.get_running_loop().create_task(self._background_flush())

    async def _background_flush(self) -> None:
        try:
            await self.flush()
        except StateError:
            # Kept for the next try (the server may be back by then).
            self._flusher = asyncio.get_running_loop().call_later(1.0, self._flush_soon)

    async def flush(self) -> None:
        """Write every buffered row."""
        while self._buffer:
            batch = self._buffer[:FLUSH_ROWS]
            args: list[Any] = [str(self._max_entries), str(self._max_bytes)]
            for entry_id, cost, member in batch:
                args += [str(entry_id), str(cost), member]
            generation = self._generation
            await self._conn.call(
                self._scripts.journal_add(keys=[self._names.journal, self._names.journal_bytes], args=args)
            )
            if generation == self._generation:  # else a reset dropped the buffer meanwhile
                del self._buffer[: len(batch)]

    def drop_buffer(self) -> None:
        """Forget unwritten rows (a reset: they belong to the journal it cleared)."""
        self._buffer.clear()
        self._generation += 1

    async def close(self) -> None:
        """Write what is buffered and stop flushing."""
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        if self._writing is not None:
            with contextlib.suppress(StateError, asyncio.CancelledError):
                await self._writing
        with contextlib.suppress(StateError):
            await self.flush()

    async def page(
        self, provider: str | None, limit: int, after: int | None, before: int | None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Entries oldest first and the next page's cursor (``core.journal.Journal.page``'s rules)."""
        await self.flush()
        redis, key = self._conn.redis, self._names.journal
        forward = after is not None
        selected: list[dict[str, Any]] = []
        more = False
        offset = 0
        while not more:
            if forward:
                low = f"({after}"
                high = "+inf" if before is None else f"({before}"
                chunk = await self._conn.call(
                    redis.zrangebyscore(key, low, high, start=offset, num=PAGE_CHUNK)
                )
            else:
                high = "+inf" if before is None else f"({before}"
                chunk = await self._conn.call(
                    redis.zrevrangebyscore(key, high, "-inf", start=offset, num=PAGE_CHUNK)
                )
            for member in chunk:
                entry = _entry(member)
                if provider is None or entry["provider"] == provider:
                    if len(selected) == limit:
                        more = True
                        break
                    selected.append(entry)
            if len(chunk) < PAGE_CHUNK:
                break
            offset += PAGE_CHUNK
        if not forward:
            selected.reverse()
        cursor = (selected[-1]["id"] if forward else selected[0]["id"]) if more and selected else None
        return selected, cursor

    async def size(self) -> tuple[int, int]:
        """Entries kept and their approximate size in bytes."""
        await self.flush()
        names = self._names
        async with self._conn.redis.pipeline(transaction=False) as pipe:
            pipe.zcard(names.journal)
            pipe.get(names.journal_bytes)
            entries, size = await self._conn.call(pipe.execute())
        return int(entries), int(size or 0)

    async def add_violation(self, violation: dict[str, Any]) -> None:
        """Remember a violation (the newest ``VIOLATIONS`` are kept)."""
        async with self._conn.redis.pipeline(transaction=True) as pipe:
            pipe.rpush(self._names.violations, dumps(violation))
            pipe.ltrim(self._names.violations, -VIOLATIONS, -1)
            await self._conn.call(pipe.execute())

    async def violations(self) -> list[dict[str, Any]]:
        """The violations kept, oldest first."""
        raws = await self._conn.call(self._conn.redis.lrange(self._names.violations, 0, -1))
        return [orjson.loads(raw) for raw in raws]

    async def clear(self) -> None:
        """Forget every entry and violation."""
        await self.flush()
        names = self._names
        await self._conn.call(self._conn.redis.delete(names.journal, names.journal_bytes, names.violations))
