"""Two real mock servers sharing one Redis prefix, over real HTTP: one clock, faults and rate limits counted
across both, health, and the provider's 503 while Redis is gone (service resumes when it is back)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import requests
from redis_fixture import RedisServer

from mockserver.testing.control import MockControl

MODELS = "/spaceai/v1/models"
KEY = {"Authorization": "Bearer sk-spaceai-mockkey-0001"}
BOUND = 6.0
"""Seconds a request may take against a lost Redis (2 s timeouts, one retry on a dropped connection)."""


def pair(start_mock: Callable[..., MockControl], url: str, prefix: str, **changes: Any) -> list[MockControl]:
    return [start_mock(state=url, state_prefix=prefix, **changes) for _ in range(2)]


def test_two_mocks_share_clock_faults_and_rate_limits(
    start_mock: Callable[..., MockControl], redis_server: RedisServer, redis_prefix: str
) -> None:
    one, two = pair(start_mock, redis_server.url, redis_prefix, rate_limit=5)
    for mock in (one, two):
        health = requests.get(f"{mock.base_url}/_mock/health", timeout=10)
        assert health.status_code == 200
        assert "redis" in health.text

    # One clock: advanced on one, read on the other.
    advanced = requests.post(f"{one.base_url}/_mock/clock/advance", json={"seconds": 3600}, timeout=10)
    assert advanced.status_code == 200
    deadline = time.monotonic() + 5
    while requests.get(f"{two.base_url}/_mock/clock", timeout=10).json()["offset"] < 3600:
        assert time.monotonic() < deadline, "the second mock's clock did not move"
        time.sleep(0.02)

    # One rate limit: 5 a minute for the key, counted over both mocks.
    statuses = [requests.get(f"{m.base_url}{MODELS}", headers=KEY, timeout=10) for m in (one, two) * 3]
    assert [r.status_code for r in statuses] == [200, 200, 200, 200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in statuses[:5]] == ["4", "3", "2", "1", "0"]


def test_a_fault_is_taken_its_count_over_both(
    start_mock: Callable[..., MockControl], redis_server: RedisServer, redis_prefix: str
) -> None:
    one, two = pair(start_mock, redis_server.url, redis_prefix)
    fault = {"provider": "spaceai", "operation_id": "listModels", "status": 503, "count": 3}
    assert requests.post(f"{one.base_url}/_mock/faults", json=fault, timeout=10).status_code == 201
    statuses = [
        requests.get(f"{m.base_url}{MODELS}", headers=KEY, timeout=10).status_code for m in (two, one) * 3
    ]
    assert sorted(statuses) == [200, 200, 200, 503, 503, 503]
    assert statuses[:3] == [503, 503, 503]


def test_one_journal_and_a_reset_for_both(
    start_mock: Callable[..., MockControl], redis_server: RedisServer, redis_prefix: str
) -> None:
    one, two = pair(start_mock, redis_server.url, redis_prefix)
    for mock in (one, two, one):
        assert requests.get(f"{mock.base_url}{MODELS}", headers=KEY, timeout=10).status_code == 200
    deadline = time.monotonic() + 5
    while True:  # each instance writes its rows within ~20 ms
        page = requests.get(
            f"{two.base_url}/_mock/requests", params={"provider": "spaceai"}, timeout=10
        ).json()
        if len(page["requests"]) == 3:
            break
        assert time.monotonic() < deadline, f"the journal shows {len(page['requests'])} of 3 requests"
        time.sleep(0.02)
    ids = [entry["id"] for entry in page["requests"]]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3

    assert requests.post(f"{two.base_url}/_mock/clock/advance", json={"seconds": 60}, timeout=10).ok
    assert requests.post(f"{one.base_url}/_mock/reset", timeout=10).status_code == 200
    deadline = time.monotonic() + 5
    while requests.get(f"{two.base_url}/_mock/clock", timeout=10).json()["offset"] != 0:
        assert time.monotonic() < deadline, "the reset did not reach the other mock's clock"
        time.sleep(0.02)
    page = requests.get(f"{two.base_url}/_mock/requests", params={"provider": "spaceai"}, timeout=10).json()
    assert page["requests"] == []


def test_redis_lost_then_back(own_redis: RedisServer, start_mock: Callable[..., MockControl]) -> None:
    # own_redis first: set up before the mock, so it is still running when the mock's teardown reads it.
    mock = start_mock(state=own_redis.url, state_prefix="lost")
    assert requests.get(f"{mock.base_url}{MODELS}", headers=KEY, timeout=10).status_code == 200
    own_redis.stop()
    started = time.monotonic()
    answer = requests.get(f"{mock.base_url}{MODELS}", headers=KEY, timeout=30)
    assert time.monotonic() - started < BOUND
    assert answer.status_code == 503
    assert "Traceback" not in answer.text
    health = requests.get(f"{mock.base_url}/_mock/health", timeout=30)
    assert health.status_code == 503
    assert "down" in health.text
    own_redis.start()
    assert requests.get(f"{mock.base_url}{MODELS}", headers=KEY, timeout=10).status_code == 200
    assert requests.get(f"{mock.base_url}/_mock/health", timeout=10).status_code == 200
