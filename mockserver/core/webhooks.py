"""At-least-once webhook delivery, signed the Standard Webhooks way, retried on the mock's clock.

Every delivery is a POST of compact JSON with ``webhook-id`` (the same on every attempt, so receivers can
de-duplicate), ``webhook-timestamp`` (epoch seconds of the mock clock at the attempt) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` keyed with the base64-decoded
part of a ``whsec_...`` secret. A 2xx acknowledges; anything else (another status, a connection error, a
timeout) is retried with exponential backoff and full jitter, drawn from a generator seeded by the server
seed and the delivery id, until the attempts run out. Backoff waits sleep on the mock clock, so advancing it
triggers retries at once; ``settle`` lets the control API answer only after the due attempts were made.

Where a delivery may go is ``core.egress``'s policy: a URL it refuses outright is refused by the provider
when the request arrives (``check_target``); a name resolving to a refused address makes the delivery
``refused`` without a connection. A receiver's reply is read up to ``REPLY_CAP`` bytes and the log keeps
the first ``EXCERPT_BYTES`` of it.

A state reset keeps pending deliveries running (at-least-once: what was promised is still delivered) and
keeps them listed; it forgets finished ones, as it forgets the request journal.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver

from mockserver.core.clock import Clock
from mockserver.core.egress import CheckedResolver, EgressPolicy, WebhookRefused
from mockserver.core.signing import WEBHOOK_SECRET_PREFIX, SigningKeys
from mockserver.core.spec import JSON_MEDIA_TYPE, SchemaValidator, Spec, resolve
from mockserver.errors import ApiError, invalid_request

log = logging.getLogger("mockserver.webhooks")

USER_AGENT = "mockserver-webhooks"
MAX_LOGGED = 1000
"""Finished deliveries kept in the log (pending ones are always kept)."""
REPLY_CAP = 64 * 1024
"""Bytes of a receiver's reply read at most (the connection is closed on the rest)."""
EXCERPT_BYTES = 512
"""Bytes of a receiver's reply kept in the delivery log."""

DeliveryStatus = Literal["pending", "succeeded", "failed", "refused"]
ViolationSink = Callable[[str, str, str], None]
"""Called with (provider, event, problem) when a payload breaks its spec."""
ATTEMPT_OUTCOMES = ("delivered", "rejected", "failed", "refused")
"""What an attempt got (counted for the metrics): a 2xx, another status, no answer (unreachable...)."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry: exponential backoff with full jitter, bounded attempts."""

    max_attempts: int = 6
    base_seconds: float = 2.0
    factor: float = 2.0
    cap_seconds: float = 60.0
    attempt_timeout: float = 5.0
    """Real seconds one attempt may take before it counts as timed out."""

    def delay(self, failed_attempts: int, rng: random.Random) -> float:
        """Seconds to wait after the n-th failure: uniform in [0, min(cap, base * factor^(n-1))]."""
        ceiling = min(self.cap_seconds, self.base_seconds * self.factor ** (failed_attempts - 1))
        return rng.uniform(0.0, ceiling)


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The ``webhook-signature`` value: ``v1,`` + base64 HMAC-SHA256 of ``"<id>.<timestamp>.<body>"``."""
    key = base64.b64decode(secret.removeprefix(WEBHOOK_SECRET_PREFIX))
    mac = hmac.new(key, f"{message_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def compile_webhooks(spec: Spec) -> dict[str, SchemaValidator]:
    """Validators of each webhook's JSON payload, by webhook name and by its operationId."""
    components = spec.document.get("components", {})
    validators: dict[str, SchemaValidator] = {}
    for name, item in spec.webhooks.items():
        operation = resolve(spec.document, item).get("post") or {}
        body = resolve(spec.document, operation.get("requestBody") or {})
        schema = body.get("content", {}).get(JSON_MEDIA_TYPE, {}).get("schema")
        if schema is not None:
            validator = SchemaValidator(schema, components)
            validators[name] = validator
            validators[str(operation.get("operationId", name))] = validator
    return validators


