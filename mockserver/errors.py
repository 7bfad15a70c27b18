"""Errors of the mock server.

Internal exceptions share one root::

    MockError            root of every exception the mock raises on purpose
    ├── SpecError        a spec cannot be loaded or compiled (raised at start, never per request)
    ├── FixtureError     the seed fixtures are missing or malformed (raised at start or on reset)
    ├── ClientGone       the client closed the connection before its request was read (not an error)
    ├── ConfigError      settings the mock refuses to serve (off loopback: seed secrets, or no control token)
    ├── StateError       the state backend failed (counted by the metrics; a request meeting it gets the
    │                    provider's 503: ``ErrorKind.UNAVAILABLE``)
    └── ApiError         an HTTP-facing error; pure data (status, kind, message, code, details), rendered
                         into the provider's own envelope at one boundary (``core.pipeline``)

``ErrorKind`` is the provider-neutral vocabulary the core speaks; each provider maps a kind to its own
words (``type``, ``code``) in its envelope. A provider-specific code (e.g. Pahlavan's ``MODEL_NOT_FOUND``)
travels in ``ApiError.code`` and wins over the mapping.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any


class MockError(Exception):
    """Root of the mock server's exceptions."""


class SpecError(MockError):
    """A spec cannot be loaded or compiled."""


class FixtureError(MockError):
    """The seed fixtures are missing or malformed."""


class ClientGone(MockError):
    """The client closed the connection before its request body arrived; nobody is left to answer."""


class ConfigError(MockError):
    """Settings the mock refuses to serve (seed-derived secrets, or no control token, off loopback)."""


class StateError(MockError):
    """The state backend failed (a lost connection, an unreadable record); never the client's fault."""


class ErrorKind(enum.Enum):
    """Provider-neutral kinds of HTTP-facing errors."""

    INVALID_REQUEST = "invalid_request"
    UNAUTHORIZED = "unauthorized"
    PAYMENT_REQUIRED = "payment_required"
    FORBIDDEN = "forbidden"
    SPEND_LIMIT = "spend_limit"
    """A known key may not spend more (its own limit), though its account could pay."""
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    REQUEST_TIMEOUT = "request_timeout"
    RATE_LIMITED = "rate_limited"
    INTERNAL = "internal"
    UPSTREAM = "upstream"
    UNAVAILABLE = "unavailable"
    """The mock's state backend cannot be reached (a 503 the client may retry), never the client's fault."""


class ApiError(MockError):
    """An error answered to the client: data, rendered by the provider's envelope."""

    def __init__(
        self,
        status: int,
        kind: ErrorKind,
        message: str,
        *,
        code: str | None = None,
        details: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.kind = kind
        self.message = message
        self.code = code
        self.details: dict[str, Any] = dict(details or {})
        self.headers: dict[str, str] = dict(headers or {})

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.kind.value}, {self.message!r}, code={self.code!r})"


def invalid_request(message: str, **details: Any) -> ApiError:
    """A 400 for input that breaks the contract."""
    return ApiError(400, ErrorKind.INVALID_REQUEST, message, details=details)


def unauthorized(message: str = "Invalid or missing API key.") -> ApiError:
    """A 401 for a missing or unknown credential."""
    return ApiError(401, ErrorKind.UNAUTHORIZED, message)


def forbidden(message: str, *, code: str | None = None) -> ApiError:
    """A 403 for a known credential that may not do this."""
    return ApiError(403, ErrorKind.FORBIDDEN, message, code=code)


def unavailable() -> ApiError:
    """The 503 a request gets when the state backend fails (``StateError``): retry shortly."""
    return ApiError(
        503,
        ErrorKind.UNAVAILABLE,
        "The service is temporarily unavailable. Please retry shortly.",
        headers={"Retry-After": "1"},
    )


def not_found(message: str, *, code: str | None = None, **details: Any) -> ApiError:
    """A 404 for an unknown resource or route."""
    return ApiError(404, ErrorKind.NOT_FOUND, message, code=code, details=details)
