"""How the mock's HTTP server runs: connections that give up on request headers arriving too slowly.

aiohttp has no timeout for reading a request's headers: a client that sends them a byte at a time (a
"slowloris") holds its connection, and everything the server keeps for it, for as long as it likes (only
the keep-alive timer ends it, an hour by default). ``MockRunner`` serves an app on ``HeaderTimeoutHandler``
connections, which answer a plain ``408`` and close when a request's headers are not complete
``Settings.read_timeout`` seconds after their first byte, as nginx (``client_header_timeout``) and Go
(``ReadHeaderTimeout``) do. A body that stalls is the pipeline's business (the provider's 408, in its
envelope); idle keep-alive connections close after ``Settings.keepalive_timeout`` (aiohttp's own timer).

The timer costs nothing on the request path: it is armed only when a chunk of data arrives that completes
no request head, and a request sent in one piece never arms it.
"""

from __future__ import annotations

import asyncio
import os
import socket
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from mockserver.mock import MOCK

REQUEST_TIMEOUT_RESPONSE = (
    b"HTTP/1.1 408 Request Timeout\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Length: 16\r\n"
    b"Connection: close\r\n"
    b"\r\n"
    b"Request Timeout\n"
)
"""What a connection whose request headers took too long gets before it is closed (no request, no route,
so no provider envelope: what real front ends send)."""


class HeaderTimeoutHandler(RequestHandler):
    """An aiohttp connection that answers 408 and closes when a request's headers take too long."""

    __slots__ = ("_header_timeout", "_header_timer", "_heads_at_timer", "_last_body")

    def __init__(self, manager: web.Server, *, header_timeout: float, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._header_timer: asyncio.TimerHandle | None = None
        self._heads_at_timer = 0
        """How many request heads the connection had parsed when the timer was armed."""
        self._last_body: Any = None
        """The body stream of the last request head parsed (its bytes are not a new head's)."""

    def data_received(self, data: bytes) -> None:
        """Parse as aiohttp does, then arm the header timer if this chunk began a request head."""
        heads = self._request_count
        super().data_received(data)
        if self._request_count != heads:
            # A head completed: its request is answered by the handler; no timer until the next one starts.
            self._last_body = self._messages[-1][1] if self._messages else None
            if self._header_timer is not None:
                self._disarm()
        elif (
            self._header_timer is None
            and data
            and not (self._close or self._force_close or self._reading_body())
        ):
            self._heads_at_timer = self._request_count
            self._header_timer = self._loop.call_later(self._header_timeout, self._headers_timed_out)

    def _reading_body(self) -> bool:
        body = self._last_body
        return body is not None and not body.is_eof()

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        if self.transport is None or self._force_close or self._request_count != self._heads_at_timer:
            return
        if self._request_in_progress or self._messages:
            # A pipelined head started while an earlier request is still being answered: writing now would
            # cut into that answer, so look again after another period.
            self._header_timer = self._loop.call_later(self._header_timeout, self._headers_timed_out)
            return
        self.transport.write(REQUEST_TIMEOUT_RESPONSE)
        self.force_close()  # the transport sends what was written before it closes

    def _process_keepalive(self) -> None:
        # aiohttp's keep-alive timer closes a connection without a complete head silently; once a head is
        # arriving, the header timer answers it (with its 408) instead.
        if self._header_timer is not None:
            self._keepalive_handle = None  # re-armed by aiohttp after the next answer, as when it fires
            return
        super()._process_keepalive()

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def connection_lost(self, exc: BaseException | None) -> None:
        """Drop the timer with the connection."""
        self._disarm()
        super().connection_lost(exc)


class MockHttpServer(web.Server):
    """aiohttp's low-level server, making ``HeaderTimeoutHandler`` connections."""

    def __init__(self, server: web.Server, header_timeout: float) -> None:
        # The app's server as aiohttp built it (handler, request factory, handler_args), made this class.
        super().__init__(
            server.request_handler,
            request_factory=server.request_factory,
            handler_cancellation=server.handler_cancellation,
            loop=server._loop,
            **server._kwargs,
        )
        self._header_timeout = header_timeout

    def __call__(self) -> RequestHandler:
        """A connection (the protocol factory ``loop.create_server`` calls)."""
        return HeaderTimeoutHandler(
            self, loop=self._loop, header_timeout=self._header_timeout, **self._kwargs
        )


def bind_error(error: OSError) -> str:
    """Why a listening socket could not be bound, in the system's words ("Address already in use")."""
    # asyncio's bind error repeats the address around the system's words.
    return os.strerror(error.errno) if error.errno and error.errno > 0 else str(error)


def probe_bind(host: str, port: int) -> None:
    """Bind ``host:port`` (every address the name has) without ``SO_REUSEPORT`` and let go at once:
    ``OSError`` when anything holds it, including another ``SO_REUSEPORT`` server, which workers binding
    with ``SO_REUSEPORT`` would otherwise join silently."""
    for family, kind, proto, _, address in socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    ):
        with socket.socket(family, kind, proto) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as asyncio's servers do
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)


class MockRunner(web.AppRunner):
    """``web.AppRunner`` for an app from ``create_app``: its connections time out slow request headers."""

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        return MockHttpServer(server, self.app[MOCK].settings.read_timeout)
