"""The request path of one provider, as clear stages.

route -> authenticate -> count rate limit -> validate request -> inject faults -> behaviour (provider
handler) -> render (provider envelope for errors) -> validate response. Errors at any stage are
``ApiError`` data, turned into the provider's envelope in one place (``_render_error``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from aiohttp import web

from mockserver.core.auth import Authenticator
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
from mockserver.core.faults import Fault, Faults
from mockserver.core.journal import Journal
from mockserver.core.ratelimit import LIMIT_HEADER, RateLimiter, RateState
from mockserver.core.router import Route, Router
from mockserver.core.spec import JSON_MEDIA_TYPE, Operation
from mockserver.core.store import ApiKey
from mockserver.core.streaming import send_events
from mockserver.core.validation import validate_request
from mockserver.errors import ApiError, ErrorKind, SpecError

log = logging.getLogger("mockserver")

MAX_BODY_BYTES = 110 * 1024 * 1024
"""Largest request body read (uploads up to the specs' 100 MiB, plus slack)."""


def request_origin(request: web.Request) -> str:
    """``scheme://host`` as the client reached us, honouring ``X-Forwarded-Proto``/``-Host``."""
    proto = request.headers.get("X-Forwarded-Proto", request.scheme).split(",")[0].strip() or "http"
    host = request.headers.get("X-Forwarded-Host", request.host).split(",")[0].strip()
    return f"{proto}://{host}"


class ProviderService:
    """Serves one provider from its compiled spec and its module's handlers."""

    def __init__(
        self,
        loaded: LoadedProvider,
        services: Services,
        limiter: RateLimiter,
        journal: Journal,
        faults: Faults,
        mount: str,
    ) -> None:
        self.id = loaded.module.id
        self.module = loaded.module
        self.spec = loaded.spec
        self.mount = mount
        self.services = services
        self.router = Router(loaded.spec.operations)
        self.auth = Authenticator(s for op in loaded.spec.operations for s in op.security)
        self.limiter = limiter
        self.journal = journal
        self.faults = faults
        # A provider is rate limited when its spec declares the headers; no name-based switch.
        self.rate_limited = any(
            LIMIT_HEADER.lower() in response.headers
            for op in loaded.spec.operations
            for response in op.responses.values()
        )
        self.handlers = dict(loaded.module.handlers())
        missing = [op.operation_id for op in loaded.spec.operations if op.operation_id not in self.handlers]
        if missing:
            raise SpecError(f"{self.id}: no behaviour for operations {missing}")

    # -- stages -----------------------------------------------------------------------------------

    def _count(self, request: web.Request, key: ApiKey | None) -> RateState | None:
        if not self.rate_limited:
            return None
        state = self.services.store[self.id]
        limit = self.services.settings.rate_limit or (key.rate_limit if key else None)
        limit = limit or state.default_rate_limit or 60
        # Without a valid key the client address is the bucket, as real gateways do before auth.
        bucket = key.key_id if key else f"ip:{request.remote}"
        return self.limiter.hit(f"{self.id}:{bucket}", limit)

    async def _behave(
        self, request: web.Request, route: Route, key: ApiKey | None, fault: Fault | None
    ) -> Reply:
        op = route.operation
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise ApiError(413, ErrorKind.PAYLOAD_TOO_LARGE, "Request body is too large.")
        raw = await request.read() if request.body_exists else b""
        valid = validate_request(
            op, route.path_params, request.query, request.headers, request.content_type if raw else "", raw
        )
        if fault is not None:
            if fault.latency_ms:
                await asyncio.sleep(fault.latency_ms / 1000)
            if fault.status is not None and fault.body is not None:
                return JsonReply(fault.body, fault.status, fault.headers)
            if (error := fault.as_error()) is not None:
                raise error
        origin = request_origin(request)
        call = Call(
            request=request,
            operation=op,
            input=valid,
            key=key,
            state=self.services.store[self.id],
            services=self.services,
            origin=origin,
            base_url=origin + self.mount,
        )
        return await self.handlers[op.operation_id](call)

    def _render_error(self, error: ApiError) -> tuple[web.Response, dict[str, Any]]:
        envelope = self.module.render_error(error)
        response = web.Response(
            status=error.status,
            body=dump_bytes(envelope),
            content_type=JSON_MEDIA_TYPE,
            charset="utf-8",
            headers=error.headers,
        )
        return response, envelope

    def _check_response(self, op: Operation, status: int, body: Any, headers: dict[str, str]) -> str | None:
        declared = op.response(status)
        if declared is None:
            return f"status {status} is not declared"
        names = {name.lower() for name in headers}
        missing = declared.required_headers - names
        if missing:
            return f"missing headers {sorted(missing)}"
        validator = declared.content.get(JSON_MEDIA_TYPE)
        if validator is not None and body is not None:
            for path, message in validator.errors(body):
                return f"body {'/'.join(map(str, path)) or '(root)'}: {message}"
        return None

    def _violation(self, op: Operation, status: int, problem: str) -> None:
        self.journal.violation(self.id, op.operation_id, status, problem)
        log.warning("%s %s answered %s outside its spec: %s", self.id, op.operation_id, status, problem)

    # -- the handler ------------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer one request to this provider."""
        started = time.perf_counter()
        path = "/" + request.match_info.get("tail", "")
        route: Route | None = None
        reply: Reply | None = None
        error: ApiError | None = None
        key = self.auth.identify(request.headers, self.services.store[self.id])
        try:
            route = self.router.match(request.method, path)
            self.auth.require(route.operation, key, request.headers)
        except ApiError as exc:
            error = exc
        rate = self._count(request, key)
        if error is None and rate is not None and rate.exceeded:
            error = rate.error(self.services.clock.now())
        fault = None
        if error is None and route is not None:
            fault = self.faults.take(self.id, route.operation.operation_id)
            try:
                reply = await self._behave(request, route, key, fault)
            except ApiError as exc:
                error = exc
            except Exception:
                log.exception("%s: unhandled error in %s", self.id, route.operation.operation_id)
                error = ApiError(500, ErrorKind.INTERNAL, "The server had an error processing your request.")
        extra = rate.headers() if rate is not None else {}
        response = await self._respond(request, route, reply, error, extra, fault)
        self.journal.record(
            time=self.services.clock.now(),
            provider=self.id,
            method=request.method,
            path=request.path,
            operation_id=route.operation.operation_id if route else None,
            status=response.status,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        return response

    async def _respond(
        self,
        request: web.Request,
        route: Route | None,
        reply: Reply | None,
        error: ApiError | None,
        extra: dict[str, str],
        fault: Fault | None,
    ) -> web.StreamResponse:
        op = route.operation if route else None
        if isinstance(reply, EventReply) and op is not None:
            declared = op.response(200)
            return await send_events(
                request,
                reply,
                headers=extra,
                schema=declared.events if declared else None,
                tokens_per_second=self.services.settings.tokens_per_second,
                cut_after=fault.cut_after_events if fault else None,
                on_violation=lambda problem: self._violation(op, 200, problem),
            )
        if isinstance(reply, BytesReply):
            response: web.Response = web.Response(
                status=reply.status, body=reply.data, content_type=reply.content_type
            )
            response.headers.update(reply.headers)
            body: Any = None
        elif isinstance(reply, JsonReply):
            response = web.Response(
                status=reply.status,
                body=dump_bytes(reply.body),
                content_type=JSON_MEDIA_TYPE,
                charset="utf-8",
            )
            response.headers.update(reply.headers)
            body = reply.body
        else:
            assert error is not None
            response, body = self._render_error(error)
        response.headers.update(extra)
        mode = self.services.settings.response_validation
        # A status forced by an injected fault is the test's choice (a 503 the spec never lists, a raw
        # body): send it as asked instead of flagging it or swapping it for a 500.
        forced = fault is not None and fault.status is not None
        if op is not None and mode != "off" and not forced:
            problem = self._check_response(op, response.status, body, dict(response.headers))
            if problem is not None:
                self._violation(op, response.status, problem)
                if mode == "strict":
                    strict = ApiError(
                        500, ErrorKind.INTERNAL, f"The mock's response broke its spec: {problem}"
                    )
                    response, _ = self._render_error(strict)
                    response.headers.update(extra)
        return response
