"""The mock embedded in this process (``--against-mock``): a free loopback port, a background thread.

The only place the suite imports the mock's app and settings. ``app_factory`` lets a test serve a modified
mock (a mutant: a provider handler monkeypatched to misbehave) and run the suite against it.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import threading
from collections.abc import Callable
from typing import Any

import requests
from aiohttp import web

from mockserver.app import create_app
from mockserver.resources import PROVIDER_IDS
from mockserver.settings import Settings as MockSettings

LOOPBACK = "127.0.0.1"
JOB_SPEED = 50.0
"""Mock jobs run this much faster, so polling them finishes in well under a second."""
RATE_LIMIT = 1000
"""Requests per minute per key: above what a default run sends, low enough to exhaust in seconds."""
QUIET_LOGGERS = ("aiohttp.server", "aiohttp.access", "aiohttp.web", "mockserver")


def served_providers() -> tuple[str, ...]:
    """The provider ids whose mock module imports (others are reported as not served)."""
    served = []
    for provider_id in PROVIDER_IDS:
        try:
            module = importlib.import_module(f"mockserver.providers.{provider_id}")
        except ImportError:
            continue
        if hasattr(module, "PROVIDER"):
            served.append(provider_id)
    return tuple(served)


def mock_settings(**changes: Any) -> MockSettings:
    """Settings for an embedded mock: loopback, free port, fast jobs, the mock's own validation off."""
    # The suite judges the responses itself; the mock's own strict mode would turn a broken response into a
    # 500 and hide what a mutant really sends.
    base = MockSettings(
        host=LOOPBACK,
        port=0,
        job_speed=JOB_SPEED,
        rate_limit=RATE_LIMIT,
        response_validation="off",
        providers=served_providers(),
    )
    return base.with_changes(**changes)


class EmbeddedMock:
    """Serve the mock from a background thread; use as a context manager or with ``start``/``stop``.

    ``quiet`` silences the mock's and aiohttp's loggers while it runs (process-wide: for the command line).
    """

    def __init__(
        self,
        settings: MockSettings | None = None,
        app_factory: Callable[[MockSettings], web.Application] = create_app,
        *,
        quiet: bool = False,
    ) -> None:
        self.settings = settings or mock_settings()
        self._factory = app_factory
        self._quiet = quiet
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._levels: dict[str, int] = {}

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        return f"http://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 30.0) -> EmbeddedMock:
        """Start serving; returns once the port is bound (or raises what went wrong)."""
        if self._quiet:
            for name in QUIET_LOGGERS:
                logger = logging.getLogger(name)
                self._levels[name] = logger.level
                logger.setLevel(logging.CRITICAL)
        self._thread = threading.Thread(target=self._run, name="conformance-mock", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the embedded mock did not start within {timeout} s")
        if self._error is not None:
            raise RuntimeError(f"the embedded mock failed to start: {self._error}") from self._error
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Shut the server down and wait for its thread."""
        thread, loop, stopping = self._thread, self._loop, self._stopping
        if thread is not None:
            if loop is not None and stopping is not None and not loop.is_closed():
                loop.call_soon_threadsafe(stopping.set)
            thread.join(timeout)
            self._thread = None
        for name, level in self._levels.items():
            logging.getLogger(name).setLevel(level)
        self._levels.clear()

    def __enter__(self) -> EmbeddedMock:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def control(self, path: str) -> Any:
        """``GET /_mock<path>`` as JSON."""
        token = self.settings.control_token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = requests.get(f"{self.base_url}/_mock{path}", headers=headers, timeout=10)
        response.raise_for_status()
        return response.json()

    def providers(self) -> list[dict[str, Any]]:
        """``GET /_mock/providers``: each served provider's base URL, key, organization and models."""
        listing: list[dict[str, Any]] = self.control("/providers")["providers"]
        return listing

    def webhook_secrets(self) -> dict[str, str]:
        """Each provider's webhook signing secret for its primary key (empty if the mock has none)."""
        try:
            secrets: dict[str, str] = self.control("/webhooks/secrets").get("secrets", {})
        except requests.RequestException:
            return {}
        return secrets

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported by start(); after start-up there is nobody to tell
            self._error = exc
        finally:
            self._ready.set()
            pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _serve(self) -> None:
        self._stopping = asyncio.Event()
        runner = web.AppRunner(self._factory(self.settings), handle_signals=False, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, LOOPBACK, self.settings.port)
            await site.start()
            self.port = int(runner.addresses[0][1])
            self._ready.set()
            await self._stopping.wait()
        finally:
            await runner.cleanup()
