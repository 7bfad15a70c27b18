"""``--workers N``: the parent process that starts N workers serving one port, watches and stops them.

Each worker is ``python -m mockserver`` again, with the same arguments and environment (so it parses the
very same settings) plus hidden ``--worker-index``/``--worker-ready-fd`` flags: it serves like a single
process, on a socket bound with ``SO_REUSEPORT`` so the kernel spreads new connections over the workers,
and its state is the shared backend (``--state redis://...``; ``settings.check_state`` refuses memory).
Subprocesses rather than ``multiprocessing``: a worker runs exactly the command a person runs (parsing,
logging, exit codes), nothing is pickled, and a crash is an exit code like any other.

Start: the port is probed first, bound without ``SO_REUSEPORT`` and let go, so a port in use is refused
as a single process refuses it (``SO_REUSEPORT`` alone would let the workers join another server of the
same user on that port). Then worker 0, alone, so one instance opens (and seeds) an empty state prefix and
a start-up failure (an unreachable Redis...) is printed once, by it; then the others, on the port worker 0
bound (which is how ``--port 0`` works: worker 0 gets a free port, the rest join it). Each worker writes
one JSON line, ``{"port", "pid", "banner"}``, on a pipe once it listens; the parent prints worker 0's
banner once every worker listens. A generated control token reaches the workers in their environment
(never on a command line, which other users can read).

Running: a worker that exits unexpectedly is replaced (same index, same port), as gunicorn and uvicorn
replace theirs, with a warning naming its exit; more than ``MAX_RESTARTS`` replacements within
``RESTART_WINDOW`` seconds, or a replacement that cannot start, stop everything with exit code 1 (a
crash loop is for the operator or the orchestrator, not for retrying forever).

Stop: SIGTERM or SIGINT is passed on to every worker as SIGTERM (each stops as a single process does,
within ``--shutdown-timeout``); a worker still running ``STOP_GRACE`` seconds after that is killed. Exit
code 0 when every worker stopped cleanly, 1 otherwise, 2 when the workers could not start. Each worker
holds a pipe from the parent on its standard input and stops when it closes, so a parent killed outright
leaves no worker behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mockserver.serving import bind_error, probe_bind
from mockserver.settings import Settings

log = logging.getLogger("mockserver.workers")

START_TIMEOUT = 60.0
"""Seconds a worker may take to listen (specs, seeds, opening the state) before it counts as failed."""
STOP_GRACE = 5.0
"""Seconds past ``--shutdown-timeout`` a worker may take to exit before it is killed."""
MAX_RESTARTS = 5
RESTART_WINDOW = 60.0
STARTUP_ERROR = 2
STOPPED_BADLY = 1


@dataclass(slots=True)
class Worker:
    """One running worker process."""

    index: int
    process: asyncio.subprocess.Process
    ready: dict[str, Any]
    """What it reported once listening: ``port``, ``pid``, ``banner``."""


class StartFailed(Exception):
    """A worker exited (or hung) before it listened."""

    def __init__(self, index: int, reason: str) -> None:
        super().__init__(f"worker {index} {reason}")


def supervise(argv: Sequence[str], settings: Settings, generated_token: str | None) -> int:
    """Run ``settings.workers`` workers of ``python -m mockserver <argv>`` until SIGTERM or Ctrl-C."""
    return asyncio.run(Supervisor(argv, settings, generated_token).run())


class Supervisor:
    """Starts, watches, replaces and stops the workers (one per index)."""

    def __init__(self, argv: Sequence[str], settings: Settings, generated_token: str | None) -> None:
        self.settings = settings
        self._argv = list(argv)
        self._generated_token = generated_token
        self._env = dict(os.environ)
        if generated_token is not None:  # every worker must require the one token the banner shows
            self._env["MOCKSERVER_CONTROL_TOKEN"] = generated_token
        self._workers: dict[int, Worker] = {}
        """Every worker process started and not replaced yet (``ready`` empty until it listens)."""
        self._port = settings.port
        self._restarts: deque[float] = deque()
        self._stop = asyncio.Event()

    async def run(self) -> int:
        """Start every worker, print the banner, serve until a signal; the exit code."""
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, self._stop.set)
        try:
            started = await self._until_stopped(self._start_all())
        except StartFailed as exc:
            log.debug("%s", exc)  # the worker printed why on its standard error
            await self._stop_workers()
            return STARTUP_ERROR
        if not started:  # a signal during start-up: stop what runs, as a normal stop
            return 0 if await self._stop_workers() else STOPPED_BADLY
        first = self._workers[0].ready
        lines = [first["banner"]]
        if self._generated_token is not None:  # printed here once, never logged
            lines.append(
                f"control token (generated; set --control-token to choose one): {self._generated_token}"
            )
        print("\n".join(lines), flush=True)
        code = await self._watch()
        clean = await self._stop_workers()
        return code if code else (0 if clean else STOPPED_BADLY)

    async def _start_all(self) -> bool:
        if self.settings.port != 0:
            try:
                probe_bind(self.settings.host, self.settings.port)
            except OSError as exc:
                host, port = self.settings.host, self.settings.port
                print(f"mockserver: cannot listen on {host}:{port}: {bind_error(exc)}", file=sys.stderr)
                raise StartFailed(0, "found the port taken") from None
        first = await self._start(0, self.settings.port)
        self._port = int(first.ready["port"])
        try:
            # A task group: when one worker cannot start, the others still starting are cancelled.
            async with asyncio.TaskGroup() as group:
                for index in range(1, self.settings.workers):
                    group.create_task(self._start(index, self._port))
        except ExceptionGroup as failures:
            raise failures.exceptions[0] from None
        return True

    async def _until_stopped(self, work: Any) -> bool:
        """Run ``work`` unless a stop signal comes first (then False, ``work`` cancelled)."""
        task = asyncio.ensure_future(work)
        stopping = asyncio.ensure_future(self._stop.wait())
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if task.done():
            return bool(task.result())
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, StartFailed):
            await task
        return False

    async def _start(self, index: int, port: int) -> Worker:
        """Start worker ``index`` on ``port`` and wait until it listens (``StartFailed`` if it cannot)."""
        read_fd, write_fd = os.pipe()
        try:
            process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "mockserver",
                *self._argv,
                "--port",
                str(port),
                "--worker-index",
                str(index),
                "--worker-ready-fd",
                str(write_fd),
                stdin=asyncio.subprocess.PIPE,  # closes when this process ends: the worker then stops
                pass_fds=(write_fd,),
                env=self._env,
            )
        except BaseException:
            os.close(read_fd)
            raise
        finally:
            os.close(write_fd)  # the worker's copy is the only one left: its exit ends the pipe
        worker = self._workers[index] = Worker(index, process, {})
        line = await self._read_ready(read_fd, index, process)
        if not line:
            code = await process.wait()
            raise StartFailed(index, f"exited before listening ({_exit_text(code)})")
        worker.ready = json.loads(line)
        return worker

    async def _read_ready(self, read_fd: int, index: int, process: asyncio.subprocess.Process) -> bytes:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        pipe = os.fdopen(read_fd, "rb", buffering=0)
        transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
        try:
            return await asyncio.wait_for(reader.readline(), START_TIMEOUT)
        except TimeoutError:
            _signal(process, signal.SIGKILL)
            await process.wait()
            raise StartFailed(index, f"did not listen within {START_TIMEOUT:g} s") from None
        finally:
            transport.close()

    async def _watch(self) -> int:
        """Replace workers that exit until a stop signal (0), or give up (``STOPPED_BADLY``)."""
        while True:
            exits = {asyncio.ensure_future(w.process.wait()): w for w in self._workers.values()}
            stopping = asyncio.ensure_future(self._stop.wait())
            done, _ = await asyncio.wait({*exits, stopping}, return_when=asyncio.FIRST_COMPLETED)
            for future in [stopping, *exits]:
                if future not in done:
                    future.cancel()
            if self._stop.is_set():
                return 0
            for future in done:
                worker = exits[future]
                log.warning(
                    "worker %d (pid %d) %s; starting a new one",
                    worker.index,
                    worker.process.pid,
                    _exit_text(future.result()),
                )
                if not self._may_restart():
                    log.error(
                        "more than %d workers exited within %g s; stopping", MAX_RESTARTS, RESTART_WINDOW
                    )
                    return STOPPED_BADLY
                del self._workers[worker.index]
                try:
                    started = await self._until_stopped(self._start(worker.index, self._port))
                except StartFailed as exc:
                    log.error("%s; stopping", exc)
                    return STOPPED_BADLY
                if not started:
                    return 0

    def _may_restart(self) -> bool:
        now = time.monotonic()
        while self._restarts and now - self._restarts[0] > RESTART_WINDOW:
            self._restarts.popleft()
        self._restarts.append(now)
        return len(self._restarts) <= MAX_RESTARTS

    async def _stop_workers(self) -> bool:
        """SIGTERM every worker and wait for them (killing stragglers); whether all exited with 0."""
        processes = [w.process for w in self._workers.values()]
        for process in processes:
            _signal(process, signal.SIGTERM)
        waits = [asyncio.ensure_future(process.wait()) for process in processes]
        if not waits:
            return True
        _, late = await asyncio.wait(waits, timeout=self.settings.shutdown_timeout + STOP_GRACE)
        for process in processes:
            if process.returncode is None:
                log.error("worker pid %d did not stop in time; killing it", process.pid)
                _signal(process, signal.SIGKILL)
        if late:
            await asyncio.wait(late)
        for process in processes:
            if process.stdin is not None:
                process.stdin.close()
        # Ended by the SIGTERM itself: a worker still starting, before it took the signal over (it served
        # nothing yet). Any other end of a worker told to stop is a failure to stop cleanly.
        return all(process.returncode in (0, -signal.SIGTERM) for process in processes)


def _signal(process: asyncio.subprocess.Process, signum: int) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signum)


def _exit_text(code: int) -> str:
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"was killed by {signal.Signals(-code).name}"
        return f"was killed by signal {-code}"
    return f"exited with code {code}"
