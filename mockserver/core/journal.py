"""The request journal, the record of spec violations the mock itself committed, and request totals.

The journal keeps the newest entries within two caps, a count and an approximate size in bytes (paths are
truncated first, so one entry stays small); reads are pages with a cursor. Totals (requests by provider,
operation, status and latency bucket) are kept apart, since start and never cleared: the metrics read them.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from operator import itemgetter
from typing import Any, NamedTuple, Protocol

from mockserver.settings import JOURNAL_BYTES, JOURNAL_ENTRIES

ENTRY_BYTES = 320
"""What one entry costs besides its path (its tuple, id, time, status and latency, the deque's slot), rounded
up from ``sys.getsizeof``; provider, method and operation strings are shared, not copied, per entry."""
MAX_PATH_CHARS = 2048
"""Longer paths are kept cut to this many characters, followed by ``TRUNCATED``."""
TRUNCATED = "...[truncated]"
VIOLATIONS = 1000
MAX_PROBLEM_CHARS = 2048
"""A violation's description (it can quote a whole response body) is kept cut to this many characters."""
LATENCY_BUCKETS_MS = tuple(
    float(ms) for ms in (0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
)
"""Upper bounds of the latency histogram's buckets (a last one, +Inf, takes the rest: long streams); floats,
which bisect compares faster than a mix with ints."""
_ROW = len(LATENCY_BUCKETS_MS) + 2
_PATH = itemgetter(4)


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


Recorder = Callable[[float, str, str, str, str | None, int, float], None]
"""``record(time, provider, method, path, operation_id, status, latency_ms)``."""


class Tap(Protocol):
    """Something told of each request and violation as it is recorded (the dashboard's live feed)."""

    def on_request(self, entry: Entry, request: Any, response: Any) -> None:
        """``request`` answered with ``response`` was recorded as ``entry``."""

    def on_violation(self, violation: dict[str, Any]) -> None:
        """A response broke the spec."""

    def clear(self) -> None:
        """The journal was cleared."""


class Journal:
    """A bounded log of requests, newest last, responses that broke the spec, and request totals."""

    def __init__(self, max_entries: int = JOURNAL_ENTRIES, max_bytes: int = JOURNAL_BYTES) -> None:
        # Plain tuples, made into Entry only when read: recording runs for every request. The deque drops
        # the oldest entry itself past the entry cap.
        self._entries: deque[tuple[Any, ...]] = deque(maxlen=max_entries)
        self._ids = itertools.count(1)
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._bytes = 0
        self.violations: deque[dict[str, Any]] = deque(maxlen=VIOLATIONS)
        self.totals: dict[tuple[str, str | None, int], list[float]] = {}
        """Per (provider, operation, status) since start: requests per latency bucket (``LATENCY_BUCKETS_MS``,
        then +Inf), then the sum of their latencies in ms. Never cleared: counters only go up."""
        self.open_streams = 0
        """Event streams being written now (the pipeline counts them in and out)."""
        self.taps: list[Tap] = []
        """Listeners; empty unless a dashboard is connected (checking it is all the request path pays)."""
        # When the entry cap full of the longest entries fits the byte cap (the defaults), the byte cap
        # cannot bind and each request skips the accounting (about 3,000 CPU instructions, measured).
        counted = max_entries * (ENTRY_BYTES + MAX_PATH_CHARS + len(TRUNCATED)) > max_bytes
        self.record: Recorder = self._record_counted if counted else self._record
        """Append one request and count it (positional arguments: this runs for every request)."""

    def __len__(self) -> int:
        return len(self._entries)

    def size(self) -> int:
        """The entries' approximate size in bytes: ``ENTRY_BYTES`` plus its path's length each."""
        entries = self._entries
        return ENTRY_BYTES * len(entries) + sum(map(len, map(_PATH, entries)))

    def _record(
        self,
        time: float,
        provider: str,
        method: str,
        path: str,
        operation_id: str | None,
        status: int,
        latency_ms: float,
    ) -> None:
        if len(path) > MAX_PATH_CHARS:
            path = path[:MAX_PATH_CHARS] + TRUNCATED
        self._entries.append(
            (next(self._ids), time, provider, method, path, operation_id, status, latency_ms)
        )
        # Plain list arithmetic, turned into metric families only when scraped.
        try:
            row = self.totals[provider, operation_id, status]
        except KeyError:
            row = self.totals[provider, operation_id, status] = [0.0] * _ROW
        row[bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1
        row[-1] += latency_ms

    def _record_counted(
        self,
        time: float,
        provider: str,
        method: str,
        path: str,
        operation_id: str | None,
        status: int,
        latency_ms: float,
    ) -> None:
        """``_record``, keeping the byte cap: the entries' size is kept up to date, the oldest go first."""
        entries = self._entries
        if len(entries) == self._max_entries:
            self._bytes -= ENTRY_BYTES + len(entries[0][4])  # the entry the append drops
        self._record(time, provider, method, path, operation_id, status, latency_ms)
        self._bytes += ENTRY_BYTES + len(entries[-1][4])  # its path as stored (cut when too long)
        while entries and self._bytes > self._max_bytes:
            self._bytes -= ENTRY_BYTES + len(entries.popleft()[4])

    def publish(self, request: Any, response: Any) -> None:
        """Tell the taps about the entry just recorded (the caller checks ``taps`` first: usually empty)."""
        entry = Entry(*self._entries[-1])
        for tap in self.taps:
            tap.on_request(entry, request, response)

    def violation(self, provider: str, operation_id: str, status: int, problem: str) -> None:
        """Remember that the mock answered something its spec does not allow."""
        if len(problem) > MAX_PROBLEM_CHARS:
            problem = problem[:MAX_PROBLEM_CHARS] + TRUNCATED
        violation = {"provider": provider, "operation_id": operation_id, "status": status, "problem": problem}
        self.violations.append(violation)
        for tap in self.taps:
            tap.on_violation(violation)

    def page(
        self, provider: str | None, limit: int, *, after: int | None = None, before: int | None = None
    ) -> tuple[list[dict[str, Any]], int | None]:
        """Up to ``limit`` entries as dicts, oldest first, and the cursor of the next page (None: no more).

        With ``after``, the oldest entries whose id is greater (and less than ``before``, if given); the
        next page is ``after`` the last one. Otherwise the newest entries whose id is less than ``before``
        (any id without it); the next page is ``before`` the first one, older.
        """
        entries = self._entries
        if not entries:
            return [], None
        stop = None
        if after is not None:
            walk = itertools.islice(entries, max(0, after + 1 - entries[0][0]), None)
            stop = before
        else:
            skip = 0 if before is None else max(0, entries[-1][0] + 1 - before)
            walk = itertools.islice(reversed(entries), skip, None)
        selected: list[tuple[Any, ...]] = []
        more = False
        for entry in walk:
            if stop is not None and entry[0] >= stop:
                break
            if provider is None or entry[2] == provider:
                if len(selected) == limit:
                    more = True
                    break
                selected.append(entry)
        if after is None:
            selected.reverse()
        cursor = (selected[-1][0] if after is not None else selected[0][0]) if more else None
        return [{**Entry(*e)._asdict(), "latency_ms": round(e[7], 3)} for e in selected], cursor

    def clear(self) -> None:
        """Forget every entry and violation (totals and open streams stay: they are counters)."""
        self._entries.clear()
        self._bytes = 0
        self.violations.clear()
        for tap in self.taps:
            tap.clear()
