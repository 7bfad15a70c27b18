"""Rate limits (specs that declare X-RateLimit-* headers): headers on every response, a coherent window, 429s.

``ratelimit.headers`` needs no extra quota: it reads every response of the run and sends three cheap requests.
``ratelimit.exhaust`` provokes a 429 on purpose, so it runs only with ``--exhaust-rate-limit``.
"""

from __future__ import annotations

import time

from conformance.checks import BehaviourCheck, Outcome
from conformance.checks.envelope import problems
from conformance.client import Exchange
from conformance.context import Context, NotApplicable, Skip
from conformance.spec import RATE_LIMIT_HEADERS, OperationInfo, SpecInfo

LIMIT, REMAINING, RESET = RATE_LIMIT_HEADERS
CLOCK_SKEW = 5.0
"""Seconds of clock difference tolerated between the target and this machine."""
SEQUENCE = 3
EXHAUST_SLACK = 5
"""Requests sent beyond the announced Remaining before concluding that no 429 comes."""


def _applies(spec: SpecInfo) -> str | None:
    return None if spec.rate_limited() else "the spec declares no rate-limit headers"


def _int_header(exchange: Exchange, name: str) -> int | None:
    value = exchange.header(name)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def header_problems(exchange: Exchange) -> list[str]:
    """Missing or non-integer rate-limit headers."""
    found = []
    for name in RATE_LIMIT_HEADERS:
        value = exchange.header(name)
        if value is None:
            found.append(f"missing {name}")
        elif _int_header(exchange, name) is None or int(value) < 0:
            found.append(f"{name} is not a non-negative integer: {value!r}")
    return found


def cheap_request(ctx: Context) -> tuple[OperationInfo, dict[str, object] | None]:
    """A request that counts against the limit but costs nothing: a free read, else an invalid body."""
    free = [op for op in ctx.spec.operations if op.operation_id not in ctx.profile.costly and not op.public]
    free = [op for op in free if op.method == "GET" and "{" not in op.path]
    if free:
        return free[0], None
    body_ops = [op for op in ctx.spec.operations if ctx.spec.request_schema(op) is not None and not op.public]
    if not body_ops:
        raise NotApplicable("no authenticated operation to count requests against")
    # An empty object breaks every request schema here (they all require fields): rejected, never billed.
    return body_ops[0], {}


def _server_time(exchange: Exchange) -> float:
    from email.utils import parsedate_to_datetime

    date = exchange.header("date")
    if date:
        try:
            return parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError):
            pass
    return time.time()


def check_headers(ctx: Context) -> Outcome:
    """Headers on every response; Limit steady, Remaining decreasing, Reset in the future."""
    out = Outcome()
    for op, exchange in ctx.observed:
        for problem in header_problems(exchange):
            label = op or f"{exchange.method} {exchange.url}"
            out.add(ctx.violation("ratelimit.headers", label, problem, exchange), key=f"{label}|{problem}")
    op, body = cheap_request(ctx)
    sequence = [ctx.call(op, json_body=body, retries_on_429=0) for _ in range(SEQUENCE)]
    previous: Exchange | None = None
    for exchange in sequence:
        bad = header_problems(exchange)
        for problem in bad:
            out.add(ctx.violation("ratelimit.headers", op, problem, exchange))
        if bad:
            previous = None
            continue
        limit, remaining, reset = (int(exchange.header(n) or 0) for n in RATE_LIMIT_HEADERS)
        if remaining > limit:
            out.add(
                ctx.violation("ratelimit.headers", op, f"{REMAINING} {remaining} > {LIMIT} {limit}", exchange)
            )
        if reset + CLOCK_SKEW < _server_time(exchange):
            out.add(ctx.violation("ratelimit.headers", op, f"{RESET} {reset} is in the past", exchange))
        if previous is not None:
            p_limit, p_remaining, p_reset = (int(previous.header(n) or 0) for n in RATE_LIMIT_HEADERS)
            same_window = reset == p_reset
            if same_window and limit != p_limit:
                out.add(ctx.violation("ratelimit.headers", op, f"{LIMIT} changed within a window", exchange))
            if same_window and remaining >= p_remaining and exchange.status != 429:
                message = f"{REMAINING} did not decrease ({p_remaining} then {remaining}) within one window"
                out.add(ctx.violation("ratelimit.headers", op, message, exchange))
        previous = exchange
    out.detail = f"{len(ctx.observed)} responses of the run and {len(sequence)} in a row checked"
    return out


def check_exhaust(ctx: Context) -> Outcome:
    """Run the window dry: the 429 is in the envelope, with Retry-After and Remaining 0."""
    if not ctx.settings.exhaust_rate_limit:
        raise Skip(
            "provoking a 429 burns the key's quota: run with --exhaust-rate-limit",
            needs="--exhaust-rate-limit",
        )
    out = Outcome()
    op, body = cheap_request(ctx)
    first = ctx.call(op, json_body=body, retries_on_429=0)
    remaining = _int_header(first, REMAINING)
    if remaining is None:
        raise Skip(f"the response carries no usable {REMAINING}")
    if remaining + EXHAUST_SLACK > ctx.guard.remaining:
        raise Skip(
            f"exhausting needs about {remaining + EXHAUST_SLACK} requests: raise --max-requests",
            needs="--max-requests",
        )
    limited: Exchange | None = first if first.status == 429 else None
    sent, counted, window = 1, 1, _int_header(first, RESET)
    restarted = False
    while limited is None and counted <= remaining + EXHAUST_SLACK:
        exchange = ctx.call(op, json_body=body, retries_on_429=0)
        sent += 1
        counted += 1
        reset = _int_header(exchange, RESET)
        if exchange.status == 429:
            limited = exchange
        elif not restarted and window is not None and reset is not None and reset > window:
            # A new window began while the old one was being run dry: count again from its Remaining (once;
            # a window is long next to the time a run takes, so the second attempt fits in one).
            restarted, window = True, reset
            remaining = _int_header(exchange, REMAINING) or 0
            counted = 1
            if remaining + EXHAUST_SLACK > ctx.guard.remaining:
                raise Skip(
                    f"exhausting needs about {remaining + EXHAUST_SLACK} requests: raise --max-requests",
                    needs="--max-requests",
                )
    if limited is None:
        out.add(
            ctx.violation(
                "ratelimit.exhaust", op, f"no 429 after {sent} requests (Remaining was {remaining})"
            )
        )
        return out
    for problem in problems(ctx, limited) + header_problems(limited):
        out.add(ctx.violation("ratelimit.exhaust", op, problem, limited))
    retry_after = limited.header("retry-after")
    if retry_after is None or not retry_after.strip().isdigit():
        out.add(
            ctx.violation(
                "ratelimit.exhaust", op, f"Retry-After must be integer seconds: {retry_after!r}", limited
            )
        )
    if _int_header(limited, REMAINING) not in (0, None):
        out.add(ctx.violation("ratelimit.exhaust", op, f"{REMAINING} is not 0 on the 429", limited))
    out.detail = f"429 after {sent} requests; Retry-After {retry_after} s is honoured by the client"
    return out


CHECKS = [
    BehaviourCheck("ratelimit.headers", "Rate-limit headers on every response", _applies, check_headers),
    BehaviourCheck("ratelimit.exhaust", "429 in the envelope with Retry-After", _applies, check_exhaust),
]
