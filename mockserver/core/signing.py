"""Signed, expiring URLs and webhook signing secrets, all keyed from one place: ``SigningKeys``.

By default the keys derive from 32 random bytes drawn at start, so nobody can forge a storage URL or a
webhook signature from the public seed; ``--signing-secret SECRET`` makes them stable across restarts.
Instances sharing a state sign alike: at start-up each proposes its secret and takes the one the state
keeps (``State.shared_secret``: the first instance's). ``--signing-secret seed`` derives them from the seed
as earlier versions did, for reproducible tests, and is refused off loopback. Different purposes never
accept each other's signatures.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from urllib.parse import quote, urlencode

from mockserver.errors import ConfigError
from mockserver.settings import SEED_SECRET, Settings
from mockserver.state.api import State

WEBHOOK_SECRET_PREFIX = "whsec_"


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


def seed_webhook_secret(seed: int, provider: str, api_key: str) -> str:
    """The ``whsec_`` secret of one API key derived from the seed alone (``--signing-secret seed``)."""
    digest = hmac.new(str(seed).encode(), f"{provider}:{api_key}".encode(), hashlib.sha256).digest()
    return WEBHOOK_SECRET_PREFIX + base64.b64encode(digest).decode()


class SigningKeys:
    """Every key the mock signs with, derived from one secret (or, for tests on loopback, from the seed)."""

    def __init__(self, secret: bytes | None, seed: int) -> None:
        self._secret = secret
        """``None``: derive from the seed."""
        self._seed = seed
        self._signers: dict[str, UrlSigner] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> SigningKeys:
        """Random per start unless ``signing_secret`` is set; ``ConfigError`` for seed keys off loopback."""
        if settings.signing_secret == SEED_SECRET:
            if not settings.loopback:
                raise ConfigError(
                    f"--signing-secret {SEED_SECRET} derives secrets from the public seed: "
                    f"only for a loopback --host, not {settings.host!r}"
                )
            return cls(None, settings.seed)
        if settings.signing_secret:
            return cls(settings.signing_secret.encode(), settings.seed)
        return cls(secrets.token_bytes(32), settings.seed)

    async def share(self, state: State) -> None:
        """Sign with the secret every instance sharing ``state`` uses (the first one's; seed-derived keys
        are the same everywhere already)."""
        if self._secret is None:
            return
        shared = bytes.fromhex(await state.shared_secret(self._secret.hex()))
        if shared != self._secret:
            self._secret = shared
            self._signers.clear()

    @property
    def from_seed(self) -> bool:
        """Whether the keys derive from the (public) seed."""
        return self._secret is None

    def _derive(self, label: str) -> bytes:
        assert self._secret is not None
        return hmac.new(self._secret, label.encode(), hashlib.sha256).digest()

    def url_signer(self, purpose: str) -> UrlSigner:
        """The signer of URLs for ``purpose`` (``"storage"``...); built once per purpose."""
        signer = self._signers.get(purpose)
        if signer is None:
            if self._secret is None:
                signer = UrlSigner.for_seed(self._seed, purpose)
            else:
                signer = UrlSigner(self._derive(f"mockserver-url-signing\n{purpose}"))
            self._signers[purpose] = signer
        return signer

    def webhook_secret(self, provider: str, api_key: str) -> str:
        """The ``whsec_`` secret deliveries caused by ``api_key`` are signed with."""
        if self._secret is None:
            return seed_webhook_secret(self._seed, provider, api_key)
        digest = self._derive(f"mockserver-webhook\n{provider}\n{api_key}")
        return WEBHOOK_SECRET_PREFIX + base64.b64encode(digest).decode()
