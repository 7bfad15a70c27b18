"""Jobs, webhook deliveries and drawn files when several instances share one state.

Two engines over one ``MemoryState`` object stand for two instances of the mock sharing a backend: each
has its own loop, its own in-process bookkeeping and its own leases, and only the state is common.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, cast

import pytest
from _mock_test_helpers import listen
from aiohttp import web

from mockserver.core import media
from mockserver.core.calls import Services
from mockserver.core.clock import Clock
from mockserver.core.egress import EgressPolicy
from mockserver.core.jobs import JobEngine, Timing
from mockserver.core.signing import SigningKeys
from mockserver.core.webhooks import WebhookDispatcher
from mockserver.resources import PROVIDER_IDS, fixtures_dir
from mockserver.settings import Settings
from mockserver.state.api import State
from mockserver.state.factory import create_state
from mockserver.state.records import JobRecord
from mockserver.state.seed import read_seeds

SEEDS = read_seeds(fixtures_dir(), PROVIDER_IDS)
SETTINGS = Settings(seed=0, webhook_hosts=("127.0.0.1",))
FAST = Timing(queue_seconds=0.0, task_seconds=0.2)


async def shared_state() -> State:
    state = create_state(SETTINGS, SEEDS, Clock())
    await state.open()
    return state


def engine(state: State, finisher: Callable[[Services, JobRecord], Any], **options: Any) -> JobEngine:
    jobs = JobEngine(state, FAST, **options)
    jobs.register("artificialstudio", {"count": finisher})
    jobs.bind(cast(Services, object()))
    return jobs


async def until(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110  # polls plain values the engines change
            await asyncio.sleep(0.01)


async def test_a_job_is_finished_once_by_two_engines_sharing_a_state() -> None:
    state = await shared_state()
    runs: list[str] = []

    async def count(services: Services, job: JobRecord) -> None:
        runs.append(job.id)
        await asyncio.sleep(0.05)  # both loops are awake meanwhile
        job.data["outcome"] = "done"

    first, second = engine(state, count), engine(state, count)
    first.start()
    second.start()
    try:
        jobs = [
            await first.submit("artificialstudio", f"job{n}", owner="a", finisher="count") for n in range(20)
        ]
        await state.advance_clock(5)
        await asyncio.gather(first.settle(), second.settle())
        for job in jobs:
            stored = await state.get_job("artificialstudio", job.id)
            assert stored is not None
            assert stored.finished
            assert stored.data["outcome"] == "done"
        # Pollers on both engines find them finished and run nothing more.
        await asyncio.gather(*(e.finish(j) for e in (first, second) for j in jobs))
    finally:
        await first.stop()
        await second.stop()
    assert sorted(runs) == sorted(job.id for job in jobs)


async def test_a_poller_of_a_job_held_elsewhere_waits_then_sees_its_outcome() -> None:
    state = await shared_state()
    release = asyncio.Event()
    runs: list[str] = []

    async def slow(services: Services, job: JobRecord) -> None:
        runs.append(job.id)
        await release.wait()
        job.data["outcome"] = "written by the holder"

    holder, poller = engine(state, slow), engine(state, slow)
    job = await holder.submit("artificialstudio", "job1", owner="a", finisher="count")
    await state.advance_clock(5)
    holding = asyncio.ensure_future(holder.settle())
    await until(lambda: runs == ["job1"])
    polling = asyncio.ensure_future(poller.finish(job))
    await asyncio.sleep(0.3)
    assert not polling.done()  # leased by the holder: the poller waits rather than running it again
    release.set()
    seen = await asyncio.wait_for(polling, 5)
    await holding
    assert seen.finished
    assert seen.data["outcome"] == "written by the holder"
    assert runs == ["job1"]


async def test_a_poller_takes_a_job_over_once_its_holders_lease_ran_out() -> None:
    state = await shared_state()
    runs: list[str] = []

    async def record(services: Services, job: JobRecord) -> None:
        runs.append(job.id)

    poller = engine(state, record, lease_seconds=0.3)
    job = await poller.submit("artificialstudio", "job1", owner="a", finisher="count")
    await state.advance_clock(5)
    # An instance claimed it and died: nobody will finish it until its lease runs out.
    assert await state.claim_job("artificialstudio", "job1", 0.3)
    seen = await asyncio.wait_for(poller.finish(job), 5)
    assert seen.finished
    assert runs == ["job1"]


async def test_a_cancelled_poller_does_not_cancel_the_finisher() -> None:
    state = await shared_state()
    release = asyncio.Event()
    done: list[str] = []

    async def slow(services: Services, job: JobRecord) -> None:
        await release.wait()
        done.append(job.id)

    jobs = engine(state, slow)
    job = await jobs.submit("artificialstudio", "job1", owner="a", finisher="count")
    await state.advance_clock(5)
    polling = asyncio.ensure_future(jobs.finish(job))
    await asyncio.sleep(0.05)
    polling.cancel()
    release.set()
    finished = await asyncio.wait_for(jobs.finish(job), 5)
    assert done == ["job1"]
    assert finished.finished


@asynccontextmanager
async def receiver(handle: Callable[[web.Request], Any]) -> AsyncIterator[str]:
    app = web.Application()
    app.router.add_post("/hook", handle)
    async with listen(app) as origin:
        yield f"{origin}/hook"


def dispatcher(state: State, **options: Any) -> WebhookDispatcher:
    keys = SigningKeys.from_settings(SETTINGS)
    return WebhookDispatcher(state, 0, keys, EgressPolicy("127.0.0.1", 1, ("127.0.0.1",)), **options)


async def test_a_delivery_left_by_a_dying_instance_is_attempted_by_another_with_the_same_id() -> None:
    state = await shared_state()
    seen: list[str] = []
    hang = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers["webhook-id"])
        if len(seen) == 1:
            await hang.wait()  # the first instance dies while waiting for this answer
        return web.json_response({"ok": True})

    async with receiver(handle) as url:
        dying, other = dispatcher(state, lease_seconds=0.5), dispatcher(state, lease_seconds=0.5)
        await dying.start()
        delivery = await dying.deliver(
            url, {"id": "x"}, secret=_secret(), provider="artificialstudio", event="e"
        )
        await until(lambda: len(seen) == 1)
        await dying.stop()  # its loop and its attempt cancelled: nothing is put back
        await other.start()
        try:
            await until(lambda: len(seen) == 2)
            await until(lambda: _status(state, delivery.id) == "succeeded")
        finally:
            hang.set()
            await other.stop()
    assert seen == [delivery.id, delivery.id]
    stored = await state.get_delivery(delivery.id)
    assert stored is not None
    assert [a.status for a in stored.attempts] == [200]


async def test_two_dispatchers_sharing_a_state_attempt_each_delivery_once() -> None:
    state = await shared_state()
    seen: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(request.headers["webhook-id"])
        return web.json_response({"ok": True})

    async with receiver(handle) as url:
        first, second = dispatcher(state), dispatcher(state)
        await first.start()
        await second.start()
        try:
            delivery = await first.deliver(
                url, {"n": 1}, secret=_secret(), provider="artificialstudio", event="e"
            )
            await until(lambda: _status(state, delivery.id) == "succeeded")
            await asyncio.sleep(0.3)
        finally:
            await first.stop()
            await second.stop()
    assert seen == [delivery.id]


def _secret() -> str:
    return SigningKeys.from_settings(SETTINGS).webhook_secret("artificialstudio", "key")


def _status(state: State, delivery_id: str) -> str | None:
    stored = state._deliveries.get(delivery_id)  # type: ignore[attr-defined]  # memory's own table
    return None if stored is None else str(stored.status)


async def test_a_lazily_drawn_file_is_drawn_once(monkeypatch: pytest.MonkeyPatch) -> None:
    state = await shared_state()
    draws: list[str] = []
    render = media.render_image

    def counted(prompt: str, seed: int, width: int = 512, height: int = 512) -> bytes:
        draws.append(prompt)
        return render(prompt, seed, width, height)

    monkeypatch.setattr(media, "render_image", counted)
    files, other = media.FileStore(state), media.FileStore(state)
    image = await files.put_recipe({"render": "image", "prompt": "a fox", "seed": 0}, media.PNG, "a.png")
    thumb = await files.put_recipe({"render": "thumbnail", "source": image.id}, media.JPEG, "a.jpg")
    # Concurrent downloads of the image and of its thumbnail, then later ones on another instance.
    opened = await asyncio.gather(*(files.open(f.id) for f in (image, thumb, image, thumb)))
    again = await asyncio.gather(other.open(image.id), other.open(thumb.id))
    assert draws == ["a fox"]
    assert opened[0] is not None
    assert again[0] is not None
    assert opened[0][1] == again[0][1]
    assert opened[0][1].startswith(b"\x89PNG")
    assert opened[1] is not None
    assert opened[1][1][:2] == b"\xff\xd8"


async def test_a_delivery_made_once_for_a_job_is_not_made_again_by_another_instance() -> None:
    state = await shared_state()
    first, second = dispatcher(state), dispatcher(state)
    options: dict[str, Any] = {"secret": _secret(), "provider": "artificialstudio", "event": "e"}
    made = await first.deliver("http://127.0.0.1:9/hook", {"n": 1}, once="job1@1.0", **options)
    # The job is finished again elsewhere (its first instance died before storing it): same delivery.
    again = await second.deliver("http://127.0.0.1:9/hook", {"n": 1}, once="job1@1.0", **options)
    other = await second.deliver("http://127.0.0.1:9/hook", {"n": 1}, once="job1@2.0", **options)
    assert again.id == made.id
    assert other.id != made.id
    assert [d.id for d in await state.deliveries()] == [made.id, other.id]
