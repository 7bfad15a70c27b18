"""``python -m mockserver``: serve the five mocks on one port.

Exit codes: 0 after a normal stop (SIGTERM or Ctrl-C), 2 when it cannot start (bad arguments, fixtures or
specs, a port it cannot listen on).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from mockserver.app import create_app
from mockserver.errors import MockError
from mockserver.logs import Redactor, configure_logging
from mockserver.mock import MOCK, Mock, build_mock
from mockserver.serving import MockRunner
from mockserver.settings import Settings, settings_from_args, with_control_token

log = logging.getLogger("mockserver")

STARTUP_ERROR = 2


def banner(settings: Settings, mock_keys: dict[str, str], generated_token: str | None = None) -> str:
    """The start-up text: each provider's base URL and API key, and a generated control token (only here)."""
    host = f"http://{settings.host}:{settings.port}"
    guard = " (Authorization: Bearer <control token>)" if settings.control_token else ""
    lines = [
        f"mockserver listening on {host} (seed {settings.seed}); dashboard at {host}/_mock/ui;"
        f" control API at {host}/_mock/{guard}"
    ]
    for provider_id, key in mock_keys.items():
        base = host if settings.provider else f"{host}/{provider_id}"
        lines.append(f"  {provider_id:<17} {base:<40} key: {key}")
    if generated_token is not None:  # printed here once, never logged
        lines.append(f"control token (generated; set --control-token to choose one): {generated_token}")
    return "\n".join(lines)


def api_keys(mock: Mock) -> list[str]:
    """Every API key the mock was seeded with (their styles are redacted from the logs)."""
    return [key.key for pid in mock.providers for key in mock.state.seed(pid).keys]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, print the banner and serve until SIGTERM or Ctrl-C."""
    settings, generated_token = with_control_token(settings_from_args(argv))
    configure_logging(Redactor())
    try:
        mock = build_mock(settings)
        # The control token is a secret like the keys: no log line ever shows it.
        secrets = [*api_keys(mock), *([settings.control_token] if settings.control_token else [])]
        configure_logging(Redactor(secrets))
        keys = {pid: mock.state.seed(pid).keys[0].key for pid in mock.providers}
        app = create_app(settings, mock)
        # What start-up built (compiled specs, seed state, the app) lives as long as the process: frozen,
        # the garbage collector stops walking it on every collection (2-3% of a request's instructions).
        gc.collect()
        gc.freeze()
        return asyncio.run(serve(app, settings, keys, generated_token))
    except MockError as exc:
        print(f"mockserver: {exc}", file=sys.stderr)
        return STARTUP_ERROR
    except KeyboardInterrupt:
        # Ctrl-C while loading, or where the event loop cannot take signals over: a stop, not a crash.
        return 0


async def serve(
    app: web.Application, settings: Settings, mock_keys: dict[str, str], generated_token: str | None = None
) -> int:
    """Serve ``app`` until SIGTERM or SIGINT, printing the banner once listening; returns the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Both stop the same way, without a KeyboardInterrupt traceback; a repeated signal changes nothing.
        with contextlib.suppress(NotImplementedError):  # no loop signal handlers on Windows
            loop.add_signal_handler(signum, stop.set)
    # aiohttp waits twice for a request still being handled at shutdown, each time for shutdown_timeout:
    # first untouched, then with its request body cancelled, before it cancels the handler. Half the grace
    # period each keeps the whole wait within it, and a stream (which reads no body) runs for all of it.
    # No access log: the request journal (GET /_mock/requests) is the mock's record of what it served.
    # (aiohttp reads a timeout of 0 as none at all: --shutdown-timeout 0 waits a millisecond instead.)
    wait = max(settings.shutdown_timeout / 2, 0.001)
    # MockRunner: its connections time out request headers that do not complete (--read-timeout).
    runner = MockRunner(app, access_log=None, shutdown_timeout=wait)
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        try:
            await site.start()
        except OSError as exc:
            print(
                f"mockserver: cannot listen on {settings.host}:{settings.port}: {_reason(exc)}",
                file=sys.stderr,
            )
            return STARTUP_ERROR
        if settings.port == 0:  # the port the system chose, as clients must use it
            settings = settings.with_changes(port=int(runner.addresses[0][1]))
        for address in runner.addresses:  # every socket bound (IPv4 and IPv6 may differ on port 0)
            app[MOCK].services.webhooks.egress.note_local(address)
        print(banner(settings, mock_keys, generated_token), flush=True)
        await stop.wait()
        log.info("stopping: in-flight requests have up to %g s to finish", settings.shutdown_timeout)
    finally:
        await runner.cleanup()
    return 0


def _reason(error: OSError) -> str:
    # asyncio's bind error repeats the address around the system's words ("address already in use").
    return os.strerror(error.errno) if error.errno and error.errno > 0 else str(error)


if __name__ == "__main__":
    sys.exit(main())
