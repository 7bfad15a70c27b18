"""The request journal and the record of spec violations the mock itself committed."""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any, NamedTuple

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


class Journal:
    """A bounded log of requests, newest last, and of responses that broke the spec."""

    def __init__(self, size: int = JOURNAL_SIZE) -> None:
        # Plain tuples, made into Entry only when read: recording runs for every request.
        self._entries: deque[tuple[Any, ...]] = deque(maxlen=size)
        self._ids = itertools.count(1)
        self.violations: deque[dict[str, Any]] = deque(maxlen=1000)

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

    def violation(self, provider: str, operation_id: str, status: int, problem: str) -> None:
        """Remember that the mock answered something its spec does not allow."""
        self.violations.append(
            {"provider": provider, "operation_id": operation_id, "status": status, "problem": problem}
        )

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
