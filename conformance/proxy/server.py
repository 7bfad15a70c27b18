"""The validating reverse proxy: forwards each request upstream, judges both sides, passes streams through.

Requests are forwarded as sent (method, path, query and body byte for byte) with the upstream's Host and the
``X-Forwarded-*`` headers; hop-by-hop headers are dropped both ways. An event stream is written to the client
chunk by chunk as it is read (never buffered), and each event is judged as it passes. ``/_proxy/violations``
and ``/_proxy/exchanges`` are the proxy's own and never forwarded.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from conformance.client import Exchange
from conformance.proxy.checking import SSE, Checker, Finding, Matched
from conformance.proxy.console import Console
from conformance.proxy.ledger import ExchangeRecord, Ledger, Secrets
from conformance.proxy.recorder import Recorder
from conformance.proxy.settings import ProxySettings
from conformance.proxy.sse import Event, EventReader

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
"""Headers that belong to one connection (RFC 9110 7.6.1), never forwarded."""
UPSTREAM_TIMEOUT = aiohttp.ClientTimeout(total=None, sock_connect=30, sock_read=600)
"""No total: a stream lasts as long as it lasts; a silent upstream is given up after 10 minutes."""

SETTINGS = web.AppKey("settings", ProxySettings)
CHECKER = web.AppKey("checker", Checker)
LEDGER = web.AppKey("ledger", Ledger)
CONSOLE = web.AppKey("console", Console)
RECORDER = web.AppKey("recorder", Recorder)
SESSION = web.AppKey("session", aiohttp.ClientSession)


@dataclass(slots=True)
class _Stream:
    """One streamed answer: its events with their times (for the checks and the recording), how it ended."""

    response: web.StreamResponse
    events: list[tuple[float, Event]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    exchange: Exchange | None = None
    note: str | None = None
    """Why the stream ended early (the client went away, the upstream broke off), if it did."""
    broken: bool = False
    """The upstream broke off: the client's stream must end unfinished too."""


def _drop_hop_by_hop(headers: CIMultiDictProxy[str] | CIMultiDict[str], *extra: str) -> CIMultiDict[str]:
    named = {p.strip().lower() for v in headers.getall("connection", []) for p in v.split(",")}
    dropped = HOP_BY_HOP | named | set(extra)
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in dropped)


def upstream_headers(request: web.Request) -> CIMultiDict[str]:
    """The request's headers as a reverse proxy forwards them: no hop-by-hop, the upstream's Host."""
    headers = _drop_hop_by_hop(request.headers, "host", "content-length")
    peer = request.remote or ""
    previous = request.headers.get("X-Forwarded-For")
    headers["X-Forwarded-For"] = f"{previous}, {peer}" if previous else peer
    headers["X-Forwarded-Proto"] = request.scheme
    headers["X-Forwarded-Host"] = request.host
    return headers


def client_headers(upstream: aiohttp.ClientResponse) -> CIMultiDict[str]:
    """The upstream's headers for the client: no hop-by-hop, length or encoding (bodies come decoded)."""
    return _drop_hop_by_hop(upstream.headers, "content-length", "content-encoding")


async def violations(request: web.Request) -> web.Response:
    """``GET /_proxy/violations``: every violation seen (redacted)."""
    ledger = request.app[LEDGER]
    return web.json_response({"violations": ledger.listed(), "omitted": ledger.dropped})


async def exchanges(request: web.Request) -> web.Response:
    """``GET /_proxy/exchanges``: the recent exchanges, oldest first (a bounded ring)."""
    return web.json_response({"exchanges": request.app[LEDGER].recent()})


