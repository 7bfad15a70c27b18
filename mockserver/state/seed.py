"""Seed state: what a provider starts with (and returns to on reset), read from ``fixtures/seed/<id>.yaml``.

Each provider's seed is one YAML file::

    defaults: {rate_limit_per_minute: 120}   # optional
    accounts: [{id, wallet_cents?, ...}]
    keys: [{key, account, name?, rate_limit_per_minute?, spend_limit_cents?, organization?}]
    models: [{id, ...}]                      # provider-shaped records, read by the provider module
    <anything else>: kept verbatim in ``Seed.extra`` (organizations, tools, ...)

Every instance reads the same files: models and ``extra`` never change at runtime and are not shared
state; keys, accounts and wallets are loaded into the backend by the first instance (and on reset).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mockserver.core.spec import SAFE_LOADER
from mockserver.errors import FixtureError
from mockserver.state.records import AccountRecord, KeyRecord


def key_id_of(secret: str) -> str:
    """A key's stable, non-secret handle."""
    return "key_" + hashlib.sha256(secret.encode()).hexdigest()[:12]


@dataclass(frozen=True, slots=True)
class Seed:
    """One provider's seed."""

    provider_id: str
    keys: tuple[KeyRecord, ...]
    """Seed order; the first is the provider's primary key (what ``/_mock/providers`` shows)."""
    accounts: tuple[AccountRecord, ...]
    wallets: Mapping[str, int | None]
    """Starting balance in cents by account id (None: no wallet)."""
    models: Mapping[str, dict[str, Any]]
    default_rate_limit: int | None
    extra: Mapping[str, Any]


def _require(record: Any, name: str, where: str) -> Any:
    if not isinstance(record, dict) or name not in record:
        raise FixtureError(f"{where}: every entry needs '{name}'")
    return record[name]


def parse_seed(provider_id: str, data: Any, where: str) -> Seed:
    """A provider's seed from its parsed YAML; ``where`` names the file in errors."""
    if not isinstance(data, dict):
        raise FixtureError(f"{where}: the seed must be a mapping")
    defaults = data.get("defaults") or {}
    accounts: dict[str, AccountRecord] = {}
    wallets: dict[str, int | None] = {}
    for a in data.get("accounts") or []:
        account_id = str(_require(a, "id", where))
        accounts[account_id] = AccountRecord(
            id=account_id, extra={k: v for k, v in a.items() if k not in ("id", "wallet_cents")}
        )
        wallets[account_id] = a.get("wallet_cents")
    keys: list[KeyRecord] = []
    for k in data.get("keys") or []:
        secret = str(_require(k, "key", where))
        account = str(_require(k, "account", where))
        if account not in accounts:
            accounts[account] = AccountRecord(id=account)
            wallets[account] = None
        keys.append(
            KeyRecord(
                key=secret,
                account=account,
                key_id=key_id_of(secret),
                name=str(k.get("name", "default")),
                rate_limit=k.get("rate_limit_per_minute"),
                spend_limit_cents=k.get("spend_limit_cents"),
                organization=k.get("organization"),
                seeded=True,
            )
        )
    if not keys:
        raise FixtureError(f"{where}: at least one key is needed")
    models = {str(_require(m, "id", where)): dict(m) for m in data.get("models") or []}
    extra = {k: v for k, v in data.items() if k not in ("defaults", "accounts", "keys", "models")}
    return Seed(
        provider_id=provider_id,
        keys=tuple(keys),
        accounts=tuple(accounts.values()),
        wallets=wallets,
        models=models,
        default_rate_limit=defaults.get("rate_limit_per_minute"),
        extra=extra,
    )


def read_seeds(
    fixtures: Path, provider_ids: tuple[str, ...], fallback: Path | None = None
) -> dict[str, Seed]:
    """Read and parse ``seed/<provider>.yaml`` for each provider, once; a provider ``fixtures`` has no seed
    for is read from ``fallback`` (a user's folder only needs the seeds it changes)."""
    if fallback is not None and not (fixtures / "seed").is_dir():
        raise FixtureError(f"{fixtures} has no 'seed' folder (seed/<provider>.yaml)")
    seeds: dict[str, Seed] = {}
    for provider_id in provider_ids:
        path = fixtures / "seed" / f"{provider_id}.yaml"
        if fallback is not None and not path.exists():
            path = fallback / "seed" / f"{provider_id}.yaml"
        try:
            raw = yaml.load(path.read_text(encoding="utf-8"), Loader=SAFE_LOADER)
        except (OSError, yaml.YAMLError) as exc:
            raise FixtureError(f"cannot read seed {path.name}: {exc}") from exc
        seeds[provider_id] = parse_seed(provider_id, raw, f"seed/{provider_id}.yaml")
    return seeds
