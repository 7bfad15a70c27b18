"""``python -m mockserver``: serve the five mocks on one port.

Exit codes: 0 after a normal stop (SIGTERM or Ctrl-C), 2 when it cannot start (bad arguments, fixtures or
specs, a port it cannot listen on, a state backend it cannot reach), 1 when it stopped otherwise than asked
(``--workers N``: a worker that could not be replaced, or did not stop in time; the state lost at shutdown).
With ``--workers N`` (N > 1) this process is the parent of N workers (``mockserver.workers``); each worker
runs this module again with hidden ``--worker-*`` flags and serves like a single process.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import signal
import sys
from collections.abc import Sequence

from aiohttp import web

from mockserver.app import create_app
from mockserver.errors import MockError, StateError
from mockserver.logs import Redactor, configure_logging
from mockserver.mock import MOCK, Mock, build_mock
from mockserver.serving import MockRunner, bind_error
from mockserver.settings import (
    MEMORY_STATE,
    Settings,
    WorkerRole,
    display_url,
    parse_command_line,
    url_secrets,
    with_control_token,
)

log = logging.getLogger("mockserver")

STARTUP_ERROR = 2
STOPPED_BADLY = 1


def banner(settings: Settings, mock_keys: dict[str, str], generated_token: str | None = None) -> str:
    """The start-up text: each provider's base URL and API key, and a generated control token (only here)."""
    host = f"http://{settings.host}:{settings.port}"
    guard = " (Authorization: Bearer <control token>)" if settings.control_token else ""
    lines = [
        f"mockserver listening on {host} ({serving_mode(settings)}); dashboard at {host}/_mock/ui;"
        f" control API at {host}/_mock/{guard}"
    ]
    for provider_id, key in mock_keys.items():
        base = host if settings.provider else f"{host}/{provider_id}"
        lines.append(f"  {provider_id:<17} {base:<40} key: {key}")
    if generated_token is not None:  # printed here once, never logged
        lines.append(f"control token (generated; set --control-token to choose one): {generated_token}")
    return "\n".join(lines)


def serving_mode(settings: Settings) -> str:
    """The seed, and the state and workers when not the defaults (a state URL without its password)."""
    parts = [f"seed {settings.seed}"]
    if settings.state != MEMORY_STATE:
        parts.append(f"state {display_url(settings.state)} prefix {settings.state_prefix}")
    if settings.workers > 1:
        parts.append(f"{settings.workers} workers")
    return "; ".join(parts)


