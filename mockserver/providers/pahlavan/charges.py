"""Wallet billing as Pahlavan shows it: holds on the caller's account and the documented billing fields."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from mockserver.core import billing
from mockserver.core.billing import Charge
from mockserver.core.calls import Call
from mockserver.state.records import AccountRecord as Account  # import only: state-engines moves this
from mockserver.state.records import HoldRecord as Hold
from mockserver.state.records import KeyRecord as ApiKey


def caller(call: Call) -> tuple[Account, ApiKey]:
    """The calling key and its account (every billed operation requires a key)."""
    key = call.key
    if key is None:  # the pipeline authenticates billed operations before their handler runs
        raise RuntimeError(f"{call.operation.operation_id} ran without an API key")
    account = call.state.accounts.get(key.account)
    if account is None:
        account = call.state.accounts.setdefault(key.account, Account(id=key.account))
    return account, key


def reserve(call: Call, estimate: Decimal) -> Hold:
    """Hold the estimate on the caller's wallet and key (402 / 403 when they cannot cover it)."""
    account, key = caller(call)
    return billing.reserve(account, key, estimate)


def estimate_fields(hold: Hold) -> dict[str, Any]:
    """The estimate half of the billing fields (what is known before the charge settles)."""
    return {
        "estimated_charge_cents": hold.estimated_cents,
        "estimated_charge_usd": billing.cents_to_usd(hold.estimated_cents),
        "metered_estimated_charge_usd": float(hold.metered_estimate),
    }


def billing_fields(charge: Charge) -> dict[str, Any]:
    """All six documented billing fields of a settled charge."""
    return {
        "estimated_charge_cents": charge.estimated_cents,
        "final_charge_cents": charge.final_cents,
        "estimated_charge_usd": billing.cents_to_usd(charge.estimated_cents),
        "final_charge_usd": billing.cents_to_usd(charge.final_cents),
        "metered_estimated_charge_usd": float(charge.metered_estimate_usd),
        "metered_final_charge_usd": float(charge.metered_final_usd),
    }
