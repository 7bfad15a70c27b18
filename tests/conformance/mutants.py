"""The mutant catalogue: deliberately broken variants of the mock the conformance suite must catch.

Each ``Mutant`` names the provider it breaks, the check family it targets, the suite check id(s) that must
report it, and a ``patch(mock)`` that breaks a freshly built ``Mock`` before it serves. Patches only ever
replace attributes of that instance's objects (a provider service's handler table, envelope or response
stage, the instance's rate limiter, webhook dispatcher or file store); no module, class or shared object is
touched, so nothing survives the mock that was patched.

Most are the regressions a provider's engineer could plausibly ship: an off-by-one in a counter, a usd
amount rounded a cent the wrong way, a header dropped on one code path, a chunk missing one field.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from mockserver.core.auth import read_credential
from mockserver.core.calls import BytesReply, Call, EventReply, JsonReply, Reply
from mockserver.core.media import JPEG, MP4, PNG, Recipe
from mockserver.core.ratelimit import RateState
from mockserver.errors import ApiError, ErrorKind
from mockserver.mock import Mock
from mockserver.providers.artificialstudio import Generation
from mockserver.state.api import Admission
from mockserver.state.records import FileRecord

Bucket = tuple[str, str]
"""Whose requests one window counts: (provider id, key id or ``ip:<address>``)."""

Patch = Callable[[Mock], None]
Json = dict[str, Any]

FAMILIES = (
    "schema",
    "envelope",
    "listing",
    "ratelimit",
    "streaming",
    "usage",
    "jobs",
    "webhooks",
    "billing",
    "storage",
    "extremes",
)
DONE = "[DONE]"


@dataclass(frozen=True)
class Mutant:
    """One broken mock and how the suite must report it."""

    name: str
    provider: str
    family: str
    caught_by: tuple[str, ...]
    """Suite check ids that must each end ``FAIL`` (``schema.<name>`` for the schemathesis checks)."""
    description: str
    patch: Patch
    checks: tuple[str, ...] = ()
    """The ``--checks`` selection to run; empty runs the full default set (detection without hints)."""
    expect: str = ""
    """A fragment of a violation message of the first ``caught_by`` check (the reason it was caught)."""
    settings: dict[str, Any] = field(default_factory=dict)
    """Suite ``Settings`` changes (e.g. a short ``poll_timeout`` for a job that never ends)."""
    mock_settings: dict[str, Any] = field(default_factory=dict)
    """Mock ``Settings`` changes (e.g. slower jobs, so that a job is polled several times)."""


# -- injection helpers: each returns a patch that changes one stage of one provider -----------------------


class _Module:
    """A provider module with some attributes replaced (the rest delegate to the real one)."""

    def __init__(self, inner: Any, **replaced: Any) -> None:
        self._inner = inner
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def on_reply(provider: str, operation_id: str, change: Callable[[Call, Reply], Reply]) -> Patch:
    """Pass one operation's replies through ``change(call, reply)``."""

    def patch(mock: Mock) -> None:
        service = mock.providers[provider]
        original = service.handlers[operation_id]

        async def handler(call: Call) -> Reply:
            return change(call, await original(call))

        service.handlers[operation_id] = handler

    return patch


def on_json(provider: str, operation_id: str, change: Callable[[Call, Json], None]) -> Patch:
    """Let ``change(call, body)`` edit a copy of every JSON object body one operation answers."""

    def edit(call: Call, reply: Reply) -> Reply:
        if isinstance(reply, JsonReply) and isinstance(reply.body, dict):
            # A copy: bodies may share objects with the mock's state (the model catalogue).
            body = copy.deepcopy(reply.body)
            change(call, body)
            return dataclasses.replace(reply, body=body)
        return reply

    return on_reply(provider, operation_id, edit)


def on_events(provider: str, operation_id: str, change: Callable[[list[Any]], list[Any]]) -> Patch:
    """Let ``change(events)`` rewrite a whole event stream (JSON chunks are dicts, ``[DONE]`` a string)."""

    def edit(call: Call, reply: Reply) -> Reply:
        if not isinstance(reply, EventReply):
            return reply
        source = reply.events

        async def rewritten() -> AsyncIterator[Any]:
            events = [copy.deepcopy(event) async for event in source]
            for event in change(events):
                yield event

        return dataclasses.replace(reply, events=rewritten())

    return on_reply(provider, operation_id, edit)


def on_envelope(provider: str, change: Callable[[ApiError, Json], Json]) -> Patch:
    """Render every error through ``change(error, documented_envelope)``."""

    def patch(mock: Mock) -> None:
        service = mock.providers[provider]
        real = service.module

        def render_error(error: ApiError) -> Json:
            return change(error, real.render_error(error))

        service.module = _Module(real, render_error=render_error)

    return patch


def on_response(provider: str, change: Callable[[web.Response, ApiError | None], None]) -> Patch:
    """Let ``change(response, error)`` edit every plain (not streamed) response before it is sent."""

    def patch(mock: Mock) -> None:
        service = mock.providers[provider]
        original = service._respond

        def respond(plan: Any, reply: Any, error: Any, extra: Any, fault: Any) -> web.Response:
            response = original(plan, reply, error, extra, fault)
            change(response, error)
            return response

        service._respond = respond  # type: ignore[method-assign]

    return patch


def on_rate(change: Callable[[Mock, Bucket, int, RateState], RateState]) -> Patch:
    """Report ``change(mock, bucket, limit, state)`` instead of each counted request's rate state."""

    def patch(mock: Mock) -> None:
        # The embedded mock's state is the memory backend, which admits synchronously (``admit_now``).
        admit = mock.state.admit_now

        def counted(
            provider: str, operation_id: str | None, bucket: str | None, limit: int
        ) -> Admission | None:
            admitted = admit(provider, operation_id, bucket, limit)
            if admitted is None or admitted.rate is None or bucket is None:
                return admitted
            return Admission(change(mock, (provider, bucket), limit, admitted.rate), admitted.fault)

        mock.state.admit_now = counted  # type: ignore[method-assign]

    return patch


