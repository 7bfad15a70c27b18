"""Calls of one script made in the same event-loop turn, sent to Redis together (auto-pipelining).

Every request calls ``admit`` once; under load many requests call it in the same turn of the event loop.
Each call alone costs a send and a receive system call (most of its CPU time on the mock's side); queued
and flushed in one pipeline at the end of the turn, N calls share them. Each call keeps its own result,
and the script runs once per call (atomic as before); a lone call waits one loop turn, nothing more.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError


class ScriptBatch:
    """Queue calls of one script and send each turn's queue as one pipeline of EVALSHA."""

    def __init__(self, redis: Redis, script: Any) -> None:
        self._redis = redis
        self._script = script
        self._queue: list[tuple[list[str], list[Any], asyncio.Future[Any]]] = []
        self._tasks: set[asyncio.Task[None]] = set()

    def __call__(self, keys: list[str], args: list[Any]) -> asyncio.Future[Any]:
        """The call's reply (a client exception when it failed), once the batch is sent."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if not self._queue:
            loop.call_soon(self._flush)
        self._queue.append((keys, args, future))
        return future

    def _flush(self) -> None:
        batch, self._queue = self._queue, []
        task = asyncio.get_running_loop().create_task(self._send(batch))
        self._tasks.add(task)  # held until done (the loop keeps only weak references to tasks)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, batch: list[tuple[list[str], list[Any], asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                keys, args, future = batch[0]
                replies: list[Any] = [await self._script(keys=keys, args=args)]
            else:
                replies = await self._pipeline(batch)
        except (TimeoutError, RedisError, OSError) as exc:
            replies = [exc] * len(batch)
        for (_, _, future), reply in zip(batch, replies, strict=True):
            if future.done():  # its caller gave up (cancelled)
                continue
            if isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)

    async def _pipeline(self, batch: list[tuple[list[str], list[Any], asyncio.Future[Any]]]) -> list[Any]:
        replies = await self._evalsha([(keys, args) for keys, args, _ in batch])
        missed = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missed:
            # Redis restarted and forgot the script: those calls did not run. Load it, send them again.
            await self._redis.script_load(self._script.script)
            again = await self._evalsha([(batch[i][0], batch[i][1]) for i in missed])
            for i, reply in zip(missed, again, strict=True):
                replies[i] = reply
        return replies

    async def _evalsha(self, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """One pipeline of EVALSHA; each reply, or the error of its own call."""
        sha = self._script.sha
        async with self._redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                pipe.evalsha(sha, len(keys), *keys, *args)
            replies: list[Any] = await pipe.execute(raise_on_error=False)
        return replies
