"""``GET /_mock/metrics`` and ``GET /_mock/health`` over real HTTP, on dedicated servers (exact counts)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from _mock_test_helpers import healthy_state
from httpx_sse import connect_sse
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from mockserver.core.webhooks import RetryPolicy
from mockserver.errors import StateError
from mockserver.testing.webhooks import WebhookReceiver

SPACEAI = "spaceai"
ARTIFICIAL = "artificialstudio"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Write a very long story about the sea"}]}
PAST_ANY_JOB = 3600
PAST_ANY_BACKOFF = RetryPolicy().cap_seconds + 1


def scrape(mock: Any) -> dict[str, Metric]:
    """The mock's metric families by name, parsed by prometheus_client's own parser."""
    response = mock.http.get(f"{mock.base_url}/_mock/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return {family.name: family for family in text_string_to_metric_families(response.text)}


def values(family: Metric, sample: str, *labels: str) -> dict[tuple[str, ...], float]:
    """``{label values: value}`` of one sample name of a family."""
    return {tuple(s.labels[name] for name in labels): s.value for s in family.samples if s.name == sample}


def value(mock: Any, name: str) -> float:
    """The single value of an unlabelled family."""
    (found,) = scrape(mock)[name].samples
    return float(found.value)


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Poll ``condition`` (bounded): the server records a stream once its handler returns."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_metrics_count_requests_by_provider_operation_and_status(start_mock: Any) -> None:
    mock = start_mock(providers=(SPACEAI,))
    assert mock.get(SPACEAI, "/v1/models").status_code == 200
    assert mock.get(SPACEAI, "/v1/models").status_code == 200
    assert mock.get(SPACEAI, "/v1/models", auth=False).status_code == 401
    assert mock.get(SPACEAI, "/v1/nothing-here").status_code == 404
    streamed = mock.post(SPACEAI, "/v1/chat/completions", json={**CHAT, "max_tokens": 5, "stream": True})
    assert streamed.status_code == 200
    assert "[DONE]" in streamed.text
    wait_for(lambda: len(mock.journal()) == 5)

    families = scrape(mock)
    requests_total = values(
        families["mockserver_requests"], "mockserver_requests_total", "provider", "operation", "status"
    )
    assert requests_total == {
        (SPACEAI, "listModels", "200"): 2,
        (SPACEAI, "listModels", "401"): 1,
        (SPACEAI, "unmatched", "404"): 1,
        (SPACEAI, "createChatCompletion", "200"): 1,
    }
    latency = families["mockserver_request_duration_seconds"]
    counts = values(latency, "mockserver_request_duration_seconds_count", "provider", "operation")
    assert counts == {
        (SPACEAI, "listModels"): 3,
        (SPACEAI, "unmatched"): 1,
        (SPACEAI, "createChatCompletion"): 1,
    }
    buckets = [
        (float(s.labels["le"]), s.value)
        for s in latency.samples
        if s.name.endswith("_bucket") and s.labels["operation"] == "listModels"
    ]
    assert buckets[-1] == (float("inf"), 3)
    assert [count for _, count in buckets] == sorted(count for _, count in buckets)  # cumulative
    sums = values(latency, "mockserver_request_duration_seconds_sum", "operation")
    assert 0 < sums[("listModels",)] < 30
    assert value(mock, "mockserver_open_streams") == 0
    assert value(mock, "mockserver_state_errors") == 0
    assert value(mock, "mockserver_journal_entries") == 5
    # Counters count since start: a reset clears the journal, not them.
    mock.reset()
    assert value(mock, "mockserver_journal_entries") == 0
    after_reset = values(
        scrape(mock)["mockserver_requests"], "mockserver_requests_total", "operation", "status"
    )
    assert after_reset[("listModels", "200")] == 2


def test_metrics_count_the_streams_open_now(start_mock: Any) -> None:
    # Paced at two events a second, so the stream is still open while the test looks.
    mock = start_mock(providers=(SPACEAI,), tokens_per_second=2)
    info = mock.provider(SPACEAI)
    body = {**CHAT, "max_tokens": 200, "stream": True}
    with (
        httpx.Client(timeout=10) as client,
        connect_sse(
            client, "POST", info.base_url + "/v1/chat/completions", json=body, headers=info.auth_headers()
        ) as source,
    ):
        next(source.iter_sse())
        assert value(mock, "mockserver_open_streams") == 1
    # The client left: the server notices at its next write and closes the stream.
    wait_for(lambda: value(mock, "mockserver_open_streams") == 0)
    wait_for(lambda: len(mock.journal()) == 1)


def test_metrics_count_webhook_attempts_by_outcome(start_mock: Any) -> None:
    mock = start_mock(providers=(ARTIFICIAL,))
    port = mock.base_url.rsplit(":", 1)[1]
    # A name resolving to the mock itself: refused at delivery by the webhook policy, no connection made.
    itself = f"http://localhost:{port}/_mock/reset"
    with WebhookReceiver(statuses=[500]) as receiver, socket.socket() as held:
        held.bind(("127.0.0.1", 0))  # bound but not listening: every attempt fails at once
        unreachable = f"http://127.0.0.1:{held.getsockname()[1]}/hook"
        for hook in (receiver.url, unreachable, itself):
            body = {"tool": "create-image", "input": {"prompt": "a lighthouse"}, "webhook": hook}
            assert mock.post(ARTIFICIAL, "/api/run", json=body).status_code == 200
        mock.advance(PAST_ANY_JOB)
        for _ in range(4 * RetryPolicy().max_attempts):  # bounded: each advance makes every due attempt
            if all(d["status"] != "pending" for d in mock.webhooks()):
                break
            mock.advance(PAST_ANY_BACKOFF)
        assert {d["url"]: d["status"] for d in mock.webhooks()} == {
            receiver.url: "succeeded",
            unreachable: "failed",
            itself: "refused",
        }
        assert len(receiver.received) == 2
    attempts = values(
        scrape(mock)["mockserver_webhook_attempts"], "mockserver_webhook_attempts_total", "outcome"
    )
    assert attempts == {
        ("delivered",): 1,
        ("rejected",): 1,
        ("failed",): RetryPolicy().max_attempts,
        ("refused",): 1,
    }


def test_state_errors_are_counted_and_answered_as_the_providers_503(
    start_mock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    mock = start_mock(providers=(SPACEAI,))

    async def lost_state(*_: Any, **__: Any) -> Any:
        raise StateError("the state backend stopped answering")

    # What a shared state backend raises when its server is gone, met by a request: in a handler...
    handlers = mock.server.mock.providers[SPACEAI].handlers
    handlers["listModels"], list_models = lost_state, handlers["listModels"]
    response = mock.get(SPACEAI, "/v1/models")
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"
    assert "state backend" not in response.text  # the provider's envelope, without internals
    assert response.json()["error"]["type"] == "server_error"
    assert response.json()["error"]["message"]
    handlers["listModels"] = list_models

    # ... and in the stages before it (the key lookup, admission), on a chat completion.
    def lost_sync(*_: Any, **__: Any) -> Any:
        raise StateError("the state backend stopped answering")

    state = mock.server.mock.state
    # The request path asks the state's synchronous probes first (memory answers them; a remote backend
    # defers to find_key/admit): a failure in either is the same 503.
    state.cached_key = lost_sync
    response = mock.post(
        SPACEAI,
        "/v1/chat/completions",
        json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
    )
    assert response.status_code == 503
    assert response.json()["error"]["type"] == "server_error"
    del state.cached_key
    state.admit_now = lost_sync
    assert mock.get(SPACEAI, "/v1/models").status_code == 503
    del state.admit_now
    # The control API answers a failing state with a JSON 503 too.
    state.faults = lost_state
    failed = mock.http.get(f"{mock.base_url}/_mock/faults", timeout=10)
    assert failed.status_code == 503
    assert failed.json()["error"]["code"] == "unavailable"
    del state.faults
    assert not [r for r in caplog.records if r.exc_info], "no traceback is logged"
    assert mock.get(SPACEAI, "/v1/models").status_code == 200  # back as soon as the state answers
    assert value(mock, "mockserver_state_errors") == 4
    family = scrape(mock)["mockserver_requests"]
    requests_total = values(family, "mockserver_requests_total", "operation", "status")
    assert requests_total == {
        ("listModels", "503"): 2,
        ("createChatCompletion", "503"): 1,
        ("listModels", "200"): 1,
    }
    assert mock.violations() == []  # the mock's own outage is not a spec violation


def test_metrics_are_per_mock(start_mock: Any) -> None:
    first, second = start_mock(providers=(SPACEAI,)), start_mock(providers=(SPACEAI,))
    assert first.get(SPACEAI, "/v1/models").status_code == 200
    assert values(scrape(first)["mockserver_requests"], "mockserver_requests_total", "status") == {
        ("200",): 1
    }
    assert values(scrape(second)["mockserver_requests"], "mockserver_requests_total", "status") == {}


def test_metrics_in_openmetrics_when_asked(mock: Any) -> None:
    response = mock.http.get(
        f"{mock.base_url}/_mock/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=10
    )
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


def test_health_reports_the_state_backend(start_mock: Any) -> None:
    mock = start_mock(providers=(SPACEAI,))
    url = f"{mock.base_url}/_mock/health"
    response = mock.http.get(url, timeout=10)
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"state": healthy_state(mock.server)}}
    store = mock.server.mock.services.state

    async def degraded() -> dict[str, Any]:
        return {"backend": "memory", "status": "degraded", "detail": "replica lagging"}

    async def unreachable() -> dict[str, Any]:
        raise StateError("connection refused")

    store.health = degraded
    response = mock.http.get(url, timeout=10)
    assert response.status_code == 503
    assert response.json()["status"] == "degraded"
    assert response.json()["checks"]["state"]["detail"] == "replica lagging"
    store.health = unreachable
    response = mock.http.get(url, timeout=10)
    assert response.status_code == 503
    assert response.json() == {
        "status": "down",
        "checks": {"state": {"status": "down", "error": "StateError: connection refused"}},
    }
