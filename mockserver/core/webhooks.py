"""At-least-once webhook delivery, signed the Standard Webhooks way, retried on the mock's clock.

Every delivery is a POST of compact JSON with ``webhook-id`` (the same on every attempt, so receivers can
de-duplicate), ``webhook-timestamp`` (epoch seconds of the mock clock at the attempt) and
``webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">`` keyed with the base64-decoded
part of a ``whsec_...`` secret. A 2xx acknowledges; anything else (another status, a connection error, a
timeout) is retried with exponential backoff and full jitter, drawn from ``random.Random("<rng seed>:<attempt
number>")`` (the rng seed derives from the server seed and the delivery id, so any instance draws the same),
until the attempts run out. Backoff waits are on the mock clock, so advancing it makes retries due at once;
``settle`` lets the control API answer only after the due attempts were made.

Deliveries live in the state (``DeliveryRecord``): each instance's loop claims a due one with a lease, makes
one attempt and puts it back with its next attempt time or its final status. An instance that dies
mid-attempt leaves the delivery to another once the lease ran out (at-least-once, same ``webhook-id``).

Where a delivery may go is ``core.egress``'s policy: a URL it refuses outright is refused by the provider
when the request arrives (``check_target``); a name resolving to a refused address makes the delivery
``refused`` without a connection. A receiver's reply is read up to ``REPLY_CAP`` bytes and the log keeps
the first ``EXCERPT_BYTES`` of it.

A state reset keeps pending deliveries running (at-least-once: what was promised is still delivered) and
keeps them listed (``pending`` before the reset, ``restore`` after); it forgets finished ones, as it
forgets the request journal.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import hashlib
import hmac
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web
from aiohttp.abc import AbstractResolver

from mockserver.core.egress import CheckedResolver, EgressPolicy, WebhookRefused
from mockserver.core.signing import WEBHOOK_SECRET_PREFIX, SigningKeys
from mockserver.core.spec import JSON_MEDIA_TYPE, SchemaValidator, Spec, resolve
from mockserver.errors import ApiError, StateError, invalid_request
from mockserver.state.api import State
from mockserver.state.records import AttemptRecord, DeliveryRecord

log = logging.getLogger("mockserver.webhooks")

USER_AGENT = "mockserver-webhooks"
LEASE_SECONDS = 30.0
"""How long (real seconds) a claimed delivery is this instance's: longer than any attempt may take."""
RECHECK_SECONDS = 1.0
"""The loop re-reads the state at least this often (real seconds): a lost notice only delays an attempt."""
POLL_SECONDS = 0.05
MAX_IN_FLIGHT = 256
"""Attempts one instance makes at once; more due ones wait for a free slot (or another instance)."""
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


def outcome_of(attempt: AttemptRecord) -> str:
    """What an attempt got: one of ``ATTEMPT_OUTCOMES``."""
    if attempt.refused:
        return "refused"
    return "delivered" if attempt.error is None else "rejected" if attempt.status is not None else "failed"