@dataclass(slots=True)
class Attempt:
    """One try at delivering."""

    number: int
    time: float
    status: int | None
    latency_ms: float
    error: str | None
    backoff_seconds: float | None = None
    """The drawn wait before the retry after this attempt (None when none follows)."""
    next_attempt_at: float | None = None
    """When the retry after this attempt is due (None when none follows)."""
    response_excerpt: str | None = None
    """The first ``EXCERPT_BYTES`` of the receiver's reply (None when none came)."""
    refused: bool = False
    """The policy refused the target: no connection was made."""

    @property
    def outcome(self) -> str:
        """One of ``ATTEMPT_OUTCOMES``."""
        if self.refused:
            return "refused"
        return "delivered" if self.error is None else "rejected" if self.status is not None else "failed"


@dataclass(slots=True)
class Delivery:
    """One webhook message and its attempts."""

    id: str
    provider: str
    event: str
    url: str
    payload: dict[str, Any]
    body: str
    secret: str = field(repr=False)
    created_at: float
    rng: random.Random = field(repr=False)
    status: DeliveryStatus = "pending"
    attempts: list[Attempt] = field(default_factory=list)
    next_attempt_at: float | None = None
    series_start: int = 0
    """Index of the first attempt of the current series (a manual re-send starts a new one)."""
    wake: asyncio.Event = field(default_factory=asyncio.Event, repr=False)

    def public(self) -> dict[str, Any]:
        """What the control API shows (never the secret)."""
        return {
            "id": self.id,
            "provider": self.provider,
            "event": self.event,
            "url": self.url,
            "status": self.status,
            "created_at": self.created_at,
            "next_attempt_at": self.next_attempt_at,
            "attempts": [
                {
                    "number": a.number,
                    "time": a.time,
                    "status": a.status,
                    "latency_ms": a.latency_ms,
                    "error": a.error,
                    "backoff_seconds": a.backoff_seconds,
                    "next_attempt_at": a.next_attempt_at,
                    "response_excerpt": a.response_excerpt,
                }
                for a in self.attempts
            ],
            "payload": self.payload,
        }