def on_files(change: Callable[[bytes, str, str], tuple[bytes, str, str]]) -> Patch:
    """Store generated files as ``change(data, content_type, filename)`` says (the instance's file store)."""

    def patch(mock: Mock) -> None:
        files = mock.services.files
        put, put_recipe, opened = files.put, files.put_recipe, files.open
        drawn: dict[str, tuple[str, str]] = {}
        """Files stored as recipes, with their unchanged type and name: the change applies to their bytes
        when they are drawn."""

        async def stored(data: bytes, content_type: str, filename: str, **options: Any) -> FileRecord:
            return await put(*change(data, content_type, filename), **options)

        async def stored_recipe(recipe: Recipe, content_type: str, filename: str) -> FileRecord:
            _, changed_type, changed_name = change(b"", content_type, filename)
            record = await put_recipe(recipe, changed_type, changed_name)
            drawn[record.id] = (content_type, filename)
            return record

        async def read(file_id: str) -> tuple[FileRecord, bytes] | None:
            found = await opened(file_id)
            if found is None or file_id not in drawn:
                return found
            return found[0], change(found[1], *drawn[file_id])[0]

        files.put = stored  # type: ignore[method-assign]
        files.put_recipe = stored_recipe  # type: ignore[method-assign]
        files.open = read  # type: ignore[method-assign]

    return patch


def on_webhooks(change: Callable[[Mock, dict[str, Any]], dict[str, Any] | None]) -> Patch:
    """Schedule each webhook delivery with the keyword arguments ``change`` returns (None: never send)."""

    def patch(mock: Mock) -> None:
        dispatcher = mock.services.webhooks
        deliver = dispatcher.deliver

        async def scheduled(url: str, payload: dict[str, Any], **options: Any) -> Any:
            arguments = change(mock, {"url": url, "payload": copy.deepcopy(payload), **options})
            return None if arguments is None else await deliver(**arguments)

        dispatcher.deliver = scheduled  # type: ignore[method-assign]

    return patch


def fresh(make: Callable[[], Patch]) -> Patch:
    """A patch whose state (counters, memory of earlier polls) is created anew for every mock."""

    def patch(mock: Mock) -> None:
        make()(mock)

    return patch


def combine(*patches: Patch) -> Patch:
    """Apply several patches in order."""

    def patch(mock: Mock) -> None:
        for each in patches:
            each(mock)

    return patch


# -- schema: what schemathesis and the response validation of the behaviour checks see -------------------


def _last_model_without_pricing(call: Call, body: Json) -> None:
    body["data"][-1].pop("pricing", None)


def _created_lower_case(call: Call, body: Json) -> None:
    body["status"] = "created"


def _total_tasks_as_string(call: Call, body: Json) -> None:
    body["total_tasks"] = str(body["total_tasks"])


def _answer_201(call: Call, reply: Reply) -> Reply:
    return dataclasses.replace(reply, status=201) if isinstance(reply, JsonReply) else reply


def _json_as_text_plain(call: Call, reply: Reply) -> Reply:
    if isinstance(reply, JsonReply):
        return BytesReply(json.dumps(reply.body).encode(), "text/plain", reply.status)
    return reply


def _unknown_model_crashes(provider: str, operation_id: str) -> Patch:
    def patch(mock: Mock) -> None:
        service = mock.providers[provider]
        original = service.handlers[operation_id]

        async def handler(call: Call) -> Reply:
            try:
                return await original(call)
            except ApiError as error:
                if error.status == 404:
                    # The catalogue lookup's KeyError escapes: the pipeline answers 500.
                    raise KeyError(call.body.get("model")) from error
                raise

        service.handlers[operation_id] = handler

    return patch


def _accepts_empty_messages(mock: Mock) -> None:
    service = mock.providers["studioaicore"]
    original = service._behave

    async def behave(request: web.Request, plan: Any, path_params: Any, key: Any, fault: Any) -> Reply:
        if plan.operation.operation_id == "createChat":
            try:
                body = json.loads(await request.read())
            except ValueError:
                body = None
            if isinstance(body, dict) and body.get("messages") == []:
                # The minItems rule was lost in a validator upgrade: an empty conversation gets an answer.
                model = body.get("model") if isinstance(body.get("model"), str) else "studiocore-1"
                return JsonReply(
                    {
                        "id": "chat-0empty",
                        "object": "chat.completion",
                        "created": int(mock.services.clock.now()),
                        "model": model,
                        "choices": [],
                        "usage": {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0},
                    }
                )
        return await original(request, plan, path_params, key, fault)

    service._behave = behave  # type: ignore[method-assign]


def _auth(provider: str, presence_only: bool) -> Patch:
    def patch(mock: Mock) -> None:
        service = mock.providers[provider]
        require = service.auth.require

        def lenient(operation: Any, key: Any, headers: Any) -> None:
            if not presence_only:
                return
            if any(read_credential(s, headers) for s in operation.security):
                return  # any token at all is accepted (the key lookup result is ignored)
            require(operation, key, headers)

        service.auth.require = lenient  # type: ignore[method-assign]

    return patch


