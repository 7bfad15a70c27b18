"""Run every selected check against one provider deployment: preflight, schemathesis, behaviour checks."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import hypothesis.configuration
import requests

from conformance.checks import planned, run_check
from conformance.client import HttpClient, Redactor, RequestGuard
from conformance.context import Context
from conformance.profiles import profile
from conformance.report import check_line
from conformance.results import CheckResult, ProviderRun, Status
from conformance.runner import SchemaRun, schema_check_ids
from conformance.settings import Settings
from conformance.spec import OperationInfo, SpecInfo
from conformance.webhook_receiver import WebhookReceiver
from mockserver.core.spec import resolve

Progress = Callable[[str], None]
PREFLIGHT_ID = "conformance-preflight"
"""The id a preflight request asks for where its operation's path needs one (it need not exist)."""


def planned_checks(settings: Settings) -> list[str]:
    """The check ids a run will report, in order (known before anything is sent)."""
    return schema_check_ids(settings.selects) + [c.id for c in planned(settings.selects)]


def preflight_operation(spec: SpecInfo) -> tuple[OperationInfo, Any] | None:
    """The cheapest authenticated request the spec allows, and its JSON body (``None`` for a GET).

    An authenticated GET without path parameters (a listing), else one that reads a resource by id (a made-up
    id: 404 if the key is good), else any authenticated operation with an empty JSON object, which every
    request schema here refuses before anything is billed.
    """
    reads = [op for op in spec.operations if op.method == "GET" and not op.public]
    reads.sort(key=lambda op: op.path.replace("{organization_id}", "").count("{"))
    if reads:
        return reads[0], None
    writes = [op for op in spec.operations if not op.public and spec.request_schema(op) is not None]
    return (writes[0], {}) if writes else None


def _preflight(ctx: Context) -> str | None:
    """Why the run cannot go on: the target unreachable, or refusing the key; ``None`` when all is well."""
    found = preflight_operation(ctx.spec)
    base = ctx.settings.base
    try:
        if found is None:
            ctx.client.request("GET", base + "/", retries_on_429=0)
            return None
        op, body = found
        path = op.path.replace("{organization_id}", ctx.settings.org_id or PREFLIGHT_ID)
        path = re.sub(r"\{[^}]+\}", PREFLIGHT_ID, path)
        exchange = ctx.client.request(op.method, path, json_body=body, retries_on_429=0)
    except requests.ConnectionError as exc:
        return f"cannot connect to {base}: {type(exc).__name__}"
    except requests.Timeout:
        return f"{base} did not answer within {ctx.settings.timeout:g} s"
    except requests.RequestException as exc:
        return ctx.redact.text(f"cannot reach {base}: {exc}")
    if exchange.status in (401, 403):
        excerpt = exchange.content[:200].decode("utf-8", errors="replace").replace("\n", " ").strip()
        said = ctx.redact(excerpt)
        return (
            f"the target refused the API key ({exchange.status} to {op.method} {op.path}"
            + (f": {said}" if said else "")
            + "): check --api-key"
            + (" and --org-id" if "{organization_id}" in op.path else "")
        )
    return None


def _takes_a_model(spec: SpecInfo) -> bool:
    """Whether any request body names a model (``model`` or ``model_id``)."""
    for op in spec.operations:
        schema = resolve(spec.document, spec.request_schema(op) or {})
        if {"model", "model_id"} & set(schema.get("properties", {})):
            return True
    return False


def _notes(ctx: Context) -> list[str]:
    """What the user must know before the results: checks that need a model id the run cannot find."""
    if ctx.settings.models or ctx.spec.has("listModels") or not _takes_a_model(ctx.spec) or ctx.models():
        return []
    return [
        "the API cannot list its models and the spec gives no usable model id: pass --model ID "
        "(a model that works on the target), or the checks that need one will not run"
    ]


def _start_receiver(settings: Settings, spec: SpecInfo) -> WebhookReceiver | None:
    if settings.webhook_listen is None or not spec.document.get("webhooks"):
        return None
    host, port = settings.webhook_listen
    return WebhookReceiver(host, port, settings.webhook_public_url).start()


def run_provider(settings: Settings, progress: Progress | None = None) -> ProviderRun:
    """Check one provider deployment; never raises for what the target does (that is in the results)."""
    # Hypothesis keeps its example database and caches under its home: the user cache, not the cwd.
    hypothesis.configuration.set_hypothesis_home_dir(settings.hypothesis_home)
    try:
        return _run(settings, progress)
    finally:
        hypothesis.configuration.set_hypothesis_home_dir(None)


def _run(settings: Settings, progress: Progress | None) -> ProviderRun:
    started = time.monotonic()
    redact = Redactor(settings.secrets())
    run = ProviderRun(provider=settings.provider, base_url=settings.base)
    stage_of: Callable[..., None] | None = getattr(progress, "stage", None)

    def say(message: str) -> None:
        if progress is not None:
            progress(redact.text(f"[{settings.provider}] {message}"))

    spec = SpecInfo(settings.provider)
    guard = RequestGuard(
        settings.max_requests, rate_limit=settings.rate_limit, max_retry_after=settings.max_retry_after
    )
    client = HttpClient(settings.base, spec.auth_headers(settings.api_key), guard, timeout=settings.timeout)
    receiver = _start_receiver(settings, spec)
    ctx = Context(settings, profile(settings.provider), spec, guard, client, redact, receiver)
    schema_run: SchemaRun | None = None

    def violations() -> int:
        found = run.violations
        if schema_run is not None and not any(r.check.startswith("schema.") for r in run.results):
            found += schema_run.found()
        return found

    def stage(phase: str) -> None:
        if stage_of is not None:
            stage_of(settings.provider, phase, requests=lambda: guard.used, violations=violations)

    try:
        stage("preflight")
        run.fatal = _preflight(ctx)
        if run.fatal is not None:
            say(f"ERROR {run.fatal}")
            return run
        run.notes = _notes(ctx)
        for note in run.notes:
            say(f"note: {note}")
        schema_run = SchemaRun(ctx, say, on_phase=lambda phase: stage(f"schemathesis {phase}"))
        try:
            results = schema_run.run()
        except Exception as exc:  # schemathesis refusing the spec or its config must not end the whole run
            message = redact.text(f"schemathesis could not run: {type(exc).__name__}: {exc}")
            checks = schema_check_ids(settings.selects)
            results = [CheckResult(settings.provider, check, Status.ERROR, message) for check in checks]
        run.seed = schema_run.seed
        for result in results:
            say(check_line(result))
        run.results.extend(results)
        for check in planned(settings.selects):
            stage(check.id)
            result = run_check(ctx, check)
            say(check_line(result))
            run.results.append(result)
    finally:
        if receiver is not None:
            receiver.stop()
        client.close()
        run.warnings = list(ctx.warnings)
        run.requests = guard.used
        run.duration = time.monotonic() - started
        finish: Callable[[str], None] | None = getattr(progress, "finish", None)
        if finish is not None:
            finish(settings.provider)
    for warning in run.warnings:
        say(f"warning: {warning}")
    return run
