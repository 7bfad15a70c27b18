"""What the dashboard reads, over real HTTP: the live event stream, captured request details (credentials
redacted), resources, the page's files, each provider's published spec and the ``/`` redirect.

The browser tests (tests/dashboard/) drive the page itself; these pin the control API it stands on.
"""

from __future__ import annotations

import contextlib
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
import yaml
from test_control_spec import DASHBOARD_PATHS, control, error, sweep_config

from mockserver.core.calls import JsonReply
from mockserver.core.feed import MAX_BODY_CAPTURE, RING_SIZE
from mockserver.resources import spec_path
from mockserver.settings import Settings
from mockserver.testing.control import MockControl
from mockserver.testing.server import ServerThread

# Not the endless /events stream, nor the static /ui files (test_dashboard_files checks those).
dashboard_sweep = (
    schemathesis.pytest.from_fixture("dashboard_schema")
    .include(path_regex=DASHBOARD_PATHS)
    .exclude(path_regex="^/(events|ui)")
)
SPACEAI = "spaceai"
ARTIFICIAL = "artificialstudio"
PAST_ANY_JOB = 3600


class Events:
    """A client of ``GET /_mock/events``: read event by event (bounded by the read timeout)."""

    def __init__(self, response: requests.Response) -> None:
        self.response = response
        self._lines = response.iter_lines(chunk_size=None, decode_unicode=True)

    def next(self) -> tuple[str, dict[str, Any]]:
        """The next event's name and data (comments skipped)."""
        name, data = "message", ""
        for line in self._lines:
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
            elif line == "" and data:
                return name, json.loads(data)
        raise EOFError("the event stream ended")

    def next_request(self) -> dict[str, Any]:
        """The next ``request`` event's entry (violation events before it skipped)."""
        for _ in range(20):
            name, data = self.next()
            if name == "request":
                entry: dict[str, Any] = data["entry"]
                return entry
        raise AssertionError("no request event")


@contextlib.contextmanager
def listening(mock: Any) -> Iterator[Events]:
    """An open event stream, past its ``hello``."""
    with mock.http.get(f"{mock.base_url}/_mock/events", stream=True, timeout=10) as response:
        assert response.status_code == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = Events(response)
        assert events.next() == ("hello", {})
        yield events


def chat(mock: Any, content: str) -> requests.Response:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": content}]}
    response: requests.Response = mock.post(SPACEAI, "/v1/chat/completions", json=body)
    return response


# Journal ids 1, 2, 3... are the memory backend's; Redis ids are unique and time-ordered, not consecutive
# (ms * 1024 + instance: ARCHITECTURE.md), so this test's arithmetic on ids holds on memory only.
@pytest.mark.parametrize("state_backend", ["memory"], indirect=True)
def test_requests_arrive_live_with_redacted_details(mock: Any) -> None:
    key = mock.provider(SPACEAI).api_key
    other = mock.provider(ARTIFICIAL).api_key  # sent to the wrong provider: masked all the same
    with listening(mock) as events:
        assert chat(mock, f"my key is {key}, or {other}").status_code == 200
        entry = events.next_request()
        assert entry["operation_id"] == "createChatCompletion"
        assert entry["status"] == 200
        assert entry["violations"] == []
        assert mock.get(SPACEAI, "/v1/nothing-here").status_code == 404
        assert events.next_request()["status"] == 404
    assert [e["id"] for e in mock.journal(SPACEAI)] == [entry["id"], entry["id"] + 1]
    detail = control(mock, "GET", f"/requests/{entry['id']}")
    assert detail["request"]["headers"]["Authorization"] == "[redacted]"
    assert "my key is [redacted], or [redacted]" in detail["request"]["body"]["text"]
    assert json.loads(detail["response"]["body"]["text"])["object"] == "chat.completion"
    assert detail["response"]["status"] == 200
    assert key not in json.dumps(detail)
    assert other not in json.dumps(detail)


def test_every_credential_header_of_the_one_list_is_redacted_in_details(mock: Any) -> None:
    """Credential headers are the recording format's one list (``mockserver.recordings``): one only it
    named (a cloud session token, no key the mock knows) showed its value in the dashboard."""
    token = "FwoGZXIvYXdzEXAMPLESESSIONTOKEN"
    signature = "v1,c2lnbmF0dXJlLW9mLWEtd2ViaG9vaw=="
    headers = {
        "X-Amz-Security-Token": token,
        "X-Goog-Api-Key": "AIzaEXAMPLEKEY",
        "Webhook-Signature": signature,
    }
    with listening(mock) as events:
        assert mock.get(SPACEAI, "/v1/models", headers=headers).status_code == 200
        entry = events.next_request()
    detail = control(mock, "GET", f"/requests/{entry['id']}")
    shown = detail["request"]["headers"]
    for name in headers:
        assert shown[name] == "[redacted]", name
    for value in (token, "AIzaEXAMPLEKEY", signature):
        assert value not in json.dumps(detail)