SCHEMA = [
    Mutant(
        "spaceai-model-without-pricing",
        "spaceai",
        "schema",
        ("schema.response_schema_conformance",),
        "dropped required field: the last model of the catalogue lacks `pricing`",
        on_json("spaceai", "listModels", _last_model_without_pricing),
        checks=("schema.response_schema_conformance",),
        expect="pricing",
    ),
    Mutant(
        "modelstudio-created-lower-case",
        "modelstudio",
        "schema",
        ("schema.response_schema_conformance", "jobs.batch"),
        "job creation answers status `created`, not the documented upper-case `CREATED`",
        on_json("modelstudio", "createGenerationJob", _created_lower_case),
        checks=("schema.response_schema_conformance", "jobs.batch"),
        expect="CREATED",
    ),
    Mutant(
        "modelstudio-total-tasks-string",
        "modelstudio",
        "schema",
        ("jobs.batch",),
        'wrong type: the polled job\'s `total_tasks` is the string "3"',
        on_json("modelstudio", "getGenerationJob", _total_tasks_as_string),
        checks=("jobs.batch",),
        expect="is not of type",
    ),
    Mutant(
        "artificialstudio-run-201",
        "artificialstudio",
        "schema",
        ("schema.status_code_conformance",),
        "extra undeclared status: a run is answered 201 Created (the spec declares 200)",
        on_reply("artificialstudio", "createRun", _answer_201),
        checks=("schema.status_code_conformance",),
        expect="201",
    ),
    Mutant(
        "studioaicore-chat-text-plain",
        "studioaicore",
        "schema",
        ("schema.content_type_conformance",),
        "wrong content type: the completion JSON is sent as text/plain",
        on_reply("studioaicore", "createChat", _json_as_text_plain),
        checks=("schema.content_type_conformance",),
        expect="text/plain",
    ),
    Mutant(
        "pahlavan-quote-unknown-model-500",
        "pahlavan",
        "schema",
        ("schema.not_a_server_error",),
        "undeclared 5xx on bad input: a quote for an unknown model crashes (500) instead of 404",
        _unknown_model_crashes("pahlavan", "createQuote"),
        checks=("schema.not_a_server_error",),
        expect="500",
    ),
    Mutant(
        "studioaicore-empty-messages-accepted",
        "studioaicore",
        "schema",
        ("schema.negative_data_rejection",),
        "bad input accepted: `messages: []` (minItems 1) gets a 200 with an empty completion",
        _accepts_empty_messages,
        checks=("schema.negative_data_rejection",),
        expect="",
    ),
    Mutant(
        "studioaicore-auth-ignored",
        "studioaicore",
        "schema",
        ("schema.ignored_auth", "envelope.errors"),
        "auth ignored: requests without a key (or with a wrong one) are answered",
        _auth("studioaicore", presence_only=False),
        checks=("schema.ignored_auth", "envelope"),
        expect="",
    ),
    Mutant(
        "spaceai-any-bearer-token",
        "spaceai",
        "schema",
        ("schema.ignored_auth", "envelope.errors"),
        "auth ignored for wrong keys: any Bearer token is accepted, only a missing one is 401",
        _auth("spaceai", presence_only=True),
        checks=("schema.ignored_auth", "envelope"),
        expect="",
    ),
]


# -- envelope ---------------------------------------------------------------------------------------------


def _code_always_400(error: ApiError, envelope: Json) -> Json:
    envelope["error"]["code"] = 400
    return envelope


def _not_found_code_400(error: ApiError, envelope: Json) -> Json:
    if error.status == 404:
        envelope["error"]["code"] = 400
    return envelope


def _status_as_string(error: ApiError, envelope: Json) -> Json:
    envelope["error"]["status"] = str(error.status)
    return envelope


def _nested_envelope(error: ApiError, envelope: Json) -> Json:
    return {"error": {"message": envelope["error"], "code": envelope["code"]}}


def _kebab_case_code(error: ApiError, envelope: Json) -> Json:
    envelope["error"]["code"] = str(envelope["error"]["code"]).replace("_", "-")
    return envelope


def _undocumented_not_found_code(error: ApiError, envelope: Json) -> Json:
    if error.status == 404:
        envelope["details"]["code"] = "RESOURCE_NOT_FOUND"
    return envelope


def _wrong_key_403(mock: Mock) -> None:
    service = mock.providers["artificialstudio"]
    require = service.auth.require

    def checked(operation: Any, key: Any, headers: Any) -> None:
        try:
            require(operation, key, headers)
        except ApiError as error:
            if error.message == "Invalid API key.":
                raise ApiError(403, ErrorKind.FORBIDDEN, "Forbidden.", code="forbidden") from error
            raise

    service.auth.require = checked  # type: ignore[method-assign]


def _leaky(mock: Mock) -> None:
    key = mock.state.seed("studioaicore").keys[0].key

    def render(error: ApiError, envelope: Json) -> Json:
        # A leaky target: the key in the message, and a broken envelope so the response gets reported.
        return {"error": {"type": "oops", "message": f"bad request for key {key}", "code": 0}}

    on_envelope("studioaicore", render)(mock)


ENVELOPE = [
    Mutant(
        "spaceai-code-always-400",
        "spaceai",
        "envelope",
        ("envelope.errors",),
        "code != status: every error envelope says code 400",
        on_envelope("spaceai", _code_always_400),
        checks=("envelope",),
        expect="/error/code is 400 but the HTTP status is 401",
    ),
    Mutant(
        "studioaicore-404-code-400",
        "studioaicore",
        "envelope",
        ("envelope.errors",),
        "code != status on one path only: a 404 envelope says code 400",
        on_envelope("studioaicore", _not_found_code_400),
        checks=("envelope",),
        expect="/error/code is 400 but the HTTP status is 404",
    ),
    Mutant(
        "modelstudio-status-as-string",
        "modelstudio",
        "envelope",
        ("envelope.errors",),
        'wrong type in the envelope: `error.status` is the string "401"',
        on_envelope("modelstudio", _status_as_string),
        checks=("envelope",),
        expect='/error/status is "401" but the HTTP status is 401',
    ),
    Mutant(
        "artificialstudio-nested-envelope",
        "artificialstudio",
        "envelope",
        ("envelope.errors",),
        'wrong envelope shape: `{"error": {"message", "code"}}` instead of `{"error", "code"}`',
        on_envelope("artificialstudio", _nested_envelope),
        expect="envelope",
    ),
    Mutant(
        "modelstudio-kebab-case-code",
        "modelstudio",
        "envelope",
        ("envelope.errors",),
        "wrong error type word: kebab-case codes (`invalid-request`) break the snake_case pattern",
        on_envelope("modelstudio", _kebab_case_code),
        checks=("envelope",),
        expect="does not match",
    ),
    Mutant(
        "pahlavan-undocumented-not-found-code",
        "pahlavan",
        "envelope",
        ("envelope.errors",),
        "wrong error type word: 404s say `RESOURCE_NOT_FOUND`, not one of the documented codes",
        on_envelope("pahlavan", _undocumented_not_found_code),
        checks=("envelope",),
        expect="RESOURCE_NOT_FOUND",
    ),
    Mutant(
        "artificialstudio-wrong-key-403",
        "artificialstudio",
        "envelope",
        ("envelope.errors",),
        "a wrong (not missing) key is answered 403 instead of 401",
        _wrong_key_403,
        checks=("envelope",),
        expect="expected 401, got 403",
    ),
    Mutant(
        "studioaicore-leaky-envelope",
        "studioaicore",
        "envelope",
        ("envelope.errors",),
        "an envelope without the documented fields that also echoes the API key (redaction is tested too)",
        _leaky,
        checks=("envelope",),
        expect="[REDACTED]",
    ),
]


