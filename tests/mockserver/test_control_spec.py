"""The control API against specs/control.yaml: a schemathesis sweep, real flows checked per response.

The sweep runs on a dedicated server (it resets the mock, revokes keys and injects faults that would disturb
other tests). Half of the generated path parameters are real (a served provider, a seeded account and key, a
webhook delivery, a generated file), so positive cases reach the 200s, 202s and 409s, not only the 404s.
The flows run on the shared server; every control response they get is validated against the operation's
declared response in control.yaml (jsonschema_rs, through the mock's own spec compiler).
"""

from __future__ import annotations

import functools
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from _mock_test_helpers import healthy_state, sweep_run
from redis_fixture import RedisServer

from mockserver.core.router import Router
from mockserver.core.spec import JSON_MEDIA_TYPE, Spec, load_spec
from mockserver.core.webhooks import RetryPolicy
from mockserver.errors import ApiError
from mockserver.resources import spec_path

MAX_EXAMPLES = 100
MAX_EXAMPLES_REDIS = 30
"""Fuzzed examples per operation on Redis: the memory half sweeps the spec in full; the Redis half (same
examples and coverage phases) looks for what only the backend refuses (an integer past 64 bits was one), at a
third of the CI time."""
"""Fuzzing examples per operation (the examples and coverage phases add their own)."""
PAST_ANY_BACKOFF = RetryPolicy().cap_seconds + 1
PAST_ANY_JOB = 3600
ARTIFICIAL = "artificialstudio"
PAHLAVAN = "pahlavan"

DASHBOARD_PATHS = r"^/(events|ui|resources|requests/\{)"
"""The dashboard's control routes (tests/mockserver/test_dashboard_api.py sweeps them: this sweep is long
enough, and ``GET /events`` is an endless stream)."""
sweep_schema = schemathesis.pytest.from_fixture("control_schema").exclude(path_regex=DASHBOARD_PATHS)


