"""The memory backend's jobs and webhook deliveries: kept by id, due in time order, handed out under leases.

Each is a table plus a heap of due times. An entry in the heap goes stale when its job finishes, its
delivery is rescheduled or it is leased; stale entries are dropped as they reach the top, so neither
claiming nor asking what is due next scans anything but what is due. A lease runs on real (monotonic)
time: advancing the mock's clock while a finisher runs does not hand its job out a second time. A lease
that runs out without the job finished (or the delivery put back) makes it due again.
"""

from __future__ import annotations

import heapq
import itertools
import time

from mockserver.core.retention import DELIVERIES_KEPT, ResourceTable, Retention
from mockserver.state.records import DeliveryRecord, JobRecord

JobKey = tuple[str, str]
"""(provider, job id)."""


class JobQueue:
    """Jobs by provider and id (bounded as resources are) and the unfinished ones by when they are due."""

    def __init__(self, retention: Retention, order: itertools.count[int]) -> None:
        self._retention = retention
        self._order = order
        """Ties between equal due times go to the first scheduled."""
        self._tables: dict[str, ResourceTable[str, JobRecord]] = {}
        self._pending: dict[JobKey, JobRecord] = {}
        """Unfinished jobs, also those their table dropped: each still finishes (its hold is settled)."""
        self._due: list[tuple[float, int, str, str]] = []
        self._leases: dict[JobKey, float] = {}

    def put(self, job: JobRecord) -> None:
        """Store a job; an unfinished one is due at its end."""
        table = self._tables.get(job.provider)
        if table is None:
            table = self._tables[job.provider] = ResourceTable(self._retention)
        table[job.id] = job
        key = job.provider, job.id
        if job.finished:
            self._pending.pop(key, None)
            self._leases.pop(key, None)
        else:
            self._pending[key] = job
            heapq.heappush(self._due, (job.done_at, next(self._order), *key))

    def get(self, provider: str, job_id: str) -> JobRecord | None:
        """A job by id, or None (also past its retention)."""
        table = self._tables.get(provider)
        return table.get(job_id) if table is not None else None

    def jobs(self) -> list[JobRecord]:
        """Every job kept, oldest first."""
        kept = (job for table in self._tables.values() for job in table.values())
        return sorted(kept, key=lambda job: job.created_at)

    def _reap(self) -> None:
        """Unfinished jobs whose lease ran out are due again."""
        if not self._leases:
            return
        now = time.monotonic()
        for key, until in list(self._leases.items()):
            if until <= now:
                del self._leases[key]
                job = self._pending.get(key)
                if job is not None:
                    heapq.heappush(self._due, (job.done_at, next(self._order), *key))

    def _top(self) -> tuple[float, int, str, str] | None:
        """The earliest live entry of the due heap (stale ones, finished or leased, dropped on the way)."""
        due = self._due
        while due:
            entry = due[0]
            key = entry[2], entry[3]
            job = self._pending.get(key)
            if job is not None and job.done_at == entry[0] and key not in self._leases:
                return entry
            heapq.heappop(due)
        return None

    def claim_due(self, now: float, lease_seconds: float, limit: int) -> list[JobRecord]:
        """Up to ``limit`` due unfinished jobs, leased for ``lease_seconds``."""
        self._reap()
        claimed: list[JobRecord] = []
        until = time.monotonic() + lease_seconds
        while len(claimed) < limit and (entry := self._top()) is not None and entry[0] <= now:
            heapq.heappop(self._due)
            key = entry[2], entry[3]
            self._leases[key] = until
            claimed.append(self._pending[key])
        return claimed

    def claim(self, provider: str, job_id: str, now: float, lease_seconds: float) -> bool:
        """Lease one due, unfinished job; False when finished, not due yet or leased."""
        self._reap()
        key = provider, job_id
        job = self._pending.get(key)
        if job is None or key in self._leases or now < job.done_at:
            return False
        self._leases[key] = time.monotonic() + lease_seconds
        return True

    def finish(self, job: JobRecord) -> None:
        """Store a finished job (where its table still keeps it) and drop its lease."""
        key = job.provider, job.id
        self._pending.pop(key, None)
        self._leases.pop(key, None)
        table = self._tables.get(job.provider)
        if table is not None and job.id in table:
            table[job.id] = job

    def next_due(self) -> float | None:
        """When the earliest unfinished, unleased job is due."""
        self._reap()
        entry = self._top()
        return entry[0] if entry is not None else None


class DeliveryQueue:
    """Webhook deliveries in the order they were made (finished ones capped) and the scheduled ones by due
    time."""

    def __init__(self, order: itertools.count[int]) -> None:
        self._order = order
        self._deliveries: dict[str, DeliveryRecord] = {}
        self._due: list[tuple[float, int, str]] = []
        self._leases: dict[str, float] = {}

    def put(self, delivery: DeliveryRecord) -> bool:
        """Store a delivery (a replaced one keeps its place); True when it is scheduled (due then)."""
        self._deliveries[delivery.id] = delivery
        self._leases.pop(delivery.id, None)
        if delivery.next_attempt_at is not None:
            heapq.heappush(self._due, (delivery.next_attempt_at, next(self._order), delivery.id))
            return True
        finished = [d.id for d in self._deliveries.values() if d.status != "pending"]
        for delivery_id in finished[: max(0, len(finished) - DELIVERIES_KEPT)]:
            del self._deliveries[delivery_id]
        return False

    def get(self, delivery_id: str) -> DeliveryRecord | None:
        """A delivery by id, or None."""
        return self._deliveries.get(delivery_id)

    def deliveries(self, provider: str | None = None) -> list[DeliveryRecord]:
        """Deliveries kept, oldest first."""
        return [d for d in self._deliveries.values() if provider is None or d.provider == provider]

    def _top(self) -> tuple[float, int, str] | None:
        now = time.monotonic()
        for delivery_id, until in list(self._leases.items()):
            if until <= now:  # the lease ran out without the delivery being put back: due again
                del self._leases[delivery_id]
                delivery = self._deliveries.get(delivery_id)
                if delivery is not None and delivery.next_attempt_at is not None:
                    heapq.heappush(self._due, (delivery.next_attempt_at, next(self._order), delivery_id))
        due = self._due
        while due:
            entry = due[0]
            delivery = self._deliveries.get(entry[2])
            if delivery is not None and delivery.next_attempt_at == entry[0] and entry[2] not in self._leases:
                return entry
            heapq.heappop(due)
        return None

    def claim(self, now: float, lease_seconds: float) -> DeliveryRecord | None:
        """The earliest due delivery nobody holds, leased for ``lease_seconds``."""
        entry = self._top()
        if entry is None or entry[0] > now:
            return None
        heapq.heappop(self._due)
        self._leases[entry[2]] = time.monotonic() + lease_seconds
        return self._deliveries[entry[2]]

    def next_due(self) -> float | None:
        """When the earliest scheduled attempt nobody holds is due."""
        entry = self._top()
        return entry[0] if entry is not None else None
