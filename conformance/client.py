"""The suite's HTTP side: a request budget, client-side pacing that honours Retry-After, timeouts, redaction.

One ``RequestGuard`` per target is shared by schemathesis (through a hook) and by the behaviour checks'
``HttpClient``, so the budget and the pace cover every request the suite sends. The API key is attached only
to URLs under the target's base URL, and every text that leaves the suite goes through a ``Redactor``.
"""

from __future__ import annotations

import json
import re
import shlex
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote, quote_plus

import requests

from mockserver.recordings import CREDENTIAL_HEADERS

REDACTED = "[REDACTED]"
WORD = r"A-Za-z0-9_~\-"
TOKEN_CHARS = WORD + "."
"""Characters that continue a key-like token: a secret next to one of them is part of a longer word."""
MIN_SECRET_IN_TEXT = 8
"""Secrets shorter than this are redacted where they are carried (headers, URLs, bodies), not in prose."""
EXCERPT_BODY_CHARS = 800
CURL_BODY_CHARS = 4000
CURL_URL_CHARS = 1000
EXCERPT_HEADERS = (
    "content-type",
    "retry-after",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
)


class BudgetExhausted(Exception):
    """The run's request budget is spent; the check that hit it is skipped."""


class Redactor:
    """Replaces whole secret values (the API key, a webhook secret) where they are carried.

    A secret is replaced only where it stands whole, not inside a longer word or token (``x`` is not
    redacted in ``exit``), so text around it is never corrupted. ``redactor(value)`` is for what carries
    secrets: header values, URLs, request and response bodies of reproductions. ``redactor.text(prose)``
    is for messages: there a secret shorter than ``MIN_SECRET_IN_TEXT`` characters cannot be told from an
    ordinary word, and real keys are far longer.
    """

    def __init__(self, secrets: tuple[str, ...]) -> None:
        # Longest first, so that a secret containing another is removed whole; also their URL-encoded forms.
        values = {form for s in secrets if s for form in (s, quote(s, safe=""), quote_plus(s, safe=""))}
        self._secrets = sorted(values, key=len, reverse=True)
        self._all = _whole(self._secrets)
        self._long = _whole([s for s in self._secrets if len(s) >= MIN_SECRET_IN_TEXT])

    def __call__(self, value: str) -> str:
        return self._all.sub(REDACTED, value) if self._all else value

    def text(self, prose: str) -> str:
        """Redact a message: only secrets long enough to be told from its words."""
        return self._long.sub(REDACTED, prose) if self._long else prose

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """Headers with credential headers masked whole and secrets removed from the rest."""
        return {k: REDACTED if k.lower() in CREDENTIAL_HEADERS else self(str(v)) for k, v in headers.items()}


def _whole(secrets: list[str]) -> re.Pattern[str] | None:
    """A pattern matching any of the secrets where it stands whole (not inside a longer token)."""
    if not secrets:
        return None
    alternatives = "|".join(re.escape(s) for s in secrets)
    # A dot continues a token only when a token character follows (a key may end a sentence).
    return re.compile(f"(?<![{TOKEN_CHARS}])(?:{alternatives})(?![{WORD}]|\\.[{WORD}])")


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delay-seconds or an HTTP date), ``None`` if unusable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


