"""One job engine for every provider: jobs move through neutral states as the mock's clock passes.

A job has a queue delay and one or more tasks that run one after another. Its state at any moment is
derived from the clock (nothing polls or ticks), so advancing the clock moves every job instantly. Jobs live
in the state (``JobRecord``), so any instance sharing it can answer for them. A job may name a finisher (a
provider module's ``finishers()``) that runs exactly once when the job is due: the instance that claims the
job (a lease in the state) runs it, from the background loop that sleeps until the next job is due, or
earlier when a client looks at the job or the clock is advanced (``settle``). A poller of a job another
instance holds waits until that instance finished it, or takes it over once the lease ran out.

Provider modules map ``JobState``/``TaskState`` to their own words and payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mockserver.errors import StateError
from mockserver.state.api import State
from mockserver.state.records import JobRecord

if TYPE_CHECKING:
    from mockserver.core.calls import Services

log = logging.getLogger("mockserver.jobs")

FAIL_MARKER = "mock:fail"
"""A prompt containing this marker makes its task (or job) fail, so clients can test failure paths."""
LEASE_SECONDS = 30.0
"""How long (real seconds) a claimed job is this instance's: another takes it over only after that."""
RECHECK_SECONDS = 1.0
"""The loop re-reads the state at least this often (real seconds): a lost notice only delays a job."""
POLL_SECONDS = 0.05
"""How often a poller re-reads a job another instance is finishing."""
CLAIM_BATCH = 256
"""Jobs claimed at once; the loop yields between batches, so thousands due at once never block it."""
MAX_FINISHING = 32
"""Finishers this instance runs at once; the rest of the claimed jobs queue for a slot. Thousands due at once
(one clock advance) all awaiting the state together starved requests of it: on Redis they held every pooled
connection past its 2 s wait, and the advance and requests meanwhile got 503s."""
SETTLE_SECONDS = 10.0
"""Longest ``settle`` waits for jobs other instances are finishing."""

Finisher = Callable[["Services", JobRecord], Awaitable[None]]
"""What runs once when a job is due: writes the outcome into ``job.data`` or a resource of the state."""


class JobState(enum.Enum):
    """Neutral job states."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"

    @property
    def terminal(self) -> bool:
        """Whether the job will not change any more."""
        return self in (JobState.SUCCEEDED, JobState.FAILED)


class TaskState(enum.Enum):
    """Neutral task states."""

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Timing:
    """How long jobs take, in the mock's seconds, before the speed factor."""

    queue_seconds: float = 0.5
    task_seconds: float = 1.5

    def scaled(self, speed: float) -> Timing:
        """Durations divided by ``speed``."""
        return Timing(self.queue_seconds / speed, self.task_seconds / speed)


@dataclass(frozen=True, slots=True)
class JobView:
    """A job's state at one moment."""

    state: JobState
    tasks: tuple[TaskState, ...]

    @property
    def completed_tasks(self) -> int:
        """Tasks that have finished, failed ones included."""
        return sum(1 for t in self.tasks if t in (TaskState.SUCCEEDED, TaskState.FAILED))


def view_of(job: JobRecord, now: float) -> JobView:
    """A job's state at time ``now`` (derived from its timing only)."""
    started_at = job.created_at + job.queue_seconds
    failing = set(job.failing_tasks)

    def finish_time(index: int) -> float:
        return started_at + job.task_seconds * (index + 1)

    tasks: list[TaskState] = []
    for index in range(job.task_count):
        if now >= finish_time(index):
            tasks.append(TaskState.FAILED if index in failing else TaskState.SUCCEEDED)
        elif now >= started_at and (index == 0 or now >= finish_time(index - 1)):
            tasks.append(TaskState.RUNNING)
        else:
            tasks.append(TaskState.PENDING)
    if now >= job.done_at:
        # A job fails only when every one of its tasks failed; partial failures still complete.
        state = JobState.FAILED if len(failing) >= job.task_count else JobState.SUCCEEDED
    else:
        state = JobState.RUNNING if now >= started_at else JobState.QUEUED
    return JobView(state, tuple(tasks))


