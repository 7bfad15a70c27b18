"""Wallet billing (specs with ``createQuote``): quotes, settled cents and metered USD agree.

``billing.quote`` is free (a quote charges nothing); ``billing.charges`` pays for one small chat completion
and prices the same request with a quote; ``billing.insufficient_balance`` sends a request only when a quote
says the account cannot afford it (so a conforming target refuses it without charging), with the
``--poor-api-key`` when given: a key of an account too poor for the largest request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conformance.checks import BehaviourCheck, Outcome, needs
from conformance.checks.jobs import validate
from conformance.checks.streaming import chat_body
from conformance.client import Exchange
from conformance.context import Context, Skip
from conformance.spec import OperationInfo

EPSILON = 1e-9
CENT = 0.01
MAX_VIDEO_SECONDS = 60
PAIRS = (("estimated_charge_cents", "estimated_charge_usd"), ("final_charge_cents", "final_charge_usd"))
METERED = {
    "estimated_charge_cents": "metered_estimated_charge_usd",
    "final_charge_cents": "metered_final_charge_usd",
}


def money_problems(body: dict[str, Any]) -> list[str]:
    """``*_usd == cents / 100``, metered amounts >= 0 and within a cent of the settled amount."""
    found = []
    for cents_key, usd_key in PAIRS:
        cents, usd = body.get(cents_key), body.get(usd_key)
        if isinstance(cents, int) and isinstance(usd, int | float) and abs(usd - cents / 100) > EPSILON:
            found.append(f"{usd_key} {usd} != {cents_key} {cents} / 100")
    for cents_key, metered_key in METERED.items():
        metered, cents = body.get(metered_key), body.get(cents_key)
        if isinstance(metered, int | float):
            if metered < 0:
                found.append(f"{metered_key} is negative: {metered}")
            # Settled cents carry sub-cent remainders between charges, so they may differ by under a cent.
            if isinstance(cents, int) and abs(cents / 100 - metered) >= CENT + EPSILON:
                found.append(f"{cents_key} {cents} is more than a cent away from {metered_key} {metered}")
    return found


def quote_problems(data: dict[str, Any]) -> list[str]:
    """A quote's ``affordable`` must be what its account and key checks say."""
    account, key = data.get("account"), data.get("api_key")
    affordable = bool(isinstance(account, dict) and account.get("affordable")) and bool(
        isinstance(key, dict) and key.get("within_limit")
    )
    if data.get("affordable") is not affordable:
        return [f"affordable is {data.get('affordable')} but account/api_key checks say {affordable}"]
    return []


