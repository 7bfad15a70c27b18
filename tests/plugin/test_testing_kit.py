"""What the fixtures hand out: the control handle, the webhook receiver and signature check, the pool."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any

import pytest
import requests

from mockserver.settings import Settings
from mockserver.testing import ControlError, MockControl, ServerPool, WebhookReceiver, verify_signature

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def signed(
    secret: str, body: bytes, message_id: str = "msg_1", timestamp: int | None = None
) -> dict[str, str]:
    """Standard Webhooks headers for ``body``, computed here from the scheme."""
    stamp = int(time.time()) if timestamp is None else timestamp
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{message_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def test_verify_signature_follows_the_scheme() -> None:
    body = b'{"id":"1"}'
    headers = signed(SECRET, body)
    assert verify_signature(SECRET, headers, body)
    assert verify_signature(SECRET, {k.title(): v for k, v in headers.items()}, body.decode())
    rotated = {**headers, "webhook-signature": "v1,bm9wZQ== " + headers["webhook-signature"]}
    assert verify_signature(SECRET, rotated, body)
    assert not verify_signature(SECRET, headers, body + b" ")
    assert not verify_signature(SECRET, {**headers, "webhook-id": "msg_2"}, body)
    assert not verify_signature("whsec_" + base64.b64encode(b"other").decode(), headers, body)
    assert not verify_signature("whsec_not base64!", headers, body)
    assert not verify_signature(SECRET, {"webhook-id": "msg_1"}, body)
    stale = signed(SECRET, body, timestamp=int(time.time()) - 3600)
    assert verify_signature(SECRET, stale, body)
    assert not verify_signature(SECRET, stale, body, tolerance_seconds=300)
    assert verify_signature(SECRET, stale, body, tolerance_seconds=300, now=time.time() - 3600)


def test_the_receiver_records_and_answers_scripted_statuses() -> None:
    with WebhookReceiver(statuses=[500]) as receiver:
        first = requests.post(receiver.url, data=b"{}", headers={"webhook-id": "a"}, timeout=5)
        receiver.respond_with(410)
        second = requests.post(receiver.url, json={"n": 2}, timeout=5)
        third = requests.post(receiver.url, json={"n": 3}, timeout=5)
        assert [first.status_code, second.status_code, third.status_code] == [500, 410, 200]
        received = receiver.wait(3)
        assert received[0].id == "a"
        assert received[2].json() == {"n": 3}
        assert received[1].path == "/webhook"
        with pytest.raises(TimeoutError, match="expected 4"):
            receiver.wait(4, timeout=0.05)


def test_keys_and_spend_limits(aigen_mock: MockControl) -> None:
    key = aigen_mock.create_key("pahlavan", "ci", spend_limit_cents=0)
    created = next(k for k in aigen_mock.keys("pahlavan") if k["name"] == "ci")
    assert created["spend_limit_cents"] == 0
    video = {"model": "veo-lite", "prompt": "Waves", "settings": {"duration_seconds": 2}}
    refused = aigen_mock.post("pahlavan", "/api/v1/videos/generations", json=video, key=key)
    assert refused.json()["details"]["code"] == "API_KEY_SPEND_LIMIT_EXCEEDED"
    aigen_mock.set_spend_limit("pahlavan", key, None)
    assert aigen_mock.post("pahlavan", "/api/v1/videos/generations", json=video, key=key).status_code == 202
    aigen_mock.revoke_key("pahlavan", created["key_id"])
    assert aigen_mock.post("pahlavan", "/api/v1/videos/generations", json=video, key=key).status_code == 401


def test_faults_latency_and_clearing(aigen_mock: MockControl) -> None:
    aigen_mock.fault(latency_ms=150, provider="spaceai", operation_id="listModels", count=None)
    started = time.perf_counter()
    assert aigen_mock.get("spaceai", "/v1/models").status_code == 200
    assert time.perf_counter() - started >= 0.15
    assert aigen_mock.faults()[0]["latency_ms"] == 150
    aigen_mock.clear_faults()
    assert aigen_mock.faults() == []


def test_control_errors_carry_the_answer(aigen_mock: MockControl) -> None:
    with pytest.raises(ControlError, match=r"400.*'count' must be"):
        aigen_mock.fault(500, count=0)
    with pytest.raises(KeyError, match="not served"):
        aigen_mock.provider("nope")
    assert aigen_mock.get("spaceai", "/v1/models", auth=False).status_code == 401


def test_webhook_resend_and_secrets_per_key(aigen_mock: MockControl, aigen_webhook_receiver: Any) -> None:
    body = {"tool": "create-image", "input": {"prompt": "A kite"}, "webhook": aigen_webhook_receiver.url}
    aigen_mock.post("artificialstudio", "/api/run", json=body)
    aigen_mock.advance(30)
    (delivery,) = aigen_mock.wait_for_webhooks(1)
    aigen_mock.resend_webhook(delivery["id"])
    first, again = aigen_webhook_receiver.wait(2)
    assert first.id == again.id == delivery["id"]
    seeded_key = aigen_mock.provider("artificialstudio").api_key
    secret = aigen_mock.webhook_secret("artificialstudio")
    assert aigen_mock.webhook_secret("artificialstudio", seeded_key) == secret
    assert aigen_mock.verify_webhook("artificialstudio", again.headers, again.body, key=seeded_key)
    with pytest.raises(TimeoutError):
        aigen_mock.wait_for_webhooks(5, timeout=0.05)


def test_the_pool_starts_one_server_per_settings_and_stops_them() -> None:
    pool = ServerPool()
    try:
        spaceai = pool.get(Settings(providers=("spaceai",)))
        assert pool.get(Settings(providers=("spaceai",), port=9)) is spaceai  # host and port are the pool's
        assert pool.get(Settings(providers=("studioaicore",))) is not spaceai
        assert len(pool) == 2
        with MockControl(spaceai.base_url) as mock:
            assert list(mock.providers) == ["spaceai"]
    finally:
        assert pool.stop() == []
    assert not spaceai.running
