"""Jobs and webhook deliveries on Redis: due times in sorted sets, claims as leases every instance respects.

A claim is ``SET lease NX PX`` inside the claim script: one instance gets a due job or delivery, and when it
dies the lease runs out (real time) and another takes it. Finishing a job or putting a delivery back drops
the lease. Due times are mock-clock seconds, leases real milliseconds.
"""

from __future__ import annotations

import orjson

from mockserver.core.clock import Clock
from mockserver.core.retention import DELIVERIES_KEPT
from mockserver.state.records import DeliveryRecord, JobRecord
from mockserver.state.redis.connection import Conn, dumps
from mockserver.state.redis.keys import KeyNames
from mockserver.state.redis.scripts import Scripts
from mockserver.state.redis.tables import Tables, live


def _ms(seconds: float) -> str:
    return str(max(1, int(seconds * 1000)))


class Queues:
    """Jobs (kept per provider like resources) and deliveries (the newest finished ones kept)."""

    def __init__(self, conn: Conn, names: KeyNames, scripts: Scripts, clock: Clock, tables: Tables) -> None:
        self._conn = conn
        self._names = names
        self._scripts = scripts
        self._clock = clock
        self._tables = tables
        self.providers: tuple[str, ...] = ()
        self.instance = "0"

    # -- jobs ------------------------------------------------------------------------------------------

    async def put_job(self, job: JobRecord) -> None:
        """Store a job; an unfinished one is due at its end."""
        names = self._names
        _, now, expired_by, cap = self._tables.window()
        await self._conn.call(
            self._scripts.put(
                keys=[names.jobs(job.provider), names.jobs_time(job.provider), names.kinds],
                args=[
                    job.id,
                    dumps(job.to_json()),
                    now,
                    expired_by,
                    cap,
                    "",
                    "",
                    b"",
                    "0",
                    names.jobs_due,
                    f"{job.provider}:",
                    "" if job.finished else repr(job.done_at),
                    names.notices,
                ],
            )
        )

    async def get_job(self, provider: str, job_id: str) -> JobRecord | None:
        """A job kept, or None."""
        names = self._names
        async with self._conn.redis.pipeline(transaction=False) as pipe:
            pipe.hget(names.jobs(provider), job_id)
            pipe.zscore(names.jobs_time(provider), job_id)
            raw, score = await self._conn.call(pipe.execute())
        if raw is None or not live(score, self._tables.ttl, self._clock.now()):
            return None
        return JobRecord.from_json(orjson.loads(raw))

    async def jobs(self) -> list[JobRecord]:
        """Every job kept, oldest first."""
        names, redis, now = self._names, self._conn.redis, self._clock.now()
        async with redis.pipeline(transaction=False) as pipe:
            for provider in self.providers:
                pipe.zrange(names.jobs_time(provider), 0, -1, withscores=True)
            tables = await self._conn.call(pipe.execute())
        found: list[tuple[float, str, bytes]] = []
        for provider, entries in zip(self.providers, tables, strict=True):
            found.extend((score, provider, m) for m, score in entries if live(score, self._tables.ttl, now))
        if not found:
            return []
        found.sort()
        async with redis.pipeline(transaction=False) as pipe:
            for _, provider, job_id in found:
                pipe.hget(names.jobs(provider), job_id)
            raws = await self._conn.call(pipe.execute())
        kept = [JobRecord.from_json(orjson.loads(raw)) for raw in raws if raw is not None]
        return sorted(kept, key=lambda job: job.created_at)

    async def claim_due_jobs(self, now: float, lease_seconds: float, limit: int) -> list[JobRecord]:
        """Lease up to ``limit`` due, unleased jobs to this instance."""
        names = self._names
        raws = await self._conn.call(
            self._scripts.claim_jobs(
                keys=[names.jobs_due],
                args=[
                    repr(now),
                    _ms(lease_seconds),
                    str(limit),
                    names.job_lease_prefix(),
                    names.base + "jobs:",
                    self.instance,
                ],
            )
        )
        return [JobRecord.from_json(orjson.loads(raw)) for raw in raws]

    async def claim_job(self, provider: str, job_id: str, lease_seconds: float) -> bool:
        """Lease one unfinished job to this instance; False when finished or leased elsewhere."""
        names, member = self._names, f"{provider}:{job_id}"
        claimed = await self._conn.call(
            self._scripts.claim_job(
                keys=[names.jobs_due, names.job_lease_prefix() + member],
                args=[member, _ms(lease_seconds), self.instance, repr(self._clock.now())],
            )
        )
        return bool(claimed)

    async def finish_job(self, job: JobRecord) -> None:
        """Store a finished job and drop its lease."""
        names, member = self._names, f"{job.provider}:{job.id}"
        await self._conn.call(
            self._scripts.finish_job(
                keys=[
                    names.jobs(job.provider),
                    names.jobs_time(job.provider),
                    names.jobs_due,
                    names.job_lease_prefix() + member,
                ],
                args=[job.id, dumps(job.to_json()), member, names.notices],
            )
        )

    async def next_job_due(self) -> float | None:
        """When the earliest unfinished job nobody holds is due."""
        names = self._names
        due = await self._conn.call(
            self._scripts.next_due(keys=[names.jobs_due], args=[names.job_lease_prefix()])
        )
        return None if due is None else float(due)

    # -- deliveries --------------------------------------------------------------------------------------

    async def put_delivery(self, delivery: DeliveryRecord) -> None:
        """Store a delivery, due at its next attempt; its lease ends."""
        names = self._names
        await self._conn.call(
            self._scripts.put_delivery(
                keys=[
                    names.deliveries,
                    names.deliveries_order,
                    names.deliveries_due,
                    names.deliveries_done,
                    names.delivery_lease_prefix() + delivery.id,
                ],
                args=[
                    delivery.id,
                    dumps(delivery.to_json()),
                    repr(delivery.created_at),
                    "" if delivery.next_attempt_at is None else repr(delivery.next_attempt_at),
                    "0" if delivery.status == "pending" else "1",
                    str(DELIVERIES_KEPT),
                    names.notices,
                ],
            )
        )

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        """A delivery by id."""
        raw = await self._conn.call(self._conn.redis.hget(self._names.deliveries, delivery_id))
        return None if raw is None else DeliveryRecord.from_json(orjson.loads(raw))

    async def deliveries(self, provider: str | None) -> list[DeliveryRecord]:
        """Deliveries kept, oldest first."""
        names, redis = self._names, self._conn.redis
        ids = await self._conn.call(redis.zrange(names.deliveries_order, 0, -1))
        if not ids:
            return []
        raws = await self._conn.call(redis.hmget(names.deliveries, ids))
        found = [DeliveryRecord.from_json(orjson.loads(raw)) for raw in raws if raw is not None]
        return [d for d in found if provider is None or d.provider == provider]

    async def claim_delivery(self, now: float, lease_seconds: float) -> DeliveryRecord | None:
        """The earliest due, unleased delivery, leased to this instance."""
        names = self._names
        raw = await self._conn.call(
            self._scripts.claim_delivery(
                keys=[names.deliveries, names.deliveries_due],
                args=[repr(now), _ms(lease_seconds), names.delivery_lease_prefix(), self.instance],
            )
        )
        return None if raw is None else DeliveryRecord.from_json(orjson.loads(raw))

    async def next_delivery_due(self) -> float | None:
        """When the earliest scheduled attempt nobody holds is due."""
        names = self._names
        due = await self._conn.call(
            self._scripts.next_due(keys=[names.deliveries_due], args=[names.delivery_lease_prefix()])
        )
        return None if due is None else float(due)
