"""The outcome of a run: one result per check, with the violations it found, and the run's exit status.

Exit status (``exit_code``): 0 every check that applies ran and none found a violation; 1 violations; 2 a
usage, connection or authentication error (or a check that could not run because of one); 3 no violation,
but some checks were not run (each says which flag or fact it needs).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum

EXIT_CONFORMS = 0
EXIT_VIOLATIONS = 1
EXIT_ERROR = 2
EXIT_INCOMPLETE = 3


class Status(StrEnum):
    """How a check ended."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    """Not run: a flag or a fact it needs is missing (``needs`` names the flag when one would do)."""
    ERROR = "error"
    NA = "n/a"
    """Does not apply to this target's spec (no such operation, no rate-limit headers...): never counted."""


@dataclass(frozen=True, slots=True)
class Violation:
    """One way the target broke its contract, with what is needed to reproduce it."""

    check: str
    operation: str
    message: str
    request: str | None = None
    """The request as a curl command line (credentials redacted)."""
    response: str | None = None
    """An excerpt of the response: status line, a few headers, the start of the body."""
    location: str | None = None
    """The violated spec location, e.g. ``spaceai.yaml#/paths/~1v1~1models/get/responses/200``."""


@dataclass(slots=True)
class CheckResult:
    """One check against one provider."""

    provider: str
    check: str
    status: Status
    detail: str = ""
    """Why it was skipped or errored, or what it covered when it passed."""
    violations: list[Violation] = field(default_factory=list)
    duration: float = 0.0
    requests: int = 0
    omitted: int = 0
    """Violations found but not listed (repeats beyond the per-check cap)."""
    needs: str | None = None
    """For a skip: the flag that would let it run (``--allow-spend``, ``--model``...), if one would."""

    @property
    def ran(self) -> bool:
        """Whether the check ran to a verdict (pass or fail)."""
        return self.status in (Status.PASS, Status.FAIL)

    @property
    def not_run(self) -> bool:
        """Whether the check applies but was not run (skipped or errored)."""
        return self.status in (Status.SKIP, Status.ERROR)


@dataclass(slots=True)
class ProviderRun:
    """Every check against one provider."""

    provider: str
    base_url: str
    results: list[CheckResult] = field(default_factory=list)
    seed: int | None = None
    duration: float = 0.0
    requests: int = 0
    fatal: str | None = None
    """Why the run could not start (unreachable target, refused key, unusable spec...)."""
    warnings: list[str] = field(default_factory=list)
    """Answers that are not the API's violation (a proxy refusing an over-long request); never fail a run."""
    notes: list[str] = field(default_factory=list)
    """What the user should know before reading the results (e.g. that ``--model`` is needed)."""

    @property
    def violations(self) -> int:
        """How many violations were found, listed or not."""
        return sum(len(r.violations) + r.omitted for r in self.results)

    def has(self, status: Status) -> bool:
        """Whether any check ended with this status."""
        return any(r.status is status for r in self.results)

    def warn(self, message: str) -> None:
        """Record a warning once."""
        if message not in self.warnings:
            self.warnings.append(message)


def exit_code(runs: list[ProviderRun]) -> int:
    """0 every check ran, no violation; 1 violations; 2 a target could not be checked; 3 checks not run."""
    if any(run.has(Status.FAIL) for run in runs):
        return EXIT_VIOLATIONS
    if any(run.fatal or run.has(Status.ERROR) for run in runs):
        return EXIT_ERROR
    if any(run.has(Status.SKIP) for run in runs):
        return EXIT_INCOMPLETE
    return EXIT_CONFORMS


def _plural(count: int, one: str, many: str) -> str:
    return one if count == 1 else many


def not_run_summary(results: list[CheckResult]) -> str:
    """``3 need --allow-spend, 1 needs --webhook-listen, spaceai streaming.consistency: <why>``."""
    counts = Counter(r.needs for r in results if r.status is Status.SKIP and r.needs)
    parts = [f"{n} {_plural(n, 'needs', 'need')} {flag}" for flag, n in counts.most_common()]
    parts += [
        f"{r.provider} {r.check}: {r.detail or r.status.value}"
        for r in results
        if r.not_run and not (r.status is Status.SKIP and r.needs)
    ]
    return ", ".join(parts)


def verdict(runs: list[ProviderRun]) -> str:
    """The run's verdict in words, e.g. ``no violations in 9 checks; 6 not run: 3 need --allow-spend``."""
    code = exit_code(runs)
    results = [r for run in runs for r in run.results]
    ran = [r for r in results if r.ran]
    failed = [r for r in ran if r.status is Status.FAIL]
    not_run = [r for r in results if r.not_run]
    violations = sum(run.violations for run in runs)
    checks = f"{len(ran)} {_plural(len(ran), 'check', 'checks')}"
    if failed:
        text = (
            f"{violations} {_plural(violations, 'violation', 'violations')} in {len(failed)} of {checks} "
            f"({len(ran) - len(failed)} passed)"
        )
    else:
        text = f"no violations in {checks}"
    if not_run:
        text += f"; {len(not_run)} not run: {not_run_summary(not_run)}"
    fatal = [f"{run.provider}: {run.fatal}" for run in runs if run.fatal]
    if fatal:
        text += "; not checked: " + "; ".join(fatal)
    warnings = sum(len(run.warnings) for run in runs)
    if warnings:
        text += f"; {warnings} {_plural(warnings, 'warning', 'warnings')}"
    return f"{text} (exit {code})"
