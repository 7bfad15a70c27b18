"""The outcome of a run: one result per check, with the violations it found."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Status(StrEnum):
    """How a check ended."""

    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"


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
    """Why the run could not start (unreachable target, unusable spec...)."""

    @property
    def violations(self) -> int:
        """How many violations were found, listed or not."""
        return sum(len(r.violations) + r.omitted for r in self.results)

    def has(self, status: Status) -> bool:
        """Whether any check ended with this status."""
        return any(r.status is status for r in self.results)


def exit_code(runs: list[ProviderRun]) -> int:
    """0 when every target conforms, 1 when any violation was found, 2 when a target could not be checked."""
    if any(run.has(Status.FAIL) for run in runs):
        return 1
    if any(run.fatal or run.has(Status.ERROR) for run in runs):
        return 2
    return 0