# -- rate limits ------------------------------------------------------------------------------------------


def _frozen_remaining(mock: Mock, bucket: Bucket, limit: int, state: RateState) -> RateState:
    return dataclasses.replace(state, remaining=limit - 1)


def _stuck_after_third(mock: Mock, bucket: Bucket, limit: int, state: RateState) -> RateState:
    if not state.exceeded and state.remaining < limit - 3:
        return dataclasses.replace(state, remaining=limit - 3)
    return state


def _remaining_off_by_one(mock: Mock, bucket: Bucket, limit: int, state: RateState) -> RateState:
    return dataclasses.replace(state, remaining=state.remaining + 1)


def _relative_reset(mock: Mock, bucket: Bucket, limit: int, state: RateState) -> RateState:
    # Seconds until the reset rather than the epoch time of the reset.
    return dataclasses.replace(state, reset=max(1, state.reset - int(mock.services.clock.now())))


def _no_rate_headers_on_errors(response: web.Response, error: ApiError | None) -> None:
    if response.status >= 400:
        for name in ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"):
            response.headers.pop(name, None)


def _no_retry_after(response: web.Response, error: ApiError | None) -> None:
    if response.status == 429:
        response.headers.pop("Retry-After", None)


def _plain_text_429(response: web.Response, error: ApiError | None) -> None:
    if response.status == 429:
        response.body = b"Too Many Requests"
        response.content_type = "text/plain"


RATELIMIT = [
    Mutant(
        "studioaicore-remaining-frozen",
        "studioaicore",
        "ratelimit",
        ("ratelimit.headers",),
        "Remaining not decreasing: always limit - 1",
        on_rate(_frozen_remaining),
        checks=("ratelimit.headers",),
        expect="did not decrease",
    ),
    Mutant(
        "studioaicore-remaining-stuck-after-3",
        "studioaicore",
        "ratelimit",
        ("ratelimit.headers",),
        "Remaining stuck only after the 3rd request of a window (the counter is still enforced)",
        on_rate(_stuck_after_third),
        expect="did not decrease",
    ),
    Mutant(
        "spaceai-reset-relative",
        "spaceai",
        "ratelimit",
        ("ratelimit.headers",),
        "Reset in the past: X-RateLimit-Reset carries seconds-until-reset instead of an epoch time",
        on_rate(_relative_reset),
        checks=("ratelimit.headers",),
        expect="is in the past",
    ),
    Mutant(
        "spaceai-no-rate-headers-on-errors",
        "spaceai",
        "ratelimit",
        ("ratelimit.headers",),
        "rate-limit headers missing on error responses only",
        on_response("spaceai", _no_rate_headers_on_errors),
        expect="missing X-RateLimit-Limit",
    ),
    Mutant(
        "studioaicore-429-without-retry-after",
        "studioaicore",
        "ratelimit",
        ("ratelimit.exhaust",),
        "429 without Retry-After",
        on_response("studioaicore", _no_retry_after),
        checks=("ratelimit",),
        expect="Retry-After must be integer seconds",
    ),
    Mutant(
        "spaceai-429-plain-text",
        "spaceai",
        "ratelimit",
        ("ratelimit.exhaust",),
        "429 without the envelope: a plain-text `Too Many Requests` body",
        on_response("spaceai", _plain_text_429),
        checks=("ratelimit",),
        expect="is not JSON",
    ),
    Mutant(
        "studioaicore-remaining-off-by-one",
        "studioaicore",
        "ratelimit",
        ("ratelimit.exhaust",),
        "Remaining counts the current request as still available (off by one): 1 on the 429",
        on_rate(_remaining_off_by_one),
        checks=("ratelimit",),
        expect="is not 0 on the 429",
    ),
]


# -- streaming --------------------------------------------------------------------------------------------


def _chunks(events: list[Any]) -> list[Json]:
    return [e for e in events if isinstance(e, dict)]


def _without_done(events: list[Any]) -> list[Any]:
    return [e for e in events if e != DONE]


def _done_twice(events: list[Any]) -> list[Any]:
    return [*events, DONE]


def _without_usage_chunk(events: list[Any]) -> list[Any]:
    return [e for e in events if not (isinstance(e, dict) and e.get("usage"))]


def _usage_total_plus_one(events: list[Any]) -> list[Any]:
    for chunk in _chunks(events):
        if isinstance(chunk.get("usage"), dict):
            chunk["usage"]["total_tokens"] += 1
    return events


def _usage_prompt_plus_one(events: list[Any]) -> list[Any]:
    for chunk in _chunks(events):
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            usage["prompt_tokens"] += 1
            usage["total_tokens"] += 1
    return events


def _drop_last_token(events: list[Any]) -> list[Any]:
    content = [
        i
        for i, e in enumerate(events)
        if isinstance(e, dict) and any(c.get("delta", {}).get("content") for c in e.get("choices") or [])
    ]
    return [e for i, e in enumerate(events) if not content or i != content[-1]]