class WebhookDispatcher:
    """Schedules, signs, sends and retries webhook deliveries; keeps their log."""

    def __init__(
        self,
        clock: Clock,
        seed: int,
        keys: SigningKeys,
        egress: EgressPolicy,
        policy: RetryPolicy | None = None,
        on_violation: ViolationSink | None = None,
    ) -> None:
        self._clock = clock
        self._seed = seed
        self._keys = keys
        self.egress = egress
        self.resolver: AbstractResolver | None = None
        """What host names are resolved with before the policy checks them (default: getaddrinfo)."""
        self.policy = policy or RetryPolicy()
        self._on_violation = on_violation
        self._schemas: dict[tuple[str, str], SchemaValidator] = {}
        self._deliveries: dict[str, Delivery] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        self._progress = asyncio.Event()
        self._counter = 0
        self.attempt_outcomes: Counter[str] = Counter()
        """Attempts made since start, by outcome (never reset: the metrics read it)."""

    # -- configuration and lifecycle --------------------------------------------------------------

    def register(self, provider: str, validators: Mapping[str, SchemaValidator]) -> None:
        """Check payloads of ``provider``'s events against these schemas (from its spec)."""
        for event, validator in validators.items():
            self._schemas[(provider, event)] = validator

    def secret_for(self, provider: str, api_key: str) -> str:
        """The signing secret of deliveries caused by requests with ``api_key``."""
        return self._keys.webhook_secret(provider, api_key)

    def check_target(self, url: str, request: web.Request, field: str) -> None:
        """A 400 naming ``field`` for a webhook URL the policy refuses without DNS (called by providers)."""
        # The socket this request came in on is the mock's own address (its port, when bound to port 0).
        if request.transport is not None:
            self.egress.note_local(request.transport.get_extra_info("sockname"))
        try:
            self.egress.check_url(url)
        except WebhookRefused as exc:
            raise _refused(field, str(exc)) from None

    async def start(self) -> None:
        """Open the HTTP client session (from the app's startup)."""
        if self._session is None:
            base = self.resolver or aiohttp.ThreadedResolver()
            # No DNS cache: every attempt resolves afresh and connects only to what was just checked.
            connector = aiohttp.TCPConnector(resolver=CheckedResolver(self.egress, base), use_dns_cache=False)
            # No decompression: the reply is only excerpted, and a small gzip body must not inflate.
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": USER_AGENT}, auto_decompress=False
            )

    async def stop(self) -> None:
        """Cancel every delivery task and close the session (pending deliveries stay pending)."""
        if dropped := sum(d.status == "pending" for d in self._deliveries.values()):
            log.warning("dropped %d pending webhook deliver%s", dropped, "y" if dropped == 1 else "ies")
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def reset(self, clock_shift: float = 0.0) -> None:
        """Forget finished deliveries; keep pending ones, moving their next attempt by ``clock_shift``."""
        for delivery_id, delivery in list(self._deliveries.items()):
            if delivery.status != "pending":
                del self._deliveries[delivery_id]
            elif delivery.next_attempt_at is not None:
                # The clock jumped (back to real time): keep the remaining wait, not the absolute deadline.
                delivery.next_attempt_at += clock_shift
                delivery.wake.set()

    # -- deliveries -------------------------------------------------------------------------------

    def deliver(
        self, url: str, payload: dict[str, Any], *, secret: str, provider: str, event: str
    ) -> Delivery:
        """Schedule a delivery of ``payload`` to ``url`` now; returns it at once (status ``pending``)."""
        self._check(provider, event, payload)
        self._counter += 1
        digest = hashlib.blake2b(f"{self._seed}:{self._counter}".encode(), digest_size=12).hexdigest()
        delivery = Delivery(
            id="msg_" + digest,
            provider=provider,
            event=event,
            url=url,
            payload=payload,
            body=json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
            secret=secret,
            created_at=self._clock.now(),
            rng=random.Random(f"{self._seed}:{digest}"),
        )
        self._deliveries[delivery.id] = delivery
        self._prune()
        self._launch(delivery)
        return delivery

    def resend(self, delivery_id: str) -> Delivery | None:
        """Start a new attempt series for a finished delivery, with the same ``webhook-id``."""
        delivery = self._deliveries.get(delivery_id)
        if delivery is None or delivery.status == "pending":
            return delivery
        delivery.status = "pending"
        delivery.series_start = len(delivery.attempts)
        self._launch(delivery)
        return delivery

    def get(self, delivery_id: str) -> Delivery | None:
        """A delivery by id."""
        return self._deliveries.get(delivery_id)

    def deliveries(self, provider: str | None = None) -> list[Delivery]:
        """Deliveries, oldest first, optionally of one provider."""
        return [d for d in self._deliveries.values() if provider is None or d.provider == provider]

    async def settle(self, within: float | None = None) -> None:
        """Wait until every delivery due by the clock has made its attempt (for at most ``within`` s)."""
        limit = self.policy.attempt_timeout + 1.0 if within is None else within
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                while self._due():
                    self._progress.clear()
                    await self._progress.wait()

    def _due(self) -> bool:
        now = self._clock.now()
        return any(
            d.status == "pending" and d.next_attempt_at is not None and d.next_attempt_at <= now
            for d in self._deliveries.values()
        )

    def _check(self, provider: str, event: str, payload: dict[str, Any]) -> None:
        validator = self._schemas.get((provider, event))
        if validator is None or self._on_violation is None:
            return
        for path, message in validator.errors(payload):
            where = "/".join(map(str, path)) or "(root)"
            self._on_violation(provider, event, f"webhook payload {where}: {message}")
            log.warning("%s %s webhook payload outside its spec: %s: %s", provider, event, where, message)
            return

    def _prune(self) -> None:
        finished = [d.id for d in self._deliveries.values() if d.status != "pending"]
        for delivery_id in finished[: max(0, len(finished) - MAX_LOGGED)]:
            del self._deliveries[delivery_id]

    def _launch(self, delivery: Delivery) -> None:
        delivery.next_attempt_at = self._clock.now()
        task = asyncio.get_running_loop().create_task(self._run(delivery), name=f"webhook-{delivery.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- the delivery loop ------------------------------------------------------------------------

    async def _run(self, delivery: Delivery) -> None:
        while delivery.status == "pending":
            await self._wait_until_due(delivery)
            attempt = await self._attempt(delivery)
            self.attempt_outcomes[attempt.outcome] += 1
            made = len(delivery.attempts) + 1 - delivery.series_start
            if attempt.error is None:
                delivery.status = "succeeded"
                delivery.next_attempt_at = None
            elif attempt.refused:
                delivery.status = "refused"
                delivery.next_attempt_at = None
            elif made >= self.policy.max_attempts:
                delivery.status = "failed"
                delivery.next_attempt_at = None
            else:
                attempt.backoff_seconds = self.policy.delay(made, delivery.rng)
                # From the clock after the attempt: it may have been advanced or reset meanwhile.
                delivery.next_attempt_at = self._clock.now() + attempt.backoff_seconds
                attempt.next_attempt_at = delivery.next_attempt_at
            delivery.attempts.append(attempt)
            self._progress.set()
        log.info(
            "webhook %s to %s %s after %d attempt(s)",
            delivery.id,
            urlsplit(delivery.url).hostname,
            delivery.status,
            len(delivery.attempts),
        )

    async def _wait_until_due(self, delivery: Delivery) -> None:
        while delivery.next_attempt_at is not None and delivery.next_attempt_at > self._clock.now():
            delivery.wake.clear()
            sleeper = asyncio.ensure_future(self._clock.sleep_until(delivery.next_attempt_at))
            waker = asyncio.ensure_future(delivery.wake.wait())
            try:
                await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in (sleeper, waker):
                    waiter.cancel()
                await asyncio.gather(sleeper, waker, return_exceptions=True)

    async def _attempt(self, delivery: Delivery) -> Attempt:
        if self._session is None:
            await self.start()
        assert self._session is not None
        number = len(delivery.attempts) + 1
        at = self._clock.now()
        timestamp = int(at)
        headers = {
            "webhook-id": delivery.id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(delivery.secret, delivery.id, timestamp, delivery.body),
            "Content-Type": JSON_MEDIA_TYPE,
        }
        started = time.perf_counter()
        status: int | None = None
        error: str | None = None
        excerpt: str | None = None
        try:
            # Checked again at each attempt (a resend, a port learnt since); names in CheckedResolver.
            self.egress.check_url(delivery.url)
            async with self._session.post(
                delivery.url,
                data=delivery.body.encode(),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.policy.attempt_timeout),
                allow_redirects=False,
            ) as response:
                status = response.status
                excerpt = (await _read_capped(response))[:EXCERPT_BYTES].decode("utf-8", "replace")
            if not 200 <= status < 300:
                error = f"HTTP {status}"
        except WebhookRefused as exc:
            return Attempt(number, at, None, 0.0, f"refused: {exc}", refused=True)
        except TimeoutError:
            error = f"timed out after {self.policy.attempt_timeout:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:
            # Anything else (a malformed URL, ...) is a failed attempt too, never a dead delivery loop.
            error = f"{type(exc).__name__}: {exc}"
        latency = round((time.perf_counter() - started) * 1000, 3)
        return Attempt(number, at, status, latency, error, response_excerpt=excerpt)


async def _read_capped(response: aiohttp.ClientResponse) -> bytes:
    """At most ``REPLY_CAP`` bytes of the body; leaving the rest unread makes aiohttp close the connection."""
    body = bytearray()
    while len(body) < REPLY_CAP:
        chunk = await response.content.read(REPLY_CAP - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


def _refused(field: str, reason: str) -> ApiError:
    return invalid_request(
        f"Invalid field '{field}': the mock does not deliver webhooks there ({reason}).", field=field
    )
