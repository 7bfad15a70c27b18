"""Replay (``--replay DIR``) over real HTTP: recordings of a mock at one seed answer a mock at another.

The recordings are REAL responses: a mock at seed 1 is called over HTTP (httpx, streams timed event by
event as they arrive) and each exchange is written with ``RecordingWriter``, as the recording proxy does.
The replaying mocks run at seed 2, whose own answers differ, so a match shows as the recorded content.
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import httpx_sse
import openai
import pytest
import yaml
from openai.types.chat import ChatCompletionMessageParam

from mockserver.core.router import Router
from mockserver.core.spec import JSON_MEDIA_TYPE, load_spec
from mockserver.recordings import (
    REDACTED,
    Exchange,
    RecordedEvent,
    RecordedRequest,
    RecordedResponse,
    RecordingWriter,
)
from mockserver.resources import spec_path
from mockserver.settings import SEED_SECRET, Settings
from mockserver.testing.control import MockControl
from mockserver.testing.server import ServerThread

MODEL = "gpt-4o"
ASKED: list[ChatCompletionMessageParam] = [
    {"role": "user", "content": "Summarise the history of the printing press"}
]
OPTIONS = {"temperature": 0.5, "max_tokens": 40}
"""Sent with ASKED (a fraction and an integer, for the canonical comparison)."""
REPEATED = [{"role": "user", "content": "Say something, anything"}]
OTHER = [{"role": "user", "content": "A question nobody recorded"}]
RECORDING_PACE = 40.0
"""Tokens per second of the recorded mock: its stream spans about a second and a half."""
IMAGE_REQUEST = {
    "model": "flux-schnell",
    "type": "image",
    "prompt": "a cat",
    "settings": {"saveToStorage": True},
}


@dataclass
class Recorded:
    """What the seed-1 mock answered, and where it was written."""

    folder: Path
    secrets: list[str] = field(default_factory=list)
    plain: dict[str, Any] = field(default_factory=dict)
    events: list[RecordedEvent] = field(default_factory=list)
    repeated: list[dict[str, Any]] = field(default_factory=list)
    image_url: str = ""
    image: bytes = b""


def record(writer: RecordingWriter, response: httpx.Response, body: Any = None) -> None:
    """Write one plain exchange as it went over the wire (credentials included: the writer drops them)."""
    request = response.request
    prefix = "/" + writer.provider
    media = response.headers.get("content-type", "")
    writer.write(
        Exchange(
            writer.provider,
            RecordedRequest(
                method=request.method,
                path=request.url.path.removeprefix(prefix),
                query=tuple(request.url.params.multi_items()),
                headers=dict(request.headers),
                body=body,
            ),
            RecordedResponse(
                status=response.status_code,
                headers=dict(response.headers),
                body=response.json() if media.startswith(JSON_MEDIA_TYPE) else response.content,
            ),
            "2026-12-03T02:00:00.000Z",
        )
    )


def record_stream(writer: RecordingWriter, client: httpx.Client, url: str, body: Any) -> list[RecordedEvent]:
    """Write one streamed exchange, each event with its time since the response headers."""
    with httpx_sse.connect_sse(client, "POST", url, json=body) as source:
        started = time.monotonic()
        events = [RecordedEvent(time.monotonic() - started, sse.data) for sse in source.iter_sse()]
        response = source.response
    writer.write(
        Exchange(
            writer.provider,
            RecordedRequest(
                method="POST",
                path="/v1/chat/completions",
                headers=dict(response.request.headers),
                body=body,
            ),
            RecordedResponse(
                status=response.status_code, headers=dict(response.headers), events=tuple(events)
            ),
            "2026-12-03T02:00:00.000Z",
        )
    )
    return events


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    """Recordings of real answers of a mock at seed 1 (stopped before any replay starts)."""
    result = Recorded(tmp_path_factory.mktemp("recordings"))
    settings = Settings(
        seed=1,
        tokens_per_second=RECORDING_PACE,
        response_validation="strict",
        signing_secret=SEED_SECRET,
        webhook_hosts=("127.0.0.1",),
    )
    with ServerThread(settings) as server:
        control = MockControl(server.base_url, server)
        spaceai, pahlavan = control.provider("spaceai"), control.provider("pahlavan")
        result.secrets = [spaceai.api_key, pahlavan.api_key]
        writer = RecordingWriter(result.folder, "spaceai", secrets=result.secrets)
        with httpx.Client(headers=spaceai.auth_headers(), timeout=20) as client:
            url = spaceai.url("/v1/chat/completions")
            plain = {"model": MODEL, "messages": ASKED, **OPTIONS}
            response = client.post(url, json=plain)
            record(writer, response, plain)
            result.plain = response.json()
            result.events = record_stream(writer, client, url, {**plain, "stream": True})
            for _ in range(2):
                again = client.post(url, json={"model": MODEL, "messages": REPEATED})
                record(writer, again, {"model": MODEL, "messages": REPEATED})
                result.repeated.append(again.json())
        writer = RecordingWriter(result.folder, "pahlavan", secrets=result.secrets)
        with httpx.Client(headers=pahlavan.auth_headers(), timeout=20) as client:
            generation = client.post(pahlavan.url("/api/v1/generations"), json=IMAGE_REQUEST)
            record(writer, generation, IMAGE_REQUEST)
            result.image_url = generation.json()["output_urls"][0]
            download = client.get(result.image_url)
            assert download.headers["content-type"] == "image/png"
            record(writer, download)
            result.image = download.content
            result.secrets.append(httpx.URL(result.image_url).params["signature"])
        control.close()
    assert result.repeated[0]["id"] != result.repeated[1]["id"]
    return result


@pytest.fixture
def replaying(recorded: Recorded, start_mock: Callable[..., MockControl]) -> Callable[..., MockControl]:
    """``replaying(**settings)``: a mock at seed 2 replaying the recordings (strict response validation)."""

    def start(folder: Path | None = None, **changes: Any) -> MockControl:
        return start_mock(seed=2, replay=folder or recorded.folder, **changes)

    return start


def openai_client(mock: MockControl, api_key: str | None = None) -> openai.OpenAI:
    info = mock.provider("spaceai")
    return openai.OpenAI(base_url=info.url("/v1"), api_key=api_key or info.api_key, max_retries=0, timeout=20)


def complete(client: openai.OpenAI, **extra: Any) -> Any:
    """The recorded chat completion request, as the official client sends it."""
    return client.chat.completions.create(
        model=MODEL,
        messages=ASKED,
        temperature=0.5,
        max_tokens=40,
        **extra,
    )


def chunks_of(events: list[RecordedEvent]) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in events if e.data != "[DONE]"]


def test_plain_and_streamed_content_through_the_openai_client(
    recorded: Recorded, replaying: Callable[..., MockControl], start_mock: Callable[..., MockControl]
) -> None:
    own = start_mock(seed=2)  # what the seed-2 mock says by itself: not the recording
    with openai_client(own) as client:
        assert complete(client).id != recorded.plain["id"]
    mock = replaying(replay_speed=0)
    with openai_client(mock) as client:
        completion = complete(client)
        assert completion.model_dump(exclude_unset=True) == recorded.plain
        stream = complete(client, stream=True)
        chunks = [chunk.model_dump(exclude_unset=True) for chunk in stream]
    assert chunks == chunks_of(recorded.events)
    status = mock.control("GET", "/replay")
    assert status["replayed"] == 2
    assert status["unmatched"] == 0
    assert status["drift"] == []


def test_json_bodies_match_canonically(recorded: Recorded, replaying: Callable[..., MockControl]) -> None:
    mock = replaying()
    json_type = {"Content-Type": "application/json"}
    messages = json.dumps(ASKED, indent=3)
    # Key order, spacing and number formatting (0.50, 4e1 for 0.5, 40) differ from the recording.
    text = f'{{ "max_tokens": 4e1, "messages" : {messages},\n "model": "{MODEL}", "temperature": 0.50 }}'
    response = mock.post("spaceai", "/v1/chat/completions", data=text, headers=json_type)
    assert response.status_code == 200
    assert response.json() == recorded.plain
    # Another value is another request: the mock's own answer.
    text = text.replace("0.50", "0.51")
    response = mock.post("spaceai", "/v1/chat/completions", data=text, headers=json_type)
    assert response.status_code == 200
    assert response.json()["id"] != recorded.plain["id"]


def test_an_unrecorded_request_falls_through_or_is_404_when_strict(
    recorded: Recorded, replaying: Callable[..., MockControl]
) -> None:
    mock = replaying()
    response = mock.post("spaceai", "/v1/chat/completions", json={"model": MODEL, "messages": OTHER})
    assert response.status_code == 200
    assert response.json()["object"] == "chat.completion"
    assert response.json()["id"] not in {recorded.plain["id"], *(r["id"] for r in recorded.repeated)}
    assert mock.get("spaceai", "/v1/models").status_code == 200  # an operation nobody recorded
    assert mock.control("GET", "/replay")["unmatched"] == 2

    strict = replaying(replay_strict=True)
    missed = strict.post("spaceai", "/v1/chat/completions", json={"model": MODEL, "messages": OTHER})
    assert missed.status_code == 404
    error = missed.json()["error"]  # SpaceAI's own envelope
    assert "No recording matches POST /spaceai/v1/chat/completions" in error["message"]
    assert error["type"] == "not_found_error"
    hit = strict.post("spaceai", "/v1/chat/completions", json={"model": MODEL, "messages": ASKED, **OPTIONS})
    assert hit.json() == recorded.plain


def test_identical_requests_get_the_answers_in_order_then_the_last_repeats(
    recorded: Recorded, replaying: Callable[..., MockControl]
) -> None:
    mock = replaying()

    def ask() -> str:
        response = mock.post("spaceai", "/v1/chat/completions", json={"model": MODEL, "messages": REPEATED})
        assert response.status_code == 200
        return str(response.json()["id"])

    first, second = (r["id"] for r in recorded.repeated)
    assert [ask(), ask(), ask()] == [first, second, second]
    mock.reset()
    assert [ask(), ask()] == [first, second]


def test_auth_faults_and_rate_limits_apply_to_replayed_requests(
    recorded: Recorded, replaying: Callable[..., MockControl]
) -> None:
    mock = replaying(rate_limit=3)
    body = {"model": MODEL, "messages": ASKED, **OPTIONS}
    unauthenticated = mock.post("spaceai", "/v1/chat/completions", json=body, auth=False)
    assert unauthenticated.status_code == 401
    mock.fault(provider="spaceai", operation_id="createChatCompletion", status=503, count=1)
    assert mock.post("spaceai", "/v1/chat/completions", json=body).status_code == 503
    replayed = mock.post("spaceai", "/v1/chat/completions", json=body)
    assert replayed.json() == recorded.plain
    # The mock's own window (3 a minute), not the recorded provider's headers.
    assert replayed.headers["X-RateLimit-Limit"] == "3"
    assert replayed.headers["X-RateLimit-Remaining"] == "1"
    assert mock.post("spaceai", "/v1/chat/completions", json=body).status_code == 200
    assert mock.post("spaceai", "/v1/chat/completions", json=body).status_code == 429


def test_an_image_output_is_replayed_byte_for_byte(
    recorded: Recorded, replaying: Callable[..., MockControl]
) -> None:
    mock = replaying()
    generation = mock.post("pahlavan", "/api/v1/generations", json=IMAGE_REQUEST)
    assert generation.status_code == 200
    url = httpx.URL(generation.json()["output_urls"][0])
    assert url.params["signature"] == REDACTED  # the recorder kept the URL, not its signature
    # The seed-2 mock stores no such object: the bytes can only come from the recording. The signature
    # was redacted, so whatever (well-formed) value a client sends matches it.
    params = {**dict(url.params), "signature": "0" * 64}
    download = mock.get("pahlavan", "/api/v1/storage/object", params=params, auth=False)
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "image/png"
    assert download.content == recorded.image
    assert mock.control("GET", "/replay")["drift"] == []


def timed_stream(mock: MockControl) -> tuple[float, list[str]]:
    info = mock.provider("spaceai")
    body = {"model": MODEL, "messages": ASKED, "stream": True, **OPTIONS}
    with httpx.Client(headers=info.auth_headers(), timeout=30) as client:
        started = time.monotonic()
        with httpx_sse.connect_sse(client, "POST", info.url("/v1/chat/completions"), json=body) as source:
            data = [sse.data for sse in source.iter_sse()]
        return time.monotonic() - started, data


def test_stream_timing_is_scaled_by_the_replay_speed(
    recorded: Recorded, replaying: Callable[..., MockControl]
) -> None:
    span = recorded.events[-1].t
    assert span > 1.0  # the recorded mock paced its tokens
    elapsed, data = timed_stream(replaying(replay_speed=1))
    assert data == [e.data for e in recorded.events]
    assert elapsed >= 0.8 * span
    elapsed, data = timed_stream(replaying(replay_speed=0))
    assert data == [e.data for e in recorded.events]
    assert elapsed < 0.5 * span
    elapsed, _ = timed_stream(replaying(replay_speed=4))
    assert 0.8 * span / 4 <= elapsed < 0.8 * span


def test_no_secret_in_any_recorded_file(recorded: Recorded) -> None:
    files = [p for p in recorded.folder.rglob("*") if p.is_file()]
    assert len(files) == 7  # 6 exchanges, one binary body
    for path in files:
        content = path.read_bytes()
        for secret in recorded.secrets:
            assert secret.encode() not in content, f"{path.name} holds a secret"
        assert b"authorization" not in content.lower()
    texts = "".join(p.read_text() for p in files if p.suffix == ".yaml")
    assert "signature=%5BREDACTED%5D" in texts


def drift_copy(recorded: Recorded, folder: Path) -> Path:
    """A copy of the recordings in which the plain SpaceAI answer was edited off its spec."""
    shutil.copytree(recorded.folder, folder)
    path = next((folder / "spaceai").glob("000001-*.yaml"))
    document = yaml.safe_load(path.read_text())
    document["response"]["body"]["created"] = "yesterday"
    document["response"]["body"]["object"] = "chat.completion.chunk"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def test_a_drifted_recording_is_warned_about_and_still_replayed(
    recorded: Recorded,
    replaying: Callable[..., MockControl],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    path = drift_copy(recorded, tmp_path / "drifted")
    with caplog.at_level(logging.WARNING, logger="mockserver.replay"):
        mock = replaying(tmp_path / "drifted")
    warnings = [r.getMessage() for r in caplog.records if r.name == "mockserver.replay"]
    name = f"spaceai/{path.name}"
    # One warning per violation, each naming the recording.
    prefix = f"recording {name}: your provider drifted from its documents: body "
    assert sorted(w.removeprefix(prefix).split(":")[0] for w in warnings) == ["created", "object"]
    status = mock.control("GET", "/replay")
    assert [(d["file"], d["operation"]) for d in status["drift"]] == [(name, "createChatCompletion")] * 2
    assert sorted(d["problem"].split(":")[0] for d in status["drift"]) == ["body created", "body object"]
    # Served as recorded: strict response validation neither swaps it for a 500 nor logs a violation
    # (the attach_mock fixture checks the mock reported none).
    response = mock.post(
        "spaceai", "/v1/chat/completions", json={"model": MODEL, "messages": ASKED, **OPTIONS}
    )
    assert response.status_code == 200
    assert response.json()["created"] == "yesterday"


def test_the_replay_status_route_matches_control_yaml(
    recorded: Recorded,
    replaying: Callable[..., MockControl],
    start_mock: Callable[..., MockControl],
    tmp_path: Path,
) -> None:
    spec = load_spec(spec_path("control"))
    route = Router(spec.operations).match("GET", "/replay")
    declared = route.operation.response(200)
    assert declared is not None
    validator = declared.content[JSON_MEDIA_TYPE]
    assert validator is not None
    drift_copy(recorded, tmp_path / "drifted")
    for mock in (replaying(tmp_path / "drifted"), start_mock()):
        body = mock.control("GET", "/replay")
        assert list(validator.errors(body)) == []
    assert body["enabled"] is False


def test_sse_event_and_id_fields_and_multi_line_data(
    replaying: Callable[..., MockControl], tmp_path: Path
) -> None:
    writer = RecordingWriter(tmp_path, "spaceai")
    body = {"model": MODEL, "messages": OTHER, "stream": True}
    events = (
        RecordedEvent(0.0, '{"a":1}', event="message", id="1"),
        RecordedEvent(0.01, "line one\nline two"),
        RecordedEvent(0.02, "[DONE]"),
    )
    writer.write(
        Exchange(
            "spaceai",
            RecordedRequest(method="POST", path="/v1/chat/completions", body=body),
            RecordedResponse(status=200, headers={"content-type": "text/event-stream"}, events=events),
            "2026-12-03T02:00:00Z",
        )
    )
    mock = replaying(tmp_path, replay_speed=0)
    response = mock.post("spaceai", "/v1/chat/completions", json=body)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/event-stream")
    frames = [frame.splitlines() for frame in response.text.split("\n\n") if frame]
    assert frames == [
        ['data: {"a":1}', "event: message", "id: 1"],
        ["data: line one", "data: line two"],
        ["data: [DONE]"],
    ]


def test_the_cli_replays_and_refuses_a_malformed_file_with_exit_2(
    recorded: Recorded, mock_cli: Callable[..., Any], tmp_path: Path
) -> None:
    with mock_cli("--seed", "2", "--replay", str(recorded.folder), "--replay-strict") as origin:
        status = httpx.get(origin + "/_mock/replay").json()
        assert status["strict"] is True
        assert status["exchanges"]["spaceai"] == 4
        listing = httpx.get(origin + "/_mock/providers").json()["providers"]
        key = {p["id"]: p["api_key"] for p in listing}["spaceai"]
        answer = httpx.post(
            origin + "/spaceai/v1/chat/completions",
            json={"model": MODEL, "messages": ASKED, **OPTIONS},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert answer.json() == recorded.plain
    broken = tmp_path / "broken"
    shutil.copytree(recorded.folder, broken)
    bad = next((broken / "pahlavan").glob("000001-*.yaml"))
    bad.write_text(bad.read_text().replace("status: 200", "status: [200]"))
    result = subprocess.run(
        [sys.executable, "-m", "mockserver", "--port", "0", "--replay", str(broken)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert str(bad) in lines[0]
    assert "response.status must be an HTTP status" in lines[0]


def test_binary_request_bodies_match_byte_for_byte_and_text_answers_keep_their_type(
    replaying: Callable[..., MockControl], tmp_path: Path
) -> None:
    writer = RecordingWriter(tmp_path, "pahlavan")
    query = (("key", "user/u/a.png"), ("expires", "1999999999"), ("signature", "ab" * 32))
    upload = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
    writer.write(
        Exchange(
            "pahlavan",
            RecordedRequest(
                method="PUT",
                path="/api/v1/storage/upload",
                query=query,
                headers={"content-type": "image/png"},
                body=upload,
            ),
            RecordedResponse(status=200, body={"key": "user/u/a.png", "bytes": 264, "status": "uploaded"}),
            "2026-12-03T02:00:00Z",
        )
    )
    gateway_page = "<html><body>502 Bad Gateway</body></html>\n"
    writer.write(
        Exchange(
            "pahlavan",
            RecordedRequest(method="POST", path="/api/v1/generations", body=IMAGE_REQUEST),
            RecordedResponse(status=502, headers={"content-type": "text/html"}, body=gateway_page),
            "2026-12-03T02:00:00Z",
        )
    )
    problem = {"type": "about:blank", "title": "Not Found", "status": 404}
    writer.write(
        Exchange(
            "pahlavan",
            RecordedRequest(method="GET", path="/api/v1/videos/generations/vid_1"),
            RecordedResponse(status=404, headers={"content-type": "application/problem+json"}, body=problem),
            "2026-12-03T02:00:00Z",
        )
    )
    assert (tmp_path / "pahlavan" / "000001-PUT-api-v1-storage-upload.request.png").read_bytes() == upload
    mock = replaying(tmp_path)
    params = dict(query)
    put = mock.request(
        "pahlavan",
        "PUT",
        "/api/v1/storage/upload",
        params=params,
        data=upload,
        auth=False,
        headers={"Content-Type": "image/png"},
    )
    assert put.json() == {"key": "user/u/a.png", "bytes": 264, "status": "uploaded"}
    # One byte off: not the recorded request, so the mock's own storage answers (nothing was presigned).
    other = mock.request(
        "pahlavan",
        "PUT",
        "/api/v1/storage/upload",
        params=params,
        data=upload[:-1] + b"!",
        auth=False,
        headers={"Content-Type": "image/png"},
    )
    assert other.status_code in (400, 403, 404)
    assert other.json() != put.json()
    page = mock.post("pahlavan", "/api/v1/generations", json=IMAGE_REQUEST)
    assert page.status_code == 502
    assert page.headers["Content-Type"] == "text/html"
    assert page.text == gateway_page
    missing = mock.get("pahlavan", "/api/v1/videos/generations/vid_1")
    assert missing.status_code == 404
    assert missing.headers["Content-Type"] == "application/problem+json"
    assert missing.json() == problem
    drift = mock.control("GET", "/replay")["drift"]
    assert [(d["file"], d["problem"].split(":")[0]) for d in drift] == [
        (
            "pahlavan/000002-POST-api-v1-generations.yaml",
            "content type text/html is not declared for status 502",
        ),
        (
            "pahlavan/000003-GET-api-v1-videos-generations-vid-1.yaml",
            "content type application/problem+json is not declared for status 404",
        ),
    ]
