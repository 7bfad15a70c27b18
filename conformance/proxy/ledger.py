"""What the proxy saw: recent exchanges (a bounded ring), every violation, the secrets to keep out of both.

Every text that leaves the proxy (console, ``/_proxy/*`` answers, reports) goes through ``Secrets.redact``:
the credential values clients sent (learned as they pass) and signed-URL signatures, the value only.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from multidict import MultiMapping

from conformance.client import Exchange, Redactor
from conformance.proxy.checking import Finding
from mockserver.recordings import CREDENTIAL_HEADERS, SIGNED_QUERY_NAMES, redact_url

RECENT_EXCHANGES = 1000
"""Exchanges ``GET /_proxy/exchanges`` keeps (oldest dropped first)."""
MAX_VIOLATIONS = 10_000
"""Violations kept for ``GET /_proxy/violations`` and the reports; further ones are only counted."""
MAX_EVIDENCE_PER_CHECK = 10
"""Exchanges kept per check as the reports' evidence (request as curl, response excerpt)."""
MAX_SECRETS = 256
"""Credential values remembered for redaction."""


class Secrets:
    """The credential values seen so far, and the one redaction every output goes through."""

    def __init__(self, credential_headers: Iterable[str] = ()) -> None:
        self.headers = frozenset(CREDENTIAL_HEADERS | {h.lower() for h in credential_headers})
        self.values: set[str] = set()
        self._redactor = Redactor(())

    def learn(self, headers: Mapping[str, str], query: MultiMapping[str]) -> None:
        """Collect a request's credentials: credential headers (and their bearer tokens), URL signatures."""
        found = set()
        for name, value in headers.items():
            if name.lower() in self.headers and value:
                found.add(value)
                scheme, _, token = value.partition(" ")
                if scheme.lower() in ("bearer", "basic", "token") and token.strip():
                    found.add(token.strip())
        for name, value in query.items():
            if name.lower() in SIGNED_QUERY_NAMES and value:
                found.add(value)
        # A fuzzing client sends a new made-up key with every request: keep a bounded set (credential headers
        # are masked whole wherever requests are shown, whatever the set holds).
        if not found <= self.values and len(self.values) < MAX_SECRETS:
            self.values |= found
            self._redactor = Redactor(tuple(self.values))

    @property
    def redactor(self) -> Redactor:
        """The suite's redactor over the values seen so far."""
        return self._redactor

    def redact(self, text: str) -> str:
        """``text`` with every secret value and URL signature replaced by ``[REDACTED]`` (the value only)."""
        return redact_url(self._redactor.text(text))


@dataclass(slots=True)
class Violation:
    """One finding, placed: which exchange, which operation."""

    exchange: int
    operation: str
    finding: Finding

    def as_json(self) -> dict[str, Any]:
        """What ``GET /_proxy/violations`` lists."""
        return {
            "exchange": self.exchange,
            "operation": self.operation,
            "check": self.finding.check,
            "pointer": self.finding.pointer,
            "message": self.finding.message,
            "side": self.finding.side,
        }


@dataclass(slots=True)
class ExchangeRecord:
    """One exchange as ``GET /_proxy/exchanges`` lists it (already redacted)."""

    id: int
    method: str
    path: str
    operation: str
    status: int
    ms: float
    violations: int
    at: float
    error: str | None = None
    """Why the upstream gave no answer (the client got a 502)."""
    note: str | None = None
    """Why the exchange ended early (the client went away, the upstream broke off a stream)."""

    def as_json(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "id": self.id,
            "method": self.method,
            "path": self.path,
            "operation": self.operation,
            "status": self.status,
            "ms": round(self.ms, 1),
            "violations": self.violations,
            "at": self.at,
            **({"error": self.error} if self.error else {}),
            **({"note": self.note} if self.note else {}),
        }


@dataclass(slots=True)
class Ledger:
    """Everything the proxy saw since it started, bounded."""

    secrets: Secrets
    exchanges: deque[ExchangeRecord] = field(default_factory=lambda: deque(maxlen=RECENT_EXCHANGES))
    violations: list[Violation] = field(default_factory=list)
    dropped: int = 0
    """Violations beyond ``MAX_VIOLATIONS``, counted only."""
    counts: dict[str, int] = field(default_factory=dict)
    """Violations per check (all of them, kept or not)."""
    evidence: dict[str, list[tuple[Violation, Exchange]]] = field(default_factory=dict)
    checks: set[str] = field(default_factory=set)
    """Every check the proxy applied at least once (those with no violation pass in the reports)."""
    total: int = 0
    upstream_errors: int = 0
    _next_id: int = 0

    def next_id(self) -> int:
        """A new exchange id (1, 2, ...)."""
        self._next_id += 1
        return self._next_id

    def add(
        self, record: ExchangeRecord, operation: str, findings: list[Finding], exchange: Exchange | None
    ) -> list[Violation]:
        """Note one finished exchange and its findings; returns them as (redacted) violations."""
        made = []
        self.total += 1
        self.exchanges.append(record)
        if record.error:
            self.upstream_errors += 1
        for finding in findings:
            violation = Violation(record.id, operation, _redacted(finding, self.secrets))
            made.append(violation)
            self.counts[finding.check] = self.counts.get(finding.check, 0) + 1
            if len(self.violations) < MAX_VIOLATIONS:
                self.violations.append(violation)
            else:
                self.dropped += 1
            kept = self.evidence.setdefault(finding.check, [])
            if exchange is not None and len(kept) < MAX_EVIDENCE_PER_CHECK:
                kept.append((violation, exchange))
        return made

    @property
    def violation_count(self) -> int:
        """Every violation seen, listed or not."""
        return sum(self.counts.values())

    def recent(self) -> list[dict[str, Any]]:
        """The recent exchanges, oldest first."""
        return [record.as_json() for record in self.exchanges]

    def listed(self) -> list[dict[str, Any]]:
        """The kept violations, in the order seen."""
        return [violation.as_json() for violation in self.violations]

    def stamp(self) -> float:
        """Now, as the exchanges' ``at`` (Unix seconds)."""
        return round(time.time(), 3)


def _redacted(finding: Finding, secrets: Secrets) -> Finding:
    return Finding(finding.side, finding.check, finding.pointer, secrets.redact(finding.message))
