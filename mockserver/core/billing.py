"""Wallet billing: exact metering in USD, whole cents settled with a carried remainder, and holds.

Costs are metered exactly (``Decimal`` USD) and kept internally in integer micro-cents (1 cent =
1,000,000 micro-cents). A charge settles ``floor(metered + carry)`` whole cents from the wallet and carries
the sub-cent remainder to the account's next charge, so over any number of charges the cents taken equal
the metered total to within one cent.

A request reserves (``reserve``) before it runs and then either settles (``settle``) or releases
(``release``). A hold covers the most its settlement can ever take, ``ceil(metered estimate)`` cents (the
carry is below one cent, so ``floor(estimate + carry) <= ceil(estimate)``), and is not spendable by
other requests while it is open: concurrent requests cannot overdraw a wallet or a key's spend limit.
Every function is synchronous, so under asyncio no other request runs between a check and its deduction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal

from mockserver.core.store import Account, ApiKey
from mockserver.errors import ApiError, ErrorKind, invalid_request

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


def balance_of(account: Account) -> int:
    """The wallet balance in cents (an account without a wallet has nothing to spend)."""
    return account.wallet_cents or 0


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


def _check_account(account: Account, hold_cents: int) -> AccountCheck:
    balance = balance_of(account)
    available = balance - account.held_cents
    if available >= hold_cents:
        return AccountCheck(balance, available, True, None)
    reason = (
        f"Insufficient balance: {available} cents available"
        f"{f' ({account.held_cents} held by requests in flight)' if account.held_cents else ''}, "
        f"{hold_cents} cents needed."
    )
    return AccountCheck(balance, available, False, reason)


def _check_key(key: ApiKey | None, hold_cents: int) -> KeyCheck:
    if key is None:
        return KeyCheck(None, 0, None, True, None)
    limit = key.spend_limit_cents
    if limit is None:
        return KeyCheck(None, key.spent_cents, None, True, None)
    remaining = max(0, limit - key.spent_cents - key.held_cents)
    if hold_cents <= remaining:
        return KeyCheck(limit, key.spent_cents, remaining, True, None)
    reason = (
        f"API key spend limit of {limit} cents would be exceeded: {key.spent_cents} spent, "
        f"{key.held_cents} held, {hold_cents} more needed."
    )
    return KeyCheck(limit, key.spent_cents, remaining, False, reason)


def quote(account: Account, key: ApiKey | None, metered_usd: Decimal) -> Quote:
    """Price an estimate and check it against the wallet and the key, changing nothing."""
    microcents = to_microcents(metered_usd)
    hold_cents = ceil_cents(microcents)
    if hold_cents > MAX_CHARGE_CENTS:
        raise invalid_request(
            f"The request is too large to price: it would cost {metered_usd:.6E} USD, "
            f"more than the largest charge of {MAX_CHARGE_CENTS} cents."
        )
    settled, _ = settle_cents(microcents, account.carry_microcents)
    return Quote(
        metered_usd=metered_usd,
        microcents=microcents,
        settled_cents=settled,
        hold_cents=hold_cents,
        account=_check_account(account, hold_cents),
        key=_check_key(key, hold_cents),
    )


class HoldState(enum.Enum):
    """Where a hold is in its life."""

    OPEN = "open"
    SETTLED = "settled"
    RELEASED = "released"


@dataclass(slots=True, eq=False)
class Hold:
    """Cents reserved on an account (and key) for one request until it settles or is released."""

    account: Account
    key: ApiKey | None
    cents: int
    estimated_cents: int
    """The settled estimate when the hold was made (what the client is shown as the estimate)."""
    metered_estimate: Decimal
    microcents: int
    state: HoldState = HoldState.OPEN

    @property
    def open(self) -> bool:
        """Whether the hold still reserves its cents."""
        return self.state is HoldState.OPEN


@dataclass(frozen=True, slots=True)
class Charge:
    """A settled charge: estimate and final amount, in settled cents and exact metered USD."""

    estimated_cents: int
    final_cents: int
    metered_estimate_usd: Decimal
    metered_final_usd: Decimal


def reserve(account: Account, key: ApiKey | None, metered_estimate: Decimal) -> Hold:
    """Hold the estimate's cents, or raise 402 (wallet) / 403 (key spend limit) with nothing held."""
    checked = quote(account, key, metered_estimate)
    if not checked.account.affordable:
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
    if not checked.key.within_limit:
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
    # The checks above and these deductions run without an await in between: no request can slip in.
    account.held_cents += checked.hold_cents
    if key is not None:
        key.held_cents += checked.hold_cents
    return Hold(
        account=account,
        key=key,
        cents=checked.hold_cents,
        estimated_cents=checked.settled_cents,
        metered_estimate=metered_estimate,
        microcents=checked.microcents,
    )


def _unhold(hold: Hold, state: HoldState) -> None:
    hold.account.held_cents -= hold.cents
    if hold.key is not None:
        hold.key.held_cents -= hold.cents
    hold.state = state


def settle(hold: Hold, metered_final: Decimal) -> Charge:
    """Charge the final metered cost (at most the estimate) with the carry and release the rest."""
    if not hold.open:
        raise RuntimeError(f"a {hold.state.value} hold cannot be settled")
    microcents = to_microcents(metered_final)
    if microcents > hold.microcents:
        raise ValueError(
            f"the final cost {metered_final} exceeds the reserved estimate {hold.metered_estimate}"
        )
    account = hold.account
    settled, account.carry_microcents = settle_cents(microcents, account.carry_microcents)
    _unhold(hold, HoldState.SETTLED)
    account.wallet_cents = balance_of(account) - settled
    if hold.key is not None:
        hold.key.spent_cents += settled
    return Charge(
        estimated_cents=hold.estimated_cents,
        final_cents=settled,
        metered_estimate_usd=hold.metered_estimate,
        metered_final_usd=metered_final,
    )


def release(hold: Hold) -> None:
    """Give a failed request's hold back, charging nothing (a no-op once settled or released)."""
    if hold.open:
        _unhold(hold, HoldState.RELEASED)
