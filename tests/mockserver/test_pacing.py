"""The pacer of streamed events: every wait lasts the pause (batched per tick), a cancelled one is dropped."""

from __future__ import annotations

import asyncio
import contextlib

from mockserver.core.pacing import GRAIN_SECONDS, Pacer


def test_waits_last_the_pause_and_share_timers() -> None:
    async def run() -> tuple[list[float], int]:
        loop = asyncio.get_running_loop()
        pacer = Pacer(0.05)
        started = loop.time()
        waits = [asyncio.create_task(pacer.wait()) for _ in range(200)]
        await asyncio.sleep(0)  # every wait has asked for its tick
        timers = len(pacer._due)
        ended: list[float] = []
        for wait in waits:
            wait.add_done_callback(lambda _: ended.append(loop.time() - started))
        await asyncio.gather(*waits)
        return ended, timers

    ended, timers = asyncio.run(run())
    assert len(ended) == 200
    # Never early (the loop may fire a timer up to its clock resolution early: 1 ns on Linux).
    assert min(ended) >= 0.05 - 1e-6
    # 200 waits asked within a few ms: a handful of ticks, not 200 timers.
    assert timers <= 20


def test_a_cancelled_wait_leaves_the_others_to_wake() -> None:
    async def run() -> list[bool]:
        pacer = Pacer(10 * GRAIN_SECONDS)
        waits = [asyncio.create_task(pacer.wait()) for _ in range(3)]
        await asyncio.sleep(0)
        waits[1].cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waits[1]
        await asyncio.wait_for(asyncio.gather(waits[0], waits[2]), timeout=5)
        return [w.cancelled() for w in waits]

    assert asyncio.run(run()) == [False, True, False]
