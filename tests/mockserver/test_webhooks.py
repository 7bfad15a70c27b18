"""Webhook delivery over real HTTP: Standard Webhooks signatures, retries on the mock clock, the log."""

from __future__ import annotations

import asyncio
import base64
import gc
import hashlib
import hmac
import itertools
import json
import logging
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import pytest
from _mock_test_helpers import listen
from aiohttp import web

from mockserver.app import create_app
from mockserver.core.signing import seed_webhook_secret as signing_secret
from mockserver.core.webhooks import RetryPolicy
from mockserver.mock import MOCK, Mock
from mockserver.settings import Settings

PROVIDER, EVENT = "artificialstudio", "generationCompleted"
PAYLOAD = {
    "id": "507f1f77bcf86cd799439011",
    "status": "success",
    "output": "https://files.example/abc.png",
    "thumbnail": "https://files.example/abc.jpg",
    "tool": "create-image",
    "type": "image",
    "createdAt": "2024-01-15T10:30:00.000Z",
}
# Longer than any backoff wait of the policy, so one advance always makes the next retry due.
PAST_ANY_BACKOFF = RetryPolicy().cap_seconds + 1


def verify(secret: str, headers: Any, body: bytes) -> bool:
    """The Standard Webhooks check, written from the scheme (not from the mock's code)."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    signatures = [s.partition(",") for s in headers["webhook-signature"].split(" ")]
    return any(v == "v1" and hmac.compare_digest(sig, expected) for v, _, sig in signatures)


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A local webhook endpoint answering a scripted list of statuses (then 200)."""

    url: str
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    received: list[Received] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(Received(dict(request.headers), await request.read()))
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.Response(status=self.statuses.pop(0) if self.statuses else 200, text="ok")