class JobEngine:
    """Submits jobs to the state, runs each due job's finisher once, and sleeps on the clock between."""

    def __init__(self, state: State, timing: Timing, *, lease_seconds: float = LEASE_SECONDS) -> None:
        self._state = state
        self._clock = state.clock
        self.timing = timing
        self.lease_seconds = lease_seconds
        # Without lost notices only a lease running out changes what is due unannounced: an idle mock then
        # wakes once a lease, not every second (each wake costs ~0.1 ms of CPU).
        self._recheck = lease_seconds if state.lossless_notices else RECHECK_SECONDS
        self._finishers: dict[str, Mapping[str, Finisher]] = {}
        self._services: Services | None = None
        self._slots = asyncio.Semaphore(MAX_FINISHING)
        self._running: dict[tuple[str, str], asyncio.Future[None]] = {}
        """Finishers this instance runs now, by (provider, job id): every local waiter shares one run."""
        self._epoch = 0
        """Bumped by ``reset``: a finisher started before it does not store its job into the new state."""
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        """Set by ``stop``: the loop ends at its next turn even if a cancellation was lost."""

    # -- wiring -------------------------------------------------------------------------------------

    def register(self, provider: str, finishers: Mapping[str, Finisher]) -> None:
        """The finishers a provider's jobs may name."""
        self._finishers[provider] = dict(finishers)

    def bind(self, services: Services) -> None:
        """What finishers are called with (``Services`` holds this engine, so it comes after)."""
        self._services = services

    # -- jobs -----------------------------------------------------------------------------------------

    async def submit(
        self,
        provider: str,
        job_id: str,
        *,
        owner: str,
        tasks: int = 1,
        failing_tasks: Iterable[int] = (),
        data: dict[str, Any] | None = None,
        finisher: str | None = None,
    ) -> JobRecord:
        """Start a job now; ``finisher`` (a name from the provider's ``finishers()``) runs once it is due."""
        if finisher is not None and finisher not in self._finishers.get(provider, {}):
            raise LookupError(f"{provider} has no job finisher {finisher!r}")
        job = JobRecord(
            id=job_id,
            provider=provider,
            owner=owner,
            created_at=self._clock.now(),
            queue_seconds=self.timing.queue_seconds,
            task_seconds=self.timing.task_seconds,
            task_count=max(1, tasks),
            failing_tasks=sorted(set(failing_tasks)),
            finisher=finisher,
            data=data or {},
            # A job without a finisher has nothing to run: its outcome is its clock-derived state.
            finished=finisher is None,
        )
        await self._state.put_job(job)
        return job

    async def get(self, provider: str, job_id: str) -> JobRecord | None:
        """A job by id, or None (also once it is past its retention)."""
        return await self._state.get_job(provider, job_id)

    async def jobs(self) -> list[JobRecord]:
        """Every job kept, oldest first (for the control API's listing)."""
        return await self._state.jobs()

    def view(self, job: JobRecord) -> JobView:
        """A job's state now."""
        return view_of(job, self._clock.now())

    async def finish(self, job: JobRecord) -> JobRecord:
        """Make sure a due job's finisher has run (here, or by the instance holding it); the job as stored
        then. Returns at once before the job is due. A caller cancelled meanwhile never cancels the run."""
        key = job.provider, job.id
        while not job.finished and self._clock.now() >= job.done_at:
            running = self._running.get(key)
            if running is None:
                running = await asyncio.shield(self._claim_and_start(job))
            if running is not None:
                await asyncio.shield(running)
            latest = await self._state.get_job(job.provider, job.id)
            if latest is None:
                return job  # forgotten meanwhile (a reset, its retention)
            job = latest
            if not job.finished and key not in self._running:
                # Another instance holds it: look again shortly (it is taken over once its lease ran out).
                await asyncio.sleep(POLL_SECONDS)
        return job

    async def wait(self, job: JobRecord) -> JobRecord:
        """Wait (on the mock's clock) until a job is terminal and finished; the job then."""
        await self._clock.sleep_until(job.done_at)
        return await self.finish(job)

    async def settle(self, within: float = SETTLE_SECONDS) -> None:
        """Finish every job due by the clock; returns once their finishers (and those running here) have
        run, and (for at most ``within`` seconds) those other instances hold. Finishers run as tasks, so
        the event loop serves requests meanwhile."""
        now = self._clock.now()
        await self._run_due(now)
        await self._join()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while (due := await self._state.next_job_due()) is not None and due <= now:
                    await self._run_due(now)
                    if not await self._join():
                        await asyncio.sleep(POLL_SECONDS)

    def reset(self) -> None:
        """Forget this instance's part of jobs (the state forgets jobs): running finishers end unstored."""
        self._epoch += 1
        self._running.clear()

    # -- running finishers ----------------------------------------------------------------------------

    async def _claim_and_start(self, job: JobRecord) -> asyncio.Future[None] | None:
        """Lease one due job and start its finisher; None when it is finished or held elsewhere."""
        if not await self._state.claim_job(job.provider, job.id, self.lease_seconds):
            return None
        key = job.provider, job.id
        running = self._running.get(key)
        if running is not None:
            return running
        latest = await self._state.get_job(job.provider, job.id)
        return self._start(latest or job)

    def _start(self, job: JobRecord) -> asyncio.Future[None]:
        key = job.provider, job.id
        task = asyncio.ensure_future(self._run(job, self._epoch))
        self._running[key] = task

        def done(_: asyncio.Future[None]) -> None:
            if self._running.get(key) is task:
                del self._running[key]

        task.add_done_callback(done)
        return task

    async def _run(self, job: JobRecord, epoch: int) -> None:
        async with self._slots:
            await self._finish(job, epoch)

    async def _finish(self, job: JobRecord, epoch: int) -> None:
        if job.finisher is not None:
            finisher = self._finishers.get(job.provider, {}).get(job.finisher)
            try:
                if finisher is None:
                    log.error("job %s names an unknown finisher %r", job.id, job.finisher)
                elif self._services is None:
                    raise RuntimeError("the job engine runs finishers only once bound to its services")
                else:
                    await finisher(self._services, job)
            except StateError:
                # The state is unreachable: the lease runs out and an instance tries again later.
                log.warning("job %s could not be finished: the state is unreachable", job.id)
                return
            except Exception:
                log.exception("finisher of job %s failed", job.id)
        if epoch != self._epoch:
            return
        job.finished = True
        try:
            await self._state.finish_job(job)
        except StateError:
            log.warning("job %s finished but could not be stored: the state is unreachable", job.id)

    async def _run_due(self, now: float) -> None:
        """Claim every job due by ``now`` nobody holds and start its finisher."""
        while True:
            claimed = await self._state.claim_due_jobs(now, self.lease_seconds, CLAIM_BATCH)
            for job in claimed:
                if (job.provider, job.id) not in self._running:
                    self._start(job)
            if len(claimed) < CLAIM_BATCH:
                return
            await asyncio.sleep(0)  # let requests in between batches

    async def _join(self) -> bool:
        """Wait for the finishers running here; whether there were any."""
        running = list(self._running.values())
        if running:
            await asyncio.shield(asyncio.gather(*running, return_exceptions=True))
        return bool(running)

    # -- the background loop --------------------------------------------------------------------------

    async def _loop(self) -> None:
        changed = self._state.changed("jobs")
        clock = self._state.changed("clock")
        while not self._stopping:
            # Cleared before re-reading: a change made while reading sets them again.
            changed.clear()
            clock.clear()
            due: float | None = None
            try:
                await self._run_due(self._clock.now())
                due = await self._state.next_job_due()
            except StateError:
                log.warning("the job loop cannot reach the state; retrying")
            await self._sleep(due, changed, clock)

    async def _sleep(self, due: float | None, *events: asyncio.Event) -> None:
        """Until ``due`` on the clock, one of ``events`` (jobs, the clock) or ``_recheck`` seconds."""
        await self._clock.wait_any(due, events, self._recheck)

    def start(self) -> None:
        """Run the background loop (from the app's startup)."""
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="mockserver-jobs")

    async def stop(self) -> None:
        """Stop the background loop cleanly (finishers running here are left to end; unstored ones are
        run again by an instance once their lease ran out)."""
        if self._task is not None:
            # The flag, then the cancellation: a cancellation that lands while the loop is in a state call
            # can come back as that call's error (the Redis client turns it into a connection error), which
            # the loop takes for an outage and survives; the flag ends it at its next turn (within the
            # re-check interval) all the same.
            self._stopping = True
            self._task.cancel()
            done, _ = await asyncio.wait({self._task}, timeout=RECHECK_SECONDS * 3)
            if not done:
                log.warning("the job loop did not stop in time; left behind")
            self._task = None
