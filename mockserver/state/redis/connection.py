"""The Redis connection: one client with bounded timeouts, and its failures as ``StateError``.

Every call to Redis goes through ``Conn.call``, which turns whatever the client raises (a refused
connection, a timeout, a script error) into ``errors.StateError`` with a short message naming the server
without its credentials. Timeouts are bounded (``SOCKET_TIMEOUT``), so a request never hangs
on a lost server; the pool reconnects on the next call once the server is back (one retry on a stale
connection, none on a timeout: a script that may have run is never run twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

import orjson
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from mockserver.errors import StateError

log = logging.getLogger("mockserver.state")

SOCKET_TIMEOUT = 2.0
"""Seconds one command may wait for its reply (and a connection attempt, or a free pooled connection)."""
MAX_CONNECTIONS = 64
"""Pooled connections per instance: requests beyond it wait (up to ``SOCKET_TIMEOUT``) for a free one."""


def safe_url(url: str) -> str:
    """The state URL without its credentials (for messages and health)."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    host = parts.hostname or "localhost"
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def describe(exc: BaseException) -> str:
    """A short, credential-free word for what went wrong (never the client's own message)."""
    if isinstance(exc, RedisTimeoutError | asyncio.TimeoutError | TimeoutError):
        return "timed out"
    if isinstance(exc, RedisConnectionError | OSError):
        return "unreachable"
    return f"failed ({type(exc).__name__})"


def connect(url: str) -> Redis:
    """A client for ``url`` (not connected yet): bounded timeouts, one retry on a dropped connection."""
    pool = BlockingConnectionPool.from_url(
        url,
        max_connections=MAX_CONNECTIONS,
        timeout=SOCKET_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        socket_connect_timeout=SOCKET_TIMEOUT,
        # A pooled connection Redis closed (a restart) fails on first use: retry once on a new one. Not
        # on a timeout: the command may have run, and a script must not run twice.
        retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
        decode_responses=False,
    )
    return Redis(connection_pool=pool)


class Conn:
    """The client and the server's name for messages."""

    __slots__ = ("name", "redis")

    def __init__(self, url: str) -> None:
        self.redis = connect(url)
        self.name = safe_url(url)

    def error(self, exc: BaseException) -> StateError:
        """The ``StateError`` for a client failure."""
        if isinstance(exc, ResponseError):  # a script or command Redis refused: a bug, worth its words
            log.warning("state backend Redis at %s refused a command: %s", self.name, exc)
        return StateError(f"state backend Redis at {self.name} {describe(exc)}")

    async def call(self, awaitable: Awaitable[Any]) -> Any:
        """Await one Redis operation (the client's replies are loosely typed); any failure becomes
        ``StateError``."""
        try:
            return await awaitable
        except (TimeoutError, RedisError, OSError) as exc:
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # The client turns a cancellation met mid-command into its own connection error: that is
                # the caller being stopped, not the state failing. Turned into StateError, a background
                # loop took it for an outage and went on looping, and its process never stopped.
                raise asyncio.CancelledError() from exc
            raise self.error(exc) from None

    async def close(self) -> None:
        """Close every pooled connection."""
        with contextlib.suppress(RedisError, OSError):
            await self.redis.aclose()


def dumps(value: Any) -> bytes:
    """A record's JSON for Redis. orjson refuses integers past 64 bits, which a request body may carry
    (kept in a job's or resource's data): those records take the standard library's encoder instead."""
    try:
        return orjson.dumps(value)
    except TypeError:
        return json.dumps(value, separators=(",", ":")).encode()


def text(value: Any) -> str:
    """A reply as text (replies are bytes: the client does not decode, so blobs stay bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)
