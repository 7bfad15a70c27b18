"""Wallet billing: exact metering in USD, whole cents settled with a carried remainder, and holds.

Costs are metered exactly (``Decimal`` USD) and kept internally in integer micro-cents (1 cent =
1,000,000 micro-cents). A charge settles ``floor(metered + carry)`` whole cents from the wallet and carries
the sub-cent remainder to the account's next charge, so over any number of charges the cents taken equal
the metered total to within one cent.

A request reserves (``reserve``) before it runs and then either settles (``settle``) or releases
(``release``). A hold covers the most its settlement can ever take, ``ceil(metered estimate)`` cents (the
carry is below one cent, so ``floor(estimate + carry) <= ceil(estimate)``), and is not spendable by
other requests while it is open: concurrent requests cannot overdraw a wallet or a key's spend limit.
This module is the arithmetic; the money itself lives in the state, whose ``reserve``/``settle``/
``release`` check and change it atomically (across every instance sharing the state). A ``HoldRecord`` is
what a request keeps (in a job's data or a resource), so whichever instance finishes it can settle it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from mockserver.errors import ApiError, ErrorKind, invalid_request
from mockserver.state.api import State
from mockserver.state.records import HoldRecord, KeyRecord, WalletView

MICROCENTS_PER_CENT = 1_000_000
MAX_CHARGE_CENTS = 2**53 - 1
"""The largest amount priced: past it, cents shown as a JSON number are not exact for most clients (it is
JavaScript's largest safe integer) and USD would overflow a double. A request costing more is a 400."""
_MICROCENTS_PER_USD = Decimal(100 * MICROCENTS_PER_CENT)


def to_microcents(usd: Decimal) -> int:
    """An exact USD amount in whole micro-cents (half-even: finer fractions than 1e-8 USD are noise)."""
    if usd < 0:
        raise ValueError(f"a cost cannot be negative: {usd}")
    return int((usd * _MICROCENTS_PER_USD).to_integral_value(rounding=ROUND_HALF_EVEN))


def ceil_cents(microcents: int) -> int:
    """The whole cents that cover an amount of micro-cents."""
    return -(-microcents // MICROCENTS_PER_CENT)


def settle_cents(microcents: int, carry_microcents: int) -> tuple[int, int]:
    """``(settled cents, new carry)`` for a metered amount on top of a carried remainder."""
    return divmod(microcents + carry_microcents, MICROCENTS_PER_CENT)


def cents_to_usd(cents: int) -> float:
    """Whole cents as a USD number with two decimals."""
    return round(cents / 100, 2)


@dataclass(frozen=True, slots=True)
class AccountCheck:
    """Whether an account's wallet can cover a hold."""

    balance_cents: int
    available_cents: int
    """The balance minus what requests in flight hold."""
    affordable: bool
    reason: str | None


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """Whether a key's spend limit can cover a hold."""

    spend_limit_cents: int | None
    spent_cents: int
    remaining_cents: int | None
    """What the key may still reserve (None without a limit)."""
    within_limit: bool
    reason: str | None


@dataclass(frozen=True, slots=True)
class Quote:
    """An estimate with the account and key checks a reservation would make."""

    metered_usd: Decimal
    microcents: int
    settled_cents: int
    """What settling the estimate now would take from the wallet (with the account's carry)."""
    hold_cents: int
    """What a reservation of the estimate holds: the most its settlement can take."""
    account: AccountCheck
    key: KeyCheck

    @property
    def affordable(self) -> bool:
        """True when both the account and the key can cover the estimate."""
        return self.account.affordable and self.key.within_limit


def _check_account(view: WalletView, hold_cents: int) -> AccountCheck:
    balance = view.wallet_cents or 0  # an account without a wallet has nothing to spend
    available = balance - view.held_cents
    if available >= hold_cents:
        return AccountCheck(balance, available, True, None)
    reason = (
        f"Insufficient balance: {available} cents available"
        f"{f' ({view.held_cents} held by requests in flight)' if view.held_cents else ''}, "
        f"{hold_cents} cents needed."
    )
    return AccountCheck(balance, available, False, reason)


def _check_key(view: WalletView, key: KeyRecord | None, hold_cents: int) -> KeyCheck:
    if key is None:
        return KeyCheck(None, 0, None, True, None)
    limit, spent, held = view.key_spend_limit_cents, view.key_spent_cents, view.key_held_cents
    if limit is None:
        return KeyCheck(None, spent, None, True, None)
    remaining = max(0, limit - spent - held)
    if hold_cents <= remaining:
        return KeyCheck(limit, spent, remaining, True, None)
    reason = (
        f"API key spend limit of {limit} cents would be exceeded: {spent} spent, "
        f"{held} held, {hold_cents} more needed."
    )
    return KeyCheck(limit, spent, remaining, False, reason)


def _priced(metered_usd: Decimal) -> tuple[int, int]:
    """``(micro-cents, hold cents)`` of an estimate; a 400 past ``MAX_CHARGE_CENTS``."""
    microcents = to_microcents(metered_usd)
    hold_cents = ceil_cents(microcents)
    if hold_cents > MAX_CHARGE_CENTS:
        raise invalid_request(
            f"The request is too large to price: it would cost {metered_usd:.6E} USD, "
            f"more than the largest charge of {MAX_CHARGE_CENTS} cents."
        )
    return microcents, hold_cents


def _quote(view: WalletView, key: KeyRecord | None, metered_usd: Decimal) -> Quote:
    microcents, hold_cents = _priced(metered_usd)
    settled, _ = settle_cents(microcents, view.carry_microcents)
    return Quote(
        metered_usd=metered_usd,
        microcents=microcents,
        settled_cents=settled,
        hold_cents=hold_cents,
        account=_check_account(view, hold_cents),
        key=_check_key(view, key, hold_cents),
    )


async def quote(
    state: State, provider: str, account_id: str, key: KeyRecord | None, metered_usd: Decimal
) -> Quote:
    """Price an estimate and check it against the wallet and the key, changing nothing."""
    view = await state.wallet(provider, account_id, key.key_id if key is not None else None)
    return _quote(view, key, metered_usd)


@dataclass(frozen=True, slots=True)
class Charge:
    """A settled charge: estimate and final amount, in settled cents and exact metered USD."""

    estimated_cents: int
    final_cents: int
    metered_estimate_usd: Decimal
    metered_final_usd: Decimal


async def reserve(
    state: State, provider: str, account_id: str, key: KeyRecord | None, metered_estimate: Decimal
) -> HoldRecord:
    """Hold the estimate's cents, or raise 402 (wallet) / 403 (key spend limit) with nothing held."""
    key_id = key.key_id if key is not None else None
    microcents, hold_cents = _priced(metered_estimate)
    # The estimate shown to the client settles with the carry as it is now (what a quote shows).
    view = await state.wallet(provider, account_id, key_id)
    hold = HoldRecord(
        id=uuid.uuid4().hex,
        provider=provider,
        account=account_id,
        key_id=key_id,
        cents=hold_cents,
        estimated_cents=settle_cents(microcents, view.carry_microcents)[0],
        metered_estimate=str(metered_estimate),
        microcents=microcents,
    )
    refusal = await state.reserve(hold)  # the check and the hold, atomically
    if refusal is None:
        return hold
    checked = _quote(refusal.view, key, metered_estimate)
    if refusal.reason == "wallet":
        raise ApiError(
            402,
            ErrorKind.PAYMENT_REQUIRED,
            checked.account.reason or "Insufficient balance.",
            details={
                "balance_cents": checked.account.balance_cents,
                "available_cents": checked.account.available_cents,
                "required_cents": checked.hold_cents,
            },
        )
    raise ApiError(
        403,
        ErrorKind.SPEND_LIMIT,
        checked.key.reason or "API key spend limit exceeded.",
        details={
            "spend_limit_cents": checked.key.spend_limit_cents,
            "spent_cents": checked.key.spent_cents,
            "required_cents": checked.hold_cents,
        },
    )


async def settle(state: State, hold: HoldRecord, metered_final: Decimal) -> Charge:
    """Charge the final metered cost (at most the estimate) with the carry and release the rest;
    ``RuntimeError`` when the hold was already settled or released (nothing is charged twice)."""
    microcents = to_microcents(metered_final)
    if microcents > hold.microcents:
        raise ValueError(
            f"the final cost {metered_final} exceeds the reserved estimate {hold.metered_estimate}"
        )
    settled = await state.settle(hold, microcents)
    if settled is None:
        raise RuntimeError(f"hold {hold.id} is no longer open: it cannot be settled")
    return Charge(
        estimated_cents=hold.estimated_cents,
        final_cents=settled,
        metered_estimate_usd=Decimal(hold.metered_estimate),
        metered_final_usd=metered_final,
    )


async def release(state: State, hold: HoldRecord) -> None:
    """Give a failed request's hold back, charging nothing (a no-op once settled or released)."""
    await state.release(hold)


async def keep(state: State, hold: HoldRecord) -> bool:
    """Take a hold off its deadline once it covers a job (the job settles or releases it when it finishes,
    on whichever instance runs its finisher, however long that takes); False when it already ended."""
    return await state.keep_hold(hold)
