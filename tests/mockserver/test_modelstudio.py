"""ModelStudio over real HTTP: organization-scoped batch jobs, polled while the mock's clock is advanced.

Served alone (so these tests run whatever state the other provider modules are in) with jobs ten times
slower than the default, so real time passing during a test never moves a job by a stage.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import pytest
import yaml

from mockserver.core.jobs import FAIL_MARKER, Timing
from mockserver.core.spec import load_spec
from mockserver.core.textgen import count_tokens
from mockserver.resources import spec_path

PROVIDER = "modelstudio"
ORG_A, KEY_A = "org_mock_demo", "ms_test_mockkey_0001"
ORG_B, KEY_B = "org_mock_other", "ms_test_mockkey_0002"
CHAT_MODEL, VISION_MODEL, OTHER_ORG_MODEL = "ms-demo-chat", "ms-demo-vision", "ms-other-chat"
JOB_ID = re.compile(r"^job_[A-Za-z0-9_-]+$")
JOB_SPEED = 0.1


@cache
def _examples() -> dict[str, Any]:
    document = yaml.safe_load(spec_path("modelstudio").read_text(encoding="utf-8"))
    op = document["paths"]["/api/v1/organizations/{organization_id}/generate"]["post"]
    return {
        name: ex["value"] for name, ex in op["requestBody"]["content"]["application/json"]["examples"].items()
    }


def example(name: str) -> dict[str, Any]:
    """A documented request with its placeholder model ids replaced by seeded models."""
    body: dict[str, Any] = copy.deepcopy(_examples()[name])
    body["model_id"] = {"your_model_id": CHAT_MODEL, "your_vision_model_id": VISION_MODEL}[body["model_id"]]
    return body


def batch(*prompts: str, model: str = CHAT_MODEL, **extra: Any) -> dict[str, Any]:
    """A request with one single-message conversation per prompt."""
    return {"model_id": model, "messages": [[{"role": "user", "content": p}] for p in prompts], **extra}


@dataclass
class Studio:
    """ModelStudio calls on a shared-fixture ``MockClient``."""

    mock: Any
    """The conftest ``MockClient``."""

    @property
    def base(self) -> str:
        return str(self.mock.provider(PROVIDER).base_url)

    def request(
        self, method: str, path: str, *, key: str | None = KEY_A, json: Any = None
    ) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {key}"} if key is not None else {}
        response = self.mock.request(PROVIDER, method, path, auth=False, headers=headers, json=json)
        assert response.headers["Content-Type"].startswith("application/json")
        return response.status_code, response.json()

    def create(self, body: Any, *, org: str = ORG_A, key: str | None = KEY_A) -> tuple[int, Any]:
        return self.request("POST", f"/api/v1/organizations/{org}/generate", key=key, json=body)

    def poll(self, job_id: str, *, org: str = ORG_A, key: str | None = KEY_A) -> tuple[int, Any]:
        return self.request("GET", f"/api/v1/organizations/{org}/generate/{job_id}", key=key)

    def submit(self, body: Any, *, org: str = ORG_A, key: str = KEY_A) -> str:
        status, created = self.create(body, org=org, key=key)
        assert status == 200, created
        return str(created["job_id"])

    @property
    def timing(self) -> Timing:
        timing: Timing = self.mock.server.mock.services.jobs.timing
        return timing

    def advance(self, seconds: float) -> None:
        self.mock.advance(seconds)

    def finish(self, job_id: str, *, org: str = ORG_A, key: str = KEY_A) -> Any:
        """Advance the clock past the whole job and return its final poll."""
        self.advance(self.timing.queue_seconds + self.timing.task_seconds * 50)
        status, body = self.poll(job_id, org=org, key=key)
        assert status == 200, body
        return body


@pytest.fixture
def start_studio(server_pool: Callable[..., Any], attach_mock: Callable[[Any], Any]) -> Callable[..., Studio]:
    """``start_studio(seed=...)``: a reset handle on a pooled ModelStudio-only server with slow jobs."""

    def start(**changes: Any) -> Studio:
        server = server_pool(providers=(PROVIDER,), job_speed=JOB_SPEED, **changes)
        return Studio(attach_mock(server))

    return start


@pytest.fixture
def client(start_studio: Callable[..., Studio]) -> Studio:
    """ModelStudio on the pooled server, seed 0; checked for spec violations after the test."""
    return start_studio()


def assert_error(status: int, body: Any, expected_status: int, code: str) -> str:
    """The spec's envelope, exactly; returns the message."""
    assert status == expected_status, body
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "status"}
    assert body["error"]["code"] == code
    assert body["error"]["status"] == expected_status
    assert isinstance(body["error"]["message"], str)
    assert body["error"]["message"]
    return str(body["error"]["message"])


# -- lifecycle --------------------------------------------------------------------------------------


