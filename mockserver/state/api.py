"""The state interface: what the mock may ask of its memory, whichever backend keeps it.

Every method that touches shared state is a coroutine (the Redis backend makes a round trip; the memory
backend answers without yielding). What is atomic is atomic across every instance sharing the backend:
``reserve``/``settle``/``release`` (the wallet invariant: a balance changes by exactly the sum of the final
charges and never goes negative), ``admit`` (rate-limit counting and fault consumption), ``claim_due_jobs``/
``claim_job`` and ``claim_delivery`` (each due job is finished, each delivery attempt made, by one instance
holding a lease; after the lease runs out another instance may take it over).

The clock: ``clock`` is this process's ``core.clock.Clock`` (``now()`` stays synchronous); the backend keeps
its offset equal to the shared one: ``advance_clock`` on any instance moves every instance (the Redis backend
refreshes the offset on every round trip it makes anyway and hears of advances through a notice).

Errors: a backend that cannot reach its server raises ``errors.StateError`` (never a client library's
exception): the request path answers it as the provider's 503.

Notices: ``changed(topic)`` is an ``asyncio.Event`` set when any instance changes that topic (``jobs``,
``deliveries``, ``clock``, ``reset``); waiters (the job loop, the webhook dispatcher) wait on it with a
timeout and re-read, so a lost notice delays and never loses work.
"""

from __future__ import annotations

import abc
import asyncio
import enum
from collections.abc import Iterable, Mapping
from typing import Any, Literal, NamedTuple

from mockserver.core.clock import Clock
from mockserver.core.ratelimit import RateState
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

Topic = Literal["jobs", "deliveries", "clock", "reset", "keys", "faults"]
JournalRow = tuple[float, str, str, str, "str | None", int, float]
"""``(time, provider, method, path, operation_id, status, latency_ms)``: one answered request."""


class Keep(enum.Enum):
    """The value of a field ``update_key`` leaves as it is."""

    KEEP = "keep"


KEEP = Keep.KEEP


class Miss(enum.Enum):
    """What ``cached_key`` answers when this instance cannot tell without asking the backend."""

    MISS = "miss"


MISS = Miss.MISS


class Admission(NamedTuple):
    """What counting one request decided: its rate-limit window (None when not counted) and the fault
    injected into it (None when none matched). A named tuple: one is made per request, and a frozen
    dataclass costs several times as much to make."""

    rate: RateState | None
    fault: FaultRecord | None


