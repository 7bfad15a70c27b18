"""The proxy's reports: what it saw as one ``ProviderRun`` (a result per check) for ``conformance.report``."""

from __future__ import annotations

from conformance.checks import MAX_LISTED_VIOLATIONS
from conformance.proxy.checking import Checker
from conformance.proxy.ledger import Ledger
from conformance.proxy.settings import ProxySettings
from conformance.report import summary, write_junit, write_markdown
from conformance.results import CheckResult, ProviderRun, Status, Violation

PROXY_CHECKS = (
    "request.operation",
    "request.security",
    "request.parameters",
    "request.body",
    "schema.status_code_conformance",
    "schema.response_headers_conformance",
    "schema.content_type_conformance",
    "schema.response_schema_conformance",
    "envelope.errors",
    "ratelimit.headers",
    "streaming.events",
    "usage.arithmetic",
    "billing.quote",
    "billing.charges",
)
"""Every check the proxy applies, in report order (request side first)."""


def provider_run(settings: ProxySettings, checker: Checker, ledger: Ledger, duration: float) -> ProviderRun:
    """A result per check: FAIL with its violations (and their evidence) or PASS; ``requests`` = exchanges."""
    redact = ledger.secrets.redactor
    run = ProviderRun(
        provider=settings.provider, base_url=settings.upstream, duration=duration, requests=ledger.total
    )
    run.notes.append(
        f"{ledger.total} exchanges checked through the proxy"
        + (
            f"; {ledger.upstream_errors} found the upstream unreachable (502)"
            if ledger.upstream_errors
            else ""
        )
    )
    checks = list(PROXY_CHECKS) + sorted(set(ledger.counts) - set(PROXY_CHECKS))
    for check in checks:
        count = ledger.counts.get(check, 0)
        result = CheckResult(provider=settings.provider, check=check, status=Status.PASS)
        reason = checker.applies(check)
        if reason is not None and not count:
            result.status, result.detail = Status.NA, reason
        elif count:
            listed = []
            for violation, exchange in ledger.evidence.get(check, [])[:MAX_LISTED_VIOLATIONS]:
                found = violation.finding
                listed.append(
                    Violation(
                        check=check,
                        operation=f"exchange #{violation.exchange} {violation.operation} ({found.side})",
                        message=ledger.secrets.redact(found.message),
                        request=ledger.secrets.redact(exchange.curl(redact)),
                        response=ledger.secrets.redact(exchange.excerpt(redact)),
                        location=checker.spec.location(found.pointer),
                    )
                )
            result.status, result.violations, result.omitted = Status.FAIL, listed, count - len(listed)
            result.detail = f"{count} in {ledger.total} exchanges"
        else:
            result.detail = f"{ledger.total} exchanges"
        run.results.append(result)
    return run


def write_reports(settings: ProxySettings, run: ProviderRun, ledger: Ledger) -> str:
    """Write ``--junit-xml`` and ``--report`` (when asked); returns the readable summary."""
    redact = ledger.secrets.redactor
    if settings.junit_xml:
        write_junit([run], settings.junit_xml, redact)
    if settings.report:
        write_markdown([run], settings.report, redact)
    return ledger.secrets.redact(summary([run], redact))
