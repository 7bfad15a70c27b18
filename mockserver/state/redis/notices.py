"""Notices between instances: one pub/sub channel per prefix, each message a topic (``clock:<offset>``).

The listener calls back for what this instance keeps locally (the key cache, the clock offset, a reset),
then sets the topic's ``asyncio.Event`` (unless the callback says no: an instance's own reset). A lost
connection is re-subscribed after a pause; since notices may have been missed meanwhile, the ``resync``
callback runs and every event but ``reset`` is set (waiters re-read anyway; a missed reset is found by
``resync`` itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis
from redis.asyncio.client import PubSub
from redis.asyncio.connection import Connection
from redis.exceptions import RedisError

from mockserver.errors import StateError
from mockserver.state.api import Topic

log = logging.getLogger("mockserver.state")

TOPICS: tuple[Topic, ...] = ("jobs", "deliveries", "clock", "reset", "keys", "faults")
RETRY_SECONDS = 0.5
"""Pause before subscribing again after the connection was lost."""


STOP_SECONDS = 2.0
"""How long stopping waits for the subscription to end."""


class _WatchedPubSub(PubSub):
    """A subscription that counts its reconnections (the client re-subscribes by itself, silently)."""

    reconnects = 0

    async def on_connect(self, connection: Connection) -> None:
        """Called on every reconnection of the subscribed connection (not the first connection)."""
        self.reconnects += 1
        await super().on_connect(connection)


class Notices:
    """This instance's subscription and its events."""

    def __init__(
        self,
        redis: Redis,
        channel: str,
        on_notice: Callable[[str, str], bool],
        resync: Callable[[], Awaitable[None]],
    ) -> None:
        self._redis = redis
        self._channel = channel
        self._on_notice = on_notice
        self._resync = resync
        self.events: dict[str, asyncio.Event] = {topic: asyncio.Event() for topic in TOPICS}
        self._task: asyncio.Task[None] | None = None
        self._ready = asyncio.Event()

    async def start(self) -> None:
        """Subscribe (returns once subscribed, or after a bounded wait)."""
        self._task = asyncio.get_running_loop().create_task(self._listen(), name="state-notices")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self._ready.wait()

    async def stop(self) -> None:
        """Unsubscribe."""
        if self._task is not None:
            self._task.cancel()
            # Bounded: a subscription cancelled inside the client's own close can wait on a connection that
            # never answers again, and a stop must not hang the process (seen as a worker killed after its
            # shutdown grace, about one stop in six under load).
            done, _ = await asyncio.wait({self._task}, timeout=STOP_SECONDS)
            if not done:
                log.warning("state notices: the subscription did not stop in %g s; left behind", STOP_SECONDS)
            self._task = None

    def wake_all(self) -> None:
        """Set every event but ``reset`` (notices may have been missed; waiters re-read). A missed reset is
        the ``resync`` callback's to find: a ``reset`` event makes an instance drop its local parts."""
        for topic, event in self.events.items():
            if topic != "reset":
                event.set()

    async def _listen(self) -> None:
        lost = False
        while True:
            pubsub = _WatchedPubSub(self._redis.connection_pool, ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._channel)
                self._ready.set()
                if lost:
                    lost = False
                    log.warning("state notices: subscribed again")
                    await self._resync()
                    self.wake_all()
                reconnects = pubsub.reconnects
                while True:
                    message = await pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        self._dispatch(message["data"])
                    if pubsub.reconnects != reconnects:  # dropped and back: notices may be missed
                        reconnects = pubsub.reconnects
                        await self._resync()
                        self.wake_all()
            except (TimeoutError, RedisError, OSError, StateError) as exc:
                if not lost:
                    log.warning("state notices: connection lost (%s); retrying", type(exc).__name__)
                lost = True
            except Exception:  # a resync that failed for another reason: log it, keep listening
                log.exception("state notices: unexpected error")
                lost = True
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
            await asyncio.sleep(RETRY_SECONDS)

    def _dispatch(self, data: bytes | str) -> None:
        message = data.decode() if isinstance(data, bytes) else data
        topic, _, value = message.partition(":")
        if not self._on_notice(topic, value):
            return  # this instance's own reset: it has reset itself already
        event = self.events.get(topic)
        if event is not None:
            event.set()
