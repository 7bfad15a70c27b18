"""Counting rate limits: a fixed one-minute window per key, with the standard headers."""

from __future__ import annotations

from dataclasses import dataclass

from mockserver.core.clock import Clock
from mockserver.errors import ApiError, ErrorKind

WINDOW_SECONDS = 60
LIMIT_HEADER = "X-RateLimit-Limit"
REMAINING_HEADER = "X-RateLimit-Remaining"
RESET_HEADER = "X-RateLimit-Reset"
Bucket = tuple[str, str]
"""Whose requests one window counts: (provider id, key id or ``ip:<address>``)."""
_UNSEEN = (-1, 0)
"""A bucket's (window start, requests counted) before its first request."""


@dataclass(slots=True)  # not frozen: a frozen init costs more, and one is made per request
class RateState:
    """The outcome of counting one request."""

    limit: int
    remaining: int
    reset: int
    exceeded: bool

    def headers(self) -> dict[str, str]:
        """The rate-limit headers every response carries."""
        return {
            LIMIT_HEADER: str(self.limit),
            REMAINING_HEADER: str(self.remaining),
            RESET_HEADER: str(self.reset),
        }

    def error(self, now: float) -> ApiError:
        """The 429 for an exhausted window, with ``Retry-After``."""
        retry_after = max(1, int(self.reset - now + 0.999))
        return ApiError(
            429,
            ErrorKind.RATE_LIMITED,
            "You've exceeded your rate limit. Please wait before retrying.",
            headers={"Retry-After": str(retry_after)},
        )


class RateLimiter:
    """Fixed-window counters keyed by bucket (an API key, or the client address without one)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._windows: dict[Bucket, tuple[int, int]] = {}
        self._window = _UNSEEN[0]
        """The newest window counted: every bucket of an older one counts from zero again."""

    def hit(self, bucket: Bucket, limit: int) -> RateState:
        """Count one request and report the window's state; requests over the limit are not counted."""
        window = int(self._clock.now() // WINDOW_SECONDS) * WINDOW_SECONDS
        if window != self._window:
            # A new minute: the old windows count nothing any more. Dropping them keeps the table to the
            # keys and addresses of one minute, however many clients came and went.
            self._windows.clear()
            self._window = window
        start, used = self._windows.get(bucket, _UNSEEN)
        if start != window:
            used = 0
        exceeded = used >= limit
        if not exceeded:
            used += 1
        self._windows[bucket] = (window, used)
        return RateState(limit, limit - used if used < limit else 0, window + WINDOW_SECONDS, exceeded)

    def reset(self) -> None:
        """Forget every window."""
        self._windows.clear()
        self._window = _UNSEEN[0]
