"""``core.billing``: exact metering, cents settled with a carry, holds that keep wallets from overdrawing."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mockserver.core import billing
from mockserver.core.billing import MICROCENTS_PER_CENT
from mockserver.core.clock import Clock
from mockserver.errors import ApiError, ErrorKind
from mockserver.settings import Settings
from mockserver.state.api import State
from mockserver.state.factory import create_state
from mockserver.state.records import KeyRecord, WalletView
from mockserver.state.seed import parse_seed

P = "test"


def usd(microcents: int) -> Decimal:
    """A USD amount from micro-cents (1 USD = 1e8 micro-cents)."""
    return Decimal(microcents) / Decimal(100 * MICROCENTS_PER_CENT)


async def ledger(
    wallet: int | None = 1000,
    limit: int | None = None,
    *,
    spent: int = 0,
    carry: int = 0,
    account: str = "acct",
) -> tuple[State, KeyRecord]:
    """A state with one account (``wallet`` cents, ``carry`` micro-cents carried) and its key (``limit``,
    ``spent`` cents spent already: charged through the state, as requests would)."""
    seed = parse_seed(
        P,
        {
            "accounts": [{"id": account, "wallet_cents": wallet}, {"id": "other", "wallet_cents": 100}],
            "keys": [{"key": "k_test_1", "account": account, "spend_limit_cents": limit}],
        },
        "test",
    )
    state = create_state(Settings(), {P: seed}, Clock())
    key = seed.keys[0]
    if spent or carry:
        assert wallet is not None
        await state.set_wallet(P, account, wallet + spent)
        await state.update_key(P, key.key_id, spend_limit_cents=None)
        hold = await billing.reserve(state, P, account, key, usd(spent * MICROCENTS_PER_CENT + carry))
        await billing.settle(state, hold, usd(spent * MICROCENTS_PER_CENT + carry))
        await state.update_key(P, key.key_id, spend_limit_cents=limit)
    found = await state.find_key(P, key.key)
    assert found is not None
    return state, found


async def money(state: State, key: KeyRecord | None = None, account: str = "acct") -> WalletView:
    return await state.wallet(P, account, key.key_id if key is not None else None)


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


async def test_reserve_holds_without_charging_then_settle_charges_with_the_carry() -> None:
    state, limited = await ledger(100, limit=50)
    hold = await billing.reserve(state, P, "acct", limited, usd(1_300_000))  # 1.3 cents
    assert (hold.cents, hold.estimated_cents) == (2, 1)
    view = await money(state, limited)
    assert (view.wallet_cents, view.held_cents, view.key_held_cents) == (100, 2, 2)

    charge = await billing.settle(state, hold, usd(1_300_000))
    assert (charge.estimated_cents, charge.final_cents) == (1, 1)
    assert charge.metered_final_usd == Decimal("0.013")
    view = await money(state, limited)
    assert (view.wallet_cents, view.carry_microcents, view.held_cents) == (99, 300_000, 0)
    assert (view.key_spent_cents, view.key_held_cents) == (1, 0)

    # The carried 0.3 cent completes the next 0.7 cent charge.
    second = await billing.settle(
        state, await billing.reserve(state, P, "acct", limited, usd(700_000)), usd(700_000)
    )
    assert second.final_cents == 1
    view = await money(state, limited)
    assert (view.wallet_cents, view.carry_microcents, view.key_spent_cents) == (98, 0, 2)


async def test_settle_charges_the_actual_cost_below_the_estimate() -> None:
    state, _ = await ledger(100)
    hold = await billing.reserve(state, P, "acct", None, usd(5_000_000))
    charge = await billing.settle(state, hold, usd(2_500_000))
    assert (charge.estimated_cents, charge.final_cents) == (5, 2)
    view = await money(state)
    assert (view.wallet_cents, view.carry_microcents) == (98, 500_000)


async def test_insufficient_balance_raises_402_and_holds_nothing() -> None:
    state, key = await ledger(1)
    with pytest.raises(ApiError) as raised:
        await billing.reserve(state, P, "acct", key, usd(1_500_000))
    error = raised.value
    assert (error.status, error.kind) == (402, ErrorKind.PAYMENT_REQUIRED)
    assert error.details["required_cents"] == 2
    view = await money(state)
    assert (view.wallet_cents, view.held_cents) == (1, 0)


async def test_spend_limit_raises_403_and_holds_nothing() -> None:
    state, limited = await ledger(1000, limit=5, spent=4)
    with pytest.raises(ApiError) as raised:
        await billing.reserve(state, P, "acct", limited, usd(1_500_000))
    assert (raised.value.status, raised.value.kind) == (403, ErrorKind.SPEND_LIMIT)
    assert raised.value.details == {"spend_limit_cents": 5, "spent_cents": 4, "required_cents": 2}
    view = await money(state, limited)
    assert (view.held_cents, view.key_held_cents, view.key_spent_cents) == (0, 0, 4)


async def test_an_empty_wallet_is_reported_before_a_spend_limit() -> None:
    state, key = await ledger(0, limit=0)
    with pytest.raises(ApiError) as raised:
        await billing.reserve(state, P, "acct", key, usd(1))
    assert raised.value.kind is ErrorKind.PAYMENT_REQUIRED


async def test_open_holds_are_not_spendable_by_other_requests() -> None:
    state, limited = await ledger(3, limit=3)
    first = await billing.reserve(state, P, "acct", limited, usd(2_000_000))
    with pytest.raises(ApiError) as raised:
        await billing.reserve(state, P, "acct", None, usd(2_000_000))
    assert raised.value.kind is ErrorKind.PAYMENT_REQUIRED
    with pytest.raises(ApiError) as raised:  # another account could pay: the key's limit cannot
        await billing.reserve(state, P, "other", limited, usd(2_000_000))
    assert raised.value.kind is ErrorKind.SPEND_LIMIT
    await billing.release(state, first)
    view = await money(state, limited)
    assert (view.held_cents, view.key_held_cents) == (0, 0)
    await billing.reserve(state, P, "acct", limited, usd(2_000_000))


async def test_release_charges_nothing_and_closes_the_hold() -> None:
    state, _ = await ledger(10, carry=123)
    hold = await billing.reserve(state, P, "acct", None, usd(3_000_000))
    await billing.release(state, hold)
    await billing.release(state, hold)  # idempotent
    view = await money(state)
    assert (view.wallet_cents, view.carry_microcents, view.held_cents) == (10, 123, 0)
    with pytest.raises(RuntimeError, match="no longer open"):
        await billing.settle(state, hold, usd(0))


async def test_a_hold_settles_once_and_never_above_its_estimate() -> None:
    state, _ = await ledger(10)
    hold = await billing.reserve(state, P, "acct", None, usd(1_000_000))
    with pytest.raises(ValueError, match="exceeds"):
        await billing.settle(state, hold, usd(1_000_001))
    await billing.settle(state, hold, usd(1_000_000))
    with pytest.raises(RuntimeError, match="no longer open"):
        await billing.settle(state, hold, usd(1_000_000))
    await billing.release(state, hold)  # no-op once settled
    view = await money(state)
    assert (view.wallet_cents, view.held_cents) == (9, 0)


async def test_quote_checks_without_changing_anything() -> None:
    state, limited = await ledger(10, limit=20, spent=15, carry=600_000)
    quoted = await billing.quote(state, P, "acct", limited, usd(4_500_000))
    assert (quoted.settled_cents, quoted.hold_cents) == (5, 5)  # floor(4.5 + 0.6), ceil(4.5)
    assert quoted.account.affordable
    assert quoted.account.reason is None
    assert quoted.key.within_limit
    assert quoted.key.remaining_cents == 5
    assert quoted.affordable
    too_much = await billing.quote(state, P, "acct", limited, usd(11_000_000))
    assert not too_much.account.affordable
    assert "11 cents needed" in (too_much.account.reason or "")
    assert not too_much.key.within_limit
    assert too_much.key.reason
    assert not too_much.affordable
    unlimited = await billing.quote(state, P, "acct", None, usd(1))
    assert (unlimited.key.spend_limit_cents, unlimited.key.remaining_cents) == (None, None)
    view = await money(state, limited)
    assert (view.wallet_cents, view.carry_microcents, view.held_cents, view.key_held_cents) == (
        10,
        600_000,
        0,
        0,
    )


async def test_an_account_without_a_wallet_can_only_take_free_requests() -> None:
    state, _ = await ledger(None)
    assert (await billing.quote(state, P, "acct", None, usd(0))).affordable
    with pytest.raises(ApiError):
        await billing.reserve(state, P, "acct", None, usd(1))


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
    asyncio.run(_track(charges))


async def _track(charges: list[tuple[int, int]]) -> None:
    state, spender = await ledger(10_000, limit=10_000)
    metered_total = Decimal(0)
    settled_total = 0
    for estimate, percent in charges:
        final = estimate * percent // 100
        try:
            hold = await billing.reserve(state, P, "acct", spender, usd(estimate))
        except ApiError:
            continue
        charge = await billing.settle(state, hold, usd(final))
        metered_total += charge.metered_final_usd
        settled_total += charge.final_cents
        assert ((await money(state)).wallet_cents or 0) >= 0
    view = await money(state, spender)
    assert abs(metered_total * 100 - settled_total) < 1
    assert settled_total * MICROCENTS_PER_CENT + view.carry_microcents == billing.to_microcents(metered_total)
    assert 10_000 - (view.wallet_cents or 0) == settled_total == view.key_spent_cents
    assert view.held_cents == view.key_held_cents == 0
