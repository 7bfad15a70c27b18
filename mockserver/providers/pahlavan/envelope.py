"""Pahlavan's error envelope and the documented error codes the provider raises."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mockserver.errors import ApiError, ErrorKind

MODEL_NOT_FOUND = "MODEL_NOT_FOUND"
MODEL_INPUT_REQUIRED = "MODEL_INPUT_REQUIRED"
UPSTREAM_REQUEST_FAILED = "UPSTREAM_REQUEST_FAILED"

CODES = {
    ErrorKind.INVALID_REQUEST: "INVALID_REQUEST",
    ErrorKind.UNAUTHORIZED: "UNAUTHORIZED",
    ErrorKind.PAYMENT_REQUIRED: "INSUFFICIENT_BALANCE",
    ErrorKind.FORBIDDEN: "FORBIDDEN",
    ErrorKind.SPEND_LIMIT: "API_KEY_SPEND_LIMIT_EXCEEDED",
    ErrorKind.NOT_FOUND: "NOT_FOUND",
    ErrorKind.METHOD_NOT_ALLOWED: "METHOD_NOT_ALLOWED",
    ErrorKind.PAYLOAD_TOO_LARGE: "PAYLOAD_TOO_LARGE",
    ErrorKind.REQUEST_TIMEOUT: "REQUEST_TIMEOUT",
    # Pahlavan documents no rate limit and no code for one; only an injected fault can produce it.
    ErrorKind.RATE_LIMITED: "INTERNAL_ERROR",
    ErrorKind.INTERNAL: "INTERNAL_ERROR",
    ErrorKind.UPSTREAM: UPSTREAM_REQUEST_FAILED,
    ErrorKind.UNAVAILABLE: "INTERNAL_ERROR",
}
"""The spec's code per neutral kind (``details.code``); ``ApiError.code`` wins."""


def render_error(error: ApiError) -> dict[str, Any]:
    """`{"error": message, "details": {"code", "details"}}` (documented)."""
    return {
        "error": error.message,
        "details": {"code": error.code or CODES[error.kind], "details": dict(error.details)},
    }


def model_not_found(model_id: str, field: str = "model") -> ApiError:
    """404 MODEL_NOT_FOUND for an id the catalogue does not have."""
    return ApiError(
        404,
        ErrorKind.NOT_FOUND,
        f"Model '{model_id}' not found.",
        code=MODEL_NOT_FOUND,
        details={"model": model_id, "field": field},
    )


def input_required(name: str, model_type: str) -> ApiError:
    """400 MODEL_INPUT_REQUIRED for a request without the input its model type needs."""
    return ApiError(
        400,
        ErrorKind.INVALID_REQUEST,
        f"{name} {'are' if name.endswith('s') else 'is'} required for {model_type} models",
        code=MODEL_INPUT_REQUIRED,
        details={"input": name, "type": model_type},
    )


def upstream_failed(models: Sequence[str]) -> ApiError:
    """502 UPSTREAM_REQUEST_FAILED after every model of a chain failed upstream."""
    tried = ", ".join(models)
    return ApiError(
        502,
        ErrorKind.UPSTREAM,
        f"Upstream request failed for every model tried: {tried}.",
        code=UPSTREAM_REQUEST_FAILED,
        details={"models": list(models)},
    )
