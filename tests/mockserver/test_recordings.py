"""The recording format (mockserver/recordings.py): write -> load round trips, redaction, malformed files."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from mockserver.errors import FixtureError
from mockserver.recordings import (
    REDACTED,
    Exchange,
    RecordedEvent,
    RecordedRequest,
    RecordedResponse,
    RecordingWriter,
    load_recordings,
    redact_url,
    slug,
)

SECRET = "sk-test-0123456789abcdefSECRET"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def exchange(request: RecordedRequest, response: RecordedResponse, provider: str = "spaceai") -> Exchange:
    return Exchange(provider, request, response, "2026-12-03T02:10:00.123Z")


def post(path: str, body: object = None, **kw: object) -> RecordedRequest:
    return RecordedRequest(
        method="POST",
        path=path,
        headers={"content-type": "application/json"},
        body=body,
        **kw,  # type: ignore[arg-type]
    )


def all_text(root: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_json_exchange_round_trips(tmp_path: Path) -> None:
    body = {"model": "gpt-x", "messages": [{"role": "user", "content": "2026-12-03"}], "n": 1, "t": 0.5}
    reply = {"id": "chatcmpl-1", "created": 1700000000, "choices": [], "ok": True, "none": None, "yes": "yes"}
    written = RecordingWriter(tmp_path, "spaceai").write(
        exchange(
            post("/v1/chat/completions", body, query=(("limit", "2"), ("after", "x"))),
            RecordedResponse(status=200, headers={"Content-Type": "application/json"}, body=reply),
        )
    )
    assert written == tmp_path / "spaceai" / "000001-POST-v1-chat-completions.yaml"
    text = written.read_text()
    assert text.startswith("# Recorded by `python -m conformance proxy`")
    assert "query: [[limit, '2'], [after, x]]" in text
    loaded = load_recordings(tmp_path)
    assert list(loaded) == ["spaceai"]
    (got,) = loaded["spaceai"]
    assert got.source == written
    assert got.request.method == "POST"
    assert got.request.path == "/v1/chat/completions"
    assert got.request.query == (("limit", "2"), ("after", "x"))
    assert got.request.body == body  # the date-like string stays a string
    assert got.response.status == 200
    assert got.response.body == reply
    assert got.response.headers == {"content-type": "application/json"}
    assert got.recorded_at == "2026-12-03T02:10:00.123Z"


def test_text_binary_and_stream_round_trip(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path, "pahlavan")
    text_body = "line one\nline two: with colon\n"
    writer.write(
        exchange(
            RecordedRequest(method="GET", path="/api/health"),
            RecordedResponse(status=200, headers={"content-type": "text/plain"}, body=text_body),
            "pahlavan",
        )
    )
    image_path = writer.write(
        exchange(
            RecordedRequest(method="GET", path="/api/v1/storage/files/abc/content"),
            RecordedResponse(status=200, headers={"content-type": "image/png"}, body=PNG),
            "pahlavan",
        )
    )
    events = (
        RecordedEvent(0.0, '{"id":"c1","object":"chat.completion.chunk"}'),
        RecordedEvent(0.0514, "second", event="message", id="3"),
        RecordedEvent(0.3, "[DONE]"),
    )
    writer.write(
        exchange(
            post("/api/v1/chat/completions", {"stream": True}),
            RecordedResponse(status=200, headers={"content-type": "text/event-stream"}, events=events),
            "pahlavan",
        )
    )
    assert (
        tmp_path / "pahlavan" / "000002-GET-api-v1-storage-files-abc-content.response.png"
    ).read_bytes() == PNG
    assert "body_file: 000002-GET-api-v1-storage-files-abc-content.response.png" in image_path.read_text()
    plain, image, stream = load_recordings(tmp_path)["pahlavan"]
    assert plain.response.body == text_body
    assert plain.request.body is None
    assert image.response.body == PNG
    assert stream.response.body is None
    assert stream.response.events == (
        RecordedEvent(0.0, '{"id":"c1","object":"chat.completion.chunk"}'),
        RecordedEvent(0.051, "second", event="message", id="3"),
        RecordedEvent(0.3, "[DONE]"),
    )


def test_writer_continues_after_the_highest_seq(tmp_path: Path) -> None:
    one = exchange(RecordedRequest(method="GET", path="/v1/models"), RecordedResponse(status=200, body={}))
    RecordingWriter(tmp_path, "spaceai").write(one)
    (tmp_path / "spaceai" / "000007-GET-hand-written.yaml").write_text(
        (tmp_path / "spaceai" / "000001-GET-v1-models.yaml").read_text()
    )
    assert RecordingWriter(tmp_path, "spaceai").write(one).name == "000008-GET-v1-models.yaml"
    assert [e.source.name for e in load_recordings(tmp_path)["spaceai"] if e.source] == [
        "000001-GET-v1-models.yaml",
        "000007-GET-hand-written.yaml",
        "000008-GET-v1-models.yaml",
    ]


def test_slug() -> None:
    assert slug("/v1/Images/Generations") == "v1-images-generations"
    assert slug("/") == "root"
    assert len(slug("/" + "segment/" * 20)) <= 60


def test_redaction_value_only(tmp_path: Path) -> None:
    signed = "http://127.0.0.1:8000/files/a.png?expires=1&signature=abc123def&X-Amz-Signature=ff00&sig=s1"
    request = RecordedRequest(
        method="POST",
        path="/v1/images/generations",
        query=(("token", "tok-value"), ("limit", "2"), ("note", f"key {SECRET} end")),
        headers={
            "Authorization": f"Bearer {SECRET}",
            "X-API-Key": SECRET,
            "Cookie": "session=abc",
            "Content-Type": "application/json",
            "X-Echo": f"prefix-{SECRET}-suffix",
            "Connection": "keep-alive",
            "Content-Length": "12",
        },
        body={"prompt": f"my key is {SECRET}!", "url": signed, SECRET: "as a key"},
    )
    events = (RecordedEvent(0.0, f'{{"k":"{SECRET}","u":"{signed}"}}', id=SECRET),)
    response = RecordedResponse(
        status=200,
        headers={"set-cookie": "a=b", "location": signed, "content-type": "text/event-stream"},
        events=events,
    )
    path = RecordingWriter(tmp_path, "spaceai", secrets=[SECRET, ""]).write(exchange(request, response))
    raw = all_text(tmp_path)
    for secret in (SECRET.encode(), b"abc123def", b"ff00", b"tok-value", b"s1&", b"session=abc"):
        assert secret not in raw
    (got,) = load_recordings(tmp_path)["spaceai"]
    assert got.request.headers == {"content-type": "application/json", "x-echo": f"prefix-{REDACTED}-suffix"}
    assert got.request.query == (("token", REDACTED), ("limit", "2"), ("note", f"key {REDACTED} end"))
    assert got.request.body == {
        "prompt": f"my key is {REDACTED}!",
        "url": "http://127.0.0.1:8000/files/a.png?expires=1&signature=[REDACTED]&X-Amz-Signature=[REDACTED]"
        "&sig=[REDACTED]",
        REDACTED: "as a key",
    }
    assert "set-cookie" not in got.response.headers
    assert got.response.headers["location"].endswith(
        "signature=[REDACTED]&X-Amz-Signature=[REDACTED]&sig=[REDACTED]"
    )
    assert got.response.events is not None
    assert got.response.events[0].id == REDACTED
    assert SECRET not in got.response.events[0].data
    assert REDACTED in got.response.events[0].data
    assert path.exists()


def test_binary_bodies_are_redacted_too(tmp_path: Path) -> None:
    RecordingWriter(tmp_path, "spaceai", secrets=[SECRET]).write(
        exchange(
            RecordedRequest(
                method="POST",
                path="/v1/files",
                headers={"content-type": "application/octet-stream"},
                body=b"\x00" + SECRET.encode() + b"\xff",
            ),
            RecordedResponse(status=201, body={"id": "file-1"}),
        )
    )
    assert SECRET.encode() not in all_text(tmp_path)
    (got,) = load_recordings(tmp_path)["spaceai"]
    assert got.request.body == b"\x00" + REDACTED.encode() + b"\xff"


def test_redact_url() -> None:
    assert redact_url("https://x.test/a?signature=abc&b=1") == "https://x.test/a?signature=[REDACTED]&b=1"
    assert redact_url("see https://x.test/a?x-goog-signature=00ff#frag") == (
        "see https://x.test/a?x-goog-signature=[REDACTED]#frag"
    )
    assert (
        redact_url("https://x.test/signature/a?designature=keep")
        == "https://x.test/signature/a?designature=keep"
    )
    assert redact_url("https://x.test/a?token=") == "https://x.test/a?token="


def write_raw(root: Path, name: str, text: str, provider: str = "spaceai") -> Path:
    folder = root / provider
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


VALID = """\
format: 1
provider: spaceai
recorded_at: "2026-12-03T02:10:00Z"
request: {method: GET, path: /v1/models, query: [], headers: {}}
response: {status: 200, headers: {content-type: application/json, x-ratelimit-limit: 60}, body: {data: []}}
"""


def test_hand_written_file_loads(tmp_path: Path) -> None:
    write_raw(tmp_path, "000001-GET-v1-models.yaml", VALID)
    (got,) = load_recordings(tmp_path)["spaceai"]
    assert got.response.headers["x-ratelimit-limit"] == "60"


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("format: 1\nprovider: [unclosed\n", "not valid YAML at line"),
        ("- a list\n", "the file must be a mapping"),
        (VALID.replace("format: 1", "format: 2"), "format must be 1"),
        (VALID.replace("provider: spaceai", "provider: pahlavan"), "does not match its folder"),
        (VALID.replace("status: 200", "status: 999"), "response.status must be an HTTP status"),
        (VALID.replace("path: /v1/models", "path: v1/models"), "request.path must start with '/'"),
        (VALID.replace("body: {data: []}", "body: {data: []}, body_text: x"), "more than one body"),
        (VALID.replace("body: {data: []}", "body_file: missing.png"), "cannot be read"),
        (VALID.replace("body: {data: []}", "events: [{data: x}]"), "events[0].t must be"),
        (VALID.replace("recorded_at:", "recordedat:"), "unknown keys ['recordedat']"),
        (VALID.replace("query: []", "query: [[a]]"), "is not a [name, value] pair"),
    ],
)
def test_malformed_file_is_a_fixture_error_naming_it(tmp_path: Path, text: str, problem: str) -> None:
    path = write_raw(tmp_path, "000001-GET-v1-models.yaml", text)
    with pytest.raises(FixtureError) as caught:
        load_recordings(tmp_path)
    assert str(path) in str(caught.value)
    assert problem in str(caught.value)


def test_missing_folder_is_a_fixture_error(tmp_path: Path) -> None:
    with pytest.raises(FixtureError, match="does not exist"):
        load_recordings(tmp_path / "nope")


def test_written_yaml_is_block_style_and_editable(tmp_path: Path) -> None:
    path = RecordingWriter(tmp_path, "spaceai").write(
        exchange(post("/v1/chat/completions", {"model": "m"}), RecordedResponse(status=200, body={"id": "x"}))
    )
    document = yaml.safe_load(path.read_text())
    assert list(document) == ["format", "provider", "recorded_at", "request", "response"]
    assert list(document["request"]) == ["method", "path", "query", "headers", "body"]
    # A hand edit (a new reply) is what the reader returns.
    path.write_text(path.read_text().replace("id: x", "id: edited"))
    assert load_recordings(tmp_path)["spaceai"][0].response.body == {"id": "edited"}
