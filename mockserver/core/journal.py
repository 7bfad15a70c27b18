"""The request journal and the record of spec violations the mock itself committed."""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any, NamedTuple, Protocol

JOURNAL_SIZE = 10_000


class Entry(NamedTuple):
    """One answered request (never its credentials or body)."""

    id: int
    time: float
    provider: str
    method: str
    path: str
    operation_id: str | None
    status: int
    latency_ms: float


class Tap(Protocol):
    """Something told of each request and violation as it is recorded (the dashboard's live feed)."""

    def on_request(self, entry: Entry, request: Any, response: Any) -> None:
        """``request`` answered with ``response`` was recorded as ``entry``."""

    def on_violation(self, violation: dict[str, Any]) -> None:
        """A response broke the spec."""

    def clear(self) -> None:
        """The journal was cleared."""


class Journal:
    """A bounded log of requests, newest last, and of responses that broke the spec."""

    def __init__(self, size: int = JOURNAL_SIZE) -> None:
        # Plain tuples, made into Entry only when read: recording runs for every request.
        self._entries: deque[tuple[Any, ...]] = deque(maxlen=size)
        self._ids = itertools.count(1)
        self.violations: deque[dict[str, Any]] = deque(maxlen=1000)
        self.taps: list[Tap] = []
        """Listeners; empty unless a dashboard is connected (checking it is all the request path pays)."""

    def record(
        self,
        time: float,
        provider: str,
        method: str,
        path: str,
        operation_id: str | None,
        status: int,
        latency_ms: float,
    ) -> None:
        """Append one request (positional arguments: this runs for every request)."""
        entry = (next(self._ids), time, provider, method, path, operation_id, status, latency_ms)
        self._entries.append(entry)

    def publish(self, request: Any, response: Any) -> None:
        """Tell the taps about the entry just recorded (the caller checks ``taps`` first: usually empty)."""
        entry = Entry(*self._entries[-1])
        for tap in self.taps:
            tap.on_request(entry, request, response)

    def violation(self, provider: str, operation_id: str, status: int, problem: str) -> None:
        """Remember that the mock answered something its spec does not allow."""
        violation = {"provider": provider, "operation_id": operation_id, "status": status, "problem": problem}
        self.violations.append(violation)
        for tap in self.taps:
            tap.on_violation(violation)

    def entries(self, provider: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """Entries as dicts, optionally for one provider and only the newest ``limit``."""
        entries = (Entry(*e) for e in self._entries)
        selected = [
            {**e._asdict(), "latency_ms": round(e.latency_ms, 3)}
            for e in entries
            if provider is None or e.provider == provider
        ]
        return selected[-limit:] if limit else selected

    def clear(self) -> None:
        """Forget every entry and violation."""
        self._entries.clear()
        self.violations.clear()
        for tap in self.taps:
            tap.clear()
