"""Behaviour checks: one module per family, each exposing ``CHECKS``; this module runs them.

A check declares which spec it applies to (by the CONVENTIONS' operation ids and spec features, never by a
provider's name), and its ``run`` returns an ``Outcome``. Raising ``Skip`` skips it with a reason (and the
flag it ``needs``, if one would let it run); ``NotApplicable`` marks it as not applying to the spec;
``BudgetExhausted`` skips it because the request budget is spent; a network failure is an error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import requests

from conformance.client import BudgetExhausted
from conformance.context import Context, NotApplicable, Skip
from conformance.results import CheckResult, Status, Violation
from conformance.spec import SpecInfo

MAX_LISTED_VIOLATIONS = 10
"""Violations listed per check; further ones are only counted."""


@dataclass(slots=True)
class Outcome:
    """What a behaviour check found."""

    detail: str = ""
    violations: list[Violation] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    omitted: int = 0

    def add(self, violation: Violation, key: str | None = None) -> None:
        """Record a violation once per key (default: operation and message), listing at most a few."""
        key = key or f"{violation.operation}|{violation.message}"
        if key in self.seen:
            return
        self.seen.add(key)
        if len(self.violations) < MAX_LISTED_VIOLATIONS:
            self.violations.append(violation)
        else:
            self.omitted += 1


@dataclass(frozen=True, slots=True)
class BehaviourCheck:
    """One named behaviour check."""

    id: str
    title: str
    applies: Callable[[SpecInfo], str | None]
    """``None`` when the check applies to a spec, else why it does not."""
    run: Callable[[Context], Outcome]


def needs(*operation_ids: str) -> Callable[[SpecInfo], str | None]:
    """Applicability: the spec declares every one of these operations."""

    def applies(spec: SpecInfo) -> str | None:
        missing = [op for op in operation_ids if not spec.has(op)]
        return f"the spec has no {', '.join(missing)} operation" if missing else None

    return applies


def all_checks() -> list[BehaviourCheck]:
    """Every behaviour check, in the order they run (the rate-limit exhaustion last: it burns quota)."""
    from conformance.checks import (
        billing,
        envelope,
        extremes,
        jobs,
        listing,
        ratelimit,
        storage,
        streaming,
        usage,
        webhooks,
    )

    return [
        *envelope.CHECKS,
        *listing.CHECKS,
        *streaming.CHECKS,
        *usage.CHECKS,
        *jobs.CHECKS,
        *webhooks.CHECKS,
        *billing.CHECKS,
        *storage.CHECKS,
        *extremes.CHECKS,
        *ratelimit.CHECKS,
    ]


def planned(selected: Callable[[str], bool]) -> list[BehaviourCheck]:
    """The behaviour checks a run reports on (applicable or not) for a selection."""
    return [check for check in all_checks() if selected(check.id)]


def run_check(ctx: Context, check: BehaviourCheck) -> CheckResult:
    """Run one behaviour check and turn how it ended into a result."""
    started, sent = time.monotonic(), ctx.client.sent
    result = CheckResult(provider=ctx.settings.provider, check=check.id, status=Status.PASS)
    reason = check.applies(ctx.spec)
    try:
        if reason is not None:
            raise NotApplicable(reason)
        outcome = check.run(ctx)
    except NotApplicable as exc:
        result.status, result.detail = Status.NA, str(exc)
    except Skip as exc:
        result.status, result.detail, result.needs = Status.SKIP, str(exc), exc.needs
    except BudgetExhausted as exc:
        result.status, result.detail = Status.SKIP, f"not finished: {exc} (raise --max-requests)"
        result.needs = "--max-requests"
    except requests.RequestException as exc:
        result.status, result.detail = Status.ERROR, ctx.redact.text(f"{type(exc).__name__}: {exc}")
    else:
        result.violations, result.omitted = outcome.violations, outcome.omitted
        result.status = Status.FAIL if outcome.violations else Status.PASS
        result.detail = outcome.detail
    result.duration = time.monotonic() - started
    result.requests = ctx.client.sent - sent
    return result