class State(abc.ABC):
    """Everything the mock remembers; one instance per process, shared by every provider."""

    backend: str
    """``memory`` or ``redis`` (shown by health and metrics only: nothing branches on it)."""
    clock: Clock
    errors: int
    """``StateError``s met by requests since start (the metrics' state errors)."""
    instance: int
    """A number unique among the instances sharing the backend, set by ``open`` (0 for memory): id
    factories mix it in, so two instances started with the same seed never hand out the same id."""
    lossless_notices: bool = False
    """True when ``changed`` events never miss a change (one process, no wire): the background loops then
    wake on those events and on due times only, and re-read the state once a lease (what runs out without
    an event) instead of every second. A shared backend's notices can be lost: they keep the short
    re-check."""

    # -- lifecycle ------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, seed an empty prefix (the first instance) or join it, start listening for notices."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush what is buffered (the journal) and disconnect."""

    @abc.abstractmethod
    async def reset(self) -> None:
        """Back to the seed for every instance: keys, wallets, resources, jobs, deliveries, journal,
        faults, windows and the clock offset (notice ``reset``). The caller resets its own local parts
        at once (``Mock.reset``) and clears ``changed("reset")`` right after this returns: a backend must
        not raise the notice on the calling instance later than that (its watcher would reset the id
        counters a second time, after new requests)."""

    @abc.abstractmethod
    async def health(self) -> dict[str, Any]:
        """``{"backend": ..., "status": "ok" | "down", ...}`` (``core.health.HealthCheck``)."""

    @abc.abstractmethod
    def changed(self, topic: Topic) -> asyncio.Event:
        """An event set when any instance changes ``topic``; the waiter clears it before re-reading."""

    @abc.abstractmethod
    async def shared_secret(self, proposed: str) -> str:
        """The signing secret every instance uses: the first instance's ``proposed`` one is kept (until
        reset), later instances get it back instead of their own (``core.signing``)."""

    # -- the seed (read-only, the same on every instance) ---------------------------------------------

    @abc.abstractmethod
    def seed(self, provider: str) -> Seed:
        """A provider's seed: models, extra seed data, default rate limit (never changes at runtime)."""

    # -- keys and accounts ----------------------------------------------------------------------------

    @abc.abstractmethod
    async def find_key(self, provider: str, secret: str) -> KeyRecord | None:
        """The key with this secret (revoked ones included: the caller decides), or None. Hot path."""

    def cached_key(self, provider: str, secret: str) -> KeyRecord | Miss | None:
        """``find_key`` answered without a round trip when this instance can (None: no such key), else
        ``MISS`` (then ``await find_key``). Synchronous: the request path asks it first, so a backend that
        holds its keys at hand (memory; a warm key cache) costs no coroutine. The default cannot tell."""
        return MISS

    @abc.abstractmethod
    async def key_by_id(self, provider: str, key_id: str) -> KeyRecord | None:
        """A key by its non-secret handle."""

    @abc.abstractmethod
    async def keys(self, provider: str) -> list[KeyRecord]:
        """Every key of a provider, seeded ones first in seed order, then created ones by creation."""

    @abc.abstractmethod
    async def add_key(self, provider: str, key: KeyRecord) -> bool:
        """Store a new key (its account created if missing); False when the secret is taken."""

    @abc.abstractmethod
    async def update_key(
        self,
        provider: str,
        key_id: str,
        *,
        spend_limit_cents: int | Keep | None = KEEP,
        revoked: bool | Keep = KEEP,
    ) -> KeyRecord | None:
        """Change a key's spend limit (None: no limit) and/or revoke it; the updated key, or None when
        the key is unknown."""

    @abc.abstractmethod
    async def accounts(self, provider: str) -> list[AccountRecord]:
        """Every account of a provider."""

    @abc.abstractmethod
    async def account(self, provider: str, account_id: str) -> AccountRecord | None:
        """One account, or None."""

    # -- money: atomic across instances -----------------------------------------------------------------

    @abc.abstractmethod
    async def wallet(self, provider: str, account_id: str, key_id: str | None) -> WalletView:
        """The account's (and key's) money now; an unknown account reads as one without a wallet."""

    @abc.abstractmethod
    async def set_wallet(self, provider: str, account_id: str, cents: int | None) -> WalletView | None:
        """Set a balance (None: no wallet); None when the account is unknown."""

    @abc.abstractmethod
    async def reserve(self, hold: HoldRecord) -> Refusal | None:
        """Hold ``hold.cents`` on its account and key if both can cover them (balance minus holds; key
        limit minus spent minus held), atomically; None when held, else why not (nothing held). The hold
        gets a real-time deadline (``Settings.hold_seconds``), past which ``sweep_holds`` gives it back."""

    @abc.abstractmethod
    async def settle(self, hold: HoldRecord, microcents: int) -> int | None:
        """Charge ``microcents`` (at most the hold's) with the account's carry, add the settled cents to
        the key's spent, release the hold; the settled cents, or None when the hold was already settled or
        released (a second settle charges nothing)."""

    @abc.abstractmethod
    async def release(self, hold: HoldRecord) -> None:
        """Give a hold back, charging nothing (a no-op once settled or released)."""

    @abc.abstractmethod
    async def keep_hold(self, hold: HoldRecord) -> bool:
        """Take an open hold off its deadline: it covers a job now, which settles or releases it whenever
        it finishes (on any instance); False when the hold already ended (nothing changed)."""

    @abc.abstractmethod
    async def sweep_holds(self, limit: int) -> int:
        """Give back up to ``limit`` open holds past their real-time deadline (``Settings.hold_seconds``
        after ``reserve``; never a kept one), each atomically as ``release`` does; how many. Run by the
        state's own sweeper (``state.holds``) between ``open`` and ``close``."""

    # -- request admission ------------------------------------------------------------------------------

    @abc.abstractmethod
    async def admit(
        self, provider: str, operation_id: str | None, bucket: str | None, limit: int
    ) -> Admission:
        """Count one request in ``bucket``'s one-minute window (``core.ratelimit``; not counted when
        ``bucket`` is None or the window is full) and, unless the window is full (the request is refused),
        take the first matching fault (``operation_id`` None: route errors take none). Hot path: one round
        trip at most."""

    def admit_now(
        self, provider: str, operation_id: str | None, bucket: str | None, limit: int
    ) -> Admission | None:
        """``admit`` done at once when this instance can (no round trip: memory), else None (then ``await
        admit``). Synchronous, so the request path costs no coroutine where nothing is remote. The default
        cannot."""
        return None

    @abc.abstractmethod
    async def add_fault(self, fault: FaultRecord) -> FaultRecord:
        """Register a fault (its ``id`` is assigned here; the one passed in is ignored)."""

    @abc.abstractmethod
    async def faults(self) -> list[FaultRecord]:
        """The active faults, first match first."""

    @abc.abstractmethod
    async def clear_faults(self) -> None:
        """Remove every fault."""

    # -- the clock ----------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def advance_clock(self, seconds: float) -> float:
        """Move the shared clock forward by ``seconds`` (>= 0) for every instance; the new time."""

    # -- resources requests create (bounded: ``--resource-ttl``, ``--max-resources`` per kind) ------------

    @abc.abstractmethod
    async def put(self, provider: str, resource: Resource) -> None:
        """Store (or replace) a resource under its kind and id; the oldest past the TTL or cap go."""

    @abc.abstractmethod
    async def get(self, provider: str, kind: type[R], resource_id: str) -> R | None:
        """A live resource, or None (also past its TTL)."""

    @abc.abstractmethod
    async def resources(self, provider: str, kind: type[R]) -> list[R]:
        """Every live resource of a kind, oldest first (the control API's listing)."""

    @abc.abstractmethod
    async def counts(self) -> dict[str, dict[str, int]]:
        """Resources kept, by provider then kind (``/_mock/resources``, metrics)."""

    # -- files: records and bytes ----------------------------------------------------------------------

    @abc.abstractmethod
    async def put_file(self, record: FileRecord, data: bytes | None) -> None:
        """Store a file record and, when given, its bytes (bounded as resources are)."""

    @abc.abstractmethod
    async def get_file(self, file_id: str) -> tuple[FileRecord, bytes | None] | None:
        """A file and its bytes (None while only its recipe is stored), or None when unknown."""

    @abc.abstractmethod
    async def put_blob(self, file_id: str, data: bytes) -> None:
        """Keep a drawn file's bytes (its record already stored), so it is drawn once."""

    # -- jobs --------------------------------------------------------------------------------------------

    @abc.abstractmethod
    async def put_job(self, job: JobRecord) -> None:
        """Store (or replace) a job; an unfinished one is due at ``job.done_at`` (notice ``jobs``)."""

    @abc.abstractmethod
    async def get_job(self, provider: str, job_id: str) -> JobRecord | None:
        """A job by id, or None (also past its retention)."""

    @abc.abstractmethod
    async def jobs(self) -> list[JobRecord]:
        """Every job kept, oldest first."""

    @abc.abstractmethod
    async def claim_due_jobs(self, now: float, lease_seconds: float, limit: int) -> list[JobRecord]:
        """Up to ``limit`` unfinished jobs due by ``now`` that nobody holds a live lease on, leased to this
        instance for ``lease_seconds`` (the caller runs each one's finisher, then ``finish_job``)."""

    @abc.abstractmethod
    async def claim_job(self, provider: str, job_id: str, lease_seconds: float) -> bool:
        """Lease one due, unfinished job to this instance (a poller finishing it early); False when it is
        finished or leased elsewhere."""

    @abc.abstractmethod
    async def finish_job(self, job: JobRecord) -> None:
        """Store a job whose finisher ran (``job.finished`` True, its data updated) and drop its lease."""

    @abc.abstractmethod
    async def next_job_due(self) -> float | None:
        """When the earliest unfinished job is due, or None."""

    # -- webhook deliveries --------------------------------------------------------------------------------

    @abc.abstractmethod
    async def put_delivery(self, delivery: DeliveryRecord) -> None:
        """Store (or replace) a delivery; when ``next_attempt_at`` is set it is due then (notice
        ``deliveries``) and any lease on it ends."""

    @abc.abstractmethod
    async def get_delivery(self, delivery_id: str) -> DeliveryRecord | None:
        """A delivery by id, or None."""

    @abc.abstractmethod
    async def deliveries(self, provider: str | None = None) -> list[DeliveryRecord]:
        """Deliveries kept (capped), oldest first, optionally of one provider."""

    @abc.abstractmethod
    async def claim_delivery(self, now: float, lease_seconds: float) -> DeliveryRecord | None:
        """The earliest delivery due by ``now`` nobody holds a live lease on, leased to this instance (the
        caller makes one attempt and puts the delivery back), or None."""

    @abc.abstractmethod
    async def next_delivery_due(self) -> float | None:
        """When the earliest scheduled attempt is due, or None."""

    # -- the journal (capped as today) ------------------------------------------------------------------

    @abc.abstractmethod
    def record(self, row: JournalRow) -> int:
        """Append one answered request; its journal id. Synchronous on purpose (hot path): the Redis
        backend buffers rows and writes them in batches, flushed before any read of the journal."""

    @abc.abstractmethod
    async def journal_page(
        self, provider: str | None, limit: int, *, after: int | None = None, before: int | None = None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Entries as dicts, oldest first, and the next page's cursor (see ``core.journal.Journal.page``)."""

    @abc.abstractmethod
    async def journal_size(self) -> tuple[int, int]:
        """Entries kept and their approximate size in bytes (the metrics' journal gauges)."""

    @abc.abstractmethod
    async def add_violation(self, violation: dict[str, Any]) -> None:
        """Remember a response that broke the spec (capped at ``core.journal.VIOLATIONS``)."""

    @abc.abstractmethod
    async def violations(self) -> list[dict[str, Any]]:
        """The violations kept, oldest first."""

    @abc.abstractmethod
    async def clear_journal(self) -> None:
        """Forget every entry and violation."""


class ProviderState:
    """One provider's view of ``State``: the seed's data at hand and the state's calls with the provider
    filled in (what a provider handler gets as ``call.state``)."""

    __slots__ = ("_state", "extra", "models", "provider_id", "seed")

    def __init__(self, state: State, provider_id: str) -> None:
        self._state = state
        self.provider_id = provider_id
        self.seed = state.seed(provider_id)
        # Plain attributes, not properties over the seed (it never changes): handlers read them per request.
        self.models: Mapping[str, dict[str, Any]] = self.seed.models
        """The seed's models by id."""
        self.extra: Mapping[str, Any] = self.seed.extra
        """The seed's other sections (tools, organizations...)."""

    async def put(self, resource: Resource) -> None:
        """Store a resource of this provider."""
        await self._state.put(self.provider_id, resource)

    async def get(self, kind: type[R], resource_id: str) -> R | None:
        """A live resource of this provider, or None."""
        return await self._state.get(self.provider_id, kind, resource_id)

    async def account(self, account_id: str) -> AccountRecord | None:
        """One of this provider's accounts."""
        return await self._state.account(self.provider_id, account_id)

    async def keys(self) -> list[KeyRecord]:
        """This provider's keys."""
        return await self._state.keys(self.provider_id)


def secrets_of(keys: Iterable[KeyRecord]) -> list[str]:
    """The secret values of keys (for log and report redaction)."""
    return [key.key for key in keys]
