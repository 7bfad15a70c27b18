"""A controllable clock: real time plus an offset that tests advance instantly."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any


class Clock:
    """Wall-clock time shifted by an offset; ``advance`` moves it forward and wakes every waiter."""

    def __init__(self) -> None:
        self._offset = 0.0
        self._changed = asyncio.Event()

    def now(self) -> float:
        """Seconds since the epoch, as the mock sees them."""
        return time.time() + self._offset

    @property
    def offset(self) -> float:
        """How far the clock has been advanced beyond real time."""
        return self._offset

    def advance(self, seconds: float) -> float:
        """Move the clock forward (never back) and return the new time."""
        if seconds < 0:
            raise ValueError("the clock only moves forward")
        self._offset += seconds
        # Wake everyone sleeping on the clock; they re-check their deadline.
        self._changed.set()
        self._changed = asyncio.Event()
        return self.now()

    def reset(self) -> None:
        """Return to real time."""
        self.set_offset(0.0)

    def set_offset(self, offset: float) -> None:
        """Take an offset another instance set (a shared state backend's), waking every waiter."""
        if offset == self._offset:
            return
        self._offset = offset
        self._changed.set()
        self._changed = asyncio.Event()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until the mock's time reaches ``deadline``, waking early when the clock is advanced."""
        while (remaining := deadline - self.now()) > 0:
            changed = self._changed
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), timeout=remaining)

    async def wait_any(self, due: float | None, events: tuple[asyncio.Event, ...], recheck: float) -> None:
        """Until ``due`` on this clock (None: no deadline), one of ``events`` is set, or ``recheck`` real
        seconds; the helper tasks are gone when it returns, cancellation included."""
        waiters: list[asyncio.Future[Any]] = [asyncio.ensure_future(event.wait()) for event in events]
        if due is not None:
            waiters.append(asyncio.ensure_future(self.sleep_until(due)))
        try:
            await asyncio.wait(waiters, timeout=recheck, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            await asyncio.gather(*waiters, return_exceptions=True)
