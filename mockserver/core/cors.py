"""CORS response headers: which origins may read a response, and what they may see of it."""

from __future__ import annotations

from mockserver.settings import Settings

EXPOSED_HEADERS = "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After, Location"
ALLOWED_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


def allowed_origin(settings: Settings, origin: str) -> str | None:
    """The ``Access-Control-Allow-Origin`` value for a request from ``origin``, or None if not allowed."""
    if "*" in settings.cors_origins:
        return origin
    return origin if origin in settings.cors_origins else None


def response_headers(settings: Settings, origin: str | None) -> dict[str, str]:
    """The CORS headers of a response to a request from ``origin`` (none without CORS or an origin)."""
    if not settings.cors or not origin:
        return {}
    allowed = allowed_origin(settings, origin)
    if allowed is None:
        return {}
    return {
        "Access-Control-Allow-Origin": allowed,
        "Access-Control-Allow-Credentials": "true",
        "Access-Control-Expose-Headers": EXPOSED_HEADERS,
        "Vary": "Origin",
    }
