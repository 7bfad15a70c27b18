"""In-memory state seeded from fixtures: keys, accounts, models and the resources requests create.

Each provider's seed is one YAML file, ``<fixtures>/seed/<provider>.yaml``::

    defaults: {rate_limit_per_minute: 120}   # optional
    accounts: [{id, wallet_cents?, ...}]
    keys: [{key, account, name?, rate_limit_per_minute?, spend_limit_cents?, organization?}]
    models: [{id, ...}]                      # provider-shaped records, read by the provider module
    <anything else>: kept verbatim in ``ProviderState.extra`` (organizations, tools, ...)

What requests create lives in ``ProviderState.table(kind)``: bounded tables (``core.retention``), so a
long-running mock keeps at most ``max_resources`` of each kind, none older than ``resource_ttl``.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from mockserver.core.retention import ResourceTable, Retention
from mockserver.core.spec import SAFE_LOADER
from mockserver.errors import FixtureError


@dataclass(slots=True)
class ApiKey:
    """A credential and its limits."""

    key: str
    account: str
    name: str = "default"
    rate_limit: int | None = None
    spend_limit_cents: int | None = None
    spent_cents: int = 0
    held_cents: int = 0
    """Cents reserved by requests in flight (counted against the spend limit until they settle)."""
    organization: str | None = None
    revoked: bool = False
    seeded: bool = False
    """Whether the key comes from the seed file (listed by ``/_mock/providers``) or was created at runtime."""
    key_id: str = field(init=False)
    """A stable, non-secret handle for the key (safe to log); computed once, it is used per request."""

    def __post_init__(self) -> None:
        self.key_id = "key_" + hashlib.sha256(self.key.encode()).hexdigest()[:12]

    def redacted(self) -> str:
        """The key with all but its prefix and last four characters hidden."""
        return f"{self.key[:8]}...{self.key[-4:]}" if len(self.key) > 12 else "***"


@dataclass(slots=True)
class Account:
    """An account (user or organization) that owns keys and, where billed, a wallet."""

    id: str
    wallet_cents: int | None = None
    carry_microcents: int = 0
    """Sub-cent remainder carried to the next charge (1 cent = 1,000,000 micro-cents)."""
    held_cents: int = 0
    """Cents reserved by requests in flight: not spendable by others until they settle or release."""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class ProviderState:
    """Everything one provider's mock remembers."""

    provider_id: str
    keys: dict[str, ApiKey]
    accounts: dict[str, Account]
    models: dict[str, dict[str, Any]]
    default_rate_limit: int | None
    extra: dict[str, Any]
    retention: Retention
    """How long and how many of each kind of created resource are kept."""
    resources: dict[str, ResourceTable[str, Any]] = field(default_factory=dict)
    """Objects created by requests, by kind then id (generations, uploads...)."""

    def table(self, kind: str) -> ResourceTable[str, Any]:
        """The resource table for one kind, created on first use."""
        table = self.resources.get(kind)
        if table is None:
            table = self.resources[kind] = ResourceTable(self.retention)
        return table

    def primary_key(self) -> ApiKey:
        """The first seeded key (what ``/_mock/providers`` shows)."""
        return next(iter(self.keys.values()))


def _require(record: Any, name: str, where: str) -> Any:
    if not isinstance(record, dict) or name not in record:
        raise FixtureError(f"{where}: every entry needs '{name}'")
    return record[name]


def parse_seed(provider_id: str, data: Any, where: str, retention: Retention | None = None) -> ProviderState:
    """A provider's state from its seed; what requests create is kept as ``retention`` says."""
    if not isinstance(data, dict):
        raise FixtureError(f"{where}: the seed must be a mapping")
    defaults = data.get("defaults") or {}
    accounts = {
        str(_require(a, "id", where)): Account(
            id=str(a["id"]),
            wallet_cents=a.get("wallet_cents"),
            extra={k: v for k, v in a.items() if k not in ("id", "wallet_cents")},
        )
        for a in data.get("accounts") or []
    }
    keys: dict[str, ApiKey] = {}
    for k in data.get("keys") or []:
        secret = str(_require(k, "key", where))
        account = str(_require(k, "account", where))
        if account not in accounts:
            accounts[account] = Account(id=account)
        keys[secret] = ApiKey(
            key=secret,
            account=account,
            name=str(k.get("name", "default")),
            rate_limit=k.get("rate_limit_per_minute"),
            spend_limit_cents=k.get("spend_limit_cents"),
            organization=k.get("organization"),
            seeded=True,
        )
    if not keys:
        raise FixtureError(f"{where}: at least one key is needed")
    models = {str(_require(m, "id", where)): dict(m) for m in data.get("models") or []}
    extra = {k: v for k, v in data.items() if k not in ("defaults", "accounts", "keys", "models")}
    return ProviderState(
        provider_id=provider_id,
        keys=keys,
        accounts=accounts,
        models=models,
        default_rate_limit=defaults.get("rate_limit_per_minute"),
        extra=extra,
        retention=retention or Retention.unlimited(),
    )


def read_seed_files(
    fixtures: Path, provider_ids: tuple[str, ...], fallback: Path | None = None
) -> dict[str, Any]:
    """Read ``seed/<provider>.yaml`` for each provider, once; a provider ``fixtures`` has no seed for is
    read from ``fallback`` (a user's folder only needs the seeds it changes)."""
    if fallback is not None and not (fixtures / "seed").is_dir():
        raise FixtureError(f"{fixtures} has no 'seed' folder (seed/<provider>.yaml)")
    raw: dict[str, Any] = {}
    for provider_id in provider_ids:
        path = fixtures / "seed" / f"{provider_id}.yaml"
        if fallback is not None and not path.exists():
            path = fallback / "seed" / f"{provider_id}.yaml"
        try:
            raw[provider_id] = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
        except (OSError, yaml.YAMLError) as exc:
            raise FixtureError(f"cannot read seed {path.name}: {exc}") from exc
    return raw


class Store:
    """All providers' state, in memory; ``reset`` restores the seed exactly."""

    backend = "memory"

    def __init__(self, seeds: dict[str, Any], retention: Retention) -> None:
        self._seeds = seeds
        self._retention = retention
        self.providers: dict[str, ProviderState] = {}
        self.errors = 0
        """``StateError``s met since start (the metrics' state errors; the memory backend raises none)."""
        self.reset()

    async def health(self) -> dict[str, Any]:
        """The state check of ``GET /_mock/health`` (``core.health.HealthCheck``): memory is always up."""
        return {"backend": self.backend, "status": "ok"}

    def reset(self) -> None:
        """Drop everything requests created and reload the seed."""
        self.providers = {
            pid: parse_seed(pid, copy.deepcopy(seed), f"seed/{pid}.yaml", self._retention)
            for pid, seed in self._seeds.items()
        }

    def __getitem__(self, provider_id: str) -> ProviderState:
        return self.providers[provider_id]
