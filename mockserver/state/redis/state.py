"""``RedisState``: the ``State`` interface on Redis 7 / Valkey, shared by every instance on one prefix.

The parts live by role beside this module (``ledger``, ``tables``, ``queues``, ``journal``, ``notices``,
``scripts``); this class opens and closes them, seeds and resets the prefix, and runs the request path's one
round trip (``admit``: rate window, fault and clock offset in one script).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import orjson

from mockserver.core.clock import Clock
from mockserver.core.ratelimit import WINDOW_SECONDS, RateState
from mockserver.errors import StateError
from mockserver.settings import Settings
from mockserver.state.api import KEEP, MISS, Admission, JournalRow, Keep, Miss, State, Topic
from mockserver.state.holds import HoldSweeper, sweep_interval
from mockserver.state.records import (
    AccountRecord,
    DeliveryRecord,
    FaultRecord,
    FileRecord,
    HoldRecord,
    JobRecord,
    KeyRecord,
    R,
    Refusal,
    Resource,
    WalletView,
)
from mockserver.state.redis.batch import ScriptBatch
from mockserver.state.redis.connection import SOCKET_TIMEOUT, Conn, describe, dumps, text
from mockserver.state.redis.journal import JournalStore
from mockserver.state.redis.keys import KeyNames
from mockserver.state.redis.ledger import Ledger, seed_ops
from mockserver.state.redis.notices import Notices
from mockserver.state.redis.queues import Queues
from mockserver.state.redis.scripts import Scripts
from mockserver.state.redis.tables import Tables
from mockserver.state.seed import Seed


class RedisState(State):
    """Everything the mock remembers, in Redis under ``settings.state_prefix``."""

    backend = "redis"

    def __init__(self, settings: Settings, seeds: Mapping[str, Seed], clock: Clock) -> None:
        self.clock = clock
        self.instance = 0
        self.errors = 0  # counted by the request path, which meets them
        self._seeds = dict(seeds)
        self._conn = Conn(settings.state)
        self._names = names = KeyNames(settings.state_prefix)
        self._scripts = scripts = Scripts(self._conn.redis)
        self._seed_ops = orjson.dumps(seed_ops(names, self._seeds))
        self._ledger = Ledger(self._conn, names, scripts, settings.hold_seconds)
        self._sweeper = HoldSweeper(self._ledger.sweep_holds, sweep_interval(settings.hold_seconds))
        self._tables = Tables(self._conn, names, scripts, clock, settings, len(self._seeds))
        self._queues = Queues(self._conn, names, scripts, clock, self._tables)
        self._queues.providers = tuple(self._seeds)
        self._journal = JournalStore(
            self._conn, names, scripts, settings.journal_max_entries, settings.journal_max_bytes
        )
        self._notices = Notices(self._conn.redis, names.notices, self._on_notice, self._resync)
        self._offset_raw: bytes | str = b"0"
        self._resets: bytes | None = None
        """The prefix's reset count last seen (None before ``open``)."""
        self._fault_prefix = names.fault_prefix()
        self._admit = ScriptBatch(self._conn.redis, scripts.admit)

    # -- lifecycle ------------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, take an instance number, seed an empty prefix or join it, listen for notices."""
        try:
            await self._conn.redis.ping()
        except Exception as exc:  # any client failure: one line naming the server, never a traceback
            raise StateError(
                f"cannot reach the state backend Redis at {self._conn.name}: {describe(exc)}"
            ) from None
        redis, names = self._conn.redis, self._names
        self.instance = int(await self._conn.call(redis.incr(names.instance)))
        self._journal.instance = self.instance
        self._queues.instance = str(self.instance)
        await self._resync()  # seeds an empty prefix
        await self._notices.start()
        self._sweeper.start()

    async def close(self) -> None:
        """Stop sweeping holds, write the buffered journal, stop listening, disconnect."""
        await self._sweeper.stop()
        await self._journal.close()
        await self._notices.stop()
        await self._conn.close()

    async def _seed(self, mode: str) -> int:
        names = self._names
        return int(
            await self._conn.call(
                self._scripts.seed(
                    keys=[names.seeded],
                    args=[
                        mode,
                        names.pattern,
                        self._seed_ops,
                        names.notices,
                        f"reset:{self.instance}",
                        names.resets,
                        names.instance,
                        names.secret,
                    ],
                )
            )
        )

    async def reset(self) -> None:
        """Back to the seed for every instance (one script: delete the prefix's keys, seed; notice)."""
        with contextlib.suppress(StateError):
            await self._journal.flush()  # this instance's rows belong before the reset
        self._journal.drop_buffer()
        self._resets = str(await self._seed("reset")).encode()
        self._reset_locally()

    async def health(self) -> dict[str, Any]:
        """``ok`` when Redis answers a PING within the timeout, ``down`` otherwise."""
        found: dict[str, Any] = {"backend": self.backend, "url": self._conn.name, "instance": self.instance}
        try:
            async with asyncio.timeout(SOCKET_TIMEOUT + 0.5):
                await self._conn.redis.ping()
        except Exception as exc:  # whatever the client raised, health answers rather than fails
            return {**found, "status": "down", "error": describe(exc)}
        return {**found, "status": "ok"}

    def changed(self, topic: Topic) -> asyncio.Event:
        """Set when any instance changes ``topic``."""
        return self._notices.events[topic]

    async def shared_secret(self, proposed: str) -> str:
        """The first instance's secret (kept across resets: running instances sign with it)."""
        kept = await self._conn.call(self._conn.redis.set(self._names.secret, proposed, nx=True, get=True))
        return proposed if kept is None else text(kept)

    def seed(self, provider: str) -> Seed:
        """A provider's seed."""
        return self._seeds[provider]

    # -- notices and the clock ------------------------------------------------------------------------------

    def _on_notice(self, topic: str, value: str) -> bool:
        """Keep this instance's parts up to date; False for a notice its waiters must not see."""
        if topic == "keys":
            self._ledger.cache.clear()
        elif topic == "clock":
            self._apply_offset(value.encode())
        elif topic == "reset":
            instance, _, count = value.partition(":")
            self._resets = count.encode()
            if instance == str(self.instance):
                return False  # its own reset: it reset itself (and its owner) already
            self._reset_locally()
        return True

    def _reset_locally(self) -> None:
        """What this instance keeps of the shared state, back to the seed's (after any instance's reset)."""
        self._journal.drop_buffer()
        self._ledger.cache.clear()
        self._apply_offset(b"0", backwards=True)

    async def _resync(self) -> None:
        """Seed the prefix if it is empty and re-read what notices keep up to date: at open, and after a
        lost subscription. A reset made meanwhile is found by its count, a prefix found empty (a Redis
        without persistence restarted) is seeded again; either is handled as a reset's notice would be."""
        self._ledger.cache.clear()
        seeded = await self._seed("join")
        names = self._names
        raw, resets = await self._conn.call(self._conn.redis.mget([names.clock, names.resets]))
        resets = resets or b"0"
        if self._resets is not None and (seeded or resets != self._resets):
            self._reset_locally()
            self._notices.events["reset"].set()
        self._resets = resets
        self._apply_offset(raw or b"0", backwards=True)

    def _apply_offset(self, raw: bytes | str, *, backwards: bool = False) -> None:
        """Take the shared offset. It only grows between resets, so a smaller one is a stale reply or
        notice (concurrent calls) and is ignored, unless ``backwards`` (a reset, or a fresh read)."""
        if raw == self._offset_raw:
            return
        offset = float(raw)
        if offset > self.clock.offset or backwards:
            self._offset_raw = raw
            self.clock.set_offset(offset)  # exactly the shared one (wakes sleepers when it changed)

    async def advance_clock(self, seconds: float) -> float:
        """Move the shared clock for every instance."""
        if not seconds >= 0:
            raise ValueError("the clock only moves forward")
        names = self._names
        offset = await self._conn.call(
            self._scripts.advance(keys=[names.clock], args=[repr(float(seconds)), names.notices])
        )
        self._apply_offset(offset)
        return self.clock.now()

    # -- request admission ----------------------------------------------------------------------------------

    async def admit(
        self, provider: str, operation_id: str | None, bucket: str | None, limit: int
    ) -> Admission:
        """One script call: the rate window, the first matching fault, the shared clock offset (the calls
        of one loop turn share a round trip: ``batch``)."""
        names = self._names
        reply = await self._conn.call(
            self._admit(
                keys=[names.clock, names.faults, names.rate(provider, bucket) if bucket else names.clock],
                args=[
                    repr(time.time()),
                    str(limit),
                    "0" if bucket is None else "1",
                    provider,
                    operation_id or "",
                    self._fault_prefix,
                ],
            )
        )
        if reply[0] != self._offset_raw:
            self._apply_offset(reply[0])
        rate = None
        if reply[1]:
            used = int(reply[2])
            rate = RateState(
                limit, limit - used if used < limit else 0, int(reply[1]) + WINDOW_SECONDS, reply[3] == b"1"
            )
        fault = None
        if reply[4]:
            fault = FaultRecord.from_json(orjson.loads(reply[4]))
            fault.id = int(reply[6])
            fault.remaining = int(reply[5]) if reply[5] else None
        return Admission(rate, fault)

    async def add_fault(self, fault: FaultRecord) -> FaultRecord:
        """Register a fault under a new id."""
        names = self._names
        fault_id = await self._conn.call(
            self._scripts.add_fault(
                keys=[names.fault_ids, names.faults],
                args=[
                    self._fault_prefix,
                    fault.provider or "",
                    fault.operation_id or "",
                    "" if fault.remaining is None else str(fault.remaining),
                    dumps(fault.to_json()),
                    names.notices,
                ],
            )
        )
        return replace(fault, id=int(fault_id))

    async def faults(self) -> list[FaultRecord]:
        """The active faults, first match first."""
        reply = await self._conn.call(
            self._scripts.list_faults(keys=[self._names.faults], args=[self._fault_prefix])
        )
        found = []
        for i in range(0, len(reply), 3):
            fault = FaultRecord.from_json(orjson.loads(reply[i + 1]))
            fault.id = int(reply[i])
            fault.remaining = int(reply[i + 2]) if reply[i + 2] else None
            found.append(fault)
        return found

    async def clear_faults(self) -> None:
        """Remove every fault."""
        names = self._names
        await self._conn.call(
            self._scripts.clear_faults(keys=[names.faults], args=[self._fault_prefix, names.notices])
        )

    # -- keys, accounts, money: ``ledger`` ------------------------------------------------------------------

    async def find_key(self, provider: str, secret: str) -> KeyRecord | None:
        """The key with this secret (cached per instance)."""
        return await self._ledger.find_key(provider, secret)

    def cached_key(self, provider: str, secret: str) -> KeyRecord | Miss | None:
        """A key this instance has seen (its cache: no round trip), else ``MISS``. An unknown secret is
        never cached (a key added on another instance must be found), so only a known one answers here."""
        return self._ledger.cache.get((provider, secret), MISS)

    async def key_by_id(self, provider: str, key_id: str) -> KeyRecord | None:
        """A key by its handle."""
        return await self._ledger.key_by_id(provider, key_id)

    async def keys(self, provider: str) -> list[KeyRecord]:
        """Every key of a provider."""
        return await self._ledger.keys(provider)

    async def add_key(self, provider: str, key: KeyRecord) -> bool:
        """Store a new key."""
        return await self._ledger.add_key(provider, key)

    async def update_key(
        self,
        provider: str,
        key_id: str,
        *,
        spend_limit_cents: int | Keep | None = KEEP,
        revoked: bool | Keep = KEEP,
    ) -> KeyRecord | None:
        """Change a key's spend limit and/or revoke it."""
        return await self._ledger.update_key(provider, key_id, spend_limit_cents, revoked)

    async def accounts(self, provider: str) -> list[AccountRecord]:
        """Every account of a provider."""
        return await self._ledger.accounts(provider)

    async def account(self, provider: str, account_id: str) -> AccountRecord | None:
        """One account."""
        return await self._ledger.account(provider, account_id)

    async def wallet(self, provider: str, account_id: str, key_id: str | None) -> WalletView:
        """The account's and key's money now."""
        return await self._ledger.wallet(provider, account_id, key_id)

    async def set_wallet(self, provider: str, account_id: str, cents: int | None) -> WalletView | None:
        """Set a balance."""
        return await self._ledger.set_wallet(provider, account_id, cents)

    async def reserve(self, hold: HoldRecord) -> Refusal | None:
        """Check and hold, atomically."""
        return await self._ledger.reserve(hold)

    async def settle(self, hold: HoldRecord, microcents: int) -> int | None:
        """Charge with the carry and end the hold."""
        return await self._ledger.settle(hold, microcents)

    async def release(self, hold: HoldRecord) -> None:
        """Give a hold back."""
        await self._ledger.release(hold)

    async def keep_hold(self, hold: HoldRecord) -> bool:
        """Take an open hold off its deadline (it covers a job now)."""
        return await self._ledger.keep_hold(hold)

    async def sweep_holds(self, limit: int) -> int:
        """Give back open holds past their deadline."""
        return await self._ledger.sweep_holds(limit)

    # -- resources and files: ``tables`` --------------------------------------------------------------------

    async def put(self, provider: str, resource: Resource) -> None:
        """Store a resource."""
        await self._tables.put(provider, resource)

    async def get(self, provider: str, kind: type[R], resource_id: str) -> R | None:
        """A live resource."""
        return await self._tables.get(provider, kind, resource_id)

    async def resources(self, provider: str, kind: type[R]) -> list[R]:
        """Every live resource of a kind."""
        return await self._tables.resources(provider, kind)

    async def counts(self) -> dict[str, dict[str, int]]:
        """Resources kept, by provider then kind."""
        return await self._tables.counts()

    async def put_file(self, record: FileRecord, data: bytes | None) -> None:
        """Store a file and its bytes."""
        await self._tables.put_file(record, data)

    async def get_file(self, file_id: str) -> tuple[FileRecord, bytes | None] | None:
        """A file and its bytes."""
        return await self._tables.get_file(file_id)

    async def put_blob(self, file_id: str, data: bytes) -> None:
        """Keep a drawn file's bytes."""
        await self._tables.put_blob(file_id, data)

    # -- jobs and deliveries: ``queues`` --------------------------------------------------------------------

    async def put_job(self, job: JobRecord) -> None:
        """Store a job."""
        await self._queues.put_job(job)

    async def get_job(self, provider: str, job_id: str) -> JobRecord | None:
        """A job by id."""
        return await self._queues.get_job(provider, job_id)

    async def jobs(self) -> list[JobRecord]:
        """Every job kept."""
        return await self._queues.jobs()

    async def claim_due_jobs(self, now: float, lease_seconds: float, limit: int) -> list[JobRecord]:
        """Lease due jobs to this instance."""
        return await self._queues.claim_due_jobs(now, lease_seconds, limit)

    async def claim_job(self, provider: str, job_id: str, lease_seconds: float) -> bool:
        """Lease one job to this instance."""
        return await self._queues.claim_job(provider, job_id, lease_seconds)

    async def finish_job(self, job: JobRecord) -> None:
        """Store a finished job, drop its lease."""
        await self._queues.finish_job(job)

    async def next_job_due(self) -> float | None:
        """When the earliest unfinished job is due."""
        return await self._queues.next_job_due()

    async def put_delivery(self, delivery: DeliveryRecord) -> None:
        """Store a delivery."""
        await self._queues.put_delivery(delivery)

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        """A delivery by id."""
        return await self._queues.get_delivery(delivery_id)

    async def deliveries(self, provider: str | None = None) -> list[DeliveryRecord]:
        """Deliveries kept."""
        return await self._queues.deliveries(provider)

    async def claim_delivery(self, now: float, lease_seconds: float) -> DeliveryRecord | None:
        """Lease the earliest due delivery to this instance."""
        return await self._queues.claim_delivery(now, lease_seconds)

    async def next_delivery_due(self) -> float | None:
        """When the earliest attempt is due."""
        return await self._queues.next_delivery_due()

    # -- the journal: ``journal`` ---------------------------------------------------------------------------

    def record(self, row: JournalRow) -> int:
        """Buffer one answered request; its id."""
        return self._journal.record(row)

    async def journal_page(
        self, provider: str | None, limit: int, *, after: int | None = None, before: int | None = None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Entries oldest first and the next page's cursor."""
        return await self._journal.page(provider, limit, after, before)

    async def journal_size(self) -> tuple[int, int]:
        """Entries kept and their approximate size in bytes."""
        return await self._journal.size()

    async def add_violation(self, violation: dict[str, Any]) -> None:
        """Remember a violation."""
        await self._journal.add_violation(violation)

    async def violations(self) -> list[dict[str, Any]]:
        """The violations kept."""
        return await self._journal.violations()

    async def clear_journal(self) -> None:
        """Forget every entry and violation."""
        await self._journal.clear()