def api_keys(mock: Mock) -> list[str]:
    """Every API key the mock was seeded with (their styles are redacted from the logs)."""
    return [key.key for pid in mock.providers for key in mock.state.seed(pid).keys]


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, print the banner and serve until SIGTERM or Ctrl-C."""
    argv = list(sys.argv[1:] if argv is None else argv)
    configure_logging(Redactor())
    try:
        settings, role = parse_command_line(argv)
    except MockError as exc:  # state flags that do not go together: one line, no usage text
        print(f"mockserver: {exc}", file=sys.stderr)
        return STARTUP_ERROR
    settings, generated_token = with_control_token(settings)
    if settings.workers > 1 and role is None:
        from mockserver.workers import supervise  # only the parent of --workers N needs it

        configure_logging(Redactor(_config_secrets(settings)))
        return supervise(argv, settings, generated_token)
    try:
        mock = build_mock(settings)
        # The control token and the state's password are secrets like the keys: no log line shows them.
        configure_logging(Redactor([*api_keys(mock), *_config_secrets(settings)]))
        keys = {pid: mock.state.seed(pid).keys[0].key for pid in mock.providers}
        app = create_app(settings, mock)
        # What start-up built (compiled specs, seed state, the app) lives as long as the process: frozen,
        # the garbage collector stops walking it on every collection (2-3% of a request's instructions).
        gc.collect()
        gc.freeze()
        return asyncio.run(serve(app, settings, keys, generated_token, role=role))
    except StateError as exc:  # from building the mock or from the app's start-up (opening the state)
        print(f"mockserver: {state_unreachable(settings, exc)}", file=sys.stderr)
        return STARTUP_ERROR
    except MockError as exc:
        print(f"mockserver: {exc}", file=sys.stderr)
        return STARTUP_ERROR
    except KeyboardInterrupt:
        # Ctrl-C while loading, or where the event loop cannot take signals over: a stop, not a crash.
        return 0


def _config_secrets(settings: Settings) -> list[str]:
    return [*([settings.control_token] if settings.control_token else []), *url_secrets(settings.state)]


def state_unreachable(settings: Settings, error: StateError) -> str:
    """The one line for a state backend that failed at start: its URL (no password) and why."""
    return f"cannot open the state at {display_url(settings.state)}: {_why(settings, error)}"


def _why(settings: Settings, error: StateError) -> str:
    reason = " ".join(str(error).split()) or type(error).__name__  # one line, whatever the backend said
    for secret in url_secrets(settings.state):  # a backend's message might quote the URL it was given
        reason = reason.replace(secret, "***")
    return reason


async def serve(
    app: web.Application,
    settings: Settings,
    mock_keys: dict[str, str],
    generated_token: str | None = None,
    *,
    role: WorkerRole | None = None,
) -> int:
    """Serve ``app`` until SIGTERM or SIGINT, printing the banner once listening; returns the exit code.

    As a worker of ``--workers N`` (``role``): the port is shared with the other workers (SO_REUSEPORT),
    the banner goes to the parent (which prints one for all), and the end of the parent (its pipe on
    standard input closing) stops this worker too.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        # Both stop the same way, without a KeyboardInterrupt traceback; a repeated signal changes nothing.
        with contextlib.suppress(NotImplementedError):  # no loop signal handlers on Windows
            loop.add_signal_handler(signum, stop.set)
    if role is not None:
        _stop_with_parent(loop, stop)
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
        site = web.TCPSite(runner, settings.host, settings.port, reuse_port=role is not None)
        try:
            await site.start()
        except OSError as exc:
            print(
                f"mockserver: cannot listen on {settings.host}:{settings.port}: {bind_error(exc)}",
                file=sys.stderr,
            )
            return STARTUP_ERROR
        if settings.port == 0:  # the port the system chose, as clients must use it
            settings = settings.with_changes(port=int(runner.addresses[0][1]))
        for address in runner.addresses:  # every socket bound (IPv4 and IPv6 may differ on port 0)
            app[MOCK].services.webhooks.egress.note_local(address)
        text = banner(settings, mock_keys, generated_token)
        if role is None:
            print(text, flush=True)
        else:
            _report_ready(role, {"port": settings.port, "pid": os.getpid(), "banner": text})
        await stop.wait()
        log.info("stopping: in-flight requests have up to %g s to finish", settings.shutdown_timeout)
    finally:
        stopped_cleanly = await _clean_up(runner, settings)
    return 0 if stopped_cleanly else STOPPED_BADLY


async def _clean_up(runner: web.AppRunner, settings: Settings) -> bool:
    """Stop serving and close the app (the state last); False when the state failed on the way."""
    try:
        await runner.cleanup()
    except StateError as exc:  # what was buffered for the state (the journal's last rows) is lost
        log.error(
            "the state at %s failed while stopping: %s", display_url(settings.state), _why(settings, exc)
        )
        return False
    return True


def _stop_with_parent(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Set ``stop`` when the parent's end of standard input closes: a parent killed without a chance to
    stop its workers (SIGKILL) leaves none serving behind it."""

    def on_eof() -> None:
        try:
            data = os.read(0, 4096)
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(0)
            stop.set()

    loop.add_reader(0, on_eof)


def _report_ready(role: WorkerRole, message: dict[str, object]) -> None:
    """Tell the parent this worker listens: one JSON line on the pipe it gave, then the pipe closes."""
    try:
        os.write(role.ready_fd, json.dumps(message).encode() + b"\n")
    finally:
        os.close(role.ready_fd)


if __name__ == "__main__":
    sys.exit(main())
