"""Authentication: read a credential the way the spec's security schemes say, and look the key up."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from mockserver.core.spec import Operation, SecurityScheme
from mockserver.errors import unauthorized
from mockserver.state.api import State
from mockserver.state.records import KeyRecord


def read_credential(scheme: SecurityScheme, headers: Mapping[str, str]) -> str | None:
    """The credential a request carries for one scheme, or None."""
    value = headers.get(scheme.header)
    if not value:
        return None
    if scheme.kind == "bearer":
        prefix, _, token = value.partition(" ")
        return token.strip() or None if prefix.lower() == "bearer" else None
    return value.strip() or None


class Authenticator:
    """Identifies the API key of a request under any of a provider's schemes."""

    def __init__(self, schemes: Iterable[SecurityScheme]) -> None:
        # One entry per distinct way of carrying a key, in declaration order.
        self.schemes = tuple({(s.kind, s.header): s for s in schemes}.values())

    async def identify(self, headers: Mapping[str, str], state: State, provider: str) -> KeyRecord | None:
        """The active key the request presents, if any (raises only the state's ``StateError``)."""
        for scheme in self.schemes:
            credential = read_credential(scheme, headers)
            if credential is not None:
                key = await state.find_key(provider, credential)
                if key is not None and not key.revoked:
                    return key
        return None

    def require(self, operation: Operation, key: KeyRecord | None, headers: Mapping[str, str]) -> None:
        """Raise 401 when the operation needs a key and the request has no valid one."""
        if operation.public or key is not None:
            return
        presented = any(read_credential(s, headers) for s in operation.security)
        if not presented:
            how = " or ".join(
                "'Authorization: Bearer <key>'" if s.kind == "bearer" else f"'{s.header}: <key>'"
                for s in operation.security
            )
            raise unauthorized(f"Missing API key: send it as {how}.")
        raise unauthorized("Invalid API key.")
