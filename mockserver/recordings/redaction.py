"""Redaction: what never reaches a recording (credential headers, secret values, URL signatures)."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import yaml

from mockserver import resources
from mockserver.recordings.model import REDACTED, REDACTED_IN_URL, RecordedEvent

CREDENTIAL_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "x-api-key",
        "api-key",
        "x-goog-api-key",
        "cookie",
        "set-cookie",
        "webhook-signature",
        "x-amz-security-token",
    }
)
"""Headers never recorded, whatever their value."""
HOP_BY_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "content-length",
        # Bodies are stored decoded, so an encoding header would describe bytes that are not there.
        "content-encoding",
        "host",
    }
)
"""Headers that describe one connection or the bytes on the wire, not the exchange: dropped."""
SIGNED_QUERY_NAMES = frozenset(
    {
        "signature",
        "sig",
        "token",
        "x-amz-signature",
        "x-goog-signature",
        "x-amz-security-token",
        "x-amz-credential",
        "access_token",
        "api_key",
        "apikey",
        "api-key",
    }
)
"""Query parameters whose values are redacted in any URL (signed URLs' signatures and tokens)."""

_SIGNED_QUERY = re.compile(
    r"(?i)((?<=[?&;])(?:" + "|".join(map(re.escape, sorted(SIGNED_QUERY_NAMES))) + r")=)[^&\s'\"#<>]+"
)


def redact_url(url: str) -> str:
    """``url`` (or any text holding URLs) with signed-URL signatures and tokens redacted, value only
    (``signature=%5BREDACTED%5D``: ``REDACTED_IN_URL``)."""
    return _SIGNED_QUERY.sub(rf"\g<1>{REDACTED_IN_URL}", url)


class Redactor:
    """Replaces the given secret values and URL signatures in text, bytes and JSON structures."""

    def __init__(self, secrets: Iterable[str], query_names: Iterable[str]) -> None:
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted({s for s in secrets if s and s.strip()}, key=len, reverse=True)
        self._query_names = frozenset(n.lower() for n in query_names) | SIGNED_QUERY_NAMES

    def text(self, value: str) -> str:
        for secret in self._secrets:
            value = value.replace(secret, REDACTED)
        return redact_url(value)

    def raw(self, value: bytes) -> bytes:
        for secret in self._secrets:
            value = value.replace(secret.encode(), REDACTED.encode())
        return value

    def json(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.json(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.json(v) for v in value]
        return value

    def headers(self, headers: Mapping[str, str], drop: frozenset[str]) -> dict[str, str]:
        return {
            name.lower(): self.text(str(value))
            for name, value in headers.items()
            if name.lower() not in drop and name.lower() not in CREDENTIAL_HEADERS
        }

    def query(self, pairs: Iterable[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        return tuple(
            (self.text(name), REDACTED if name.lower() in self._query_names and value else self.text(value))
            for name, value in pairs
        )

    def events(self, events: Iterable[RecordedEvent]) -> tuple[RecordedEvent, ...]:
        return tuple(
            RecordedEvent(
                t=e.t,
                data=self.text(e.data),
                event=None if e.event is None else self.text(e.event),
                id=None if e.id is None else self.text(e.id),
            )
            for e in events
        )

    def body(self, body: Any) -> Any:
        if isinstance(body, bytes | bytearray):
            return self.raw(bytes(body))
        return self.json(body)


def spec_credentials(provider: str) -> tuple[set[str], set[str]]:
    """The header and query names the provider's spec declares as ``apiKey`` security schemes."""
    headers: set[str] = set()
    query: set[str] = set()
    path = resources.spec_path(provider) if provider in resources.PROVIDER_IDS else None
    if path is None or not path.is_file():
        return headers, query
    with path.open(encoding="utf-8") as handle:
        # libyaml's loader when PyYAML has it: the specs are large, the pure-Python loader takes a second.
        spec = yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    schemes = (spec.get("components") or {}).get("securitySchemes") or {}
    for scheme in schemes.values():
        if (
            isinstance(scheme, dict)
            and scheme.get("type") == "apiKey"
            and isinstance(scheme.get("name"), str)
        ):
            (headers if scheme.get("in") == "header" else query).add(scheme["name"].lower())
    return headers, query