def test_providers_listing_shows_the_primary_organization(client: Studio) -> None:
    entry = client.mock.control("GET", "/providers")["providers"][0]
    assert entry["id"] == "modelstudio"
    assert entry["base_url"] == client.base
    assert entry["api_key"] == KEY_A
    assert entry["organization_id"] == ORG_A
    assert entry["models"] == [CHAT_MODEL, VISION_MODEL]


def test_batch_job_moves_through_its_states_task_by_task(client: Studio) -> None:
    status, created = client.create(example("batch"))
    assert status == 200
    assert set(created) == {"job_id", "status", "message"}
    assert JOB_ID.match(created["job_id"])
    assert created["status"] == "CREATED"
    assert created["message"] == "Generation job created successfully"
    job_id = created["job_id"]

    status, job = client.poll(job_id)
    assert status == 200
    assert job["job_id"] == job_id
    assert (job["job_status"], job["total_tasks"], job["completed_tasks"]) == ("created", 3, 0)
    assert [r["status"] for r in job["results"]] == ["pending"] * 3
    assert all(r["result"] is None and r["error"] is None for r in job["results"])

    timing = client.timing
    client.advance(timing.queue_seconds)
    _, job = client.poll(job_id)
    assert (job["job_status"], job["completed_tasks"]) == ("processing", 0)
    assert [r["status"] for r in job["results"]] == ["processing", "pending", "pending"]

    seen: dict[int, str] = {}
    for step in range(1, 4):
        client.advance(timing.task_seconds)
        _, job = client.poll(job_id)
        assert job["completed_tasks"] == step <= job["total_tasks"]
        assert job["job_status"] == ("completed" if step == 3 else "processing")
        for result in job["results"][:step]:
            assert result["status"] == "completed"
            # A finished task's text never changes afterwards.
            assert seen.setdefault(result["task_index"], result["result"]) == result["result"]
        for result in job["results"][step:]:
            assert result["result"] is None

    assert [r["task_index"] for r in job["results"]] == [0, 1, 2]
    assert all(r["status"] == "completed" and r["error"] is None for r in job["results"])
    texts = [r["result"] for r in job["results"]]
    # Each result answers its own input, in input order.
    for text, topic in zip(texts, ["first input", "second input", "third input"], strict=True):
        assert isinstance(text, str)
        assert topic in text
    assert len(set(texts)) == 3

    client.advance(timing.task_seconds * 10)
    _, again = client.poll(job_id)
    assert again == job


@pytest.mark.parametrize("name", ["documented", "hello", "helloShort", "multiTurn", "vision"])
def test_documented_examples_complete(client: Studio, name: str) -> None:
    job_id = client.submit(example(name))
    job = client.finish(job_id)
    assert (job["job_status"], job["total_tasks"], job["completed_tasks"]) == ("completed", 1, 1)
    (result,) = job["results"]
    assert result["task_index"] == 0
    assert result["status"] == "completed"
    assert result["error"] is None
    assert isinstance(result["result"], str)
    assert result["result"]


def test_multi_turn_answers_the_last_question_in_its_context(client: Studio) -> None:
    multi = client.finish(client.submit(example("multiTurn")))
    alone = client.finish(client.submit(batch("Tell me more")))
    assert multi["results"][0]["result"] != alone["results"][0]["result"]


def test_vision_input_answers_on_the_vision_model(client: Studio) -> None:
    job = client.finish(client.submit(example("vision")))
    assert "image" in job["results"][0]["result"]


def test_vision_input_on_a_text_model_is_rejected(client: Studio) -> None:
    body = example("vision")
    body["model_id"] = CHAT_MODEL
    status, error = client.create(body)
    message = assert_error(status, error, 400, "invalid_request")
    assert "messages[0][0].content[1]" in message
    assert CHAT_MODEL in message


def test_a_failing_task_fails_alone(client: Studio) -> None:
    job_id = client.submit(batch("First input", f"Second input {FAIL_MARKER}", "Third input"))
    job = client.finish(job_id)
    assert (job["job_status"], job["completed_tasks"]) == ("completed", 3)
    ok_first, failed, ok_last = job["results"]
    assert failed["status"] == "failed"
    assert failed["result"] is None
    assert isinstance(failed["error"], str)
    assert failed["error"]
    for ok in (ok_first, ok_last):
        assert ok["status"] == "completed"
        assert ok["error"] is None
        assert ok["result"]


def test_only_the_last_user_message_decides_failure(client: Studio) -> None:
    conversation = [
        {"role": "user", "content": f"earlier {FAIL_MARKER}"},
        {"role": "assistant", "content": "noted"},
        {"role": "user", "content": "now answer normally"},
    ]
    job = client.finish(client.submit({"model_id": CHAT_MODEL, "messages": [conversation]}))
    assert job["results"][0]["status"] == "completed"


