"""Typed records the state layer stores, each with an explicit serialized form (``to_json``/``from_json``).

A record's JSON form is what a backend stores (the Redis backend as one JSON string per record, via
orjson). Records handed out are read-only by contract: every change goes back through ``State`` (``put``,
``update_key``...). The memory backend hands out the objects it keeps (no copy on the request path), so a
change made without ``put`` would seem to work there and be lost on Redis: the behaviour tests run on
both backends to catch exactly that.
Resources that providers create (generations, storage objects, video outcomes) are provider-defined
classes implementing ``Resource``; the records below are the core's own.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Protocol, Self, TypeVar


class Resource(Protocol):
    """Something a request created and the state keeps by kind and id (a provider's record type)."""

    kind: ClassVar[str]
    """The table it lives in: unique across the mock (``generations``, ``storage_objects``...)."""
    id: str

    def to_json(self) -> dict[str, Any]:
        """The stored form: JSON types only."""
        ...

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """The record from its stored form."""
        ...


R = TypeVar("R", bound=Resource)


class JsonRecord:
    """``to_json``/``from_json`` for a flat dataclass of JSON-typed fields (mix into a dataclass)."""

    def to_json(self) -> dict[str, Any]:
        """The stored form: the dataclass's fields."""
        return asdict(self)  # type: ignore[call-overload, no-any-return]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Self:
        """The record from its stored form (unknown fields are ignored: newer writers may add some)."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(slots=True)
class KeyRecord(JsonRecord):
    """An API key and its limits (its spent and held cents live in the ledger: ``State.wallet``)."""

    key: str
    account: str
    key_id: str
    """A stable, non-secret handle (``key_`` + 12 hex of its SHA-256): safe to log and show."""
    name: str = "default"
    rate_limit: int | None = None
    spend_limit_cents: int | None = None
    organization: str | None = None
    revoked: bool = False
    seeded: bool = False
    """Whether the key comes from the seed file (listed by ``/_mock/providers``) or was created at runtime."""

    def redacted(self) -> str:
        """The key with all but its prefix and last four characters hidden."""
        return f"{self.key[:8]}...{self.key[-4:]}" if len(self.key) > 12 else "***"


@dataclass(slots=True)
class AccountRecord(JsonRecord):
    """An account that owns keys and, where billed, a wallet (its balance lives in the ledger)."""

    id: str
    extra: dict[str, Any] = field(default_factory=dict)
    """Seed fields the core does not interpret (names, organization data...)."""


@dataclass(frozen=True, slots=True)
class WalletView:
    """One account's and one key's money at a moment (what quotes and 402/403 details show)."""

    wallet_cents: int | None
    """The balance, or None for an account without a wallet (nothing to spend)."""
    held_cents: int
    """Cents reserved by requests in flight on the account."""
    carry_microcents: int
    """The sub-cent remainder carried to the account's next charge (1 cent = 1,000,000 micro-cents)."""
    key_spend_limit_cents: int | None = None
    key_spent_cents: int = 0
    key_held_cents: int = 0


@dataclass(frozen=True, slots=True)
class HoldRecord(JsonRecord):
    """Cents reserved on an account (and key) for one request until it settles or is released.

    Stored by the backend under ``id`` until settled or released, so a hold made by one instance can be
    settled by another (a job finished elsewhere).
    """

    id: str
    provider: str
    account: str
    key_id: str | None
    cents: int
    estimated_cents: int
    """The settled estimate when the hold was made (what the client is shown as the estimate)."""
    metered_estimate: str
    """The exact metered estimate in USD, as a decimal string."""
    microcents: int


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a reservation was refused, with the money seen at that moment (nothing was held)."""

    reason: str
    """``wallet`` (402: the account cannot cover it) or ``key`` (403: the key's spend limit)."""
    view: WalletView


@dataclass(slots=True)
class FaultRecord(JsonRecord):
    """One injected fault; ``remaining`` counts down per matching call (None = until cleared)."""

    id: int
    provider: str | None
    operation_id: str | None
    remaining: int | None
    status: int | None = None
    message: str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    latency_ms: float = 0.0
    cut_after_events: int | None = None

    def matches(self, provider: str, operation_id: str) -> bool:
        """Whether this fault applies to a call."""
        return (self.provider in (None, provider)) and (self.operation_id in (None, operation_id))


@dataclass(slots=True)
class JobRecord(JsonRecord):
    """One submitted job (its state is derived from the clock: ``core.jobs``); ``data`` is the provider's."""

    id: str
    provider: str
    owner: str
    created_at: float
    queue_seconds: float
    task_seconds: float
    task_count: int
    failing_tasks: list[int]
    finisher: str | None
    """The provider's finisher that runs once when the job is due (``ProviderModule.finishers``)."""
    data: dict[str, Any] = field(default_factory=dict)
    finished: bool = False
    """Set once the finisher has run (by whichever instance claimed it)."""

    @property
    def done_at(self) -> float:
        """When the whole job ends on the mock's clock."""
        return self.created_at + self.queue_seconds + self.task_seconds * self.task_count


@dataclass(slots=True)
class AttemptRecord(JsonRecord):
    """One try at delivering a webhook."""

    number: int
    time: float
    status: int | None
    latency_ms: float
    error: str | None
    backoff_seconds: float | None = None
    next_attempt_at: float | None = None
    response_excerpt: str | None = None
    refused: bool = False


@dataclass(slots=True)
class DeliveryRecord:
    """One webhook message, its schedule and its attempts (the secret is stored: any instance signs)."""

    id: str
    provider: str
    event: str
    url: str
    payload: dict[str, Any]
    body: str
    secret: str = field(repr=False)
    created_at: float
    status: str = "pending"
    attempts: list[AttemptRecord] = field(default_factory=list)
    next_attempt_at: float | None = None
    series_start: int = 0
    """Index of the first attempt of the current series (a manual re-send starts a new one)."""
    rng_seed: int = 0
    """Seeds the retry jitter with the attempt number, so any instance draws the same backoff."""

    def to_json(self) -> dict[str, Any]:
        """The stored form."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> DeliveryRecord:
        """The record from its stored form."""
        attempts = [AttemptRecord.from_json(a) for a in data.get("attempts", [])]
        return cls(**{**data, "attempts": attempts})


@dataclass(slots=True)
class FileRecord(JsonRecord):
    """A file the mock serves at ``/_mock/files/<id>/<filename>``: its bytes are a blob under ``id``, or
    drawn from ``recipe`` on first download (any instance can draw it: ``core.media.RENDERS``)."""

    id: str
    filename: str
    content_type: str
    recipe: dict[str, Any] | None = None
    """``{"render": <name in core.media.RENDERS>, ...arguments}``; None when the blob was stored as bytes."""