async def forward(request: web.Request) -> web.StreamResponse:
    """Check the request, forward it, check and pass the answer back (streams as they come)."""
    app = request.app
    settings, checker, ledger = app[SETTINGS], app[CHECKER], app[LEDGER]
    started = time.monotonic()
    body = await request.read()
    ledger.secrets.learn(request.headers, request.query)
    matched, findings = checker.check_request(
        request.method, request.path, request.query, request.headers, body
    )
    target = URL(settings.upstream.rstrip("/") + request.raw_path, encoded=True)
    exchange_id = ledger.next_id()
    try:
        async with app[SESSION].request(
            request.method,
            target,
            headers=upstream_headers(request),
            data=body or None,
            allow_redirects=False,
        ) as upstream:
            headers = client_headers(upstream)
            media = upstream.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if media == SSE:
                # From here on the client has the status line: what fails is said, never a second answer.
                passed = await _pass_stream(request, upstream, headers, matched, body)
                findings += passed.findings
                _finish(request, exchange_id, started, matched, findings, passed.exchange, passed)
                if passed.broken and request.transport is not None:
                    # Pass the break on as it happened (an unfinished body), not as a complete stream.
                    request.transport.abort()
                return passed.response
            content = await upstream.read()
    except (TimeoutError, aiohttp.ClientError, OSError) as exc:
        return _unreachable(request, exchange_id, started, matched, findings, exc)
    response = web.Response(status=upstream.status, reason=upstream.reason, headers=headers, body=content)
    exchange = _exchange(request, body, upstream, content, None)
    findings += checker.check_response(matched, exchange)
    note = None
    try:
        await response.prepare(request)
        await response.write_eof()
    except ConnectionResetError:
        note = "the client went away before the answer was written"
    _finish(request, exchange_id, started, matched, findings, exchange, None, note)
    return response


async def _pass_stream(
    request: web.Request,
    upstream: aiohttp.ClientResponse,
    headers: CIMultiDict[str],
    matched: Matched,
    body: bytes,
) -> _Stream:
    """Write each chunk to the client as soon as it is read; judge each event as it completes."""
    checker = request.app[CHECKER]
    stream = _Stream(web.StreamResponse(status=upstream.status, reason=upstream.reason, headers=headers))
    await stream.response.prepare(request)
    opened = time.monotonic()
    # The status line and headers are judged before the body flows; the body, event by event as it passes.
    stream.findings += checker.check_head(matched, _exchange(request, body, upstream, b"", None))
    judge = checker.stream(matched) if upstream.status == 200 else None
    reader, raw = EventReader(), bytearray()

    def take(events: list[Event]) -> None:
        now = time.monotonic() - opened
        for event in events:
            stream.events.append((now, event))
            if judge is not None:
                stream.findings.extend(judge.event(event.data))

    try:
        async for chunk in _chunks(upstream):
            await stream.response.write(chunk)  # first to the client, then judged
            raw += chunk
            take(reader.feed(chunk))
        take(reader.close())
        await stream.response.write_eof()
    except ConnectionResetError:
        # Like any reverse proxy, stop reading (the upstream connection closes); the stream is not whole,
        # so its framing is not judged.
        stream.note, judge = "the client went away mid-stream", None
    except (TimeoutError, aiohttp.ClientError) as exc:
        take(reader.close())
        stream.note = f"the upstream broke off the stream ({type(exc).__name__})"
        stream.broken = True
    stream.exchange = _exchange(request, body, upstream, bytes(raw), [e.data for _, e in stream.events])
    stream.findings += checker.check_body(matched, stream.exchange)
    if judge is not None:
        stream.findings += judge.end(stream.exchange)
    return stream


async def _chunks(upstream: aiohttp.ClientResponse) -> AsyncIterator[bytes]:
    # iter_any yields whatever has arrived, at once: no waiting for a buffer to fill.
    async for chunk in upstream.content.iter_any():
        yield chunk


def _exchange(
    request: web.Request,
    body: bytes,
    upstream: aiohttp.ClientResponse,
    content: bytes,
    events: list[str] | None,
) -> Exchange:
    """The exchange in the suite's own form, so the suite's checks and evidence (curl, excerpt) apply."""
    return Exchange(
        method=request.method,
        url=str(request.url),
        request_headers=dict(request.headers),
        request_body=body or None,
        status=upstream.status,
        headers={k: v for k, v in upstream.headers.items()},
        content=content,
        events=events,
    )


