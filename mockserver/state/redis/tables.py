"""Resources, files and their bytes on Redis: bounded tables on the shared mock clock.

A table is a hash (id -> JSON) beside a sorted set (id scored by when it was stored, mock time). The put
script stores and drops, oldest first, what is past the TTL or over the cap, in one step; a lookup past the
TTL reads as missing, as ``core.retention`` does in memory.
"""

from __future__ import annotations

from typing import Any

import orjson

from mockserver.core.clock import Clock
from mockserver.core.retention import FILES_PER_RESOURCE
from mockserver.settings import Settings
from mockserver.state.records import FileRecord, R, Resource
from mockserver.state.redis.connection import Conn, dumps, text
from mockserver.state.redis.keys import KeyNames
from mockserver.state.redis.scripts import Scripts


def live(score: Any, ttl: float, now: float) -> bool:
    """Whether an entry stored at ``score`` is still kept at ``now``."""
    return score is not None and float(score) + ttl > now


class Tables:
    """What requests create (by provider and kind) and the files the mock serves."""

    def __init__(
        self, conn: Conn, names: KeyNames, scripts: Scripts, clock: Clock, settings: Settings, providers: int
    ) -> None:
        self._conn = conn
        self._names = names
        self._scripts = scripts
        self._clock = clock
        self.ttl = settings.resource_ttl
        self.cap = settings.max_resources
        self.files_cap = FILES_PER_RESOURCE * settings.max_resources * max(1, providers)
        """The files' one table, as memory caps it (an output and a thumbnail per resource, all providers)."""

    def window(self) -> tuple[float, str, str, str]:
        """Now, and the put script's now, expired-by and cap arguments."""
        now = self._clock.now()
        return now, repr(now), repr(now - self.ttl), str(self.cap)

    async def put(self, provider: str, resource: Resource) -> None:
        """Store (or replace) a resource; the oldest past the TTL or the cap go."""
        names, kind = self._names, resource.kind
        _, now, expired_by, cap = self.window()
        await self._conn.call(
            self._scripts.put(
                keys=[names.resources(provider, kind), names.resources_time(provider, kind), names.kinds],
                args=[
                    resource.id,
                    dumps(resource.to_json()),
                    now,
                    expired_by,
                    cap,
                    f"{provider}:{kind}",
                ],
            )
        )

    async def get(self, provider: str, kind: type[R], resource_id: str) -> R | None:
        """A live resource, or None."""
        names, name = self._names, kind.kind
        async with self._conn.redis.pipeline(transaction=False) as pipe:
            pipe.hget(names.resources(provider, name), resource_id)
            pipe.zscore(names.resources_time(provider, name), resource_id)
            raw, score = await self._conn.call(pipe.execute())
        if raw is None or not live(score, self.ttl, self._clock.now()):
            return None
        return kind.from_json(orjson.loads(raw))

    async def resources(self, provider: str, kind: type[R]) -> list[R]:
        """Every live resource of a kind, oldest first."""
        names, name = self._names, kind.kind
        redis, now = self._conn.redis, self._clock.now()
        entries = await self._conn.call(
            redis.zrange(names.resources_time(provider, name), 0, -1, withscores=True)
        )
        ids = [member for member, score in entries if live(score, self.ttl, now)]
        if not ids:
            return []
        raws = await self._conn.call(redis.hmget(names.resources(provider, name), ids))
        return [kind.from_json(orjson.loads(raw)) for raw in raws if raw is not None]

    async def counts(self) -> dict[str, dict[str, int]]:
        """Resources kept, by provider then kind."""
        redis, names = self._conn.redis, self._names
        kinds = sorted(text(k) for k in await self._conn.call(redis.smembers(names.kinds)))
        if not kinds:
            return {}
        async with redis.pipeline(transaction=False) as pipe:
            for entry in kinds:
                provider, kind = entry.split(":", 1)
                pipe.zcard(names.resources_time(provider, kind))
            sizes = await self._conn.call(pipe.execute())
        counts: dict[str, dict[str, int]] = {}
        for entry, size in zip(kinds, sizes, strict=True):
            provider, kind = entry.split(":", 1)
            counts.setdefault(provider, {})[kind] = int(size)
        return counts

    # -- files -------------------------------------------------------------------------------------------

    async def put_file(self, record: FileRecord, data: bytes | None) -> None:
        """Store a file record and, when given, its bytes (bounded as resources are)."""
        names = self._names
        _, now, expired_by, _ = self.window()
        await self._conn.call(
            self._scripts.put(
                keys=[names.files, names.files_time, names.kinds],
                args=[
                    record.id,
                    dumps(record.to_json()),
                    now,
                    expired_by,
                    str(self.files_cap),
                    "",
                    names.blob_prefix(),
                    b"" if data is None else data,
                    "0" if data is None else "1",
                ],
            )
        )

    async def get_file(self, file_id: str) -> tuple[FileRecord, bytes | None] | None:
        """A file and its bytes (None while only its recipe is stored), or None."""
        names = self._names
        async with self._conn.redis.pipeline(transaction=False) as pipe:
            pipe.hget(names.files, file_id)
            pipe.zscore(names.files_time, file_id)
            pipe.get(names.blob_prefix() + file_id)
            raw, score, blob = await self._conn.call(pipe.execute())
        if raw is None or not live(score, self.ttl, self._clock.now()):
            return None
        return FileRecord.from_json(orjson.loads(raw)), blob

    async def put_blob(self, file_id: str, data: bytes) -> None:
        """Keep a drawn file's bytes."""
        await self._conn.call(self._conn.redis.set(self._names.blob_prefix() + file_id, data))
