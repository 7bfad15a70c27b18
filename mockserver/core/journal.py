"""What this process counts of the requests it answers, and the journal's shape and caps.

The journal itself (entries within two caps, a count and an approximate size in bytes, paths truncated
first; the spec violations the mock committed) lives in the state (``State.record``, ``journal_page``,
``add_violation``), shared by every instance. What stays here is per process: request totals (by provider,
operation, status and latency bucket, since start and never cleared: the metrics read them), the streams
open now, and the taps (the dashboard's live feed of this instance's traffic).
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, NamedTuple, Protocol

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


def violation(provider: str, operation_id: str, status: int, problem: str) -> dict[str, Any]:
    """A violation as the journal keeps it (a long description cut to ``MAX_PROBLEM_CHARS``)."""
    if len(problem) > MAX_PROBLEM_CHARS:
        problem = problem[:MAX_PROBLEM_CHARS] + TRUNCATED
    return {"provider": provider, "operation_id": operation_id, "status": status, "problem": problem}


class Journal:
    """This process's request totals, open streams and taps (the entries live in the state)."""

    def __init__(self) -> None:
        self.totals: dict[tuple[str, str | None, int], list[float]] = {}
        """Per (provider, operation, status) since start: requests per latency bucket (``LATENCY_BUCKETS_MS``,
        then +Inf), then the sum of their latencies in ms. Never cleared: counters only go up."""
        self.open_streams = 0
        """Event streams being written now (the pipeline counts them in and out)."""
        self.taps: list[Tap] = []
        """Listeners; empty unless a dashboard is connected (checking it is all the request path pays)."""

    def count(self, provider: str, operation_id: str | None, status: int, latency_ms: float) -> None:
        """Add one answered request to the totals (positional arguments: this runs for every request)."""
        # Plain list arithmetic, turned into metric families only when scraped.
        try:
            row = self.totals[provider, operation_id, status]
        except KeyError:
            row = self.totals[provider, operation_id, status] = [0.0] * _ROW
        row[bisect_left(LATENCY_BUCKETS_MS, latency_ms)] += 1
        row[-1] += latency_ms

    @staticmethod
    def new_row() -> list[float]:
        """A totals row of zeros: one count per latency bucket and +Inf, then the latency sum."""
        return [0.0] * _ROW

    def publish(self, entry: Entry, request: Any, response: Any) -> None:
        """Tell the taps about an entry just recorded (the caller checks ``taps`` first: usually empty)."""
        for tap in self.taps:
            tap.on_request(entry, request, response)

    def publish_violation(self, found: dict[str, Any]) -> None:
        """Tell the taps about a violation."""
        for tap in self.taps:
            tap.on_violation(found)

    def clear(self) -> None:
        """The journal was cleared: the taps forget what they captured (totals and open streams stay)."""
        for tap in self.taps:
            tap.clear()
