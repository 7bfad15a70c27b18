"""Rate limits: a fixed one-minute window per key, with the standard headers.

The state counts (``State.admit``, in the windows ``window_start`` names); this is the arithmetic.
"""

from __future__ import annotations

from dataclasses import dataclass

from mockserver.errors import ApiError, ErrorKind

WINDOW_SECONDS = 60
LIMIT_HEADER = "X-RateLimit-Limit"
REMAINING_HEADER = "X-RateLimit-Remaining"
RESET_HEADER = "X-RateLimit-Reset"


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


def window_start(now: float) -> int:
    """The start of the one-minute window ``now`` falls in (every backend counts in these windows)."""
    return int(now // WINDOW_SECONDS) * WINDOW_SECONDS
