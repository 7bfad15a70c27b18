"""The hold sweeper: every instance gives back, now and then, the wallet holds past their deadline.

A request's hold is made with a real-time deadline (``Settings.hold_seconds`` after it was made); a hold
that covers a job has none (``State.keep_hold``: its job ends it, on whichever instance finishes the job).
A request settles or releases its hold long before the deadline, unless its instance died or its state
was lost between reserve and settle: then any instance's sweep gives the hold back, so no cents stay
held for ever. Both backends run one sweeper from ``open`` to ``close``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from mockserver.errors import StateError

log = logging.getLogger("mockserver.state")

SWEEP_LIMIT = 100
"""Holds given back per sweep call (one script run stays short); the sweeper calls again while full."""
LONGEST_INTERVAL = 5.0
"""Real seconds between sweeps at most: a hold is given back at most this long after its deadline."""
STOP_SECONDS = 2.0
"""How long ``stop`` waits for a sweep in progress before leaving it behind."""


def sweep_interval(hold_seconds: float) -> float:
    """Real seconds between two sweeps: a quarter of the deadline, within 50 ms and ``LONGEST_INTERVAL``."""
    return min(max(hold_seconds / 4, 0.05), LONGEST_INTERVAL)


class HoldSweeper:
    """A background task calling ``sweep(limit)`` (the state's ``sweep_holds``) every ``interval`` s."""

    def __init__(self, sweep: Callable[[int], Awaitable[int]], interval: float) -> None:
        self._sweep = sweep
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start sweeping (on the running loop)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="hold sweeper")

    async def stop(self) -> None:
        """Stop sweeping (a sweep in progress is waited for within ``STOP_SECONDS``)."""
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, asyncio.TimeoutError, StateError):
            await asyncio.wait_for(task, STOP_SECONDS)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                swept = total = await self._sweep(SWEEP_LIMIT)
                while swept == SWEEP_LIMIT:
                    swept = await self._sweep(SWEEP_LIMIT)
                    total += swept
            except StateError:
                continue  # the state is down: the next turn tries again (the holds keep their deadline)
            if total:
                log.warning("gave back %d wallet hold(s) past their deadline (never settled)", total)