def test_a_body_arriving_after_its_headers_is_captured(mock: Any) -> None:
    """A body that reaches the mock after its headers (a slow or loaded client) is read chunk by chunk;
    its details show it all the same (they showed none: the dashboard test failed under load)."""
    key = mock.provider(SPACEAI).api_key
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "late body"}]}).encode()
    host, port = mock.base_url.removeprefix("http://").rsplit(":", 1)
    head = (
        f"POST /{SPACEAI}/v1/chat/completions HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with listening(mock) as events, socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head)
        time.sleep(0.3)  # real time: the headers are parsed and the body is awaited on its own
        conn.sendall(body)
        reply = b""
        while chunk := conn.recv(65536):
            reply += chunk
        assert reply.startswith(b"HTTP/1.1 200")
        entry = events.next_request()
    detail = control(mock, "GET", f"/requests/{entry['id']}")
    assert detail["request"]["body"] is not None
    assert "late body" in detail["request"]["body"]["text"]


def wait_for_no_taps(journal: Any) -> None:
    """A closed stream's handler notices within half a second; wait (bounded, real time) for it."""
    deadline = time.monotonic() + 10
    while journal.taps and time.monotonic() < deadline:
        time.sleep(0.05)
    assert journal.taps == []  # nobody listens: the request path calls nothing more


def test_bodies_are_captured_only_while_someone_listens(mock: Any) -> None:
    journal = mock.server.mock.journal
    wait_for_no_taps(journal)
    assert chat(mock, "unheard").status_code == 200
    (unheard,) = mock.journal(SPACEAI)
    error(mock, "GET", f"/requests/{unheard['id']}", status=404, code="not_found")
    for bad in ("0", "x", "-1", "99999999999999999999999"):
        error(mock, "GET", f"/requests/{bad}", status=404, code="not_found")
    with listening(mock):
        assert len(journal.taps) == 1
    wait_for_no_taps(journal)


def test_large_bodies_are_cut_and_the_ring_is_bounded(mock: Any) -> None:
    feed = mock.server.mock.feed
    with listening(mock) as events:
        assert chat(mock, "x" * (MAX_BODY_CAPTURE + 10)).status_code == 200
        first = events.next_request()
        detail = control(mock, "GET", f"/requests/{first['id']}")
        assert detail["request"]["body"]["truncated"] is True
        assert len(detail["request"]["body"]["text"].encode()) == MAX_BODY_CAPTURE
        for _ in range(RING_SIZE):
            assert mock.get(SPACEAI, "/v1/models").status_code == 200
            events.next_request()
    error(mock, "GET", f"/requests/{first['id']}", status=404, code="not_found")
    assert len(feed._details) == RING_SIZE


def test_a_spec_violation_is_marked_on_its_entry(mock: Any) -> None:
    service = mock.server.mock.providers[SPACEAI]
    original = service.handlers["listModels"]

    async def broken(call: Any) -> JsonReply:
        return JsonReply({"object": "list"})  # no "data": outside the spec

    service.handlers["listModels"] = broken
    try:
        with listening(mock) as events:
            assert mock.get(SPACEAI, "/v1/models").status_code == 500  # strict validation
            entry = events.next_request()
    finally:
        service.handlers["listModels"] = original
    assert len(entry["violations"]) == 1
    assert "data" in entry["violations"][0]
    assert control(mock, "GET", f"/requests/{entry['id']}")["violations"] == entry["violations"]
    mock.reset()  # the violation was on purpose: the fixture's check must not see it


def test_resources_show_jobs_with_state_and_progress(mock: Any) -> None:
    assert control(mock, "GET", "/resources") == {
        "jobs": [],
        "counts": {p: {} for p in mock.providers},
    }
    created = mock.post(ARTIFICIAL, "/api/run", json={"tool": "create-image", "input": {"prompt": "a kite"}})
    assert created.status_code == 200
    (job,) = control(mock, "GET", f"/resources?provider={ARTIFICIAL}")["jobs"]
    assert job["id"] == created.json()["id"]
    assert job["kind"] == "generations"
    assert (job["state"], job["progress"]) in {("queued", 0), ("running", 0)}
    mock.advance(PAST_ANY_JOB)
    listing = control(mock, "GET", "/resources")
    assert [(j["state"], j["progress"]) for j in listing["jobs"]] == [("succeeded", 1)]
    assert listing["counts"][ARTIFICIAL] == {"generations": 1}
    assert control(mock, "GET", f"/resources?provider={SPACEAI}")["jobs"] == []
    error(mock, "GET", "/resources?provider=nowhere", status=400, code="invalid_request")


def test_dashboard_files(mock: Any) -> None:
    page = requests.get(f"{mock.base_url}/_mock/ui", timeout=10)
    assert page.status_code == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert "default-src 'self'" in page.headers["Content-Security-Policy"]
    assert '<script type="module" src="ui/app.js">' in page.text
    assert "https://" not in page.text  # nothing from a CDN: works offline
    for name, media in (("app.js", "text/javascript"), ("app.css", "text/css")):
        asset = requests.get(f"{mock.base_url}/_mock/ui/{name}", timeout=10)
        assert asset.status_code == 200
        assert asset.headers["Content-Type"] == f"{media}; charset=utf-8"
        assert "https://" not in asset.text
    redirect = requests.get(f"{mock.base_url}/_mock/ui/", allow_redirects=False, timeout=10)
    assert (redirect.status_code, redirect.headers["Location"]) == (302, "/_mock/ui")
    for missing in ("index.html", "nope.js", "..%2Fbase.py"):
        error(mock, "GET", f"/ui/{missing}", status=404, code="not_found")


def test_root_redirects_to_the_dashboard_and_providers_publish_their_specs(mock: Any) -> None:
    root = requests.get(f"{mock.base_url}/", allow_redirects=False, timeout=10)
    assert (root.status_code, root.headers["Location"]) == (302, "/_mock/ui")
    for provider_id, info in mock.providers.items():
        as_yaml = requests.get(f"{info.base_url}/openapi.yaml", timeout=10)
        assert as_yaml.status_code == 200
        assert as_yaml.headers["Content-Type"] == "application/yaml; charset=utf-8"
        assert as_yaml.content == spec_path(provider_id).read_bytes()
        as_json = requests.get(f"{info.base_url}/openapi.json", timeout=10)
        assert as_json.status_code == 200
        assert as_json.json()["info"] == yaml.safe_load(as_yaml.text)["info"]
    # Another method on the spec's path is still the provider's own answer, in its envelope.
    other = requests.post(f"{mock.provider(SPACEAI).base_url}/openapi.json", timeout=10)
    assert other.status_code in (404, 405)
    assert "error" in other.json()
    assert [e["path"] for e in mock.journal(SPACEAI)] == [f"/{SPACEAI}/openapi.json"]


def test_single_provider_publishes_its_spec_at_the_root(start_mock: Any) -> None:
    mock = start_mock(provider=SPACEAI, providers=(SPACEAI,))
    as_json = requests.get(f"{mock.base_url}/openapi.json", timeout=10)
    assert as_json.status_code == 200
    assert as_json.json()["info"]["x-provider-id"] == SPACEAI
    # "/" stays the provider's: its 404 envelope, no redirect.
    root = requests.get(f"{mock.base_url}/", allow_redirects=False, timeout=10)
    assert root.status_code == 404
    assert "error" in root.json()


def test_shutdown_ends_open_event_streams() -> None:
    settings = Settings(host="127.0.0.1", port=0, providers=(SPACEAI,), response_validation="strict")
    server = ServerThread(settings).start()
    mock = MockControl(server.base_url, server)
    try:
        with listening(mock) as events:
            server.stop()
            with pytest.raises((EOFError, requests.RequestException)):
                events.next()  # the stream ends (or the connection drops): it does not hang
    finally:
        server.stop()
        mock.close()
    assert server.leftover_tasks == []


@pytest.fixture
def dashboard_schema(start_mock: Any) -> Any:
    """control.yaml on a dedicated server."""
    mock = start_mock()
    config = sweep_config(mock.base_url, {"provider": ARTIFICIAL, "entry_id": "1"})
    return schemathesis.openapi.from_path(spec_path("control"), config=config)


@pytest.mark.slow
@dashboard_sweep.parametrize()
def test_dashboard_routes_sweep(case: schemathesis.Case) -> None:
    case.call_and_validate()
