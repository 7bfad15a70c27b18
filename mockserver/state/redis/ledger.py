"""Keys, accounts and money on Redis: the seed's records, the per-instance key cache, and the wallet scripts.

A key is a JSON record in the provider's ``keys`` hash; its spend limit is mirrored in its ``spend`` hash
(with spent and held cents) so ``reserve`` checks it atomically. Wallets are hashes of balance, held and
carry. Reserve, settle and release are one Lua script each (``scripts.py``); a hold's key says whether it
is open, and ends ``settled`` or ``released`` once. An open hold not kept for a job is also in the
``holds:due`` sorted set by its real-time deadline, where ``sweep_holds`` finds it if its request never
settled (``state.holds``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import orjson

from mockserver.errors import StateError
from mockserver.state.api import KEEP, Keep
from mockserver.state.records import AccountRecord, HoldRecord, KeyRecord, Refusal, WalletView
from mockserver.state.redis.batch import ScriptBatch
from mockserver.state.redis.connection import Conn, text
from mockserver.state.redis.keys import KeyNames
from mockserver.state.redis.scripts import Scripts
from mockserver.state.seed import Seed

log = logging.getLogger("mockserver.state")

MICROCENTS_PER_CENT = 1_000_000
"""As ``core.billing`` counts (the state layer does not import it)."""
HOLD_TOMBSTONE_SECONDS = 24 * 3600
"""How long a settled or released hold is remembered (a late second settle or release stays a no-op)."""
OUTBOX_CAP = 10_000
"""Most holds this instance remembers to give back once Redis answers again (past it, the deadline does)."""
UPDATE_TRIES = 8
"""Compare-and-set rounds ``update_key`` tries against concurrent updates of the same key."""


def _int(value: Any, default: int | None = 0) -> int | None:
    return default if value in (None, b"", "") else int(value)


def seed_ops(names: KeyNames, seeds: Mapping[str, Seed]) -> list[list[str]]:
    """The Redis commands that load every provider's keys, accounts and wallets (run by the seed script)."""
    ops: list[list[str]] = []
    for provider, seed in seeds.items():
        for account in seed.accounts:
            ops.append(
                ["HSET", names.accounts(provider), account.id, orjson.dumps(account.to_json()).decode()]
            )
            ops.append(["RPUSH", names.account_order(provider), account.id])
            cents = seed.wallets.get(account.id)
            if cents is not None:
                ops.append(["HSET", names.wallet(provider, account.id), "balance", str(int(cents))])
        for key in seed.keys:
            ops.append(["HSET", names.keys(provider), key.key, orjson.dumps(key.to_json()).decode()])
            ops.append(["HSET", names.key_ids(provider), key.key_id, key.key])
            ops.append(["RPUSH", names.key_order(provider), key.key])
            if key.spend_limit_cents is not None:
                ops.append(["HSET", names.spend(provider, key.key_id), "limit", str(key.spend_limit_cents)])
    return ops


def _view(wallet: list[Any], spend: list[Any] | None) -> WalletView:
    """A WalletView from a wallet's (balance, held, carry) and a key's (limit, spent, held)."""
    spend = spend or [None, None, None]
    return WalletView(
        wallet_cents=_int(wallet[0], None),
        held_cents=_int(wallet[1]) or 0,
        carry_microcents=_int(wallet[2]) or 0,
        key_spend_limit_cents=_int(spend[0], None),
        key_spent_cents=_int(spend[1]) or 0,
        key_held_cents=_int(spend[2]) or 0,
    )


