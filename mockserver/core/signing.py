"""Signed, expiring URLs: an HMAC-SHA256 over newline-joined fields, keyed by a secret derived from the seed.

The secret depends only on the settings seed and a purpose string, so a restarted mock under the same seed
accepts the URLs it handed out before, and different purposes never accept each other's signatures.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote, urlencode


class UrlSigner:
    """Signs and checks the fields a signed URL stands for (method, key, expiry...)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    @classmethod
    def for_seed(cls, seed: int, purpose: str) -> UrlSigner:
        """A signer whose secret is derived from the settings seed and what the signatures are for."""
        return cls(hashlib.sha256(f"mockserver-url-signing\n{purpose}\n{seed}".encode()).digest())

    def sign(self, *fields: str | int) -> str:
        """Lowercase hex HMAC-SHA256 of the fields joined by newlines."""
        # Callers keep newlines out of the fields (they reject control characters), so the join is
        # unambiguous: no two field lists produce the same message.
        message = "\n".join(str(f) for f in fields).encode()
        return hmac.new(self._secret, message, hashlib.sha256).hexdigest()

    def verify(self, signature: str, *fields: str | int) -> bool:
        """Whether ``signature`` was made over exactly these fields (constant-time comparison)."""
        return hmac.compare_digest(self.sign(*fields).encode(), signature.encode())


def signed_url(base: str, **params: str | int) -> str:
    """``base?name=value&...`` with every value percent-encoded (``/`` included)."""
    return f"{base}?{urlencode(params, quote_via=quote, safe='')}"
