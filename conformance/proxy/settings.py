"""The proxy's configuration: command-line options -> one frozen ``ProxySettings`` -> the app."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8090
MAX_BODY = 512 * 1024 * 1024
"""The largest request body forwarded (uploads of generated media included)."""


@dataclass(frozen=True, slots=True)
class ProxySettings:
    """One proxy: which provider's contract, where the upstream is, where to listen, what to write."""

    provider: str
    upstream: str
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    record: Path | None = None
    junit_xml: Path | None = None
    report: Path | None = None
    quiet: bool = False
    max_body: int = MAX_BODY