class Ledger:
    """Keys, accounts, wallets and holds of every provider."""

    def __init__(self, conn: Conn, names: KeyNames, scripts: Scripts, hold_seconds: float) -> None:
        self._conn = conn
        self._hold_ms = str(max(1, round(hold_seconds * 1000)))
        """A hold's lifetime in real milliseconds: ``reserve`` dates its deadline on Redis's clock."""
        self._names = names
        self._scripts = scripts
        # Billed requests under load reserve and settle in the same loop turns: pipelined like admit.
        self._reserve = ScriptBatch(conn.redis, scripts.reserve)
        self._settle = ScriptBatch(conn.redis, scripts.settle)
        self.outbox: dict[str, HoldRecord] = {}
        """Holds whose reserve, settle or release failed here (Redis lost): the request failed with them,
        so ``retry_outbox`` gives them back once Redis answers, within seconds instead of at the deadline."""
        self.cache: dict[tuple[str, str], KeyRecord] = {}
        """Keys found, by (provider, secret): ``find_key`` answers from here; a ``keys`` notice clears it."""

    # -- keys ------------------------------------------------------------------------------------------

    async def find_key(self, provider: str, secret: str) -> KeyRecord | None:
        """The key with this secret (from the cache when seen before), or None."""
        key = self.cache.get((provider, secret))
        if key is not None:
            return key
        raw = await self._conn.call(self._conn.redis.hget(self._names.keys(provider), secret))
        if raw is None:
            return None  # not cached: a key added on another instance is found on the next request
        key = KeyRecord.from_json(orjson.loads(raw))
        self.cache[provider, secret] = key
        return key

    async def key_by_id(self, provider: str, key_id: str) -> KeyRecord | None:
        """A key by its handle."""
        redis, names = self._conn.redis, self._names
        secret = await self._conn.call(redis.hget(names.key_ids(provider), key_id))
        if secret is None:
            return None
        raw = await self._conn.call(redis.hget(names.keys(provider), secret))
        return None if raw is None else KeyRecord.from_json(orjson.loads(raw))

    async def keys(self, provider: str) -> list[KeyRecord]:
        """Every key, in seed then creation order."""
        redis, names = self._conn.redis, self._names
        secrets = await self._conn.call(redis.lrange(names.key_order(provider), 0, -1))
        if not secrets:
            return []
        raws = await self._conn.call(redis.hmget(names.keys(provider), secrets))
        return [KeyRecord.from_json(orjson.loads(raw)) for raw in raws if raw is not None]

    async def add_key(self, provider: str, key: KeyRecord) -> bool:
        """Store a new key (and its account when missing); False when the secret is taken."""
        names = self._names
        account = AccountRecord(id=key.account)
        added = await self._conn.call(
            self._scripts.add_key(
                keys=[
                    names.keys(provider),
                    names.key_ids(provider),
                    names.key_order(provider),
                    names.accounts(provider),
                    names.account_order(provider),
                    names.spend(provider, key.key_id),
                ],
                args=[
                    key.key,
                    key.key_id,
                    orjson.dumps(key.to_json()),
                    key.account,
                    orjson.dumps(account.to_json()),
                    "" if key.spend_limit_cents is None else str(key.spend_limit_cents),
                    names.notices,
                ],
            )
        )
        return bool(added)

    async def update_key(
        self,
        provider: str,
        key_id: str,
        spend_limit_cents: int | Keep | None,
        revoked: bool | Keep,
    ) -> KeyRecord | None:
        """Change a key's limit and/or revocation (compare-and-set against concurrent updates)."""
        redis, names = self._conn.redis, self._names
        secret = await self._conn.call(redis.hget(names.key_ids(provider), key_id))
        if secret is None:
            return None
        for _ in range(UPDATE_TRIES):
            raw = await self._conn.call(redis.hget(names.keys(provider), secret))
            if raw is None:
                return None
            key = KeyRecord.from_json(orjson.loads(raw))
            if spend_limit_cents is not KEEP:
                key.spend_limit_cents = spend_limit_cents
            if revoked is not KEEP:
                key.revoked = bool(revoked)
            done = await self._conn.call(
                self._scripts.update_key(
                    keys=[names.keys(provider), names.spend(provider, key_id)],
                    args=[
                        secret,
                        raw,
                        orjson.dumps(key.to_json()),
                        "" if key.spend_limit_cents is None else str(key.spend_limit_cents),
                        names.notices,
                    ],
                )
            )
            if done:
                self.cache.pop((provider, text(secret)), None)
                return key
        raise self._conn.error(RuntimeError("the key kept changing"))

    # -- accounts ----------------------------------------------------------------------------------------

    async def accounts(self, provider: str) -> list[AccountRecord]:
        """Every account, in creation order."""
        redis, names = self._conn.redis, self._names
        ids = await self._conn.call(redis.lrange(names.account_order(provider), 0, -1))
        if not ids:
            return []
        raws = await self._conn.call(redis.hmget(names.accounts(provider), ids))
        return [AccountRecord.from_json(orjson.loads(raw)) for raw in raws if raw is not None]

    async def account(self, provider: str, account_id: str) -> AccountRecord | None:
        """One account, or None."""
        raw = await self._conn.call(self._conn.redis.hget(self._names.accounts(provider), account_id))
        return None if raw is None else AccountRecord.from_json(orjson.loads(raw))

    # -- money -------------------------------------------------------------------------------------------

    async def wallet(self, provider: str, account_id: str, key_id: str | None) -> WalletView:
        """The account's and key's money now (one round trip)."""
        names = self._names
        async with self._conn.redis.pipeline(transaction=False) as pipe:
            pipe.hmget(names.wallet(provider, account_id), ["balance", "held", "carry"])
            if key_id is not None:
                pipe.hmget(names.spend(provider, key_id), ["limit", "spent", "held"])
            replies = await self._conn.call(pipe.execute())
        return _view(replies[0], replies[1] if key_id is not None else None)

    async def set_wallet(self, provider: str, account_id: str, cents: int | None) -> WalletView | None:
        """Set a balance (None: no wallet); None when the account is unknown."""
        names = self._names
        reply = await self._conn.call(
            self._scripts.set_wallet(
                keys=[names.accounts(provider), names.wallet(provider, account_id)],
                args=[account_id, "" if cents is None else str(int(cents))],
            )
        )
        return None if reply is None else _view(reply, None)

    def _hold_keys(self, hold: HoldRecord) -> list[str]:
        names = self._names
        return [
            names.hold(hold.id),
            names.wallet(hold.provider, hold.account),
            names.spend(hold.provider, hold.key_id),
            names.holds_due,
        ]

    def _remember(self, hold: HoldRecord) -> None:
        if len(self.outbox) < OUTBOX_CAP:
            self.outbox[hold.id] = hold

    async def reserve(self, hold: HoldRecord) -> Refusal | None:
        """Check and hold atomically (a hold already made under this id stays as it is)."""
        try:
            reply = await self._conn.call(
                self._reserve(
                    keys=self._hold_keys(hold),
                    args=[str(hold.cents), "0" if hold.key_id is None else "1", self._hold_ms],
                )
            )
        except StateError:
            self._remember(hold)  # the script may have run, its reply lost: the hold would be orphaned
            raise
        status = text(reply[0])
        if status in ("ok", "held"):
            return None
        view = _view(reply[1:4], reply[4:7] if hold.key_id is not None else None)
        return Refusal(status, view)

    async def settle(self, hold: HoldRecord, microcents: int) -> int | None:
        """Charge with the carry and end the hold; None when it already ended."""
        if not 0 <= microcents <= hold.microcents:
            raise ValueError(
                f"a settlement of {microcents} micro-cents does not fit the hold's {hold.microcents}"
            )
        whole, sub = divmod(microcents, MICROCENTS_PER_CENT)
        try:
            reply = await self._conn.call(
                self._settle(
                    keys=self._hold_keys(hold),
                    args=[
                        str(hold.cents),
                        str(whole),
                        str(sub),
                        "0" if hold.key_id is None else "1",
                        str(HOLD_TOMBSTONE_SECONDS),
                    ],
                )
            )
        except StateError:
            # The request fails (503): released later, charging nothing. Had the settle run after all
            # (its reply lost), that release is a no-op: the charge stands, once.
            self._remember(hold)
            raise
        return None if reply is None else int(reply)

    async def release(self, hold: HoldRecord, *, unkept_only: bool = False) -> bool:
        """Give the hold back (a no-op once it ended; with ``unkept_only`` also when kept for a job);
        whether it was open and given back."""
        try:
            released = await self._conn.call(
                self._scripts.release(
                    keys=self._hold_keys(hold),
                    args=[
                        str(hold.cents),
                        "0" if hold.key_id is None else "1",
                        str(HOLD_TOMBSTONE_SECONDS),
                        "1" if unkept_only else "0",
                    ],
                )
            )
        except StateError:
            self._remember(hold)
            raise
        return bool(released)

    async def retry_outbox(self) -> int:
        """Give back the holds remembered in the outbox, unless kept for a job meanwhile (a job's finisher
        met the outage: its job runs again and settles the hold); how many were still open. Stops at the
        first failure (Redis still away): the rest wait for the next turn."""
        given = 0
        for hold in list(self.outbox.values()):
            given += await self.release(hold, unkept_only=True)
            self.outbox.pop(hold.id, None)
        return given

    async def keep_hold(self, hold: HoldRecord) -> bool:
        """Take an open hold off the deadline set; False when it already ended."""
        kept = await self._conn.call(
            self._scripts.keep_hold(
                keys=self._hold_keys(hold), args=[str(hold.cents), "0" if hold.key_id is None else "1"]
            )
        )
        return bool(kept)

    async def sweep_holds(self, limit: int) -> int:
        """Give back up to ``limit`` open holds past their deadline (one script run), after the outbox."""
        if self.outbox:
            given = await self.retry_outbox()
            if given:
                log.warning("gave back %d wallet hold(s) of requests the state failed", given)
        swept = await self._conn.call(
            self._scripts.sweep_holds(
                keys=[self._names.holds_due], args=[str(limit), str(HOLD_TOMBSTONE_SECONDS)]
            )
        )
        return int(swept)
