"""Fault injection: force a status, add latency or cut a stream for the next N matching calls."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, field
from typing import Any

from mockserver.errors import ApiError, ErrorKind

_KIND_BY_STATUS = {
    400: ErrorKind.INVALID_REQUEST,
    401: ErrorKind.UNAUTHORIZED,
    402: ErrorKind.PAYMENT_REQUIRED,
    403: ErrorKind.FORBIDDEN,
    404: ErrorKind.NOT_FOUND,
    405: ErrorKind.METHOD_NOT_ALLOWED,
    408: ErrorKind.REQUEST_TIMEOUT,
    413: ErrorKind.PAYLOAD_TOO_LARGE,
    429: ErrorKind.RATE_LIMITED,
    502: ErrorKind.UPSTREAM,
}


def kind_for_status(status: int) -> ErrorKind:
    """The neutral error kind closest to an HTTP status."""
    if status in _KIND_BY_STATUS:
        return _KIND_BY_STATUS[status]
    return ErrorKind.INTERNAL if status >= 500 else ErrorKind.INVALID_REQUEST


@dataclass(slots=True)
class Fault:
    """One injected fault; ``remaining`` counts down per matching call (None = until cleared)."""

    id: int
    provider: str | None
    operation_id: str | None
    remaining: int | None
    status: int | None = None
    message: str | None = None
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    latency_ms: float = 0.0
    cut_after_events: int | None = None

    def matches(self, provider: str, operation_id: str) -> bool:
        """Whether this fault applies to a call."""
        return (self.provider in (None, provider)) and (self.operation_id in (None, operation_id))

    def as_error(self) -> ApiError | None:
        """The forced error, rendered later by the provider's envelope (unless a raw body was given)."""
        if self.status is None:
            return None
        return ApiError(
            self.status,
            kind_for_status(self.status),
            self.message or "Injected fault.",
            headers=self.headers,
        )


class Faults:
    """The active faults, first match wins."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self._ids = itertools.count(1)

    def add(self, **spec: Any) -> Fault:
        """Register a fault; see ``Fault`` for the fields."""
        fault = Fault(id=next(self._ids), **spec)
        self._faults.append(fault)
        return fault

    def take(self, provider: str, operation_id: str) -> Fault | None:
        """The first fault matching a call, counted as used once."""
        if not self._faults:  # the usual case: this runs for every request
            return None
        for fault in self._faults:
            if fault.matches(provider, operation_id):
                if fault.remaining is not None:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        self._faults.remove(fault)
                return fault
        return None

    def list(self) -> list[dict[str, Any]]:
        """The active faults as dicts."""
        return [asdict(f) for f in self._faults]

    def clear(self) -> None:
        """Remove every fault."""
        self._faults.clear()