def _finish_chunk_without_created(events: list[Any]) -> list[Any]:
    for chunk in _chunks(events):
        if any(c.get("finish_reason") for c in chunk.get("choices") or []):
            chunk.pop("created", None)
    return events


STREAMING = [
    Mutant(
        "spaceai-stream-without-done",
        "spaceai",
        "streaming",
        ("streaming.events",),
        "missing [DONE]",
        on_events("spaceai", "createChatCompletion", _without_done),
        checks=("streaming",),
        expect="the last event is not [DONE]",
    ),
    Mutant(
        "pahlavan-done-twice",
        "pahlavan",
        "streaming",
        ("streaming.events",),
        "[DONE] sent twice",
        on_events("pahlavan", "createChatCompletion", _done_twice),
        checks=("streaming",),
        expect="[DONE] was sent 2 times",
    ),
    Mutant(
        "spaceai-usage-chunk-missing",
        "spaceai",
        "streaming",
        ("streaming.events",),
        "no usage chunk although `stream_options.include_usage` asked for one",
        on_events("spaceai", "createChatCompletion", _without_usage_chunk),
        checks=("streaming",),
        expect="include_usage asked for one usage chunk, got 0",
    ),
    Mutant(
        "pahlavan-usage-total-off-by-one",
        "pahlavan",
        "streaming",
        ("streaming.events",),
        "usage numbers not adding up: total_tokens = prompt + completion + 1 in the stream",
        on_events("pahlavan", "createChatCompletion", _usage_total_plus_one),
        expect="usage does not add up",
    ),
    Mutant(
        "spaceai-stream-drops-last-token",
        "spaceai",
        "streaming",
        ("streaming.consistency",),
        "streamed content != non-streamed content: the last buffered token is never flushed",
        on_events("spaceai", "createChatCompletion", _drop_last_token),
        checks=("streaming",),
        expect="!= non-streamed",
    ),
    Mutant(
        "spaceai-stream-prompt-tokens-plus-one",
        "spaceai",
        "streaming",
        ("streaming.consistency",),
        "streamed usage counts one more prompt token than the plain answer (still adds up)",
        on_events("spaceai", "createChatCompletion", _usage_prompt_plus_one),
        checks=("streaming",),
        expect="streamed usage prompt_tokens",
    ),
    Mutant(
        "pahlavan-finish-chunk-without-created",
        "pahlavan",
        "streaming",
        ("streaming.events",),
        "a chunk missing `created` (only the one carrying finish_reason)",
        on_events("pahlavan", "createChatCompletion", _finish_chunk_without_created),
        checks=("streaming",),
        expect="created",
    ),
]


# -- jobs -------------------------------------------------------------------------------------------------


def _results_reversed(call: Call, body: Json) -> None:
    body["results"] = list(reversed(body["results"]))


def _counted_from_one(call: Call, body: Json) -> None:
    body["completed_tasks"] += 1


def _running_counted(call: Call, body: Json) -> None:
    body["completed_tasks"] = sum(1 for r in body["results"] if r["status"] != "pending")


def _lagging_replica() -> Callable[[Call, Json], None]:
    """One poll served by a replica a task behind: right after the first non-zero count, one less."""
    last: dict[str, int] = {}
    lagged: set[str] = set()

    def change(call: Call, body: Json) -> None:
        job = str(body["job_id"])
        previous = last.get(job, 0)
        if previous > 0 and job not in lagged:
            lagged.add(job)
            body["completed_tasks"] = previous - 1
        last[job] = int(body["completed_tasks"])

    return change


def _never_finishes(
    done: tuple[str, ...], still: str, outputs: tuple[str, ...]
) -> Callable[[Call, Json], None]:
    def change(call: Call, body: Json) -> None:
        if body.get("status") in done:
            body["status"] = still
            for name in outputs:
                body.pop(name, None)

    return change


def _jpeg_labelled_png(data: bytes, content_type: str, filename: str) -> tuple[bytes, str, str]:
    return data, PNG if content_type == JPEG else content_type, filename


def _mp4_as_octet_stream(data: bytes, content_type: str, filename: str) -> tuple[bytes, str, str]:
    return data, "application/octet-stream" if content_type == MP4 else content_type, filename


def _status_url_without_prefix(call: Call, body: Json) -> None:
    # Built from the origin instead of the base URL: wrong behind a path prefix (a gateway mount).
    if "status_url" in body:
        body["status_url"] = str(body["status_url"]).replace(call.base_url, call.origin, 1)


