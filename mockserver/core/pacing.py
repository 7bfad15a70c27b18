"""Pace streamed events: every stream waits the same pause after each event, woken in batches.

``asyncio.sleep`` costs each wait a timer of its own, pushed on and popped off the event loop's heap with
Python-level comparisons: with thousands of paced streams that heap holds thousands of timers, and the sleep
cost about as much CPU as writing the event (measured: 16 us against 8 us a wait at 5,000 streams). A
``Pacer`` rounds each wake-up up to the next ``GRAIN_SECONDS`` and keeps one timer per such tick, which wakes
every stream due then: a wait lasts the pause plus at most one grain, never less.
"""

from __future__ import annotations

import asyncio
import math

GRAIN_SECONDS = 0.001
"""Wake-ups are rounded up to this: 1 ms, below what a client of a paced stream can tell apart."""


class Pacer:
    """Waits of one fixed pause, batched per tick; one per provider service (and so per event loop)."""

    __slots__ = ("_due", "pause")

    def __init__(self, pause: float) -> None:
        self.pause = pause
        self._due: dict[int, list[asyncio.Future[None]]] = {}
        """Per tick (the loop's time in grains): the futures its timer resolves."""

    async def wait(self) -> None:
        """Sleep the pause (up to a grain longer); a cancelled wait is simply never woken."""
        loop = asyncio.get_running_loop()
        tick = math.ceil((loop.time() + self.pause) / GRAIN_SECONDS)
        future: asyncio.Future[None] = loop.create_future()
        waiting = self._due.get(tick)
        if waiting is None:
            self._due[tick] = [future]
            loop.call_at(tick * GRAIN_SECONDS, self._wake, tick)
        else:
            waiting.append(future)
        await future

    def _wake(self, tick: int) -> None:
        for future in self._due.pop(tick):
            if not future.done():  # cancelled: its stream has ended
                future.set_result(None)
