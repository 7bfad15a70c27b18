"""One job engine for every provider: jobs move through neutral states as the mock's clock passes.

A job has a queue delay and one or more tasks that run one after another. Its state at any moment is
derived from the clock (nothing polls or ticks), so advancing the clock moves every job instantly. When a
job reaches a terminal state its ``on_finish`` callbacks run exactly once: from a background loop that
sleeps on the clock, or earlier when someone looks at the job or advances the clock (``settle``).

Provider modules map ``JobState``/``TaskState`` to their own words and payloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import heapq
import itertools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mockserver.core.clock import Clock
from mockserver.core.retention import ResourceTable, Retention

log = logging.getLogger("mockserver.jobs")

FAIL_MARKER = "mock:fail"
"""A prompt containing this marker makes its task (or job) fail, so clients can test failure paths."""


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


FinishCallback = Callable[["Job"], Awaitable[None] | None]


@dataclass(slots=True)
class Job:
    """One submitted job; ``data`` belongs to the provider module."""

    id: str
    provider: str
    owner: str
    created_at: float
    timing: Timing
    failing_tasks: frozenset[int]
    task_count: int
    data: dict[str, Any] = field(default_factory=dict)
    on_finish: list[FinishCallback] = field(default_factory=list)
    finished: bool = False
    finishing: asyncio.Future[None] | None = None
    """The run of the finish callbacks, shared by every caller that waits for it."""

    def finish_time(self, index: int) -> float:
        """When task ``index`` ends."""
        return self.created_at + self.timing.queue_seconds + self.timing.task_seconds * (index + 1)

    @property
    def done_at(self) -> float:
        """When the whole job ends."""
        return self.finish_time(self.task_count - 1)

    def view(self, now: float) -> JobView:
        """The job's state at time ``now``."""
        started = now >= self.created_at + self.timing.queue_seconds
        tasks: list[TaskState] = []
        for index in range(self.task_count):
            if now >= self.finish_time(index):
                tasks.append(TaskState.FAILED if index in self.failing_tasks else TaskState.SUCCEEDED)
            elif started and (index == 0 or now >= self.finish_time(index - 1)):
                tasks.append(TaskState.RUNNING)
            else:
                tasks.append(TaskState.PENDING)
        if now >= self.done_at:
            # A job fails only when every one of its tasks failed; partial failures still complete.
            state = JobState.FAILED if len(self.failing_tasks) >= self.task_count else JobState.SUCCEEDED
        else:
            state = JobState.RUNNING if started else JobState.QUEUED
        return JobView(state, tuple(tasks))


class JobEngine:
    """Holds every job, runs finish callbacks once, and sleeps on the clock between deadlines."""

    def __init__(self, clock: Clock, timing: Timing, retention: Retention) -> None:
        self._clock = clock
        self.timing = timing
        self._retention = retention
        # One bounded table per provider: past the TTL or the cap a job is unknown to lookups.
        self._jobs: dict[str, ResourceTable[str, Job]] = {}
        # Unfinished jobs by the time they end (a heap): the loop and ``settle`` take the due ones off the
        # top instead of scanning every job, and a job dropped from its table still finishes (its holds
        # are settled or released).
        self._due: list[tuple[float, int, Job]] = []
        self._submitted = itertools.count()
        self._finishing: set[asyncio.Future[None]] = set()
        """Finish callbacks still running, whoever started them."""
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def submit(
        self,
        provider: str,
        job_id: str,
        *,
        owner: str,
        tasks: int = 1,
        failing_tasks: frozenset[int] = frozenset(),
        data: dict[str, Any] | None = None,
        on_finish: FinishCallback | None = None,
    ) -> Job:
        """Start a job now."""
        job = Job(
            id=job_id,
            provider=provider,
            owner=owner,
            created_at=self._clock.now(),
            timing=self.timing,
            failing_tasks=failing_tasks,
            task_count=max(1, tasks),
            data=data or {},
            on_finish=[on_finish] if on_finish else [],
        )
        table = self._jobs.get(provider)
        if table is None:
            table = self._jobs[provider] = ResourceTable(self._retention)
        table[job_id] = job
        heapq.heappush(self._due, (job.done_at, next(self._submitted), job))
        self._wakeup.set()
        return job

    def get(self, provider: str, job_id: str) -> Job | None:
        """A job by id, or None (also once it is past its retention)."""
        table = self._jobs.get(provider)
        return table.get(job_id) if table is not None else None

    def jobs(self) -> list[Job]:
        """Every job kept, oldest first (for the control API's listing)."""
        kept = (job for table in self._jobs.values() for job in table.values())
        return sorted(kept, key=lambda job: job.created_at)

    def view(self, job: Job) -> JobView:
        """A job's state now."""
        return job.view(self._clock.now())

    async def finish(self, job: Job) -> None:
        """Run a finished job's callbacks once; every caller returns only after they have run."""
        finishing = self._start_finishing(job)
        if finishing is not None:
            # Shielded: a caller that is cancelled (a client gone) must not cancel the callbacks for others.
            await asyncio.shield(finishing)

    def _start_finishing(self, job: Job) -> asyncio.Future[None] | None:
        """The run of a due job's callbacks (started on first call), or None before the job is due."""
        if self._clock.now() < job.done_at:
            return None
        if job.finishing is None:
            job.finishing = asyncio.ensure_future(self._run_callbacks(job))
            self._finishing.add(job.finishing)
            job.finishing.add_done_callback(self._finishing.discard)
        return job.finishing

    async def _run_callbacks(self, job: Job) -> None:
        for callback in job.on_finish:
            try:
                outcome = callback(job)
                if outcome is not None:
                    await outcome
            except Exception:
                log.exception("finish callback of job %s failed", job.id)
        job.finished = True

    async def settle(self) -> None:
        """Finish every job that is due by the clock; returns once their callbacks (and those others
        started) have run. The callbacks run as tasks, so the event loop serves requests meanwhile."""
        now, due = self._clock.now(), self._due
        while due and due[0][0] <= now:
            self._start_finishing(heapq.heappop(due)[2])
        if self._finishing:
            await asyncio.shield(asyncio.gather(*self._finishing))

    async def wait(self, job: Job) -> None:
        """Wait (on the mock's clock) until a job is terminal and finished."""
        await self._clock.sleep_until(job.done_at)
        await self.finish(job)

    def reset(self) -> None:
        """Forget every job (callbacks of unfinished jobs never run)."""
        self._jobs.clear()
        self._due.clear()

    async def _loop(self) -> None:
        while True:
            await self.settle()
            self._wakeup.clear()
            if self._due:
                sleeper = asyncio.ensure_future(self._clock.sleep_until(self._due[0][0]))
                waker = asyncio.ensure_future(self._wakeup.wait())
                try:
                    await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    # Also on cancellation (shutdown): leave no helper task behind.
                    for task in (sleeper, waker):
                        task.cancel()
                    await asyncio.gather(sleeper, waker, return_exceptions=True)
            else:
                await self._wakeup.wait()

    def start(self) -> None:
        """Run the background loop (from the app's startup)."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="mockserver-jobs")

    async def stop(self) -> None:
        """Stop the background loop cleanly."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
