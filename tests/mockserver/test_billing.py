"""``core.billing``: exact metering, cents settled with a carry, holds that keep wallets from overdrawing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mockserver.core import billing
from mockserver.core.billing import MICROCENTS_PER_CENT, HoldState
from mockserver.core.store import Account, ApiKey
from mockserver.errors import ApiError, ErrorKind


def usd(microcents: int) -> Decimal:
    """A USD amount from micro-cents (1 USD = 1e8 micro-cents)."""
    return Decimal(microcents) / Decimal(100 * MICROCENTS_PER_CENT)


def account(wallet: int | None = 1000, carry: int = 0) -> Account:
    return Account(id="acct", wallet_cents=wallet, carry_microcents=carry)


def key(limit: int | None = None, spent: int = 0) -> ApiKey:
    return ApiKey(key="k_test_1", account="acct", spend_limit_cents=limit, spent_cents=spent)


def test_metering_is_exact_in_micro_cents() -> None:
    assert billing.to_microcents(Decimal("0.0017")) == 170_000
    assert billing.to_microcents(Decimal("0.6") * 37 / 1_000_000) == 2_220
    assert billing.to_microcents(Decimal(0)) == 0
    with pytest.raises(ValueError, match="negative"):
        billing.to_microcents(Decimal("-0.01"))


@pytest.mark.parametrize(
    ("microcents", "cents"), [(0, 0), (1, 1), (999_999, 1), (1_000_000, 1), (1_000_001, 2), (25_000_000, 25)]
)
def test_a_hold_covers_whole_cents(microcents: int, cents: int) -> None:
    assert billing.ceil_cents(microcents) == cents


def test_settlement_floors_and_carries_the_remainder() -> None:
    assert billing.settle_cents(1_300_000, 0) == (1, 300_000)
    assert billing.settle_cents(700_000, 300_000) == (1, 0)
    assert billing.settle_cents(400_000, 500_000) == (0, 900_000)


def test_cents_to_usd_has_two_decimals() -> None:
    assert billing.cents_to_usd(0) == 0.0
    assert billing.cents_to_usd(7) == 0.07
    assert billing.cents_to_usd(12345) == 123.45


def test_reserve_holds_without_charging_then_settle_charges_with_the_carry() -> None:
    wallet, limited = account(100), key(limit=50)
    hold = billing.reserve(wallet, limited, usd(1_300_000))  # 1.3 cents
    assert (hold.cents, hold.estimated_cents) == (2, 1)
    assert (wallet.wallet_cents, wallet.held_cents, limited.held_cents) == (100, 2, 2)

    charge = billing.settle(hold, usd(1_300_000))
    assert (charge.estimated_cents, charge.final_cents) == (1, 1)
    assert charge.metered_final_usd == Decimal("0.013")
    assert (wallet.wallet_cents, wallet.carry_microcents, wallet.held_cents) == (99, 300_000, 0)
    assert (limited.spent_cents, limited.held_cents) == (1, 0)
    assert hold.state is HoldState.SETTLED

    # The carried 0.3 cent completes the next 0.7 cent charge.
    second = billing.settle(billing.reserve(wallet, limited, usd(700_000)), usd(700_000))
    assert second.final_cents == 1
    assert (wallet.wallet_cents, wallet.carry_microcents, limited.spent_cents) == (98, 0, 2)


def test_settle_charges_the_actual_cost_below_the_estimate() -> None:
    wallet = account(100)
    hold = billing.reserve(wallet, None, usd(5_000_000))
    charge = billing.settle(hold, usd(2_500_000))
    assert (charge.estimated_cents, charge.final_cents) == (5, 2)
    assert (wallet.wallet_cents, wallet.carry_microcents) == (98, 500_000)


def test_insufficient_balance_raises_402_and_holds_nothing() -> None:
    wallet = account(1)
    with pytest.raises(ApiError) as raised:
        billing.reserve(wallet, key(), usd(1_500_000))
    error = raised.value
    assert (error.status, error.kind) == (402, ErrorKind.PAYMENT_REQUIRED)
    assert error.details["required_cents"] == 2
    assert (wallet.wallet_cents, wallet.held_cents) == (1, 0)


def test_spend_limit_raises_403_and_holds_nothing() -> None:
    wallet, limited = account(1000), key(limit=5, spent=4)
    with pytest.raises(ApiError) as raised:
        billing.reserve(wallet, limited, usd(1_500_000))
    assert (raised.value.status, raised.value.kind) == (403, ErrorKind.SPEND_LIMIT)
    assert (wallet.held_cents, limited.held_cents, limited.spent_cents) == (0, 0, 4)


def test_an_empty_wallet_is_reported_before_a_spend_limit() -> None:
    with pytest.raises(ApiError) as raised:
        billing.reserve(account(0), key(limit=0), usd(1))
    assert raised.value.kind is ErrorKind.PAYMENT_REQUIRED


def test_open_holds_are_not_spendable_by_other_requests() -> None:
    wallet, limited = account(3), key(limit=3)
    first = billing.reserve(wallet, limited, usd(2_000_000))
    with pytest.raises(ApiError) as raised:
        billing.reserve(wallet, None, usd(2_000_000))
    assert raised.value.kind is ErrorKind.PAYMENT_REQUIRED
    with pytest.raises(ApiError) as raised:
        billing.reserve(account(100), limited, usd(2_000_000))
    assert raised.value.kind is ErrorKind.SPEND_LIMIT
    billing.release(first)
    assert (wallet.held_cents, limited.held_cents) == (0, 0)
    billing.reserve(wallet, limited, usd(2_000_000))


def test_release_charges_nothing_and_closes_the_hold() -> None:
    wallet = account(10, carry=123)
    hold = billing.reserve(wallet, None, usd(3_000_000))
    billing.release(hold)
    billing.release(hold)  # idempotent
    assert (wallet.wallet_cents, wallet.carry_microcents, wallet.held_cents) == (10, 123, 0)
    assert hold.state is HoldState.RELEASED
    with pytest.raises(RuntimeError, match="released"):
        billing.settle(hold, usd(0))


def test_a_hold_settles_once_and_never_above_its_estimate() -> None:
    wallet = account(10)
    hold = billing.reserve(wallet, None, usd(1_000_000))
    with pytest.raises(ValueError, match="exceeds"):
        billing.settle(hold, usd(1_000_001))
    billing.settle(hold, usd(1_000_000))
    with pytest.raises(RuntimeError, match="settled"):
        billing.settle(hold, usd(1_000_000))
    billing.release(hold)  # no-op once settled
    assert (wallet.wallet_cents, wallet.held_cents) == (9, 0)


def test_quote_checks_without_changing_anything() -> None:
    wallet, limited = account(10, carry=600_000), key(limit=20, spent=15)
    quoted = billing.quote(wallet, limited, usd(4_500_000))
    assert (quoted.settled_cents, quoted.hold_cents) == (5, 5)  # floor(4.5 + 0.6), ceil(4.5)
    assert quoted.account.affordable
    assert quoted.account.reason is None
    assert quoted.key.within_limit
    assert quoted.key.remaining_cents == 5
    assert quoted.affordable
    too_much = billing.quote(wallet, limited, usd(11_000_000))
    assert not too_much.account.affordable
    assert "11 cents needed" in (too_much.account.reason or "")
    assert not too_much.key.within_limit
    assert too_much.key.reason
    assert not too_much.affordable
    unlimited = billing.quote(wallet, key(), usd(1))
    assert (unlimited.key.spend_limit_cents, unlimited.key.remaining_cents) == (None, None)
    assert (wallet.wallet_cents, wallet.carry_microcents, wallet.held_cents, limited.held_cents) == (
        10,
        600_000,
        0,
        0,
    )


def test_an_account_without_a_wallet_can_only_take_free_requests() -> None:
    walletless = account(None)
    assert billing.quote(walletless, None, usd(0)).affordable
    with pytest.raises(ApiError):
        billing.reserve(walletless, None, usd(1))


@given(
    estimate=st.integers(0, 50 * MICROCENTS_PER_CENT),
    percent=st.integers(0, 100),
    carry=st.integers(0, MICROCENTS_PER_CENT - 1),
)
def test_a_settlement_never_exceeds_its_hold(estimate: int, percent: int, carry: int) -> None:
    final = estimate * percent // 100
    settled, new_carry = billing.settle_cents(final, carry)
    assert settled <= billing.ceil_cents(estimate)
    assert 0 <= new_carry < MICROCENTS_PER_CENT


@given(st.lists(st.tuples(st.integers(0, 9 * MICROCENTS_PER_CENT), st.integers(0, 100)), max_size=200))
def test_settled_cents_track_the_metered_total(charges: list[tuple[int, int]]) -> None:
    """Over any sequence of charges the cents taken equal the metered total within one cent."""
    wallet, spender = account(10_000), key(limit=10_000)
    start = billing.balance_of(wallet)
    metered_total = Decimal(0)
    settled_total = 0
    for estimate, percent in charges:
        final = estimate * percent // 100
        try:
            hold = billing.reserve(wallet, spender, usd(estimate))
        except ApiError:
            continue
        charge = billing.settle(hold, usd(final))
        metered_total += charge.metered_final_usd
        settled_total += charge.final_cents
        assert wallet.wallet_cents is not None
        assert wallet.wallet_cents >= 0
    assert abs(metered_total * 100 - settled_total) < 1
    assert settled_total * MICROCENTS_PER_CENT + wallet.carry_microcents == billing.to_microcents(
        metered_total
    )
    assert start - (wallet.wallet_cents or 0) == settled_total == spender.spent_cents
    assert wallet.held_cents == spender.held_cents == 0
