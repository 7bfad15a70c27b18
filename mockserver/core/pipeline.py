"""The request path of one provider, as clear stages.

route -> authenticate (``State.find_key``) -> admit (``State.admit``: count the rate limit and take an
injected fault, in one call) -> validate request -> inject the fault -> behaviour (provider handler) ->
render (provider envelope for errors; rate-limit and CORS headers) -> validate response -> journal
(``State.record``, and this process's totals). Errors at any stage are ``ApiError`` data, turned into the
provider's envelope in one place (``_render_error``); the state failing (``StateError``) at any stage is
the provider's 503 (``errors.unavailable``), never a 500.

Routing happens in two places with one source, the spec: each operation is registered with the web
framework's router (``ProviderService.routes``), whose dict lookup for static paths is the cheapest match
there is; a provider-wide fallback (``ProviderService.handle``) routes whatever those did not match with
``core.router`` and answers 404, or 405 with ``Allow``, in the provider's envelope.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from multidict import MultiDict, MultiDictProxy

from mockserver.core import cors
from mockserver.core.auth import Authenticator, read_credential
from mockserver.core.calls import (
    BytesReply,
    Call,
    EventReply,
    JsonReply,
    LoadedProvider,
    Reply,
    Services,
    dump_bytes,
)
from mockserver.core.faults import fault_error
from mockserver.core.journal import LATENCY_BUCKETS_MS, Entry, Journal, violation
from mockserver.core.pacing import Pacer
from mockserver.core.ratelimit import LIMIT_HEADER
from mockserver.core.replay import ProviderReplay, ReplayedEvents, replayed
from mockserver.core.router import Router
from mockserver.core.spec import JSON_MEDIA_TYPE, Operation, ResponseSpec
from mockserver.core.streaming import send_events
from mockserver.core.validation import validate_request
from mockserver.errors import ApiError, ClientGone, ErrorKind, SpecError, StateError, unavailable
from mockserver.state.api import MISS, ProviderState
from mockserver.state.records import FaultRecord, KeyRecord

log = logging.getLogger("mockserver")

RequestHandler = Callable[[web.Request], Awaitable[web.StreamResponse]]
MAX_BODY_BYTES = 110 * 1024 * 1024
"""Largest request body read (uploads up to the specs' 100 MiB, plus slack); JSON bodies have a smaller
limit (``Settings.max_json_body``)."""
CONTENT_TYPE = "Content-Type"
JSON_CONTENT_TYPE = f"{JSON_MEDIA_TYPE}; charset=utf-8"
REQUEST_TIMEOUT = 408
CLIENT_CLOSED_REQUEST = 499
"""The journal's status for a request whose client left before sending all of it (nginx's code)."""
_NO_QUERY: MultiDictProxy[str] = MultiDictProxy(MultiDict())


class ProviderService:
    """Serves one provider from its compiled spec and its module's handlers."""

    def __init__(
        self,
        loaded: LoadedProvider,
        services: Services,
        journal: Journal,
        mount: str,
        replay: ProviderReplay | None = None,
    ) -> None:
        self.id = loaded.module.id
        self.module = loaded.module
        self.spec = loaded.spec
        self.mount = mount
        self.services = services
        self.router = Router(loaded.spec.operations)
        self.auth = Authenticator(s for op in loaded.spec.operations for s in op.security)
        # One way of carrying a key (every provider today): the request path reads it inline.
        self._scheme = self.auth.schemes[0] if len(self.auth.schemes) == 1 else None
        self.journal = journal
        self.state = services.state
        self.provider_state = ProviderState(services.state, self.id)
        """What handlers get as ``call.state``: made once, the seed's data at hand."""
        self._default_limit = self.provider_state.seed.default_rate_limit or 60
        self._unsaved: list[dict[str, Any]] = []
        """Violations found but not yet stored in the state (``_respond`` and stream callbacks are not
        coroutines): ``_serve`` stores them before it returns."""
        self.replay = replay  # --replay: recorded answers before the handlers (core/replay.py)
        # A provider is rate limited when its spec declares the headers; no name-based switch.
        self.rate_limited = any(
            LIMIT_HEADER.lower() in response.headers
            for op in loaded.spec.operations
            for response in op.responses.values()
        )
        # Looked up per call, not captured: tests may swap one operation's behaviour on a running mock.
        self.handlers = dict(loaded.module.handlers())
        missing = [op.operation_id for op in loaded.spec.operations if op.operation_id not in self.handlers]
        if missing:
            raise SpecError(f"{self.id}: no behaviour for operations {missing}")
        # Settings are frozen: what every request asks of them is read once here.
        settings = services.settings
        self._plans = {op.operation_id: _Plan.of(op, settings.max_json_body) for op in loaded.spec.operations}
        self._cors = settings.cors
        self._check_mode = settings.response_validation
        self._rate_override = settings.rate_limit
        self._read_timeout = settings.read_timeout
        # One pacer for every stream of the provider: its waits share timers (core/pacing.py).
        tps = settings.tokens_per_second
        self._pacer = Pacer(1.0 / tps) if tps else None

    def routes(self) -> Iterator[tuple[str, str, RequestHandler]]:
        """``(method, path template, handler)`` per operation, for the web framework's router.

        The framework matches these paths (static ones by a dict lookup); what none of them matches goes
        to ``handle``, which routes with the spec's own router and answers the 404 or 405.
        """
        for plan in self._plans.values():
            # The pipeline itself with its plan bound, not a wrapper: a coroutine fewer per request.
            yield plan.operation.method, plan.operation.path, functools.partial(self._serve, plan)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer a request by routing it here: an operation, or the 404/405 in the provider's envelope."""
        path = "/" + request.match_info.get("tail", "")
        try:
            route = self.router.match(request.method, path)
        except ApiError as exc:
            return await self._serve(None, request, {}, exc)
        return await self._serve(self._plans[route.operation.operation_id], request, route.path_params)

    # -- stages -----------------------------------------------------------------------------------

    async def _behave(
        self,
        request: web.Request,
        plan: _Plan,
        path_params: Mapping[str, str] | None,
        key: KeyRecord | None,
        fault: FaultRecord | None,
    ) -> Reply:
        """validate (read the body, check it and the parameters) -> inject a fault -> the handler."""
        op = plan.operation
        length = request.content_length
        if length is not None and length > plan.max_body:
            raise _body_too_large()
        try:
            if request.content.is_eof():
                raw = await request.read()  # the whole body came with the headers (or there is none)
            else:
                raw = await _read_arriving_body(request, plan.max_body, self._read_timeout)
                # Kept where aiohttp keeps a body ``read()`` returned: a later ``read()`` (a handler, the
                # dashboard's capture) sees it, as it does for a body that came with its headers.
                request._read_bytes = raw
        except web.HTTPRequestEntityTooLarge as exc:
            # A chunked body has no Content-Length to refuse up front: aiohttp stops reading it at the app's
            # client_max_size. The provider's 413 then, not the framework's exception (a 500).
            raise _body_too_large() from exc
        except ConnectionError as exc:
            # The client closed the connection half-way through its body: there is nobody to answer.
            raise ClientGone() from exc
        if len(raw) > plan.max_body:  # a chunked body declares no length to refuse it by
            raise _body_too_large()
        valid = validate_request(
            op,
            request.match_info if path_params is None else path_params,
            # Parsing the query string costs a few microseconds: only for operations that declare one.
            request.query if plan.reads_query else _NO_QUERY,
            request.headers,
            _media_type(request) if raw else "",
            raw,
        )
        if fault is not None:
            if fault.latency_ms:
                await asyncio.sleep(fault.latency_ms / 1000)
            if fault.status is not None and fault.body is not None:
                return JsonReply(fault.body, fault.status, fault.headers)
            if (error := fault_error(fault)) is not None:
                raise error
        call = Call(request, op, valid, key, self.provider_state, self.services, self.mount)
        if self.replay is not None:  # the one test replay costs a request when it is off
            return await self.replay.answer(call, self.handlers[op.operation_id])
        return await self.handlers[op.operation_id](call)

    def _render_error(self, error: ApiError, extra: Mapping[str, str]) -> tuple[web.Response, dict[str, Any]]:
        envelope = self.module.render_error(error)
        response = web.Response(
            status=error.status,
            body=dump_bytes(envelope),
            headers={CONTENT_TYPE: JSON_CONTENT_TYPE, **error.headers, **extra},
        )
        if error.status == REQUEST_TIMEOUT:
            response.force_close()  # the rest of a stalled body would otherwise be read as the next request
        return response, envelope

    def _check_response(self, plan: _Plan, status: int, body: Any, headers: Mapping[str, str]) -> str | None:
        """What is wrong with a response (``headers`` case-insensitive), or None."""
        declared = plan.declared(status)
        if declared is None:
            return f"status {status} is not declared"
        for name in declared.required_headers:
            if name not in headers:
                missing = sorted(n for n in declared.required_headers if n not in headers)
                return f"missing headers {missing}"
        validator = declared.content.get(JSON_MEDIA_TYPE)
        if validator is not None and body is not None and not validator.is_valid(body):
            for path, message in validator.errors(body):
                return f"body {'/'.join(map(str, path)) or '(root)'}: {message}"
        return None

    def _violation(self, op: Operation, status: int, problem: str) -> None:
        found = violation(self.id, op.operation_id, status, problem)
        self._unsaved.append(found)
        if self.journal.taps:
            self.journal.publish_violation(found)
        log.warning("%s %s answered %s outside its spec: %s", self.id, op.operation_id, status, problem)

    # -- the request path -------------------------------------------------------------------------

    async def _serve(
        self,
        plan: _Plan | None,
        request: web.Request,
        path_params: Mapping[str, str] | None = None,
        error: ApiError | None = None,
    ) -> web.StreamResponse:
        """route (done) -> authenticate -> count -> validate + behave -> render -> validate response.

        ``path_params`` default to what the web framework's router matched.
        """
        started = time.perf_counter()
        headers = request.headers
        state = self.state
        extra: dict[str, str]
        fault = None
        try:
            if self._scheme is not None:
                credential = read_credential(self._scheme, headers)
                if credential is None:
                    key = None
                else:  # at hand (memory, a warm cache) without a coroutine, else asked for
                    found = state.cached_key(self.id, credential)
                    key = await state.find_key(self.id, credential) if found is MISS else found
                    if key is not None and key.revoked:
                        key = None
            else:
                key = await self.auth.identify(headers, state, self.id)
            if key is None and error is None and plan is not None:
                try:
                    self.auth.require(plan.operation, key, headers)
                except ApiError as exc:
                    error = exc
            if self.rate_limited:
                limit = self._rate_override or (key.rate_limit if key else None) or self._default_limit
                # Without a valid key the client address is the bucket, as real gateways do before auth.
                bucket: str | None = key.key_id if key else f"ip:{request.remote}"
            else:
                bucket, limit = None, 0
            operation_id = plan.operation.operation_id if error is None and plan is not None else None
            admission = state.admit_now(self.id, operation_id, bucket, limit)
            if admission is None:  # the backend must be asked (a round trip)
                admission = await state.admit(self.id, operation_id, bucket, limit)
        except StateError as exc:
            key, error, extra = None, self._unavailable(exc), {}
        else:
            rate = admission.rate
            if rate is not None:
                extra = rate.headers()
                if rate.exceeded and error is None:
                    error = rate.error(self.services.clock.now())
            else:
                extra = {}
            if error is None:
                fault = admission.fault
        reply: Reply | None = None
        if error is None and plan is not None:
            try:
                reply = await self._behave(request, plan, path_params, key, fault)
            except ApiError as exc:
                error = exc
            except ClientGone:
                return self._gone(request, plan, started)
            except StateError as exc:
                error = self._unavailable(exc)
            except Exception:
                log.exception("%s: unhandled error in %s", self.id, plan.operation.operation_id)
                error = ApiError(500, ErrorKind.INTERNAL, "The server had an error processing your request.")
        if self._cors and (origin := headers.get("Origin")):
            extra.update(cors.response_headers(self.services.settings, origin))
        if plan is not None and isinstance(reply, EventReply):
            response = await self._stream(request, plan, reply, extra, fault)
        else:
            response = self._respond(plan, reply, error, extra, fault)
        if self._unsaved:  # a response broke the spec (rare)
            await self._save_violations()
        # The journal (in the state) and this process's totals; ``_record``, inlined: this is every request.
        operation_id = plan.operation.operation_id if plan is not None else None
        status = response.status
        latency_ms = (time.perf_counter() - started) * 1000
        row = (
            self.services.clock.now(),
            self.id,
            request.method,
            request.path,
            operation_id,
            status,
            latency_ms,
        )
        entry_id = state.record(row)
        journal = self.journal
        # ``journal.count``, inlined (a call a request): list arithmetic, made into metrics when scraped.
        try:
            counted = journal.totals[self.id, operation_id, status]
        except KeyError:
            counted = journal.totals[self.id, operation_id, status] = journal.new_row()
        counted[bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1
        counted[-1] += latency_ms
        if journal.taps:  # a dashboard listens (core/feed.py): otherwise this test is all it costs
            journal.publish(Entry(entry_id, *row), request, response)
        return response

    def _record(
        self,
        request: web.Request,
        plan: _Plan | None,
        status: int,
        started: float,
        response: web.StreamResponse | None,
    ) -> None:
        """Journal an answered request (in the state) and count it (this process's totals)."""
        operation_id = plan.operation.operation_id if plan is not None else None
        latency_ms = (time.perf_counter() - started) * 1000
        row = (
            self.services.clock.now(),
            self.id,
            request.method,
            request.path,
            operation_id,
            status,
            latency_ms,
        )
        entry_id = self.state.record(row)
        journal = self.journal
        journal.count(self.id, operation_id, status, latency_ms)
        if journal.taps and response is not None:  # a dashboard listens (core/feed.py): rare
            journal.publish(Entry(entry_id, *row), request, response)

    def _unavailable(self, exc: StateError) -> ApiError:
        """The 503 for a request that met a failing state backend (one log line, no traceback)."""
        self.state.errors += 1
        log.warning("%s: the state backend failed: %s", self.id, exc)
        return unavailable()

    async def _save_violations(self) -> None:
        unsaved, self._unsaved = self._unsaved, []
        try:
            for found in unsaved:
                await self.state.add_violation(found)
        except StateError as exc:
            self._unavailable(exc)  # counted and logged; the response stands

    def _gone(self, request: web.Request, plan: _Plan, started: float) -> web.Response:
        """Journal a request whose client left mid-body; the response is never sent (nor checked)."""
        self._record(request, plan, CLIENT_CLOSED_REQUEST, started, None)
        return web.Response(status=CLIENT_CLOSED_REQUEST)

    async def _stream(
        self,
        request: web.Request,
        plan: _Plan,
        reply: EventReply,
        extra: dict[str, str],
        fault: FaultRecord | None,
    ) -> web.StreamResponse:
        op = plan.operation
        # Events are checked as ``_respond`` checks a body: not with the check off, nor a replayed stream
        # (its drift was reported when the recordings were loaded).
        schema = None
        if self._check_mode != "off" and not isinstance(reply, ReplayedEvents):
            declared = plan.declared(200)
            schema = declared.events if declared else None
        self.journal.open_streams += 1
        try:
            return await send_events(
                request,
                reply,
                headers=extra,
                schema=schema,
                pacer=self._pacer,
                cut_after=fault.cut_after_events if fault else None,
                on_violation=lambda problem: self._violation(op, 200, problem),
            )
        finally:
            self.journal.open_streams -= 1

    def _respond(
        self,
        plan: _Plan | None,
        reply: Reply | None,
        error: ApiError | None,
        extra: dict[str, str],
        fault: FaultRecord | None,
    ) -> web.Response:
        """Render a plain (not streamed) reply or error, then check it against the spec."""
        if isinstance(reply, JsonReply):
            body: Any = reply.body
            status = reply.status
            response = web.Response(
                status=status,
                body=dump_bytes(body),
                headers={CONTENT_TYPE: JSON_CONTENT_TYPE, **reply.headers, **extra},
            )
        elif isinstance(reply, BytesReply):
            body, status = None, reply.status
            response = web.Response(
                status=status,
                body=reply.data,
                headers={CONTENT_TYPE: reply.content_type, **reply.headers, **extra},
            )
        else:
            assert error is not None
            status = error.status
            response, body = self._render_error(error, extra)
        mode = self._check_mode
        # A status forced by an injected fault is the test's choice (a 503 the spec never lists, a raw
        # body): send it as asked instead of flagging it or swapping it for a 500. Likewise the 503 of a
        # failing state backend: the mock's own outage, not a behaviour the spec describes.
        if (
            plan is not None
            and mode != "off"
            and (fault is None or fault.status is None)
            and (error is None or error.kind is not ErrorKind.UNAVAILABLE)
        ):
            problem = self._check_response(plan, status, body, response.headers)
            if problem is not None and not replayed(reply, error):  # recordings: checked at load
                self._violation(plan.operation, status, problem)
                if mode == "strict":
                    strict = ApiError(
                        500, ErrorKind.INTERNAL, f"The mock's response broke its spec: {problem}"
                    )
                    response, _ = self._render_error(strict, extra)
        return response


def _media_type(request: web.Request) -> str:
    """The request's media type, without parameters."""
    if request.headers.get(CONTENT_TYPE) == JSON_MEDIA_TYPE:
        return JSON_MEDIA_TYPE  # what most clients send: no header parsing
    return request.content_type


async def _read_arriving_body(request: web.Request, limit: int, stall_seconds: float) -> bytes:
    """A body still on its way, read as it arrives: 413 past ``limit``, 408 after ``stall_seconds``
    without a byte (a client that stalls must not hold the request open forever)."""
    content = request.content
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            async with asyncio.timeout(stall_seconds):
                chunk = await content.readany()
        except TimeoutError as exc:
            message = f"The request body stopped arriving for more than {stall_seconds:g} s."
            # The framework would otherwise wait (up to 10 s) for the rest of the body before it closes the
            # connection; a TimeoutError is what ends that wait at once.
            content.set_exception(TimeoutError(message))
            raise ApiError(REQUEST_TIMEOUT, ErrorKind.REQUEST_TIMEOUT, message) from exc
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            raise _body_too_large()
        chunks.append(chunk)


def _body_too_large() -> ApiError:
    return ApiError(413, ErrorKind.PAYLOAD_TOO_LARGE, "Request body is too large.")


@dataclass(frozen=True, slots=True)
class _Plan:
    """What the request path needs to know about one operation, worked out once."""

    operation: Operation
    reads_query: bool
    max_body: int
    """The largest body accepted: the upload limit where the body is raw bytes, else the JSON limit."""
    _declared: dict[int, ResponseSpec | None] = field(default_factory=dict)

    def declared(self, status: int) -> ResponseSpec | None:
        """The operation's declared response for ``status`` (looked up once per status)."""
        try:
            return self._declared[status]
        except KeyError:
            found = self._declared[status] = self.operation.response(status)
            return found

    @classmethod
    def of(cls, operation: Operation, max_json_body: int) -> _Plan:
        body = operation.body
        raw = body is not None and any(validator is None for validator in body.media_types.values())
        reads_query = any(p.location == "query" for p in operation.parameters)
        return cls(operation, reads_query, MAX_BODY_BYTES if raw else min(max_json_body, MAX_BODY_BYTES))