@dataclass
class Client:
    session: aiohttp.ClientSession
    origin: str
    mock: Mock

    async def control(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.session.request(method, self.origin + "/_mock" + path, json=body) as resp:
            return resp.status, await resp.json()

    async def advance(self, seconds: float) -> None:
        status, _ = await self.control("POST", "/clock/advance", {"seconds": seconds})
        assert status == 200

    async def delivery(self, delivery_id: str) -> Any:
        status, body = await self.control("GET", f"/webhooks/{delivery_id}")
        assert status == 200, body
        return body

    async def secret(self) -> str:
        status, body = await self.control("GET", "/webhooks/secrets")
        assert status == 200
        return str(body["secrets"][PROVIDER])

    async def deliver(self, url: str, secret: str, payload: dict[str, Any] | None = None) -> str:
        dispatcher = self.mock.services.webhooks
        delivery = await dispatcher.deliver(
            url, payload or PAYLOAD, secret=secret, provider=PROVIDER, event=EVENT
        )
        return delivery.id


@asynccontextmanager
async def serve(seed: int = 0, **backend: Any) -> AsyncIterator[Client]:
    """The mock in this event loop (on the state ``backend`` names; memory without)."""
    settings = Settings(
        seed=seed, providers=(PROVIDER,), response_validation="strict", signing_secret="seed"
    ).with_changes(**backend)
    app = create_app(settings)
    async with listen(app) as origin, aiohttp.ClientSession() as session:
        yield Client(session, origin, app[MOCK])


@pytest.fixture
async def client(backend_settings: Callable[[], dict[str, Any]]) -> AsyncIterator[Client]:
    async with serve(**backend_settings()) as c:
        yield c
        assert (await c.control("GET", "/violations"))[1]["violations"] == []


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    app = web.Application()
    hook = Receiver(url="")
    app.router.add_post("/hook", hook.handle)
    async with listen(app) as origin:
        hook.url = origin + "/hook"
        yield hook


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


# -- secrets ----------------------------------------------------------------------------------------


async def test_secrets_are_standard_webhooks_secrets_per_key(client: Client) -> None:
    status, body = await client.control("GET", "/webhooks/secrets")
    assert status == 200
    # Only providers whose spec declares webhooks.
    assert set(body["secrets"]) == {PROVIDER}
    secret = body["secrets"][PROVIDER]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32
    (key,) = body["keys"]
    assert key["provider"] == PROVIDER
    assert key["secret"] == secret
    assert key["key_id"].startswith("key_")
    primary = client.mock.services.state.seed(PROVIDER).keys[0].key
    assert secret == signing_secret(0, PROVIDER, primary)
    assert signing_secret(1, PROVIDER, primary) != secret
    assert signing_secret(0, PROVIDER, primary + "x") != secret


# -- delivery ---------------------------------------------------------------------------------------


async def test_delivery_is_signed_and_logged(client: Client, receiver: Receiver) -> None:
    secret = await client.secret()
    delivery_id = await client.deliver(receiver.url, secret)
    await client.advance(0)

    (got,) = receiver.received
    assert json.loads(got.body) == PAYLOAD
    assert got.body == json.dumps(PAYLOAD, separators=(",", ":")).encode()
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["User-Agent"] == "mockserver-webhooks"
    assert got.headers["webhook-id"] == delivery_id
    assert delivery_id.startswith("msg_")
    assert abs(int(got.headers["webhook-timestamp"]) - client.mock.services.clock.now()) < 5
    assert verify(secret, got.headers, got.body)
    assert not verify(signing_secret(1, PROVIDER, "other"), got.headers, got.body)

    delivery = await client.delivery(delivery_id)
    assert delivery["status"] == "succeeded"
    assert (delivery["url"], delivery["event"], delivery["provider"]) == (receiver.url, EVENT, PROVIDER)
    assert delivery["payload"] == PAYLOAD
    assert delivery["next_attempt_at"] is None
    (attempt,) = delivery["attempts"]
    assert attempt["number"] == 1
    assert attempt["status"] == 200
    assert attempt["error"] is None
    assert attempt["latency_ms"] >= 0
    assert "secret" not in json.dumps(delivery)

    status, listing = await client.control("GET", f"/webhooks?provider={PROVIDER}")
    assert status == 200
    assert [d["id"] for d in listing["deliveries"]] == [delivery_id]
    assert (await client.control("GET", "/webhooks?provider=spaceai"))[1]["deliveries"] == []


async def test_the_standardwebhooks_library_verifies_deliveries(client: Client, receiver: Receiver) -> None:
    standardwebhooks = pytest.importorskip("standardwebhooks")
    secret = await client.secret()
    await client.deliver(receiver.url, secret)
    await client.advance(0)
    (got,) = receiver.received
    verified = standardwebhooks.Webhook(secret).verify(got.body, got.headers)
    assert verified == PAYLOAD


async def test_failed_attempts_are_retried_with_backoff(client: Client, receiver: Receiver) -> None:
    receiver.statuses = [500, 500]
    secret = await client.secret()
    delivery_id = await client.deliver(receiver.url, secret)
    await client.advance(0)
    first = await client.delivery(delivery_id)
    assert first["status"] == "pending"
    assert first["attempts"][0]["status"] == 500
    assert first["attempts"][0]["error"] == "HTTP 500"
    assert first["next_attempt_at"] == first["attempts"][0]["next_attempt_at"]

    for _ in range(2):
        await client.advance(PAST_ANY_BACKOFF)
    delivery = await client.delivery(delivery_id)
    assert delivery["status"] == "succeeded"
    attempts = delivery["attempts"]
    assert [a["number"] for a in attempts] == [1, 2, 3]
    assert [a["status"] for a in attempts] == [500, 500, 200]
    assert [a["error"] for a in attempts] == ["HTTP 500", "HTTP 500", None]
    policy = client.mock.services.webhooks.policy
    for number, (before, after) in enumerate(itertools.pairwise(attempts), start=1):
        # Full jitter: the wait is drawn from [0, base * factor^(n-1)], and the retry waits for it.
        assert 0 <= before["backoff_seconds"] <= policy.base_seconds * policy.factor ** (number - 1)
        # Counted from the end of the attempt.
        assert before["next_attempt_at"] >= before["time"] + before["backoff_seconds"]
        assert after["time"] >= before["next_attempt_at"]
    # Every attempt carries the same webhook-id and a fresh, valid signature.
    assert len(receiver.received) == 3
    assert {r.headers["webhook-id"] for r in receiver.received} == {delivery_id}
    assert all(verify(secret, r.headers, r.body) for r in receiver.received)


async def test_backoff_is_deterministic_under_the_seed(receiver: Receiver) -> None:
    waits: list[list[float]] = []
    for _ in range(2):
        async with serve(seed=5) as c:
            receiver.statuses = [500, 500, 500]
            delivery_id = await c.deliver(receiver.url, await c.secret())
            await c.advance(0)
            for _ in range(3):
                await c.advance(PAST_ANY_BACKOFF)
            attempts = (await c.delivery(delivery_id))["attempts"]
            waits.append([a["backoff_seconds"] for a in attempts[:-1]])
    assert waits[0] == waits[1]
    assert len(waits[0]) == 3


async def test_unreachable_receiver_fails_after_the_last_attempt(client: Client) -> None:
    url = closed_port_url()
    delivery_id = await client.deliver(url, await client.secret())
    await client.advance(0)
    policy = client.mock.services.webhooks.policy
    for _ in range(policy.max_attempts - 1):
        assert (await client.delivery(delivery_id))["status"] == "pending"
        await client.advance(PAST_ANY_BACKOFF)
    delivery = await client.delivery(delivery_id)
    assert delivery["status"] == "failed"
    assert delivery["next_attempt_at"] is None
    assert len(delivery["attempts"]) == policy.max_attempts
    for attempt in delivery["attempts"]:
        assert attempt["status"] is None
        assert "Connect" in attempt["error"]
    assert delivery["attempts"][-1]["next_attempt_at"] is None
    # No more attempts happen once it failed.
    await client.advance(PAST_ANY_BACKOFF)
    assert len((await client.delivery(delivery_id))["attempts"]) == policy.max_attempts


async def test_a_slow_receiver_times_out_and_is_retried(client: Client, receiver: Receiver) -> None:
    client.mock.services.webhooks.policy = RetryPolicy(attempt_timeout=0.2)
    receiver.delay = 1.0
    delivery_id = await client.deliver(receiver.url, await client.secret())
    await client.advance(0)
    delivery = await client.delivery(delivery_id)
    assert delivery["status"] == "pending"
    (attempt,) = delivery["attempts"]
    assert attempt["status"] is None
    assert attempt["error"] == "timed out after 0.2 s"
    assert attempt["latency_ms"] >= 200
    receiver.delay = 0
    await client.advance(PAST_ANY_BACKOFF)
    assert (await client.delivery(delivery_id))["status"] == "succeeded"


async def test_resend_starts_a_new_series_with_the_same_id(client: Client, receiver: Receiver) -> None:
    url = closed_port_url()
    secret = await client.secret()
    delivery_id = await client.deliver(url, secret)
    await client.advance(0)
    status, body = await client.control("POST", f"/webhooks/{delivery_id}/resend")
    assert status == 409, body

    for _ in range(client.mock.services.webhooks.policy.max_attempts):
        await client.advance(PAST_ANY_BACKOFF)
    assert (await client.delivery(delivery_id))["status"] == "failed"

    # The receiver comes up at the delivery's URL's place: point the delivery there (test-only).
    state = client.mock.services.state
    stored = await state.get_delivery(delivery_id)
    assert stored is not None
    stored.url = receiver.url
    await state.put_delivery(stored)
    status, body = await client.control("POST", f"/webhooks/{delivery_id}/resend")
    assert status == 202, body
    assert body["id"] == delivery_id
    delivery = await client.delivery(delivery_id)
    assert delivery["status"] == "succeeded"
    assert delivery["attempts"][-1]["number"] == client.mock.services.webhooks.policy.max_attempts + 1
    (got,) = receiver.received
    assert got.headers["webhook-id"] == delivery_id
    assert verify(secret, got.headers, got.body)

    status, body = await client.control("POST", f"/webhooks/{delivery_id}/resend")
    assert status == 202
    assert len(receiver.received) == 2

    status, body = await client.control("POST", "/webhooks/msg_unknown/resend")
    assert status == 404
    assert (await client.control("GET", "/webhooks/msg_unknown"))[0] == 404


async def test_reset_keeps_pending_deliveries_running(client: Client, receiver: Receiver) -> None:
    secret = await client.secret()
    done_id = await client.deliver(receiver.url, secret)
    await client.advance(0)
    receiver.statuses = [500]
    # Far ahead of real time, so a reset moves the clock a long way back.
    await client.advance(3600)
    pending_id = await client.deliver(receiver.url, secret)
    await client.advance(0)
    before = await client.delivery(pending_id)
    assert before["status"] == "pending"
    wait = before["next_attempt_at"] - client.mock.services.clock.now()

    status, _ = await client.control("POST", "/reset")
    assert status == 200
    _, listing = await client.control("GET", "/webhooks")
    assert [d["id"] for d in listing["deliveries"]] == [pending_id]
    assert (await client.control("GET", f"/webhooks/{done_id}"))[0] == 404
    after = await client.delivery(pending_id)
    # The remaining wait survives the clock's jump back to real time.
    assert after["next_attempt_at"] - client.mock.services.clock.now() <= wait + 1

    await client.advance(PAST_ANY_BACKOFF)
    assert (await client.delivery(pending_id))["status"] == "succeeded"
    assert len(receiver.received) == 3


async def test_payloads_are_checked_against_the_spec(client: Client, receiver: Receiver) -> None:
    await client.deliver(receiver.url, await client.secret(), payload={"id": "not-hex", "status": "success"})
    await client.advance(0)
    _, body = await client.control("GET", "/violations")
    (violation,) = body["violations"]
    assert violation["provider"] == PROVIDER
    assert violation["operation_id"] == EVENT
    assert violation["problem"].startswith("webhook payload")
    # Still delivered: the log shows what happened, the receiver sees what was sent.
    assert len(receiver.received) == 1
    await client.mock.services.state.clear_journal()  # the fixture checks for no violations


async def test_shutdown_with_a_pending_retry_is_clean(
    receiver: Receiver, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.statuses = [500]
    async with serve() as c:
        delivery_id = await c.deliver(receiver.url, await c.secret())
        await c.advance(0)
        assert (await c.delivery(delivery_id))["status"] == "pending"
        dispatcher = c.mock.services.webhooks
    assert dispatcher._task is None
    assert dispatcher._attempting == {}
    assert dispatcher._session is None
    gc.collect()
    await asyncio.sleep(0)
    problems = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.WARNING and ("destroyed" in r.getMessage() or "Unclosed" in r.getMessage())
    ]
    assert problems == []
