"""Recipe: receive an Artificial Studio webhook and verify its signature."""

from mockserver.testing import verify_signature


def test_finished_generation_is_posted_signed(aigen_mock, aigen_webhook_receiver):
    body = {"tool": "create-image", "input": {"prompt": "A red kite"}, "webhook": aigen_webhook_receiver.url}
    run = aigen_mock.post("artificialstudio", "/api/run", json=body).json()
    aigen_mock.advance(30)  # the generation finishes; its webhook is sent before advance() returns

    (delivery,) = aigen_webhook_receiver.wait(1)
    assert delivery.json()["id"] == run["id"]
    assert delivery.json()["status"] == "success"
    secret = aigen_mock.webhook_secret("artificialstudio")  # whsec_..., what your receiver is configured with
    assert verify_signature(secret, delivery.headers, delivery.body)
    assert not verify_signature(secret, delivery.headers, delivery.body.replace(b"success", b"failed"))


def test_a_failed_delivery_is_retried_with_the_same_id(aigen_mock, aigen_webhook_receiver):
    aigen_webhook_receiver.respond_with(500)  # the receiver fails once
    body = {"tool": "create-image", "input": {"prompt": "A kite"}, "webhook": aigen_webhook_receiver.url}
    aigen_mock.post("artificialstudio", "/api/run", json=body)
    aigen_mock.advance(30)  # done, first delivery attempt answered 500
    aigen_mock.advance(120)  # past the retry's backoff
    first, retry = aigen_webhook_receiver.wait(2)
    assert first.id == retry.id  # de-duplicate on webhook-id
    (delivery,) = aigen_mock.wait_for_webhooks(1, provider="artificialstudio")
    assert delivery["status"] == "succeeded"
    assert [attempt["status"] for attempt in delivery["attempts"]] == [500, 200]
