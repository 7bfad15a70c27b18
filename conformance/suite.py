"""Run every selected check against one provider deployment: schemathesis phases, then behaviour checks."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

from conformance.checks import planned, run_check
from conformance.client import HttpClient, Redactor, RequestGuard
from conformance.context import Context
from conformance.profiles import profile
from conformance.report import check_line
from conformance.results import CheckResult, ProviderRun, Status
from conformance.runner import SchemaRun, schema_check_ids
from conformance.settings import Settings
from conformance.spec import SpecInfo
from conformance.webhook_receiver import WebhookReceiver

Progress = Callable[[str], None]


def planned_checks(settings: Settings) -> list[str]:
    """The check ids a run will report, in order (known before anything is sent)."""
    return schema_check_ids(settings.selects) + [c.id for c in planned(settings.selects)]


def _reachable(ctx: Context) -> str | None:
    """Why the target cannot be reached, or ``None`` when anything at all answers at its base URL."""
    try:
        ctx.client.request("GET", ctx.settings.base + "/", retries_on_429=0)
    except requests.ConnectionError as exc:
        return f"cannot connect to {ctx.settings.base}: {type(exc).__name__}"
    except requests.Timeout:
        return f"{ctx.settings.base} did not answer within {ctx.settings.timeout:g} s"
    except requests.RequestException as exc:
        return f"cannot reach {ctx.settings.base}: {exc}"
    return None


def _start_receiver(settings: Settings, spec: SpecInfo) -> WebhookReceiver | None:
    if settings.webhook_listen is None or not spec.document.get("webhooks"):
        return None
    host, port = settings.webhook_listen
    return WebhookReceiver(host, port, settings.webhook_public_url).start()


def run_provider(settings: Settings, progress: Progress | None = None) -> ProviderRun:
    """Check one provider deployment; never raises for what the target does (that is in the results)."""
    started = time.monotonic()
    redact = Redactor(settings.secrets())

    def say(message: str) -> None:
        if progress is not None:
            progress(redact(f"[{settings.provider}] {message}"))

    spec = SpecInfo(settings.provider)
    guard = RequestGuard(
        settings.max_requests, rate_limit=settings.rate_limit, max_retry_after=settings.max_retry_after
    )
    client = HttpClient(settings.base, spec.auth_headers(settings.api_key), guard, timeout=settings.timeout)
    run = ProviderRun(provider=settings.provider, base_url=settings.base)
    receiver = _start_receiver(settings, spec)
    ctx = Context(settings, profile(settings.provider), spec, guard, client, redact, receiver)
    try:
        run.fatal = _reachable(ctx)
        if run.fatal is not None:
            say(f"ERROR {run.fatal}")
            return run
        schema_run = SchemaRun(ctx, say)
        try:
            results = schema_run.run()
        except Exception as exc:  # schemathesis refusing the spec or its config must not end the whole run
            message = redact(f"schemathesis could not run: {type(exc).__name__}: {exc}")
            checks = schema_check_ids(settings.selects)
            results = [CheckResult(settings.provider, check, Status.ERROR, message) for check in checks]
        run.seed = schema_run.seed
        for result in results:
            say(check_line(result))
        run.results.extend(results)
        for check in planned(settings.selects):
            result = run_check(ctx, check)
            say(check_line(result))
            run.results.append(result)
    finally:
        if receiver is not None:
            receiver.stop()
        client.close()
        run.requests = guard.used
        run.duration = time.monotonic() - started
    return run