JOBS = [
    Mutant(
        "modelstudio-results-reversed",
        "modelstudio",
        "jobs",
        ("jobs.batch",),
        "batch results out of order (reversed)",
        on_json("modelstudio", "getGenerationJob", _results_reversed),
        checks=("jobs",),
        expect="not in input order",
    ),
    Mutant(
        "modelstudio-completed-from-one",
        "modelstudio",
        "jobs",
        ("jobs.batch",),
        "completed_tasks counted from 1 (off by one): exceeds total_tasks at the end",
        on_json("modelstudio", "getGenerationJob", _counted_from_one),
        checks=("jobs",),
        expect="completed_tasks 4 > total_tasks 3",
    ),
    Mutant(
        "modelstudio-completed-goes-back",
        "modelstudio",
        "jobs",
        ("jobs.batch",),
        "completed_tasks decreases: one poll is served by a replica a task behind",
        fresh(lambda: on_json("modelstudio", "getGenerationJob", _lagging_replica())),
        checks=("jobs",),
        expect="completed_tasks went back",
        mock_settings={"job_speed": 5.0},
    ),
    Mutant(
        "modelstudio-running-task-counted",
        "modelstudio",
        "jobs",
        ("jobs.batch",),
        "completed_tasks counts the task still processing (never exceeds, never decreases)",
        on_json("modelstudio", "getGenerationJob", _running_counted),
        expect="finished tasks in results",
        mock_settings={"job_speed": 5.0},
    ),
    Mutant(
        "artificialstudio-run-never-completes",
        "artificialstudio",
        "jobs",
        ("jobs.run",),
        "job never completes: the generation stays `processing`",
        on_json(
            "artificialstudio",
            "getGeneration",
            _never_finishes(("success", "failed"), "processing", ("output", "thumbnail", "type", "error")),
        ),
        checks=("jobs.run",),
        expect="not finished within",
        settings={"poll_timeout": 1.5},
    ),
    Mutant(
        "pahlavan-video-never-terminal",
        "pahlavan",
        "jobs",
        ("jobs.video",),
        "Pahlavan video never terminal: polled as `processing` forever",
        on_json(
            "pahlavan",
            "getVideoGeneration",
            _never_finishes(("succeeded", "failed"), "processing", ("output_url", "error")),
        ),
        checks=("jobs.video",),
        expect="not finished within",
        settings={"poll_timeout": 1.5},
    ),
    Mutant(
        "artificialstudio-thumbnail-labelled-png",
        "artificialstudio",
        "jobs",
        ("jobs.run",),
        "output URL served with the wrong media type: the JPEG thumbnail is labelled image/png",
        on_files(_jpeg_labelled_png),
        checks=("jobs.run",),
        expect="is labelled image/png but its bytes are not",
    ),
    Mutant(
        "pahlavan-video-octet-stream",
        "pahlavan",
        "jobs",
        ("jobs.video",),
        "output URL served with the wrong media type: the MP4 as application/octet-stream",
        on_files(_mp4_as_octet_stream),
        checks=("jobs.video",),
        expect="is application/octet-stream, expected video",
    ),
    Mutant(
        "pahlavan-status-url-without-prefix",
        "pahlavan",
        "jobs",
        ("jobs.video",),
        "status_url built from the origin, losing the base URL's path prefix",
        combine(
            on_json("pahlavan", "createVideoGeneration", _status_url_without_prefix),
            on_json("pahlavan", "getVideoGeneration", _status_url_without_prefix),
        ),
        checks=("jobs.video",),
        expect="status_url",
    ),
]


# -- webhooks (Artificial Studio) -------------------------------------------------------------------------


def _never_sent(mock: Mock, arguments: dict[str, Any]) -> dict[str, Any] | None:
    return None


def _created_at_epoch(mock: Mock, arguments: dict[str, Any]) -> dict[str, Any] | None:
    arguments["payload"]["createdAt"] = int(mock.services.clock.now())
    return arguments


def _internal_output_host(mock: Mock, arguments: dict[str, Any]) -> dict[str, Any] | None:
    payload = arguments["payload"]
    for name in ("output", "thumbnail"):
        if isinstance(payload.get(name), str):
            _, _, rest = payload[name].partition("/_mock/")
            payload[name] = f"http://files.internal:8080/_mock/{rest}"
    return arguments


def _signed_with_another_secret(mock: Mock, arguments: dict[str, Any]) -> dict[str, Any] | None:
    arguments["secret"] = mock.services.signing.webhook_secret("artificialstudio", "another-account-key")
    return arguments


WEBHOOKS = [
    Mutant(
        "artificialstudio-webhook-never-sent",
        "artificialstudio",
        "webhooks",
        ("webhooks.delivery",),
        "webhook never sent",
        on_webhooks(_never_sent),
        checks=("webhooks",),
        expect="no delivery within",
        settings={"poll_timeout": 1.5},
    ),
    Mutant(
        "artificialstudio-webhook-created-at-epoch",
        "artificialstudio",
        "webhooks",
        ("webhooks.delivery",),
        "payload not matching the schema: `createdAt` as epoch seconds, not an ISO string",
        on_webhooks(_created_at_epoch),
        checks=("webhooks",),
        expect="delivery body",
    ),
    Mutant(
        "artificialstudio-webhook-internal-urls",
        "artificialstudio",
        "webhooks",
        ("webhooks.delivery",),
        "payload differs from the polled generation: output URLs on an internal host",
        on_webhooks(_internal_output_host),
        checks=("webhooks",),
        expect="!= polled",
    ),
    Mutant(
        "artificialstudio-webhook-bad-signature",
        "artificialstudio",
        "webhooks",
        ("webhooks.delivery",),
        "bad signature: deliveries signed with another account's secret",
        on_webhooks(_signed_with_another_secret),
        expect="webhook-signature does not verify",
    ),
]


# -- billing (Pahlavan) -----------------------------------------------------------------------------------


def _usd_a_cent_up(call: Call, body: Json) -> None:
    body["estimated_charge_usd"] = (body["estimated_charge_cents"] + 1) / 100


def _charged_above_quote(call: Call, body: Json) -> None:
    if isinstance(body.get("metered_final_charge_usd"), float):
        body["metered_final_charge_usd"] *= 1.1


def _negative_metered(call: Call, body: Json) -> None:
    body["metered_estimated_charge_usd"] = -abs(body["metered_estimated_charge_usd"]) - 1e-6


def _input_price_for_output(call: Call, body: Json) -> None:
    request = call.body
    pricing = call.state.models[body["model"]].get("pricing") or {}
    if body.get("type") != "language" or "input_per_1m_tokens" not in pricing:
        return
    tokens = request.get("inputTokens", 0) + (request.get("outputTokens") or 0)
    body["metered_estimated_charge_usd"] = tokens * pricing["input_per_1m_tokens"] / 1e6


def _final_usd_a_cent_off(call: Call, body: Json) -> None:
    if "final_charge_cents" in body:
        body["final_charge_usd"] = (body["final_charge_cents"] + 1) / 100