@pytest.fixture(scope="module")
def unreachable_hook() -> Iterator[str]:
    """A loopback URL refusing connections: every attempt fails at once (a bound port nobody listens on)."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))  # bound but not listening: connections are refused, the port stays ours
        yield f"http://127.0.0.1:{held.getsockname()[1]}/hook"


@functools.cache
def control_spec() -> tuple[Spec, Router]:
    """The compiled control.yaml and a router over its operations."""
    spec = load_spec(spec_path("control"))
    return spec, Router(spec.operations)


def spec_errors(method: str, path: str, status: int, response: requests.Response) -> list[str]:
    """Why a control response breaks control.yaml (empty when it conforms)."""
    _, router = control_spec()
    try:
        operation = router.match(method, path.split("?", 1)[0]).operation
    except ApiError as exc:
        return [f"{method} {path} is not in control.yaml: {exc.message}"]
    declared = operation.response(status)
    if declared is None:
        return [f"{operation.operation_id} declares no {status} response"]
    media_type = response.headers.get("Content-Type", "").split(";", 1)[0].strip()
    if media_type != JSON_MEDIA_TYPE:
        if "*/*" in declared.content or media_type in declared.content:
            return []
        return [f"{operation.operation_id} {status}: {media_type} is not declared"]
    validator = declared.content.get(JSON_MEDIA_TYPE)
    if validator is None:
        return [f"{operation.operation_id} {status}: application/json is not declared"]
    return [f"{'/'.join(map(str, where))}: {message}" for where, message in validator.errors(response.json())]


def control(mock: Any, method: str, path: str, body: Any = None, *, status: int = 200) -> Any:
    """Call ``/_mock<path>``, expect ``status`` and a response control.yaml allows; returns the JSON body."""
    response = mock.http.request(method, f"{mock.base_url}/_mock{path}", json=body, timeout=10)
    assert response.status_code == status, response.text
    assert spec_errors(method, path, status, response) == []
    if response.headers.get("Content-Type", "").startswith(JSON_MEDIA_TYPE):
        return response.json()
    return response


def error(mock: Any, method: str, path: str, body: Any = None, *, status: int, code: str) -> str:
    """A control call that must fail with ``status`` and ``code`` in the Error schema; returns the message."""
    found = control(mock, method, path, body, status=status)
    assert found["error"]["code"] == code
    return str(found["error"]["message"])


def start_run(mock: Any, webhook: str | None = None) -> dict[str, Any]:
    """An Artificial Studio image run (optionally with a webhook), finished by advancing the clock."""
    body: dict[str, Any] = {"tool": "create-image", "input": {"prompt": "a lighthouse at dawn"}}
    if webhook:
        body["webhook"] = webhook
    created = mock.post(ARTIFICIAL, "/api/run", json=body)
    assert created.status_code == 200, created.text
    mock.advance(PAST_ANY_JOB)
    finished = mock.get(ARTIFICIAL, f"/api/generations/{created.json()['id']}")
    assert finished.status_code == 200, finished.text
    generation: dict[str, Any] = finished.json()
    return generation


# -- the sweep -------------------------------------------------------------------------------------------


def sweep_config(
    base_url: str, known: dict[str, str], max_examples: int = MAX_EXAMPLES
) -> schemathesis.Config:
    """Every phase and default check, both modes; half of the path parameters drawn from ``known``."""
    return schemathesis.Config.from_dict(
        {
            "seed": 0,
            "base-url": f"{base_url}/_mock",
            "dictionaries": {name: {"values": [value]} for name, value in known.items()},
            "parameters": {f"path.{name}": {"dictionary": name, "probability": 0.5} for name in known},
            **sweep_run(max_examples),
        }
    )


@pytest.fixture
def sweep_target(start_mock: Any, unreachable_hook: str) -> Any:
    """A dedicated strict server with a generated file and a webhook delivery (violations checked after)."""
    mock = start_mock()
    generation = start_run(mock, webhook=unreachable_hook)
    file_id, filename = generation["output"].rsplit("/", 2)[-2:]
    (delivery,) = control(mock, "GET", "/webhooks")["deliveries"]
    key = control(mock, "GET", f"/keys?provider={PAHLAVAN}")["keys"][0]
    account = control(mock, "GET", f"/accounts?provider={PAHLAVAN}")["accounts"][0]
    mock.known = {
        "provider": PAHLAVAN,
        "account_id": account["id"],
        "key_id": key["key_id"],
        "delivery_id": delivery["id"],
        "file_id": file_id,
        "filename": filename,
    }
    return mock


@pytest.fixture
def control_schema(sweep_target: Any, state_backend: str) -> Any:
    """control.yaml aimed at the dedicated server."""
    examples = MAX_EXAMPLES if state_backend == "memory" else MAX_EXAMPLES_REDIS
    config = sweep_config(sweep_target.base_url, sweep_target.known, examples)
    return schemathesis.openapi.from_path(spec_path("control"), config=config)


@pytest.mark.slow
@sweep_schema.parametrize()
def test_sweep(case: schemathesis.Case) -> None:
    case.call_and_validate()


# -- real flows ----------------------------------------------------------------------------------------------


def test_providers_and_reset(mock: Any) -> None:
    listing = control(mock, "GET", "/providers")["providers"]
    by_id = {entry["id"]: entry for entry in listing}
    assert by_id[PAHLAVAN]["extra_keys"] == {"limited": "sp_live_mockkey0002", "poor": "sp_live_mockkey0003"}
    assert by_id[PAHLAVAN]["api_key"] not in by_id[PAHLAVAN]["extra_keys"].values()
    created = control(mock, "POST", "/keys", {"provider": PAHLAVAN, "name": "runtime"}, status=201)
    assert created["key"] not in str(control(mock, "GET", "/providers"))  # runtime keys are shown once only
    control(mock, "POST", "/clock/advance", {"seconds": 5})
    assert control(mock, "POST", "/reset") == {"status": "reset"}
    assert control(mock, "GET", "/clock")["offset"] == 0


def test_clock(mock: Any) -> None:
    before = control(mock, "GET", "/clock")
    after = control(mock, "POST", "/clock/advance", {"seconds": 90.5})
    assert after["offset"] == before["offset"] + 90.5
    assert after["now"] >= before["now"] + 90.5
    for bad in ({"seconds": -1}, {"seconds": "5"}, {"seconds": True}, {"seconds": 315_360_001}, {}, [1]):
        error(mock, "POST", "/clock/advance", bad, status=400, code="invalid_request")
    response = mock.http.post(
        f"{mock.base_url}/_mock/clock/advance",
        data=b'{"seconds": 1e400}',  # Python's json reads this as infinity
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code == 400
    assert spec_errors("POST", "/clock/advance", 400, response) == []


def test_journal_and_violations(mock: Any) -> None:
    assert mock.get(PAHLAVAN, "/api/v1/models").status_code == 200
    assert mock.get(PAHLAVAN, "/api/health").status_code == 200
    entries = control(mock, "GET", f"/requests?provider={PAHLAVAN}")["requests"]
    assert [e["operation_id"] for e in entries] == ["listModels", "getHealth"]
    newest = control(mock, "GET", f"/requests?provider={PAHLAVAN}&limit=1")["requests"]
    assert newest == entries[-1:]
    assert control(mock, "GET", "/requests?provider=nowhere")["requests"] == []
    for limit in ("0", "-1", "x", "%C2%B2", "1.5", "1001"):  # '²' passes str.isdigit() but not int()
        error(mock, "GET", f"/requests?limit={limit}", status=400, code="invalid_request")
    page = control(mock, "GET", f"/requests?provider={PAHLAVAN}&after=0&limit=1")
    assert page["requests"] == entries[:1]
    following = control(mock, "GET", page["next"].removeprefix("/_mock"))
    assert following["requests"] == entries[1:]
    assert following["next"] is None
    assert control(mock, "GET", "/violations") == {"violations": []}


def test_metrics_and_health(mock: Any) -> None:
    assert mock.get(PAHLAVAN, "/api/v1/models").status_code == 200
    metrics = control(mock, "GET", "/metrics")
    assert metrics.headers["Content-Type"].startswith("text/plain")
    assert (
        'mockserver_requests_total{operation="listModels",provider="pahlavan",status="200"}' in metrics.text
    )
    assert control(mock, "GET", "/health") == {
        "status": "ok",
        "checks": {"state": healthy_state(mock.server)},
    }


def test_faults(mock: Any) -> None:
    fault = {"provider": PAHLAVAN, "operation_id": "listModels", "status": 503, "headers": {"X-Why": "test"}}
    fault_id = control(mock, "POST", "/faults", fault, status=201)["id"]
    slow_id = control(mock, "POST", "/faults", {"latency_ms": 1, "count": None}, status=201)["id"]
    listed = control(mock, "GET", "/faults")["faults"]
    assert [f["id"] for f in listed] == [fault_id, slow_id]
    assert listed[0]["remaining"] == 1
    assert listed[1]["remaining"] is None
    response = mock.get(PAHLAVAN, "/api/v1/models")
    assert response.status_code == 503
    assert response.headers["X-Why"] == "test"
    assert [f["id"] for f in control(mock, "GET", "/faults")["faults"]] == [slow_id]
    assert control(mock, "DELETE", "/faults") == {"faults": []}
    assert control(mock, "GET", "/faults") == {"faults": []}
    for bad in (
        {},
        {"latency_ms": 0},
        {"status": 200},
        {"status": True},
        {"status": 500, "count": 0},
        {"status": 500, "count": True},
        {"status": 500, "provider": "nowhere"},
        {"status": 500, "operation_id": 5},
        {"status": 500, "message": ["x"]},
        {"status": 500, "headers": ["X-A"]},
        {"status": 500, "headers": {"X-A": 1}},
        {"status": 500, "headers": {"Bad Name": "x"}},
        {"status": 500, "headers": {"X-A": "line\nbreak"}},
        {"status": 500, "surprise": True},
        {"cut_after_events": -1},
    ):
        error(mock, "POST", "/faults", bad, status=400, code="invalid_request")
    assert control(mock, "GET", "/faults") == {"faults": []}


def test_webhook_deliveries(mock: Any, unreachable_hook: str) -> None:
    generation = start_run(mock, webhook=unreachable_hook)
    (delivery,) = control(mock, "GET", f"/webhooks?provider={ARTIFICIAL}")["deliveries"]
    assert delivery["payload"]["id"] == generation["id"]
    assert delivery["status"] == "pending"
    assert delivery["attempts"][0]["error"]
    assert control(mock, "GET", "/webhooks?provider=nowhere") == {"deliveries": []}
    assert control(mock, "GET", f"/webhooks/{delivery['id']}")["id"] == delivery["id"]
    path = f"/webhooks/{delivery['id']}/resend"
    assert error(mock, "POST", path, status=409, code="conflict")
    while control(mock, "GET", f"/webhooks/{delivery['id']}")["status"] == "pending":
        mock.advance(PAST_ANY_BACKOFF)
    resent = control(mock, "POST", path, status=202)
    assert resent["id"] == delivery["id"]
    # Exactly the new series' first attempt, even when its retry is due milliseconds later (full jitter).
    assert len(resent["attempts"]) == RetryPolicy().max_attempts + 1
    error(mock, "GET", "/webhooks/msg_unknown", status=404, code="not_found")
    error(mock, "POST", "/webhooks/msg_unknown/resend", status=404, code="not_found")
    secrets = control(mock, "GET", "/webhooks/secrets")
    assert set(secrets["secrets"]) == {ARTIFICIAL}


@pytest.mark.parametrize("backend", ["memory", "redis"])
def test_resend_answers_exactly_the_first_attempt_of_the_new_series(
    backend: str, request: pytest.FixtureRequest, start_mock: Any, unreachable_hook: str
) -> None:
    state = {"state": "memory"}
    if backend == "redis":
        redis_url = request.getfixturevalue("redis_server").url
        state = {"state": redis_url, "state_prefix": request.getfixturevalue("redis_prefix")}
    mock = start_mock(**state)
    assert mock.server is not None
    # No backoff: each retry is due the moment the attempt before it failed (what full jitter draws now
    # and then), so a resend's retry is always due before its answer could be written.
    mock.server.mock.services.webhooks.policy = RetryPolicy(base_seconds=0.0)
    start_run(mock, webhook=unreachable_hook)
    (delivery,) = control(mock, "GET", "/webhooks")["deliveries"]
    path = f"/webhooks/{delivery['id']}"
    series = RetryPolicy().max_attempts
    for _ in range(4 * series):  # bounded: each advance makes every due attempt
        if control(mock, "GET", path)["status"] != "pending":
            break
        mock.advance(0)
    finished = control(mock, "GET", path)
    assert finished["status"] == "failed"
    assert len(finished["attempts"]) == series

    resent = control(mock, "POST", f"{path}/resend", status=202)
    assert [a["number"] for a in resent["attempts"]] == list(range(1, series + 2))
    first = resent["attempts"][series]
    assert first["error"]
    assert resent["status"] == "pending"
    assert resent["next_attempt_at"] == first["next_attempt_at"] is not None
    # The rest of the new series is still made (after the answer).
    for _ in range(4 * series):
        if control(mock, "GET", path)["status"] != "pending":
            break
        mock.advance(0)
    again = control(mock, "GET", path)
    assert again["status"] == "failed"
    assert len(again["attempts"]) == 2 * series


STATE_ROUTES = [
    ("POST", "/reset", None),
    ("POST", "/clock/advance", {"seconds": 60}),
    ("GET", "/requests", None),
    ("GET", "/violations", None),
    ("POST", "/faults", {"provider": PAHLAVAN, "status": 500}),
    ("GET", "/faults", None),
    ("DELETE", "/faults", None),
    ("GET", "/files/file_unknown/out.png", None),
    ("GET", "/webhooks", None),
    ("GET", "/webhooks/secrets", None),
    ("GET", "/webhooks/msg_unknown", None),
    ("POST", "/webhooks/msg_unknown/resend", None),
    ("GET", "/resources", None),
    ("GET", "/metrics", None),
    ("GET", "/accounts", None),
    ("PUT", f"/accounts/{PAHLAVAN}/user_123/wallet", {"wallet_cents": 7}),
    ("GET", "/keys", None),
    ("POST", "/keys", {"provider": PAHLAVAN, "name": "ci"}),
    ("PUT", f"/keys/{PAHLAVAN}/key_000000000000/spend-limit", {"spend_limit_cents": 1}),
    ("DELETE", f"/keys/{PAHLAVAN}/key_000000000000", None),
]
"""Control routes that read or change the state."""


def test_state_backend_down_is_a_declared_503(own_redis: RedisServer, start_mock: Any) -> None:
    # own_redis first: set up before the mock, so it is up again when the mock's teardown reads it.
    mock = start_mock(state=own_redis.url, state_prefix="control503")
    control(mock, "GET", "/faults")
    own_redis.stop()
    try:
        for method, path, body in STATE_ROUTES:
            response = mock.http.request(method, f"{mock.base_url}/_mock{path}", json=body, timeout=30)
            assert response.status_code == 503, (method, path, response.text)
            assert response.json()["error"]["code"] == "unavailable"
            assert response.headers["Retry-After"] == "1"
            assert spec_errors(method, path, 503, response) == []
    finally:
        own_redis.start()
    assert control(mock, "GET", "/faults") == {"faults": []}


def test_files(mock: Any) -> None:
    generation = start_run(mock)
    prefix = f"{mock.base_url}/_mock"
    assert generation["output"].startswith(prefix)
    path = generation["output"].removeprefix(prefix)
    response = control(mock, "GET", path)
    assert response.headers["Content-Type"].startswith("image/")
    assert response.content
    error(mock, "GET", path.rsplit("/", 1)[0] + "/other.png", status=404, code="not_found")
    error(mock, "GET", "/files/f_unknown/output.png", status=404, code="not_found")


def test_accounts(mock: Any) -> None:
    accounts = control(mock, "GET", f"/accounts?provider={PAHLAVAN}")["accounts"]
    assert {"provider": PAHLAVAN, "id": "user_poor", "wallet_cents": 1} in accounts
    assert control(mock, "GET", "/accounts")["accounts"]
    updated = control(mock, "PUT", f"/accounts/{PAHLAVAN}/user_123/wallet", {"wallet_cents": 7})
    assert updated == {"provider": PAHLAVAN, "id": "user_123", "wallet_cents": 7}
    error(
        mock,
        "PUT",
        f"/accounts/{PAHLAVAN}/user_123/wallet",
        {"wallet_cents": 1.5},
        status=400,
        code="invalid_request",
    )
    error(
        mock, "PUT", f"/accounts/{PAHLAVAN}/nobody/wallet", {"wallet_cents": 1}, status=404, code="not_found"
    )
    error(mock, "PUT", "/accounts/nowhere/user_123/wallet", {"wallet_cents": 1}, status=404, code="not_found")
    error(mock, "GET", "/accounts?provider=nowhere", status=400, code="invalid_request")


def test_keys(mock: Any) -> None:
    created = control(
        mock, "POST", "/keys", {"provider": PAHLAVAN, "name": "ci", "spend_limit_cents": 9}, status=201
    )
    listing = control(mock, "GET", f"/keys?provider={PAHLAVAN}")["keys"]
    assert created["key_id"] in [k["key_id"] for k in listing]
    assert created["key"] not in str(listing)
    path = f"/keys/{PAHLAVAN}/{created['key_id']}"
    assert (
        control(mock, "PUT", f"{path}/spend-limit", {"spend_limit_cents": None})["spend_limit_cents"] is None
    )
    assert control(mock, "PUT", f"{path}/spend-limit", {"spend_limit_cents": 3.0})["spend_limit_cents"] == 3
    assert control(mock, "DELETE", path)["revoked"] is True
    auth = {"Authorization": f"Bearer {created['key']}"}
    assert mock.post(PAHLAVAN, "/api/v1/quotes", json={}, auth=False, headers=auth).status_code == 401
    error(mock, "DELETE", f"/keys/{PAHLAVAN}/key_000000000000", status=404, code="not_found")
    error(
        mock,
        "PUT",
        f"/keys/nowhere/{created['key_id']}/spend-limit",
        {"spend_limit_cents": 1},
        status=404,
        code="not_found",
    )
    for bad in (
        {"provider": PAHLAVAN, "name": " \t"},
        {"provider": PAHLAVAN, "name": "x", "account": "a b"},
        {"provider": PAHLAVAN, "name": "x", "organization": ""},
        {"provider": PAHLAVAN, "name": "x", "spend_limit_cents": 0.5},
    ):
        error(mock, "POST", "/keys", bad, status=400, code="invalid_request")
    error(mock, "GET", "/keys?provider=nowhere", status=400, code="invalid_request")


def test_unknown_paths_and_methods(mock: Any) -> None:
    response = mock.http.request("PATCH", f"{mock.base_url}/_mock/faults", timeout=10)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(",")) >= {"GET", "POST", "DELETE"}
    assert response.json()["error"]["code"] == "method_not_allowed"
    response = mock.http.get(f"{mock.base_url}/_mock/nothing-here", timeout=10)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