class WebhookDispatcher:
    """Schedules, signs, sends and retries webhook deliveries kept in the state."""

    def __init__(
        self,
        state: State,
        seed: int,
        keys: SigningKeys,
        egress: EgressPolicy,
        policy: RetryPolicy | None = None,
        on_violation: ViolationSink | None = None,
        *,
        lease_seconds: float = LEASE_SECONDS,
    ) -> None:
        self._state = state
        self._clock = state.clock
        self._seed = seed
        self._keys = keys
        self.egress = egress
        self.resolver: AbstractResolver | None = None
        """What host names are resolved with before the policy checks them (default: getaddrinfo)."""
        self.policy = policy or RetryPolicy()
        self.lease_seconds = lease_seconds
        # Without lost notices only a lease running out changes what is due unannounced: an idle mock then
        # wakes once a lease, not every second (each wake costs ~0.1 ms of CPU).
        self._recheck = lease_seconds if state.lossless_notices else RECHECK_SECONDS
        self._on_violation = on_violation
        self._schemas: dict[tuple[str, str], SchemaValidator] = {}
        self._attempting: dict[str, asyncio.Task[None]] = {}
        """Attempts this instance makes now, by delivery id."""
        self._session: aiohttp.ClientSession | None = None
        self._progress = asyncio.Event()
        """Set whenever an attempt here ended (the loop and ``settle`` wait on it)."""
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        """Set by ``stop``: the loop ends at its next turn even if a cancellation was lost."""
        self._counter = 0
        self.attempt_outcomes: Counter[str] = Counter()
        """Attempts made by this instance since start, by outcome (never reset: the metrics read it)."""

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
        """Open the HTTP client session and start the delivery loop (from the app's startup)."""
        self._open_session()
        if self._task is None:
            self._stopping = False
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="mockserver-webhooks")

    def _open_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            base = self.resolver or aiohttp.ThreadedResolver()
            # No DNS cache: every attempt resolves afresh and connects only to what was just checked.
            connector = aiohttp.TCPConnector(resolver=CheckedResolver(self.egress, base), use_dns_cache=False)
            # No decompression: the reply is only excerpted, and a small gzip body must not inflate.
            self._session = aiohttp.ClientSession(
                connector=connector, headers={"User-Agent": USER_AGENT}, auto_decompress=False
            )
        return self._session

    async def stop(self) -> None:
        """Stop the loop, cancel attempts in flight and close the session. Pending deliveries stay in the
        state: an instance sharing it (or this one, restarted on a durable state) delivers them later."""
        if self._task is not None:
            # The flag, then the cancellation: a cancellation that lands while the loop is in a state call
            # can come back as that call's error (the Redis client turns it into a connection error), which
            # the loop takes for an outage and survives; the flag ends it at its next turn (within the
            # re-check interval) all the same.
            self._stopping = True
            self._task.cancel()
            done, _ = await asyncio.wait({self._task}, timeout=RECHECK_SECONDS * 3)
            if not done:
                log.warning("the webhook loop did not stop in time; left behind")
            self._task = None
        attempts = list(self._attempting.values())
        with contextlib.suppress(StateError):
            if pending := len(await self.pending()):
                log.warning(
                    "left %d pending webhook deliver%s in the state", pending, "y" if pending == 1 else "ies"
                )
        for task in attempts:
            task.cancel()
        await asyncio.gather(*attempts, return_exceptions=True)
        self._attempting.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def pending(self) -> list[DeliveryRecord]:
        """Pending deliveries (read before a state reset, to ``restore`` them after it)."""
        return [d for d in await self._state.deliveries() if d.status == "pending"]

    async def restore(self, pending: list[DeliveryRecord], clock_shift: float = 0.0) -> None:
        """Put pending deliveries back after a state reset, moving their next attempt by ``clock_shift``
        (the clock jumped back to real time: the remaining wait is kept, not the absolute deadline)."""
        for delivery in pending:
            if delivery.next_attempt_at is not None:
                delivery.next_attempt_at += clock_shift
            await self._state.put_delivery(delivery)

    # -- deliveries -------------------------------------------------------------------------------

    async def deliver(
        self,
        url: str,
        payload: dict[str, Any],
        *,
        secret: str,
        provider: str,
        event: str,
        once: str | None = None,
    ) -> DeliveryRecord:
        """Schedule a delivery of ``payload`` to ``url`` now; returns it at once (status ``pending``).

        ``once`` names what the delivery reports (a job): a delivery already made for the same name is
        returned instead of a second one, so a job finished again (its instance died before storing it)
        does not send its webhook again under a new ``webhook-id``."""
        seed = self._seed
        if once is not None:
            name = f"{seed}:{provider}:{event}:{once}"
            made = await self._state.get_delivery(_delivery_id(name))
            if made is not None:
                return made
        else:
            self._counter += 1
            instance = self._state.instance
            # Instance 0 (memory) keeps the ids a seed always gave.
            name = f"{seed}:{self._counter}" if instance == 0 else f"{seed}:{instance}:{self._counter}"
        self._check(provider, event, payload)
        digest = _delivery_id(name).removeprefix("msg_")
        rng = hashlib.blake2b(f"{self._seed}:{digest}".encode(), digest_size=6).digest()
        now = self._clock.now()
        delivery = DeliveryRecord(
            id=_delivery_id(name),
            provider=provider,
            event=event,
            url=url,
            payload=payload,
            body=json.dumps(payload, separators=(",", ":"), ensure_ascii=False),
            secret=secret,
            created_at=now,
            next_attempt_at=now,
            # 48 bits: exact in every JSON reader and in Lua's doubles.
            rng_seed=int.from_bytes(rng),
        )
        await self._state.put_delivery(delivery)
        return delivery

    async def resend(self, delivery_id: str) -> DeliveryRecord | None:
        """Start a new attempt series for a finished delivery, with the same ``webhook-id``."""
        delivery = await self._state.get_delivery(delivery_id)
        if delivery is None or delivery.status == "pending":
            return delivery
        delivery.status = "pending"
        delivery.series_start = len(delivery.attempts)
        delivery.next_attempt_at = self._clock.now()
        await self._state.put_delivery(delivery)
        return delivery

    async def first_of_series(self, resent: DeliveryRecord, within: float | None = None) -> DeliveryRecord:
        """``resent`` as of its new series' first attempt once any instance made it (within ``within`` s),
        even when the series' retry, due a moment later (full jitter), was made before this read it."""
        first = resent.series_start + 1
        latest = resent

        async def made() -> bool:
            nonlocal latest
            latest = await self._state.get_delivery(resent.id) or latest
            return len(latest.attempts) >= first

        await self._until(made, within)
        return _as_of(latest, first) if len(latest.attempts) >= first else latest

    async def get(self, delivery_id: str) -> DeliveryRecord | None:
        """A delivery by id."""
        return await self._state.get_delivery(delivery_id)

    async def deliveries(self, provider: str | None = None) -> list[DeliveryRecord]:
        """Deliveries, oldest first, optionally of one provider."""
        return await self._state.deliveries(provider)

    async def settle(self, within: float | None = None) -> None:
        """Wait until every delivery due by the clock has made its attempt (for at most ``within`` s)."""

        async def settled() -> bool:
            due = await self._state.next_delivery_due()
            return not self._attempting and (due is None or due > self._clock.now())

        await self._until(settled, within)

    async def _until(self, done: Callable[[], Awaitable[bool]], within: float | None) -> None:
        """Until ``done()`` (asked after each attempt here, and every 0.2 s), for at most ``within`` s."""
        limit = self.policy.attempt_timeout + 1.0 if within is None else within
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(limit):
                while True:
                    self._progress.clear()
                    if self._task is None:
                        await self._claim_due()  # no loop running (tests driving it by hand)
                    if await done():
                        return
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(POLL_SECONDS * 4):
                            await self._progress.wait()

    def _check(self, provider: str, event: str, payload: dict[str, Any]) -> None:
        validator = self._schemas.get((provider, event))
        if validator is None or self._on_violation is None:
            return
        for path, message in validator.errors(payload):
            where = "/".join(map(str, path)) or "(root)"
            self._on_violation(provider, event, f"webhook payload {where}: {message}")
            log.warning("%s %s webhook payload outside its spec: %s: %s", provider, event, where, message)
            return

    # -- the delivery loop ------------------------------------------------------------------------

    async def _loop(self) -> None:
        changed = self._state.changed("deliveries")
        clock = self._state.changed("clock")
        while not self._stopping:
            # Cleared before re-reading: a change made while reading sets them again.
            changed.clear()
            clock.clear()
            self._progress.clear()
            due: float | None = None
            try:
                await self._claim_due()
                due = await self._state.next_delivery_due()
            except StateError:
                log.warning("the webhook loop cannot reach the state; retrying")
            await self._sleep(due, changed, clock, self._progress)

    async def _claim_due(self) -> None:
        """Claim due deliveries while this instance has room for more attempts, and start them."""
        while len(self._attempting) < MAX_IN_FLIGHT:
            delivery = await self._state.claim_delivery(self._clock.now(), self.lease_seconds)
            if delivery is None:
                return
            if delivery.id in self._attempting:
                continue  # already being attempted here; that attempt puts it back
            task = asyncio.get_running_loop().create_task(
                self._attempt_once(delivery), name=f"webhook-{delivery.id}"
            )
            self._attempting[delivery.id] = task
            task.add_done_callback(self._forget(delivery.id))

    def _forget(self, delivery_id: str) -> Callable[[asyncio.Task[None]], None]:
        def forget(task: asyncio.Task[None]) -> None:
            if self._attempting.get(delivery_id) is task:
                del self._attempting[delivery_id]

        return forget

    async def _sleep(self, due: float | None, *events: asyncio.Event) -> None:
        """Until ``due`` on the clock, one of ``events`` or ``_recheck`` seconds."""
        await self._clock.wait_any(due, events, self._recheck)

    async def _attempt_once(self, delivery: DeliveryRecord) -> None:
        """One attempt, then the delivery goes back to the state with its next time or final status."""
        try:
            attempt = await self._attempt(delivery)
            self.attempt_outcomes[outcome_of(attempt)] += 1
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
                rng = random.Random(f"{delivery.rng_seed}:{attempt.number}")
                attempt.backoff_seconds = self.policy.delay(made, rng)
                # From the clock after the attempt: it may have been advanced or reset meanwhile.
                delivery.next_attempt_at = self._clock.now() + attempt.backoff_seconds
                attempt.next_attempt_at = delivery.next_attempt_at
            delivery.attempts.append(attempt)
            await self._state.put_delivery(delivery)
        except StateError:
            # Not put back: the lease runs out and the attempt is made again (at-least-once).
            log.warning("webhook %s: the state is unreachable; the attempt is made again later", delivery.id)
            return
        finally:
            self._progress.set()
        if delivery.status != "pending":
            log.info(
                "webhook %s to %s %s after %d attempt(s)",
                delivery.id,
                urlsplit(delivery.url).hostname,
                delivery.status,
                len(delivery.attempts),
            )

    async def _attempt(self, delivery: DeliveryRecord) -> AttemptRecord:
        session = self._open_session()
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
            async with session.post(
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
            return AttemptRecord(number, at, None, 0.0, f"refused: {exc}", refused=True)
        except TimeoutError:
            error = f"timed out after {self.policy.attempt_timeout:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        except Exception as exc:
            # Anything else (a malformed URL, ...) is a failed attempt too, never a dead delivery loop.
            error = f"{type(exc).__name__}: {exc}"
        latency = round((time.perf_counter() - started) * 1000, 3)
        return AttemptRecord(number, at, status, latency, error, response_excerpt=excerpt)


def _as_of(delivery: DeliveryRecord, attempts: int) -> DeliveryRecord:
    """A copy of ``delivery`` as it was stored right after its first ``attempts`` attempts: each attempt
    records what ``_attempt_once`` decided (a 2xx succeeded, a refusal refused, no next time failed)."""
    last = delivery.attempts[attempts - 1]
    status = "refused" if last.refused else "succeeded" if last.error is None else "pending"
    if status == "pending" and last.next_attempt_at is None:
        status = "failed"
    return dataclasses.replace(
        delivery, attempts=delivery.attempts[:attempts], status=status, next_attempt_at=last.next_attempt_at
    )


def _delivery_id(name: str) -> str:
    return "msg_" + hashlib.blake2b(name.encode(), digest_size=12).hexdigest()


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