def _spend_limit_instead_of_balance(operation_id: str) -> Patch:
    def patch(mock: Mock) -> None:
        service = mock.providers["pahlavan"]
        original = service.handlers[operation_id]

        async def handler(call: Call) -> Reply:
            try:
                return await original(call)
            except ApiError as error:
                if error.status == 402:
                    raise ApiError(
                        403,
                        ErrorKind.FORBIDDEN,
                        "The API key's spend limit is exceeded.",
                        code="API_KEY_SPEND_LIMIT_EXCEEDED",
                    ) from error
                raise

        service.handlers[operation_id] = handler

    return patch


BILLING = [
    Mutant(
        "pahlavan-quote-usd-a-cent-up",
        "pahlavan",
        "billing",
        ("billing.quote",),
        "usd != cents / 100: the quote's usd is rounded a cent up",
        on_json("pahlavan", "createQuote", _usd_a_cent_up),
        checks=("billing.quote",),
        expect="estimated_charge_usd",
    ),
    Mutant(
        "pahlavan-charge-above-quote",
        "pahlavan",
        "billing",
        ("billing.charges",),
        "quote inconsistent with the charge: the metered charge is 10% above the quote of the same tokens",
        on_json("pahlavan", "createChatCompletion", _charged_above_quote),
        checks=("billing.charges",),
        expect="!= quote for the same tokens",
    ),
    Mutant(
        "pahlavan-negative-metered",
        "pahlavan",
        "billing",
        ("billing.quote",),
        "negative metered estimate on quotes",
        on_json("pahlavan", "createQuote", _negative_metered),
        checks=("billing.quote",),
        expect="is negative",
    ),
    Mutant(
        "pahlavan-quote-input-price-only",
        "pahlavan",
        "billing",
        ("billing.quote",),
        "the quote prices output tokens at the input rate",
        on_json("pahlavan", "createQuote", _input_price_for_output),
        checks=("billing.quote",),
        expect="the model's listed price",
    ),
    Mutant(
        "pahlavan-final-usd-a-cent-off",
        "pahlavan",
        "billing",
        ("billing.charges",),
        "usd != cents / 100 on the charge of a chat completion (a cent off)",
        on_json("pahlavan", "createChatCompletion", _final_usd_a_cent_off),
        checks=("billing.charges",),
        expect="final_charge_usd",
    ),
    Mutant(
        "pahlavan-insufficient-balance-as-spend-limit",
        "pahlavan",
        "billing",
        ("billing.insufficient_balance",),
        "wrong error on insufficient balance: 403 API_KEY_SPEND_LIMIT_EXCEEDED instead of 402",
        combine(
            _spend_limit_instead_of_balance("createVideoGeneration"),
            _spend_limit_instead_of_balance("createGeneration"),
            _spend_limit_instead_of_balance("createChatCompletion"),
        ),
        checks=("billing.insufficient_balance",),
        expect="expected 402 INSUFFICIENT_BALANCE",
    ),
]


# -- storage (Pahlavan) -----------------------------------------------------------------------------------


def _other_bytes(call: Call, reply: Reply) -> Reply:
    if isinstance(reply, BytesReply):
        return dataclasses.replace(reply, data=reply.data + b"!")
    return reply


def _octet_stream_download(call: Call, reply: Reply) -> Reply:
    if isinstance(reply, BytesReply):
        return BytesReply(reply.data, "application/octet-stream", reply.status)
    return reply


def _commit_counts_one_more(call: Call, body: Json) -> None:
    body["bytes"] += 1


def _signature_prefix_only(mock: Mock) -> None:
    service = mock.providers["pahlavan"]
    original = service.handlers["downloadObject"]

    async def handler(call: Call) -> Reply:
        try:
            return await original(call)
        except ApiError as error:
            if error.code != "INVALID_SIGNATURE":
                raise
            query = call.input.query
            signer = call.services.signing.url_signer("storage")
            expected = signer.sign("GET", str(query["key"]), int(query["expires"]))
            if str(query["signature"])[:16] != expected[:16]:
                raise
            # Only the first 16 hex digits are compared: a signature differing further on is accepted.
            fixed = dataclasses.replace(call.input, query={**query, "signature": expected})
            return await original(dataclasses.replace(call, input=fixed))

    service.handlers["downloadObject"] = handler


STORAGE = [
    Mutant(
        "pahlavan-download-other-bytes",
        "pahlavan",
        "storage",
        ("storage.roundtrip",),
        "the download returns different bytes (one appended)",
        on_reply("pahlavan", "downloadObject", _other_bytes),
        checks=("storage",),
        expect="downloaded bytes differ from the upload",
    ),
    Mutant(
        "pahlavan-tampered-signature-accepted",
        "pahlavan",
        "storage",
        ("storage.roundtrip",),
        "tampered signature accepted: only the first 16 hex digits of the signature are compared",
        _signature_prefix_only,
        expect="a tampered signature must be refused with 403, got 200",
    ),
    Mutant(
        "pahlavan-download-octet-stream",
        "pahlavan",
        "storage",
        ("storage.roundtrip",),
        "the download loses the uploaded content type (application/octet-stream)",
        on_reply("pahlavan", "downloadObject", _octet_stream_download),
        checks=("storage",),
        expect="downloaded as application/octet-stream",
    ),
    Mutant(
        "pahlavan-commit-bytes-off-by-one",
        "pahlavan",
        "storage",
        ("storage.roundtrip",),
        "commit reports one byte more than was uploaded",
        on_json("pahlavan", "commitUpload", _commit_counts_one_more),
        checks=("storage",),
        expect="commit reports",
    ),
]


# -- listing: lists against their limit and filter parameters (Pahlavan's models) -------------------------


def _with_query(operation_id: str, change: Callable[[dict[str, Any]], dict[str, Any]]) -> Patch:
    """Serve one operation as if its query had been ``change(query)``."""

    def patch(mock: Mock) -> None:
        service = mock.providers["pahlavan"]
        original = service.handlers[operation_id]

        async def handler(call: Call) -> Reply:
            changed = dataclasses.replace(call.input, query=change(dict(call.input.query)))
            return await original(dataclasses.replace(call, input=changed))

        service.handlers[operation_id] = handler

    return patch