def quote(
    ctx: Context,
    op: OperationInfo,
    out: Outcome,
    check: str,
    body: dict[str, Any],
    headers: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """Ask for a quote (``headers`` may carry another key) and check its own arithmetic; returns it."""
    exchange = ctx.call(op, json_body=body, headers=headers)
    data = validate(ctx, out, check, op, exchange)
    if exchange.status != 200 or not isinstance(data, dict):
        out.add(ctx.violation(check, op, f"the quote answered {exchange.status}", exchange))
        raise _Stop
    for problem in money_problems(data) + quote_problems(data):
        out.add(ctx.violation(check, op, problem, exchange))
    data["_exchange"] = exchange
    return data


class _Stop(Exception):
    """A step failed in a way already reported; end the check."""


def _pricing(ctx: Context, model: str) -> dict[str, Any] | None:
    listed = ctx.cache.get("models") or []
    entry = next((m for m in listed if m.get("id") == model), None)
    pricing = entry.get("pricing") if entry else None
    return pricing if isinstance(pricing, dict) else None


def check_quote(ctx: Context) -> Outcome:
    """A language quote's cents, USD and metered amount agree with each other and with the model's price."""
    (op,) = ctx.require_operations("createQuote")
    out, check = Outcome(), "billing.quote"
    model = ctx.model("language")
    tokens_in, tokens_out = 1000, 500
    try:
        data = quote(
            ctx,
            op,
            out,
            check,
            {"model": model, "type": "language", "inputTokens": tokens_in, "outputTokens": tokens_out},
        )
    except _Stop:
        return out
    pricing = _pricing(ctx, model)
    metered = data.get("metered_estimated_charge_usd")
    if pricing and isinstance(metered, int | float):
        rate_in, rate_out = pricing.get("input_per_1m_tokens"), pricing.get("output_per_1m_tokens")
        if isinstance(rate_in, int | float) and isinstance(rate_out, int | float):
            expected = tokens_in * rate_in / 1e6 + tokens_out * rate_out / 1e6
            if abs(expected - metered) > max(EPSILON, expected * 1e-6):
                message = f"metered estimate {metered} != the model's listed price {expected:.9f}"
                out.add(ctx.violation(check, op, message, data["_exchange"]))
    out.detail = f"quote for {model}: {data.get('estimated_charge_cents')} cents ({metered} USD metered)"
    return out


def check_charges(ctx: Context) -> Outcome:
    """A paid chat completion carries coherent billing fields, equal to a quote of the same request."""
    ctx.require_spend("a billed chat completion")
    chat, quote_op = ctx.require_operations("createChatCompletion", "createQuote")
    out, check = Outcome(), "billing.charges"
    body = chat_body(ctx, chat, stream=False)
    exchange: Exchange = ctx.call(chat, json_body=body)
    data = validate(ctx, out, check, chat, exchange)
    if exchange.status != 200 or not isinstance(data, dict):
        out.add(ctx.violation(check, chat, f"the chat completion answered {exchange.status}", exchange))
        return out
    for problem in money_problems(data):
        out.add(ctx.violation(check, chat, problem, exchange))
    usage = data.get("usage") or {}
    if not isinstance(usage.get("prompt_tokens"), int) or not isinstance(usage.get("completion_tokens"), int):
        raise Skip("the completion reports no token usage to price")
    try:
        priced = quote(
            ctx,
            quote_op,
            out,
            check,
            {
                "model": data.get("model", body["model"]),
                "type": "language",
                "inputTokens": usage["prompt_tokens"],
                "outputTokens": usage["completion_tokens"],
            },
        )
    except _Stop:
        return out
    charged, quoted = data.get("metered_final_charge_usd"), priced.get("metered_estimated_charge_usd")
    if (
        isinstance(charged, int | float)
        and isinstance(quoted, int | float)
        and abs(charged - quoted) > max(EPSILON, abs(quoted) * 1e-6)
    ):
        message = f"metered_final_charge_usd {charged} != quote for the same tokens {quoted}"
        out.add(ctx.violation(check, chat, message, exchange))
    video = ctx.cache.get("video")
    if isinstance(video, dict) and video.get("status") == "succeeded":
        for problem in money_problems(video):
            out.add(ctx.violation(check, "video generation (jobs.video)", problem))
    out.detail = f"charged {data.get('final_charge_cents')} cents for {usage.get('total_tokens')} tokens"
    return out


def check_insufficient_balance(ctx: Context) -> Outcome:
    """Where a quote says the account cannot pay, the request is refused with 402 INSUFFICIENT_BALANCE."""
    quote_op, video = ctx.require_operations("createQuote", "createVideoGeneration")
    out, check = Outcome(), "billing.insufficient_balance"
    model = ctx.model("video")
    poor_key = ctx.settings.poor_api_key
    # The poor account's key replaces the main one for both requests (the quote is about the caller's wallet).
    headers = ctx.spec.auth_headers(poor_key) if poor_key else None
    priced = {"model": model, "type": "video", "units": MAX_VIDEO_SECONDS}
    try:
        data = quote(ctx, quote_op, out, check, priced, headers=headers)
    except _Stop:
        return out
    if data.get("account", {}).get("affordable", True):
        whose = "the --poor-api-key account" if poor_key else "the account (pass --poor-api-key)"
        raise Skip(
            f"not provokable: {whose} can afford the largest request (a {MAX_VIDEO_SECONDS} s video)",
            needs=None if poor_key else "--poor-api-key",
        )
    ctx.require_spend("a request the account cannot afford (a faulty target would charge it)")
    body = {"model": model, "prompt": "conformance", "settings": {"duration_seconds": MAX_VIDEO_SECONDS}}
    exchange = ctx.call(video, json_body=body, headers=headers)
    code = (
        (exchange.json() or {}).get("details", {}).get("code") if isinstance(exchange.json(), dict) else None
    )
    if exchange.status != 402 or code != "INSUFFICIENT_BALANCE":
        message = f"expected 402 INSUFFICIENT_BALANCE, got {exchange.status} {code}"
        out.add(ctx.violation(check, video, message, exchange))
    return out


CHECKS = [
    BehaviourCheck("billing.quote", "Quote arithmetic and model price", needs("createQuote"), check_quote),
    BehaviourCheck(
        "billing.charges",
        "Charges equal the quote of the same request",
        needs("createQuote", "createChatCompletion"),
        check_charges,
    ),
    BehaviourCheck(
        "billing.insufficient_balance",
        "INSUFFICIENT_BALANCE when the wallet cannot pay",
        needs("createQuote", "createVideoGeneration"),
        check_insufficient_balance,
    ),
]
