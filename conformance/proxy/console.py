"""The proxy's console on stderr: a line per exchange, then a line per violation (``--quiet``: those only)."""

from __future__ import annotations

import sys
from typing import TextIO

from conformance.proxy.ledger import ExchangeRecord, Secrets, Violation


class Console:
    """Writes exchange and violation lines, redacted, flushed as they happen."""

    def __init__(self, secrets: Secrets, *, quiet: bool = False, stream: TextIO | None = None) -> None:
        self.secrets = secrets
        self.quiet = quiet
        self.stream = stream or sys.stderr

    def say(self, text: str) -> None:
        """One line (redacted), whatever ``--quiet`` says: the banner and the final verdict."""
        print(self.secrets.redact(text), file=self.stream, flush=True)

    def exchange(self, record: ExchangeRecord, violations: list[Violation]) -> None:
        """``POST /v1/chat/completions 200 12 ms 0 violations``, then each violation on its own line."""
        lines = [] if self.quiet else [exchange_line(record)]
        lines += [violation_line(v) for v in violations]
        if lines:
            print(self.secrets.redact("\n".join(lines)), file=self.stream, flush=True)


def exchange_line(record: ExchangeRecord) -> str:
    """One exchange: method, path, status, milliseconds, violations (or why the upstream gave no answer)."""
    if record.error:
        where = f"#{record.id} {record.method} {record.path} 502 {record.ms:.0f} ms"
        return f"{where} upstream unreachable: {record.error}"
    count = f"{record.violations} violation{'s' if record.violations != 1 else ''}"
    line = f"#{record.id} {record.method} {record.path} {record.status} {record.ms:.0f} ms {count}"
    return f"{line} ({record.note})" if record.note else line


def violation_line(violation: Violation) -> str:
    """``  ! #3 createChatCompletion streaming.events #/paths/... [response] the last event is not...``."""
    found = violation.finding
    return (
        f"  ! #{violation.exchange} {violation.operation} {found.check} {found.pointer} "
        f"[{found.side}] {found.message}"
    )
