"""The snake_case error-code words ModelStudio and Artificial Studio share (both inferred in their specs)."""

from __future__ import annotations

from mockserver.errors import ErrorKind

ERROR_CODES = {
    ErrorKind.INVALID_REQUEST: "invalid_request",
    ErrorKind.UNAUTHORIZED: "unauthorized",
    ErrorKind.PAYMENT_REQUIRED: "payment_required",
    ErrorKind.FORBIDDEN: "forbidden",
    ErrorKind.SPEND_LIMIT: "forbidden",
    ErrorKind.NOT_FOUND: "not_found",
    ErrorKind.METHOD_NOT_ALLOWED: "method_not_allowed",
    ErrorKind.PAYLOAD_TOO_LARGE: "payload_too_large",
    ErrorKind.REQUEST_TIMEOUT: "request_timeout",
    ErrorKind.RATE_LIMITED: "rate_limited",
    ErrorKind.INTERNAL: "internal_error",
    ErrorKind.UPSTREAM: "internal_error",
    ErrorKind.UNAVAILABLE: "internal_error",
}
"""The code per neutral kind (``Error...code`` in both specs); a provider-specific ``ApiError.code`` wins."""