def test_a_job_whose_tasks_all_fail_is_failed(client: Studio) -> None:
    job = client.finish(client.submit(batch(f"one {FAIL_MARKER}", f"two {FAIL_MARKER}")))
    assert (job["job_status"], job["completed_tasks"], job["total_tasks"]) == ("failed", 2, 2)
    assert all(r["status"] == "failed" and r["result"] is None and r["error"] for r in job["results"])


# -- generation parameters and determinism ----------------------------------------------------------


def test_defaults_come_from_the_spec(client: Studio) -> None:
    declared = load_spec(spec_path(PROVIDER)).operation("createGenerationJob").body
    assert declared is not None
    defaults = dict(declared.defaults)
    assert set(defaults) == {"temperature", "max_tokens"}
    explicit = client.finish(client.submit(batch("Explain tides", **defaults)))
    implicit = client.finish(client.submit(batch("Explain tides")))
    assert explicit["results"] == implicit["results"]


def test_max_tokens_cuts_the_same_text(client: Studio) -> None:
    full = client.finish(client.submit(batch("Describe volcanoes")))
    short = client.finish(client.submit(batch("Describe volcanoes", max_tokens=3)))
    full_text, short_text = full["results"][0]["result"], short["results"][0]["result"]
    assert count_tokens(short_text) == 3
    assert full_text.startswith(short_text)
    assert full_text != short_text


def _batch_texts(client: Studio) -> list[str]:
    job = client.finish(client.submit(example("batch")))
    return [r["result"] for r in job["results"]]


def test_same_seed_same_texts_other_seed_other_texts(start_studio: Callable[..., Studio]) -> None:
    texts = _batch_texts(start_studio(seed=7))
    assert _batch_texts(start_studio(seed=7)) == texts  # reset by attach_mock: the same state again
    other = _batch_texts(start_studio(seed=8))
    assert all(a != b for a, b in zip(texts, other, strict=True))


# -- errors -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [None, "ms_test_not_a_key"])
def test_missing_or_invalid_key_is_401(client: Studio, key: str | None) -> None:
    status, body = client.create(batch("Hello!"), key=key)
    assert_error(status, body, 401, "unauthorized")
    status, body = client.poll("job_abc123", key=key)
    assert_error(status, body, 401, "unauthorized")


@pytest.mark.parametrize("org", [ORG_B, "org_does_not_exist"])
def test_key_of_another_organization_is_403(client: Studio, org: str) -> None:
    status, body = client.create(batch("Hello!", model=OTHER_ORG_MODEL), org=org)
    assert assert_error(status, body, 403, "forbidden").startswith("Insufficient permissions")
    status, body = client.poll("job_abc123", org=org)
    assert_error(status, body, 403, "forbidden")


@pytest.mark.parametrize("model", ["ms-no-such-model", OTHER_ORG_MODEL])
def test_model_outside_the_organization_is_404(client: Studio, model: str) -> None:
    status, body = client.create(batch("Hello!", model=model))
    assert model in assert_error(status, body, 404, "model_not_found")


def test_unknown_job_is_404(client: Studio) -> None:
    status, body = client.poll("job_0000000000000000")
    assert_error(status, body, 404, "job_not_found")


def test_malformed_job_id_is_400(client: Studio) -> None:
    status, body = client.poll("abc123")
    assert "job_id" in assert_error(status, body, 400, "invalid_request")


def test_job_of_another_organization_is_404(client: Studio) -> None:
    job_id = client.submit(batch("Hello!", model=OTHER_ORG_MODEL), org=ORG_B, key=KEY_B)
    status, body = client.poll(job_id)
    assert_error(status, body, 404, "job_not_found")
    status, body = client.poll(job_id, org=ORG_B, key=KEY_B)
    assert status == 200
    assert body["job_id"] == job_id


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"temperature": 1.5}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
        ({"messages": []}, "messages"),
        ({"messages": [{"role": "user", "content": "Hello!"}]}, "messages[0]"),
        ({"messages": ["Hello!"]}, "messages[0]"),
        ({"messages": [[]]}, "messages[0]"),
        ({"messages": [[{"role": "robot", "content": "Hi"}]]}, "messages[0][0].role"),
        ({"model_id": ""}, "model_id"),
    ],
)
def test_invalid_body_is_400_naming_the_field(client: Studio, change: dict[str, Any], field: str) -> None:
    status, body = client.create({**batch("Hello!"), **change})
    assert f"'{field}'" in assert_error(status, body, 400, "invalid_request")


def test_missing_required_field_is_400(client: Studio) -> None:
    status, body = client.create({"messages": [[{"role": "user", "content": "Hi"}]]})
    assert "model_id" in assert_error(status, body, 400, "invalid_request")


def test_other_methods_are_405_in_the_envelope(client: Studio) -> None:
    status, body = client.request("PUT", f"/api/v1/organizations/{ORG_A}/generate", json={})
    assert_error(status, body, 405, "method_not_allowed")
