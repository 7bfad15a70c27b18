"""``POST /api/v1/quotes``: the estimated charge of a request and the account and API-key checks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from mockserver.core import billing
from mockserver.core.calls import Call, JsonReply, Reply
from mockserver.providers.pahlavan.charges import caller
from mockserver.providers.pahlavan.models import (
    DEFAULT_VIDEO_SECONDS,
    Model,
    find_model,
    image_cost,
    language_cost,
    token_budget,
    video_cost,
)


def _estimate(model: Model, body: dict[str, Any]) -> Decimal:
    """The metered estimate, with the same defaults a generation request would use."""
    kind = body["type"]
    if kind == "language":
        output = body.get("outputTokens")
        return language_cost(
            model, body.get("inputTokens", 0), token_budget(model, None) if output is None else output
        )
    if kind == "image":
        return image_cost(model, body.get("units", 1))
    return video_cost(model, body.get("units", DEFAULT_VIDEO_SECONDS))


def _account_check(check: billing.AccountCheck) -> dict[str, Any]:
    shown: dict[str, Any] = {"balance_cents": check.balance_cents, "affordable": check.affordable}
    if check.reason:
        shown["reason"] = check.reason
    return shown


def _key_check(check: billing.KeyCheck) -> dict[str, Any]:
    # Optional fields are omitted rather than null, as the spec's Quote schema declares them.
    shown: dict[str, Any] = {}
    if check.spend_limit_cents is not None:
        shown["spend_limit_cents"] = check.spend_limit_cents
    shown["spent_cents"] = check.spent_cents
    if check.remaining_cents is not None:
        shown["remaining_cents"] = check.remaining_cents
    shown["within_limit"] = check.within_limit
    if check.reason:
        shown["reason"] = check.reason
    return shown


async def create_quote(call: Call) -> Reply:
    """Price the described request for the caller; nothing is held or charged."""
    body = call.body
    model = find_model(call, body["model"], kind=body["type"])
    key = caller(call)
    quoted = await billing.quote(
        call.services.state, call.state.provider_id, key.account, key, _estimate(model, body)
    )
    return JsonReply(
        {
            "object": "quote",
            "model": model["id"],
            "type": body["type"],
            "currency": "usd",
            "estimated_charge_cents": quoted.settled_cents,
            "estimated_charge_usd": billing.cents_to_usd(quoted.settled_cents),
            "metered_estimated_charge_usd": float(quoted.metered_usd),
            "affordable": quoted.affordable,
            "account": _account_check(quoted.account),
            "api_key": _key_check(quoted.key),
        }
    )
