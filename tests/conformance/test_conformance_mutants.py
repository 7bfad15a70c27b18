"""A few broken mocks the suite must catch: proof that a mutant can be injected and is reported.

Each mutant starts a dedicated embedded mock whose ``Mock`` a patch changed before serving, runs the CLI
against it, and expects exit 1 with the right check failing. (The full mutant campaign is a later task; these
cover one mutant per injection style: envelope, stream, rate limiter, job handler, storage handler.)
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

from _suite_helpers import FAST, Target

from mockserver.core.calls import BytesReply, Call, EventReply, JsonReply, Reply
from mockserver.errors import ApiError
from mockserver.mock import Mock


class _Module:
    """A provider module with some attributes replaced (the rest delegate to the real one)."""

    def __init__(self, inner: Any, **replaced: Any) -> None:
        self._inner = inner
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def wrap_handler(mock: Mock, provider: str, operation_id: str, change: Callable[[Reply], Reply]) -> None:
    """Make one operation's replies pass through ``change``."""
    service = mock.providers[provider]
    original = service.handlers[operation_id]

    async def handler(call: Call) -> Reply:
        return change(await original(call))

    service.handlers[operation_id] = handler


def check_failed(output: str, check: str) -> bool:
    """Whether the summary reports this check as failed."""
    return any(line.startswith("FAIL") and f" {check} " in line for line in output.splitlines())


def test_error_code_not_echoing_the_status_is_caught(mutant: Callable[..., Target], run_cli: Any) -> None:
    def patch(mock: Mock) -> None:
        service = mock.providers["spaceai"]
        real = service.module

        def render_error(error: ApiError) -> dict[str, Any]:
            envelope: dict[str, Any] = real.render_error(error)
            envelope["error"]["code"] = 400
            return envelope

        service.module = _Module(real, render_error=render_error)  # type: ignore[assignment]

    target = mutant("spaceai", patch)
    code, out, _ = run_cli(*target.args("spaceai"), *FAST, "--checks", "envelope")
    assert code == 1
    assert check_failed(out, "envelope.errors")
    assert "/error/code is 400 but the HTTP status is 401" in out


def test_stream_without_done_is_caught(mutant: Callable[..., Target], run_cli: Any) -> None:
    def drop_done(reply: Reply) -> Reply:
        if not isinstance(reply, EventReply):
            return reply
        events = reply.events

        async def without_done() -> AsyncIterator[Any]:
            async for event in events:
                if event != "[DONE]":
                    yield event

        return dataclasses.replace(reply, events=without_done())

    target = mutant("spaceai", lambda mock: wrap_handler(mock, "spaceai", "createChatCompletion", drop_done))
    code, out, _ = run_cli(*target.args("spaceai"), *FAST, "--checks", "streaming", "--allow-spend")
    assert code == 1
    assert check_failed(out, "streaming.events")
    assert "the last event is not [DONE]" in out


def test_remaining_that_never_decreases_is_caught(mutant: Callable[..., Target], run_cli: Any) -> None:
    def patch(mock: Mock) -> None:
        hit = mock.limiter.hit

        def frozen(bucket: str, limit: int) -> Any:
            return dataclasses.replace(hit(bucket, limit), remaining=limit - 1)

        mock.limiter.hit = frozen  # type: ignore[method-assign]

    target = mutant("studioaicore", patch)
    code, out, _ = run_cli(*target.args("studioaicore"), *FAST, "--checks", "ratelimit.headers")
    assert code == 1
    assert check_failed(out, "ratelimit.headers")
    assert "did not decrease" in out


def test_batch_results_out_of_order_are_caught(mutant: Callable[..., Target], run_cli: Any) -> None:
    def reverse(reply: Reply) -> Reply:
        if isinstance(reply, JsonReply) and isinstance(reply.body, dict) and "results" in reply.body:
            reply.body["results"] = list(reversed(reply.body["results"]))
        return reply

    target = mutant(
        "modelstudio", lambda mock: wrap_handler(mock, "modelstudio", "getGenerationJob", reverse)
    )
    code, out, _ = run_cli(*target.args("modelstudio"), *FAST, "--checks", "jobs", "--allow-spend")
    assert code == 1
    assert check_failed(out, "jobs.batch")
    assert "not in input order" in out


def test_download_of_other_bytes_is_caught(mutant: Callable[..., Target], run_cli: Any) -> None:
    def corrupt(reply: Reply) -> Reply:
        if isinstance(reply, BytesReply):
            return dataclasses.replace(reply, data=reply.data + b"!")
        return reply

    target = mutant("pahlavan", lambda mock: wrap_handler(mock, "pahlavan", "downloadObject", corrupt))
    code, out, _ = run_cli(*target.args("pahlavan"), *FAST, "--checks", "storage")
    assert code == 1
    assert check_failed(out, "storage.roundtrip")
    assert "downloaded bytes differ from the upload" in out


def test_a_key_echoed_by_the_target_never_reaches_any_output(
    mutant: Callable[..., Target], run_cli: Any, tmp_path: Any
) -> None:
    def patch(mock: Mock) -> None:
        service = mock.providers["studioaicore"]
        real = service.module
        key = mock.services.store["studioaicore"].primary_key().key

        def render_error(error: ApiError) -> dict[str, Any]:
            # A leaky target: the key in the message, and a broken envelope so the response gets reported.
            return {"error": {"type": "oops", "message": f"bad request for key {key}", "code": 0}}

        service.module = _Module(real, render_error=render_error)  # type: ignore[assignment]

    target = mutant("studioaicore", patch)
    key = target.provider("studioaicore")["api_key"]
    junit, report = tmp_path / "junit.xml", tmp_path / "report.md"
    code, out, err = run_cli(
        *target.args("studioaicore"),
        *FAST,
        "--checks",
        "envelope,schema.response_schema_conformance",
        "--junit-xml",
        str(junit),
        "--report",
        str(report),
    )
    assert code == 1
    assert "[REDACTED]" in out
    for text in (out, err, junit.read_text(), report.read_text()):
        assert key not in text