def _listed_twice(call: Call, body: Json) -> None:
    body["data"] = body["data"] + copy.deepcopy(body["data"])


def _case_sensitive_search(mock: Mock) -> None:
    service = mock.providers["pahlavan"]
    original = service.handlers["listModels"]

    async def handler(call: Call) -> Reply:
        reply = await original(call)
        text = call.input.query.get("q")
        if text and isinstance(reply, JsonReply):
            # The search compares the term as typed: "GLM" no longer finds "glm-4.5".
            kept = [m for m in reply.body["data"] if text in m["id"] or text in m.get("name", "")]
            return dataclasses.replace(reply, body={**reply.body, "data": kept})
        return reply

    service.handlers["listModels"] = handler


LISTING = [
    Mutant(
        "pahlavan-models-listed-twice",
        "pahlavan",
        "listing",
        ("listing.parameters",),
        "`limit` ignored and every model listed twice (a pagination bug repeating the page)",
        combine(
            _with_query("listModels", lambda q: {**q, "limit": 200}),
            on_json("pahlavan", "listModels", _listed_twice),
        ),
        expect="more than once",
    ),
    Mutant(
        "pahlavan-type-filter-ignored",
        "pahlavan",
        "listing",
        ("listing.parameters",),
        "`type` ignored: `type=image` lists the language and video models too",
        _with_query("listModels", lambda q: {k: v for k, v in q.items() if k != "type"}),
        checks=("listing",),
        expect="not 'image'",
    ),
    Mutant(
        "pahlavan-search-case-sensitive",
        "pahlavan",
        "listing",
        ("listing.parameters",),
        "`q` matched case-sensitively: a term in the other case finds nothing",
        _case_sensitive_search,
        checks=("listing",),
        expect="does not list",
    ),
]


# -- usage: token arithmetic of chat completions, plain and streamed ---------------------------------------


def _plain_total_plus_one(call: Call, body: Json) -> None:
    body["usage"]["total_tokens"] += 1


def _system_prompt_left_out_of_streamed_total(call: Call, reply: Reply) -> Reply:
    system = [m for m in call.body.get("messages", []) if m.get("role") == "system"]
    if not system or not isinstance(reply, EventReply):
        return reply
    source = reply.events

    async def rewritten() -> AsyncIterator[Any]:
        async for event in source:
            if isinstance(event, dict) and isinstance(event.get("usage"), dict):
                # The total is summed per message, and the system message was skipped.
                event = copy.deepcopy(event)
                event["usage"]["total_tokens"] -= len(str(system[0].get("content", "")).split())
            yield event

    return dataclasses.replace(reply, events=rewritten())


USAGE = [
    Mutant(
        "studioaicore-usage-total-off-by-one",
        "studioaicore",
        "usage",
        ("usage.arithmetic",),
        "usage not adding up in a plain answer: total_tokens = prompt + completion + 1",
        on_json("studioaicore", "createChat", _plain_total_plus_one),
        checks=("usage",),
        expect="usage does not add up",
    ),
    Mutant(
        "spaceai-streamed-total-without-system-prompt",
        "spaceai",
        "usage",
        ("usage.arithmetic",),
        "streamed usage not adding up when a system message is sent: its tokens are left out of total_tokens",
        on_reply("spaceai", "createChatCompletion", _system_prompt_left_out_of_streamed_total),
        checks=("usage", "streaming"),
        expect="streamed: usage does not add up",
    ),
]


# -- extremes: schema-valid extreme values -----------------------------------------------------------------


def _exponent_integer_crashes(mock: Mock) -> None:
    service = mock.providers["pahlavan"]
    original = service.handlers["createQuote"]

    async def handler(call: Call) -> Reply:
        if b"e+" in call.input.raw_body:
            # Token counts written as 1e+20 reach the pricing as floats: Decimal * float raises.
            raise TypeError("unsupported operand type(s) for *: 'decimal.Decimal' and 'float'")
        return await original(call)

    service.handlers["createQuote"] = handler


def _replacement_character_never_renders(mock: Mock) -> None:
    service = mock.providers["artificialstudio"]
    original = service.handlers["getGeneration"]

    async def handler(call: Call) -> Reply:
        reply = await original(call)
        generation = await call.state.get(Generation, call.input.path["id"])
        if not (isinstance(reply, JsonReply) and isinstance(reply.body, dict) and generation is not None):
            return reply
        if "\ufffd" in generation.prompt and reply.body.get("status") == "success":
            # The renderer chokes on the character and the job is left as it was.
            body = copy.deepcopy(reply.body)
            body["status"] = "processing"
            for name in ("output", "thumbnail", "type"):
                body.pop(name, None)
            return dataclasses.replace(reply, body=body)
        return reply

    service.handlers["getGeneration"] = handler


EXTREMES = [
    Mutant(
        "pahlavan-quote-exponent-integer-500",
        "pahlavan",
        "extremes",
        ("extremes.values",),
        "a 500 on an extreme value: a quote whose token count is written 1e+20 crashes (Decimal * float)",
        _exponent_integer_crashes,
        checks=("extremes",),
        expect="500 answered to",
    ),
    Mutant(
        "artificialstudio-surrogate-prompt-stuck",
        "artificialstudio",
        "extremes",
        ("extremes.costly",),
        "a job never ends: a generation whose prompt held a lone surrogate stays `processing`",
        _replacement_character_never_renders,
        checks=("extremes",),
        expect="did not reach success or failed",
        settings={"poll_timeout": 1.5},
    ),
]


MUTANTS: list[Mutant] = [
    *SCHEMA,
    *ENVELOPE,
    *LISTING,
    *RATELIMIT,
    *STREAMING,
    *USAGE,
    *JOBS,
    *WEBHOOKS,
    *BILLING,
    *STORAGE,
    *EXTREMES,
]
"""Every mutant, by family."""
