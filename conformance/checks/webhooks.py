"""Webhooks (the spec's top-level ``webhooks``, which schemathesis ignores): a delivery arrives and is valid.

Submits a run with ``webhook=<public url>/conformance/<token>`` to the local receiver, polls the generation
to its end, waits for the delivery, then validates its body and headers against the spec's webhook entry
(jsonschema), verifies the Standard Webhooks signature when ``--webhook-secret`` is given, and compares the
delivered generation with the polled one.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from typing import Any

from conformance.checks import BehaviourCheck, Outcome
from conformance.checks.jobs import PROMPT, PollTimeout, example_tool, poll
from conformance.context import Context, Skip
from conformance.spec import JSON, SpecInfo, pointer_escape
from conformance.webhook_receiver import Delivery
from mockserver.core.spec import resolve

TIMESTAMP_TOLERANCE = 300.0
"""Seconds a delivery's ``webhook-timestamp`` may differ from this machine's clock."""


def _applies(spec: SpecInfo) -> str | None:
    if not spec.document.get("webhooks"):
        return "the spec declares no webhooks"
    return None if spec.has("createRun", "getGeneration") else "no operation takes a webhook URL"


def _webhook(spec: SpecInfo) -> tuple[str, dict[str, Any]]:
    name, item = next(iter(spec.document["webhooks"].items()))
    return name, resolve(spec.document, item).get("post", {})


def verify_signature(secret: str, delivery: Delivery) -> bool:
    """Standard Webhooks: some ``v1,<sig>`` equals base64 HMAC-SHA256 of ``id.timestamp.body``."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    message = (
        f"{delivery.header('webhook-id')}.{delivery.header('webhook-timestamp')}.".encode() + delivery.body
    )
    expected = base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()
    offered = (delivery.header("webhook-signature") or "").split()
    return any(
        hmac.compare_digest(sig.partition(",")[2], expected) for sig in offered if sig.startswith("v1,")
    )


def check_delivery(ctx: Context) -> Outcome:
    """A run with a webhook gets exactly the final generation POSTed to the receiver."""
    ctx.require_spend("a generation run with a webhook")
    receiver = ctx.receiver
    if receiver is None:
        raise Skip(
            "no receiver: pass --webhook-listen HOST:PORT (and --webhook-public-url if needed)",
            needs="--webhook-listen",
        )
    create, get = ctx.require_operations("createRun", "getGeneration")
    name, webhook = _webhook(ctx.spec)
    pointer = f"#/webhooks/{pointer_escape(name)}/post"
    out, check = Outcome(), "webhooks.delivery"
    token = secrets.token_hex(8)
    path = f"/conformance/{token}"
    created = ctx.call(
        create,
        json_body={
            "tool": example_tool(ctx, create),
            "input": {"prompt": PROMPT},
            "webhook": receiver.public_url + path,
        },
    )
    data = created.json()
    if created.status != 200 or not isinstance(data, dict) or "id" not in data:
        out.add(ctx.violation(check, create, f"the run answered {created.status}", created))
        return out
    try:
        last = poll(
            ctx,
            lambda: ctx.call(get, params={"id": str(data["id"])}),
            lambda b: isinstance(b, dict) and b.get("status") in ("success", "failed"),
            lambda _: None,
        )
    except PollTimeout as exc:
        out.add(ctx.violation(check, get, str(exc)))
        return out
    polled = last.json()
    deliveries = receiver.wait_for(path, ctx.settings.poll_timeout)
    label = f"webhook {name}"
    if not deliveries:
        out.add(
            ctx.violation(check, label, f"no delivery within {ctx.settings.poll_timeout:g} s", None, pointer)
        )
        return out
    delivery = deliveries[0]
    try:
        body = json.loads(delivery.body)
    except ValueError:
        out.add(ctx.violation(check, label, "the delivery body is not JSON", None, pointer))
        return out
    schema = (
        resolve(ctx.spec.document, webhook.get("requestBody", {}))
        .get("content", {})
        .get(JSON, {})
        .get("schema")
    )
    for error in ctx.spec.errors(schema or {}, body)[:5]:
        out.add(ctx.violation(check, label, f"delivery body {error}", None, f"{pointer}/requestBody"))
    for parameter in webhook.get("parameters", []):
        parameter = resolve(ctx.spec.document, parameter)
        if parameter.get("in") != "header":
            continue
        value: Any = delivery.header(parameter["name"])
        if value is None:
            if parameter.get("required"):
                out.add(ctx.violation(check, label, f"missing header {parameter['name']}", None, pointer))
            continue
        if parameter.get("schema", {}).get("type") == "integer":
            value = int(value) if value.strip().lstrip("-").isdigit() else value
        for error in ctx.spec.errors(parameter.get("schema", {}), value)[:1]:
            out.add(ctx.violation(check, label, f"header {parameter['name']}: {error}", None, pointer))
    timestamp = delivery.header("webhook-timestamp")
    if timestamp and timestamp.isdigit() and abs(int(timestamp) - time.time()) > TIMESTAMP_TOLERANCE:
        out.add(ctx.violation(check, label, f"webhook-timestamp {timestamp} is far from now", None, pointer))
    verified = "not verified (no --webhook-secret)"
    if ctx.settings.webhook_secret:
        verified = "verified"
        if not verify_signature(ctx.settings.webhook_secret, delivery):
            out.add(ctx.violation(check, label, "webhook-signature does not verify", None, pointer))
    if isinstance(polled, dict) and isinstance(body, dict):
        for key, value in polled.items():
            if body.get(key) != value:
                message = f"delivered {key} {body.get(key)!r} != polled {value!r}"
                out.add(ctx.violation(check, label, message, last, pointer))
    out.detail = f"{len(deliveries)} delivery(ies) received; signature {verified}"
    return out


CHECKS = [
    BehaviourCheck(
        "webhooks.delivery", "Webhook delivery matches the spec and the poll", _applies, check_delivery
    ),
]