class RequestGuard:
    """Budget, pace and Retry-After for every request to one target; thread-safe."""

    def __init__(
        self,
        max_requests: int,
        *,
        rate_limit: float | None = None,
        max_retry_after: float = 120.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.max_requests = max_requests
        self.max_retry_after = max_retry_after
        self._interval = 1.0 / rate_limit if rate_limit else 0.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._next_slot = 0.0
        self._not_before = 0.0
        self.used = 0
        self.waited = 0.0
        """Seconds spent waiting for the pace or a Retry-After."""

    @property
    def remaining(self) -> int:
        """Requests left in the budget."""
        return max(0, self.max_requests - self.used)

    def acquire(self) -> None:
        """Take one request from the budget (or raise ``BudgetExhausted``) and wait for its turn."""
        with self._lock:
            if self.used >= self.max_requests:
                raise BudgetExhausted(f"the request budget ({self.max_requests}) is spent")
            self.used += 1
            now = self._clock()
            start = max(now, self._next_slot, self._not_before)
            self._next_slot = start + self._interval
            delay = start - now
        self._wait(delay)

    def account(self) -> None:
        """Count a request someone else already sent (schemathesis) and book its pace slot."""
        with self._lock:
            self.used += 1
            now = self._clock()
            self._next_slot = max(now, self._next_slot) + self._interval

    def charge(self, count: int) -> None:
        """Count requests sent where no hook sees them (an upper bound is fine: the budget errs safe)."""
        with self._lock:
            self.used += count

    def wait_turn(self) -> None:
        """Wait until the next request may go out (pace and Retry-After), without taking budget."""
        with self._lock:
            delay = max(self._next_slot, self._not_before) - self._clock()
        self._wait(delay)

    def observe(self, status: int, headers: Mapping[str, str]) -> float | None:
        """Note a response; a 429 with ``Retry-After`` holds every further request back. Returns the hold."""
        if status != 429:
            return None
        delay = parse_retry_after(_header(headers, "retry-after"))
        if delay is None:
            return None
        delay = min(delay, self.max_retry_after)
        with self._lock:
            self._not_before = max(self._not_before, self._clock() + delay)
        return delay

    def _wait(self, delay: float) -> None:
        if delay > 0:
            self.waited += delay
            self._sleep(delay)


def _header(headers: Mapping[str, Any], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            if isinstance(value, list):
                return str(value[0]) if value else None
            return str(value)
    return None


@dataclass(slots=True)
class Exchange:
    """One request the suite sent and what came back."""

    method: str
    url: str
    request_headers: dict[str, str]
    request_body: bytes | None
    status: int
    headers: dict[str, str]
    content: bytes
    elapsed: float = 0.0
    events: list[str] | None = None
    """For ``text/event-stream`` responses: each event's ``data``, in order."""
    _json: Any = field(default=None, repr=False)
    _parsed: bool = field(default=False, repr=False)

    def header(self, name: str) -> str | None:
        """A response header, case-insensitively."""
        return _header(self.headers, name.lower())

    @property
    def media_type(self) -> str:
        """The response's media type without parameters, lower-cased."""
        return (self.header("content-type") or "").split(";")[0].strip().lower()

    def json(self) -> Any:
        """The JSON body, or ``None`` when it is not JSON."""
        if not self._parsed:
            self._parsed = True
            try:
                self._json = json.loads(self.content)
            # RecursionError: nesting deeper than the parser goes is "not JSON" too, not a crash.
            except (ValueError, UnicodeDecodeError, RecursionError):
                self._json = None
        return self._json

    def curl(self, redact: Redactor) -> str:
        """The request as a curl command (credentials redacted)."""
        return curl_command(self.method, self.url, self.request_headers, self.request_body, redact)

    def excerpt(self, redact: Redactor) -> str:
        """The status, a few telling headers and the start of the body."""
        return response_excerpt(self.status, self.headers, self.content, redact, events=self.events)


def curl_command(
    method: str, url: str, headers: Mapping[str, str], body: bytes | None, redact: Redactor
) -> str:
    """A copy-pasteable curl line for a request, with credential headers masked."""
    shown = redact(url)
    if len(shown) > CURL_URL_CHARS:
        shown = shown[:CURL_URL_CHARS] + f"...({len(shown)} characters in all)"
    parts = ["curl", "-X", method, shlex.quote(shown)]
    skip = {"content-length", "user-agent", "accept-encoding", "connection", "accept"}
    for name, value in redact.headers(headers).items():
        if name.lower() not in skip:
            parts += ["-H", shlex.quote(f"{name}: {value}")]
    if body:
        text = body.decode("utf-8", errors="replace")
        if len(text) > CURL_BODY_CHARS:
            text = text[:CURL_BODY_CHARS] + f"... ({len(body)} bytes in all)"
        parts += ["--data-raw", shlex.quote(redact(text))]
    return " ".join(parts)


def response_excerpt(
    status: int,
    headers: Mapping[str, Any],
    content: bytes,
    redact: Redactor,
    *,
    events: list[str] | None = None,
) -> str:
    """``HTTP 400`` plus telling headers and the start of the body (or of the event stream)."""
    lines = [f"HTTP {status}"]
    for name in EXCERPT_HEADERS:
        value = _header(headers, name)
        if value is not None:
            lines.append(f"{name}: {redact(value)}")
    if events is not None:
        shown = events[:6]
        body = "\n".join(f"data: {e[:200]}" for e in shown)
        if len(events) > len(shown):
            body += f"\n... ({len(events)} events in all)"
    else:
        body = content[:EXCERPT_BODY_CHARS].decode("utf-8", errors="replace")
        if len(content) > EXCERPT_BODY_CHARS:
            body += f"... ({len(content)} bytes in all)"
    if body:
        lines += ["", redact(body)]
    return "\n".join(lines)


def iter_sse_data(lines: Iterator[str]) -> Iterator[str]:
    """The ``data`` of each server-sent event (multi-line data joined with newlines; comments ignored)."""
    data: list[str] = []
    for line in lines:
        if line == "":
            if data:
                yield "\n".join(data)
            data = []
        elif line.startswith(":"):
            continue
        else:
            name, _, value = line.partition(":")
            if name == "data":
                data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


class HttpClient:
    """Requests to one target, through its guard; the key goes only to URLs under the base URL."""

    def __init__(
        self,
        base_url: str,
        auth_headers: Mapping[str, str],
        guard: RequestGuard,
        *,
        timeout: float,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.auth_headers = dict(auth_headers)
        self.guard = guard
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["User-Agent"] = "aigen-conformance"
        self.sent = 0

    def url(self, path_or_url: str) -> str:
        """An absolute URL: paths are joined to the base URL."""
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return self.base_url + path_or_url

    def owns(self, url: str) -> bool:
        """Whether a URL is under the target's base URL (and may receive the key)."""
        return (
            url == self.base_url or url.startswith(self.base_url + "/") or url.startswith(self.base_url + "?")
        )

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        json_body: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        auth: bool = True,
        stream: bool = False,
        retries_on_429: int = 2,
    ) -> Exchange:
        """Send one request (waiting out a 429's Retry-After up to ``retries_on_429`` times)."""
        url = self.url(path_or_url)
        sent_headers = dict(headers or {})
        if auth and self.owns(url):
            sent_headers = {**self.auth_headers, **sent_headers}
        body = data
        if json_body is not None:
            body = json.dumps(json_body).encode()
            sent_headers.setdefault("Content-Type", "application/json")
        for attempt in range(retries_on_429 + 1):
            exchange = self._send(method, url, sent_headers, body, params, stream)
            hold = self.guard.observe(exchange.status, exchange.headers)
            if exchange.status != 429 or hold is None or attempt == retries_on_429:
                return exchange
        raise AssertionError("unreachable")

    def _send(
        self,
        method: str,
        url: str,
        headers: dict[str, str],
        body: bytes | None,
        params: Mapping[str, str] | None,
        stream: bool,
    ) -> Exchange:
        self.guard.acquire()
        self.sent += 1
        started = time.monotonic()
        response = self.session.request(
            method, url, headers=headers, data=body, params=params, timeout=self.timeout, stream=True
        )
        try:
            prepared_url = response.request.url or url
            media = response.headers.get("Content-Type", "").split(";")[0].strip().lower()
            events: list[str] | None = None
            if stream and media == "text/event-stream":
                events = self._read_events(response, started)
                content = "\n\n".join(f"data: {e}" for e in events).encode()
            else:
                content = response.content
        finally:
            response.close()
        return Exchange(
            method=method,
            url=prepared_url,
            request_headers=headers,
            request_body=body,
            status=response.status_code,
            headers=dict(response.headers),
            content=content,
            elapsed=time.monotonic() - started,
            events=events,
        )

    def _read_events(self, response: requests.Response, started: float) -> list[str]:
        events: list[str] = []
        lines = response.iter_lines(decode_unicode=True)
        for data in iter_sse_data(line if isinstance(line, str) else line.decode() for line in lines):
            events.append(data)
            if time.monotonic() - started > self.timeout:
                raise requests.Timeout(f"the event stream took longer than {self.timeout} s")
        return events

    def close(self) -> None:
        """Release pooled connections."""
        self.session.close()
