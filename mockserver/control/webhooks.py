"""Control routes for webhook deliveries: list, inspect, resend, and the secrets receivers verify with."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from mockserver.control.base import ControlError, ControlHandler, json_reply, mock_of
from mockserver.state.records import DeliveryRecord


def public(delivery: DeliveryRecord) -> dict[str, Any]:
    """What the control API shows of a delivery (never the secret)."""
    return {
        "id": delivery.id,
        "provider": delivery.provider,
        "event": delivery.event,
        "url": delivery.url,
        "status": delivery.status,
        "created_at": delivery.created_at,
        "next_attempt_at": delivery.next_attempt_at,
        "attempts": [
            {
                "number": a.number,
                "time": a.time,
                "status": a.status,
                "latency_ms": a.latency_ms,
                "error": a.error,
                "backoff_seconds": a.backoff_seconds,
                "next_attempt_at": a.next_attempt_at,
                "response_excerpt": a.response_excerpt,
            }
            for a in delivery.attempts
        ],
        "payload": delivery.payload,
    }


async def list_webhooks(request: web.Request) -> web.Response:
    """``GET /_mock/webhooks?provider=``: webhook deliveries and their attempts, oldest first."""
    deliveries = await mock_of(request).services.webhooks.deliveries(request.query.get("provider"))
    return json_reply({"deliveries": [public(d) for d in deliveries]})


async def webhook_secrets(request: web.Request) -> web.Response:
    """``GET /_mock/webhooks/secrets``: the signing secret of each key, for receivers to verify with."""
    mock = mock_of(request)
    primary: dict[str, str] = {}
    keys: list[dict[str, str]] = []
    for provider_id, service in mock.providers.items():
        if not service.spec.webhooks:
            continue
        primary[provider_id] = mock.services.webhooks.secret_for(
            provider_id, service.provider_state.seed.keys[0].key
        )
        for key in await mock.state.keys(provider_id):
            secret = mock.services.webhooks.secret_for(provider_id, key.key)
            keys.append({"provider": provider_id, "key_id": key.key_id, "name": key.name, "secret": secret})
    return json_reply({"secrets": primary, "keys": keys})


async def get_webhook(request: web.Request) -> web.Response:
    """``GET /_mock/webhooks/{delivery_id}``: one delivery."""
    delivery = await mock_of(request).services.webhooks.get(request.match_info["delivery_id"])
    if delivery is None:
        raise web.HTTPNotFound(text="no such webhook delivery")
    return json_reply(public(delivery))


async def resend_webhook(request: web.Request) -> web.Response:
    """``POST /_mock/webhooks/{delivery_id}/resend``: a new attempt series with the same webhook-id."""
    webhooks = mock_of(request).services.webhooks
    delivery = await webhooks.get(request.match_info["delivery_id"])
    if delivery is None:
        raise web.HTTPNotFound(text="no such webhook delivery")
    if delivery.status == "pending":
        raise ControlError(409, "the delivery is still pending; advance the clock to retry it", "conflict")
    resent = await webhooks.resend(delivery.id)
    if resent is None:  # reset meanwhile
        raise web.HTTPNotFound(text="no such webhook delivery")
    # Exactly the new series' first attempt, even when its retry is due (full jitter) milliseconds later.
    return json_reply(public(await webhooks.first_of_series(resent)), 202)


WEBHOOK_ROUTES: list[tuple[str, str, ControlHandler]] = [
    ("GET", "/webhooks", list_webhooks),
    ("GET", "/webhooks/secrets", webhook_secrets),
    ("GET", "/webhooks/{delivery_id}", get_webhook),
    ("POST", "/webhooks/{delivery_id}/resend", resend_webhook),
]
"""Webhook routes, relative to ``/_mock``."""
