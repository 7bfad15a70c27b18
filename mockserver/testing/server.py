"""The mock served from a background thread on a free loopback port, and a pool of such servers.

The server runs its own event loop in a thread, so synchronous clients (``requests``, the ``openai``
package, schemathesis) and asynchronous tests can all talk to it over real HTTP.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from aiohttp import web

from mockserver.app import create_app
from mockserver.mock import MOCK, Mock
from mockserver.serving import MockRunner
from mockserver.settings import Settings

LOOPBACK = "127.0.0.1"
T = TypeVar("T")


class ServerThread:
    """The mock served on 127.0.0.1 and a free port by its own event loop in a background thread."""

    def __init__(self, settings: Settings, *, shutdown_timeout: float = 2.0) -> None:
        self.settings = settings.with_changes(host=LOOPBACK, port=0)
        self.port = 0
        self.leftover_tasks: list[str] = []
        """Tasks the server left pending at shutdown (cancelled); a clean server leaves none."""
        self._shutdown_timeout = shutdown_timeout
        self._mock: Mock | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def running(self) -> bool:
        """Whether the server thread is serving."""
        return self._thread is not None and self._thread.is_alive() and self._mock is not None

    @property
    def mock(self) -> Mock:
        """The running ``Mock`` (read it from tests; drive it over HTTP)."""
        if self._mock is None:
            raise RuntimeError("the server is not running")
        return self._mock

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        """Run ``coroutine`` on the server's event loop and return its result (a test reading or changing
        the state directly: ``server.run(server.mock.state.violations())``)."""
        loop = self._loop
        if loop is None or not self.running:
            coroutine.close()
            raise RuntimeError("the server is not running")
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(timeout)

    def start(self, timeout: float = 10.0) -> ServerThread:
        """Start serving; returns once the port is bound (or raises what went wrong)."""
        self._thread = threading.Thread(target=self._run, name=f"mockserver:{id(self):x}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the mock server did not start within {timeout} s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down gracefully and wait for its thread."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is None:
            return
        if loop is not None and stopping is not None and not loop.is_closed():
            loop.call_soon_threadsafe(stopping.set)
        thread.join(timeout)
        if thread.is_alive():
            raise RuntimeError(f"the mock server did not stop within {timeout} s")
        self._thread = None
        if self._error is not None:  # a failure while serving or shutting down must not pass unseen
            raise self._error

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start() or, after start-up, kept for inspection
            self._error = exc
        finally:
            self._ready.set()
            self._close_loop(loop)

    def _close_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        self.leftover_tasks = [repr(task) for task in pending]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        app = create_app(self.settings)
        runner = MockRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=self._shutdown_timeout
        )
        await runner.setup()
        try:
            site = web.TCPSite(runner, LOOPBACK, 0)
            await site.start()
            self.port = int(runner.addresses[0][1])
            self._mock = app[MOCK]
            for address in runner.addresses:  # bound to port 0: tell the webhook policy its own address
                self._mock.services.webhooks.egress.note_local(address)
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()
            self._mock = None


class ServerPool:
    """One running server per distinct ``Settings``, started on first use and kept until ``stop``."""

    def __init__(self) -> None:
        self._servers: dict[Settings, ServerThread] = {}

    def get(self, settings: Settings) -> ServerThread:
        """The server for these settings (host and port are always loopback and a free port)."""
        settings = settings.with_changes(host=LOOPBACK, port=0)
        server = self._servers.get(settings)
        if server is None:
            server = self._servers[settings] = ServerThread(settings).start()
        return server

    def __len__(self) -> int:
        return len(self._servers)

    def stop(self) -> list[str]:
        """Stop every server; returns the tasks they left pending (a clean shutdown leaves none)."""
        leftovers: list[str] = []
        servers, self._servers = list(self._servers.values()), {}
        for server in servers:
            server.stop()
            leftovers.extend(server.leftover_tasks)
        return leftovers
