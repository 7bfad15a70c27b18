"""Fault injection: force a status, add latency or cut a stream for the next N matching calls.

Faults live in the state (``State.add_fault``; ``State.admit`` takes the first matching one per request).
"""

from __future__ import annotations

from mockserver.errors import ApiError, ErrorKind
from mockserver.state.records import FaultRecord

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


def fault_error(fault: FaultRecord) -> ApiError | None:
    """The error a fault forces, rendered later by the provider's envelope (unless a raw body was given)."""
    if fault.status is None:
        return None
    return ApiError(
        fault.status, kind_for_status(fault.status), fault.message or "Injected fault.", headers=fault.headers
    )