def _finish(
    request: web.Request,
    exchange_id: int,
    started: float,
    matched: Matched,
    findings: list[Finding],
    exchange: Exchange | None,
    stream: _Stream | None,
    note: str | None = None,
) -> None:
    """Note the exchange (ledger, console) and record it."""
    app = request.app
    ledger = app[LEDGER]
    if exchange is None:  # a stream always has its exchange once passed
        return
    record = ExchangeRecord(
        id=exchange_id,
        method=request.method,
        path=ledger.secrets.redact(request.path_qs),
        operation=matched.operation_id,
        status=exchange.status,
        ms=(time.monotonic() - started) * 1000,
        violations=len(findings),
        at=ledger.stamp(),
        note=stream.note if stream is not None else note,
    )
    app[CONSOLE].exchange(record, ledger.add(record, matched.operation_id, findings, exchange))
    recorder = app.get(RECORDER)
    if recorder is not None:
        try:
            recorder.write(request, exchange, stream.events if stream else None, ledger.secrets)
        except OSError as exc:
            app[CONSOLE].say(f"#{exchange_id} not recorded: {exc}")


def _unreachable(
    request: web.Request,
    exchange_id: int,
    started: float,
    matched: Matched,
    findings: list[Finding],
    exc: BaseException,
) -> web.Response:
    """The upstream gave no answer: a 502 for the client, a console line; not the contract's violation."""
    ledger = request.app[LEDGER]
    reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    record = ExchangeRecord(
        id=exchange_id,
        method=request.method,
        path=ledger.secrets.redact(request.path_qs),
        operation=matched.operation_id,
        status=502,
        ms=(time.monotonic() - started) * 1000,
        violations=len(findings),
        at=ledger.stamp(),
        error=ledger.secrets.redact(reason),
    )
    request.app[CONSOLE].exchange(record, ledger.add(record, matched.operation_id, findings, None))
    message = f"the proxy could not reach the upstream: {type(exc).__name__}"
    return web.json_response({"error": {"message": message, "type": "bad_gateway"}}, status=502)


async def _session(app: web.Application) -> AsyncIterator[None]:
    # auto_decompress: bodies are judged decoded, so they are also served decoded (Content-Encoding dropped).
    connector = aiohttp.TCPConnector(limit=100)
    # DummyCookieJar: a proxy keeps no cookies (one client's Set-Cookie must never reach another's request).
    async with aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        timeout=UPSTREAM_TIMEOUT,
        auto_decompress=True,
        skip_auto_headers=("User-Agent",),
    ) as session:
        app[SESSION] = session
        yield


def create_app(settings: ProxySettings) -> web.Application:
    """The proxy app for one provider: the two ``/_proxy`` routes, then every other path forwarded."""
    checker = Checker(settings.provider)
    secrets = Secrets(scheme_headers(checker))
    app = web.Application(client_max_size=settings.max_body)
    app[SETTINGS] = settings
    app[CHECKER] = checker
    app[LEDGER] = Ledger(secrets)
    app[CONSOLE] = Console(secrets, quiet=settings.quiet)
    if settings.record is not None:
        app[RECORDER] = Recorder(settings.record, settings.provider, header_parameters(checker, secrets))
    app.cleanup_ctx.append(_session)
    app.router.add_get("/_proxy/violations", violations)
    app.router.add_get("/_proxy/exchanges", exchanges)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


def scheme_headers(checker: Checker) -> list[str]:
    """The headers the spec's security schemes carry credentials in."""
    return [scheme.header for op in checker.compiled_operations() for scheme in op.security]


def header_parameters(checker: Checker, secrets: Secrets) -> list[str]:
    """The non-credential header parameters the spec declares (worth keeping in a recording)."""
    return sorted(
        {
            param.name.lower()
            for op in checker.compiled_operations()
            for param in op.parameters
            if param.location == "header" and param.name.lower() not in secrets.headers
        }
    )
