"""``MemoryState``, the memory backend (its jobs and deliveries: ``queues``)."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, cast

from mockserver.core.clock import Clock
from mockserver.core.ratelimit import WINDOW_SECONDS, RateState
from mockserver.core.retention import FILES_PER_RESOURCE, ResourceTable, Retention
from mockserver.settings import Settings
from mockserver.state.api import KEEP, Admission, JournalRow, Keep, State, Topic
from mockserver.state.holds import HoldSweeper, sweep_interval
from mockserver.state.memory.journal import JournalRing
from mockserver.state.memory.queues import DeliveryQueue, JobQueue
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
from mockserver.state.seed import Seed

MICROCENTS_PER_CENT = 1_000_000
_NOTHING = Admission(None, None)
_admission = tuple.__new__
"""``Admission(rate, fault)`` without the named tuple's Python-level ``__new__`` (a frame a request)."""
"""What ``admit`` answers for a request neither counted nor faulted (made once: this is the hot path)."""


@dataclass(slots=True)
class _Ledger:
    """An account's money (``wallet_cents`` None: no wallet) or a key's (``spent``, ``held``)."""

    wallet_cents: int | None = None
    held: int = 0
    carry: int = 0
    spent: int = 0


class MemoryState(State):
    """Every provider's state in this process; ``reset`` restores the seed exactly."""

    backend = "memory"
    lossless_notices = True  # one process: every change sets its event (``_notify``)

    def __init__(self, settings: Settings, seeds: Mapping[str, Seed], clock: Clock) -> None:
        self.clock = clock
        self.errors = 0
        self.instance = 0
        self._seeds = dict(seeds)
        self._retention = Retention(clock, settings.resource_ttl, settings.max_resources)
        # Files are one table for every provider, and a generation may have two (output and thumbnail).
        self._files_retention = replace(
            self._retention, cap=FILES_PER_RESOURCE * settings.max_resources * max(1, len(seeds))
        )
        self._events: dict[Topic, asyncio.Event] = {}
        self._secret: str | None = None
        self._fault_ids = itertools.count(1)
        self._due_order = itertools.count()
        """Ties between equal due times go to the first scheduled."""
        self._journal = JournalRing(settings.journal_max_entries, settings.journal_max_bytes)
        self._hold_seconds = settings.hold_seconds
        self._sweeper = HoldSweeper(self.sweep_holds, sweep_interval(settings.hold_seconds))
        # The ring's own method, bound once: ``record`` runs for every request, a delegating call costs.
        self.record = self._journal.record  # type: ignore[method-assign]
        self._load()

    def _load(self) -> None:
        """Everything back to the seed (the journal, events and the clock apart)."""
        self._keys: dict[str, dict[str, KeyRecord]] = {}
        """By provider, then secret: seeded keys first, in seed order, then created ones."""
        self._key_ids: dict[str, dict[str, KeyRecord]] = {}
        self._accounts: dict[str, dict[str, AccountRecord]] = {}
        self._ledgers: dict[tuple[str, str], _Ledger] = {}
        """By (provider, account id) and (provider, key id): the two never collide (``key_`` + hex)."""
        self._holds: dict[str, HoldRecord] = {}
        self._deadlines: dict[str, float] = {}
        """Open holds not kept, by id: their deadline (``time.monotonic``). Every hold gets the same
        lifetime, so insertion order is deadline order: the sweep stops at the first one not due."""
        for provider_id, seed in self._seeds.items():
            keys = self._keys[provider_id] = {}
            by_id = self._key_ids[provider_id] = {}
            accounts = self._accounts[provider_id] = {}
            for account in seed.accounts:
                accounts[account.id] = AccountRecord(account.id, _copy(account.extra))
                self._ledgers[provider_id, account.id] = _Ledger(seed.wallets.get(account.id))
            for seeded in seed.keys:
                key = replace(seeded)
                keys[key.key] = by_id[key.key_id] = key
                self._ledgers[provider_id, key.key_id] = _Ledger()
        self._windows: dict[tuple[str, str], int] = {}
        """Requests counted by (provider, bucket) in the minute ``_window`` (older minutes are dropped)."""
        self._window = -1
        self._faults: list[FaultRecord] = []
        self._tables: dict[str, dict[str, ResourceTable[str, Resource]]] = {p: {} for p in self._seeds}
        self._files: ResourceTable[str, list[Any]] = ResourceTable(self._files_retention)
        """File id -> ``[FileRecord, bytes or None]`` (a drawn file's bytes fill in the second place)."""
        self._jobs = JobQueue(self._retention, self._due_order)
        self._deliveries = DeliveryQueue(self._due_order)

    def _notify(self, topic: Topic) -> None:
        event = self._events.get(topic)
        if event is not None:
            event.set()

    # -- lifecycle ------------------------------------------------------------------------------------

    async def open(self) -> None:
        """Nothing to connect to (the seed was loaded when the state was made): start the hold sweeper."""
        self._sweeper.start()

    async def close(self) -> None:
        """Nothing to flush: stop the hold sweeper."""
        await self._sweeper.stop()

    async def reset(self) -> None:
        """Back to the seed: keys, wallets, resources, jobs, deliveries, journal, faults, windows, clock."""
        self._load()
        self._journal.clear()
        self._secret = None
        self.clock.reset()
        topics: tuple[Topic, ...] = ("reset", "jobs", "deliveries", "clock", "keys", "faults")
        for topic in topics:
            self._notify(topic)

    async def health(self) -> dict[str, Any]:
        """Memory is always up."""
        return {"backend": self.backend, "status": "ok"}

    def changed(self, topic: Topic) -> asyncio.Event:
        """The event set when ``topic`` changes."""
        event = self._events.get(topic)
        if event is None:
            event = self._events[topic] = asyncio.Event()
        return event

    async def shared_secret(self, proposed: str) -> str:
        """The first secret proposed (one process: its own)."""
        if self._secret is None:
            self._secret = proposed
        return self._secret

    def seed(self, provider: str) -> Seed:
        """A provider's seed."""
        return self._seeds[provider]

    # -- keys and accounts ----------------------------------------------------------------------------

    async def find_key(self, provider: str, secret: str) -> KeyRecord | None:
        """The key with this secret, or None."""
        return self._keys[provider].get(secret)

    def cached_key(self, provider: str, secret: str) -> KeyRecord | None:
        """Every key is at hand: the request path's lookup is one dict read, no coroutine."""
        return self._keys[provider].get(secret)

    async def key_by_id(self, provider: str, key_id: str) -> KeyRecord | None:
        """A key by its handle."""
        return self._key_ids.get(provider, {}).get(key_id)

    async def keys(self, provider: str) -> list[KeyRecord]:
        """Every key of a provider, seeded first."""
        return list(self._keys.get(provider, {}).values())

    async def add_key(self, provider: str, key: KeyRecord) -> bool:
        """Store a new key (and its account when missing); False when the secret is taken."""
        keys = self._keys[provider]
        if key.key in keys or key.key_id in self._key_ids[provider]:
            return False
        keys[key.key] = self._key_ids[provider][key.key_id] = key
        self._ledgers[provider, key.key_id] = _Ledger()
        if key.account not in self._accounts[provider]:
            self._accounts[provider][key.account] = AccountRecord(key.account)
            self._ledgers[provider, key.account] = _Ledger()
        self._notify("keys")
        return True

    async def update_key(
        self,
        provider: str,
        key_id: str,
        *,
        spend_limit_cents: int | Keep | None = KEEP,
        revoked: bool | Keep = KEEP,
    ) -> KeyRecord | None:
        """A new record in place of the old one (records handed out stay as they were)."""
        key = self._key_ids.get(provider, {}).get(key_id)
        if key is None:
            return None
        changed = replace(key)
        if not isinstance(spend_limit_cents, Keep):
            changed.spend_limit_cents = spend_limit_cents
        if not isinstance(revoked, Keep):
            changed.revoked = revoked
        self._keys[provider][key.key] = self._key_ids[provider][key_id] = changed
        self._notify("keys")
        return changed

    async def accounts(self, provider: str) -> list[AccountRecord]:
        """Every account of a provider."""
        return list(self._accounts.get(provider, {}).values())

    async def account(self, provider: str, account_id: str) -> AccountRecord | None:
        """One account, or None."""
        return self._accounts.get(provider, {}).get(account_id)

    # -- money ----------------------------------------------------------------------------------------

    def _view(self, provider: str, account_id: str, key_id: str | None) -> WalletView:
        account = self._ledgers.get((provider, account_id))
        key = self._key_ids[provider].get(key_id) if key_id is not None else None
        spent = self._ledgers[provider, key.key_id] if key is not None else None
        return WalletView(
            wallet_cents=account.wallet_cents if account is not None else None,
            held_cents=account.held if account is not None else 0,
            carry_microcents=account.carry if account is not None else 0,
            key_spend_limit_cents=key.spend_limit_cents if key is not None else None,
            key_spent_cents=spent.spent if spent is not None else 0,
            key_held_cents=spent.held if spent is not None else 0,
        )

    async def wallet(self, provider: str, account_id: str, key_id: str | None) -> WalletView:
        """The account's and key's money now."""
        return self._view(provider, account_id, key_id)

    async def set_wallet(self, provider: str, account_id: str, cents: int | None) -> WalletView | None:
        """Set a balance; None for an unknown account."""
        ledger = self._ledgers.get((provider, account_id))
        if ledger is None or account_id not in self._accounts.get(provider, {}):
            return None
        ledger.wallet_cents = cents
        return self._view(provider, account_id, None)

    async def reserve(self, hold: HoldRecord) -> Refusal | None:
        """Hold the cents if the account and the key can cover them (nothing awaits in between)."""
        provider, cents = hold.provider, hold.cents
        account = self._ledgers.get((provider, hold.account))
        if account is None:  # an account without a ledger has nothing to spend
            account = self._ledgers[provider, hold.account] = _Ledger()
        if (account.wallet_cents or 0) - account.held < cents:
            return Refusal("wallet", self._view(provider, hold.account, hold.key_id))
        key = self._key_ids[provider].get(hold.key_id) if hold.key_id is not None else None
        spent = self._ledgers[provider, key.key_id] if key is not None else None
        limit = key.spend_limit_cents if key is not None else None
        if limit is not None and spent is not None and cents > max(0, limit - spent.spent - spent.held):
            return Refusal("key", self._view(provider, hold.account, hold.key_id))
        account.held += cents
        if spent is not None:
            spent.held += cents
        self._holds[hold.id] = hold
        self._deadlines[hold.id] = time.monotonic() + self._hold_seconds
        return None

    def _unhold(self, hold: HoldRecord) -> _Ledger | None:
        """Drop an open hold's cents; the key's ledger (None without a key)."""
        del self._holds[hold.id]
        self._deadlines.pop(hold.id, None)
        self._ledgers[hold.provider, hold.account].held -= hold.cents
        spent = self._ledgers.get((hold.provider, hold.key_id)) if hold.key_id is not None else None
        if spent is not None:
            spent.held -= hold.cents
        return spent

    async def settle(self, hold: HoldRecord, microcents: int) -> int | None:
        """Charge with the carry and release the hold; None when it is no longer open."""
        if hold.id not in self._holds:
            return None
        if microcents > hold.microcents:
            raise ValueError(f"a charge of {microcents} micro-cents exceeds its hold of {hold.microcents}")
        account = self._ledgers[hold.provider, hold.account]
        settled, account.carry = divmod(microcents + account.carry, MICROCENTS_PER_CENT)
        account.wallet_cents = (account.wallet_cents or 0) - settled
        spent = self._unhold(hold)
        if spent is not None:
            spent.spent += settled
        return settled

    async def release(self, hold: HoldRecord) -> None:
        """Give a hold back (a no-op once settled or released)."""
        if hold.id in self._holds:
            self._unhold(hold)

    async def keep_hold(self, hold: HoldRecord) -> bool:
        """Take an open hold off its deadline (it covers a job now); False when it already ended."""
        self._deadlines.pop(hold.id, None)
        return hold.id in self._holds

    async def sweep_holds(self, limit: int) -> int:
        """Give back up to ``limit`` open holds past their deadline (oldest first)."""
        now = time.monotonic()
        due = list(
            itertools.islice(itertools.takewhile(lambda d: d[1] <= now, self._deadlines.items()), limit)
        )
        for hold_id, _ in due:
            self._unhold(self._holds[hold_id])
        return len(due)

    # -- admission ------------------------------------------------------------------------------------

    async def admit(
        self, provider: str, operation_id: str | None, bucket: str | None, limit: int
    ) -> Admission:
        """Count the request in its fixed one-minute window and take the first matching fault."""
        return self.admit_now(provider, operation_id, bucket, limit)

    def admit_now(self, provider: str, operation_id: str | None, bucket: str | None, limit: int) -> Admission:
        """``admit``, synchronously (nothing is remote): what the request path calls."""
        rate = None
        if bucket is not None:
            window = int(self.clock.now() // WINDOW_SECONDS) * WINDOW_SECONDS  # window_start, inlined
            windows = self._windows
            if window != self._window:
                # A new minute: the old windows count nothing any more. Dropping them keeps the table to
                # the keys and addresses of one minute, however many clients came and went.
                windows.clear()
                self._window = window
            counted = provider, bucket
            used = windows.get(counted, 0)
            exceeded = used >= limit
            if not exceeded:
                used += 1
                windows[counted] = used
            rate = RateState(limit, limit - used if used < limit else 0, window + WINDOW_SECONDS, exceeded)
            if exceeded:  # the request is refused: it takes no fault
                return _admission(Admission, (rate, None))
        fault = self._take(provider, operation_id) if self._faults and operation_id is not None else None
        if rate is None and fault is None:
            return _NOTHING
        return _admission(Admission, (rate, fault))

    def _take(self, provider: str, operation_id: str) -> FaultRecord | None:
        for fault in self._faults:
            if fault.matches(provider, operation_id):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    async def add_fault(self, fault: FaultRecord) -> FaultRecord:
        """Register a fault under the next id."""
        added = replace(fault, id=next(self._fault_ids))
        self._faults.append(added)
        self._notify("faults")
        return added

    async def faults(self) -> list[FaultRecord]:
        """The active faults, first match first."""
        return list(self._faults)

    async def clear_faults(self) -> None:
        """Remove every fault."""
        self._faults.clear()
        self._notify("faults")

    # -- the clock --------------------------------------------------------------------------------------

    async def advance_clock(self, seconds: float) -> float:
        """Move this process's clock (the only one) forward."""
        now = self.clock.advance(seconds)
        self._notify("clock")
        return now

    # -- resources --------------------------------------------------------------------------------------

    def _table(self, provider: str, kind: str) -> ResourceTable[str, Resource]:
        tables = self._tables.setdefault(provider, {})
        table = tables.get(kind)
        if table is None:
            table = tables[kind] = ResourceTable(self._retention)
        return table

    async def put(self, provider: str, resource: Resource) -> None:
        """Store a resource (the oldest past the TTL or cap go)."""
        self._table(provider, resource.kind)[resource.id] = resource

    async def get(self, provider: str, kind: type[R], resource_id: str) -> R | None:
        """A live resource, or None."""
        table = self._tables.get(provider, {}).get(kind.kind)
        return cast("R | None", table.get(resource_id)) if table is not None else None

    async def resources(self, provider: str, kind: type[R]) -> list[R]:
        """Every live resource of a kind, oldest first."""
        table = self._tables.get(provider, {}).get(kind.kind)
        return cast("list[R]", table.live()) if table is not None else []

    async def counts(self) -> dict[str, dict[str, int]]:
        """Resources kept, by provider then kind."""
        return {p: {kind: len(table) for kind, table in tables.items()} for p, tables in self._tables.items()}

    # -- files ------------------------------------------------------------------------------------------

    async def put_file(self, record: FileRecord, data: bytes | None) -> None:
        """Store a file and, when given, its bytes."""
        self._files[record.id] = [record, data]

    async def get_file(self, file_id: str) -> tuple[FileRecord, bytes | None] | None:
        """A file and its bytes (None while only its recipe is stored)."""
        stored = self._files.get(file_id)
        return (stored[0], stored[1]) if stored is not None else None

    async def put_blob(self, file_id: str, data: bytes) -> None:
        """Keep a drawn file's bytes (its place in the table, hence its age, unchanged)."""
        stored = self._files.get(file_id)
        if stored is not None:
            stored[1] = data

    # -- jobs (``queues.JobQueue``) ---------------------------------------------------------------------

    async def put_job(self, job: JobRecord) -> None:
        """Store a job; an unfinished one is due at its end."""
        self._jobs.put(job)
        if not job.finished:
            self._notify("jobs")

    async def get_job(self, provider: str, job_id: str) -> JobRecord | None:
        """A job by id, or None (also past its retention)."""
        return self._jobs.get(provider, job_id)

    async def jobs(self) -> list[JobRecord]:
        """Every job kept, oldest first."""
        return self._jobs.jobs()

    async def claim_due_jobs(self, now: float, lease_seconds: float, limit: int) -> list[JobRecord]:
        """Up to ``limit`` due unfinished jobs, leased to this process."""
        return self._jobs.claim_due(now, lease_seconds, limit)

    async def claim_job(self, provider: str, job_id: str, lease_seconds: float) -> bool:
        """Lease one due, unfinished job; False when finished, not due yet or leased."""
        return self._jobs.claim(provider, job_id, self.clock.now(), lease_seconds)

    async def finish_job(self, job: JobRecord) -> None:
        """Store a finished job (where its table still keeps it) and drop its lease."""
        self._jobs.finish(job)
        self._notify("jobs")

    async def next_job_due(self) -> float | None:
        """When the earliest unfinished, unleased job is due."""
        return self._jobs.next_due()

    # -- webhook deliveries (``queues.DeliveryQueue``) ---------------------------------------------------

    async def put_delivery(self, delivery: DeliveryRecord) -> None:
        """Store a delivery (a replaced one keeps its place in the log); scheduled, it is due then."""
        if self._deliveries.put(delivery):
            self._notify("deliveries")

    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        """A delivery by id, or None."""
        return self._deliveries.get(delivery_id)

    async def deliveries(self, provider: str | None = None) -> list[DeliveryRecord]:
        """Deliveries kept, oldest first."""
        return self._deliveries.deliveries(provider)

    async def claim_delivery(self, now: float, lease_seconds: float) -> DeliveryRecord | None:
        """The earliest due delivery nobody holds, leased to this process."""
        return self._deliveries.claim(now, lease_seconds)

    async def next_delivery_due(self) -> float | None:
        """When the earliest scheduled attempt nobody holds is due."""
        return self._deliveries.next_due()

    # -- the journal (``journal.JournalRing``) ------------------------------------------------------------

    def record(self, row: JournalRow) -> int:
        """Append one answered request (paths cut to ``MAX_PATH_CHARS``); its id."""
        return self._journal.record(row)

    async def journal_size(self) -> tuple[int, int]:
        """Entries kept and their approximate size."""
        return self._journal.size()

    async def journal_page(
        self, provider: str | None, limit: int, *, after: int | None = None, before: int | None = None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Up to ``limit`` entries, oldest first, and the next page's cursor (``State.journal_page``)."""
        return self._journal.page(provider, limit, after=after, before=before)

    async def add_violation(self, violation: dict[str, Any]) -> None:
        """Remember a response that broke the spec (the oldest go past ``VIOLATIONS``)."""
        self._journal.violations.append(violation)

    async def violations(self) -> list[dict[str, Any]]:
        """The violations kept, oldest first."""
        return list(self._journal.violations)

    async def clear_journal(self) -> None:
        """Forget every entry and violation (ids go on counting)."""
        self._journal.clear()


def _copy(value: Any) -> Any:
    """A deep copy of seed data (JSON types only): what a reset hands out again must be untouched."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(v) for v in value]
    return value
