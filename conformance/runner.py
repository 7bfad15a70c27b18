"""Schema conformance with schemathesis: examples, coverage and fuzzing phases over every operation.

Runs the engine behind ``st run`` (``schemathesis.engine.from_schema``) with a configuration built the way a
``schemathesis.toml`` would hold it, so every option is schemathesis' own and validated by it. A schema-scoped
``after_call`` hook counts each request against the budget, paces the next one (honouring ``Retry-After``)
and keeps the response for the envelope and rate-limit checks. Failures become one result per check.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.engine import events, from_schema

from conformance.checks import MAX_LISTED_VIOLATIONS
from conformance.client import Exchange, curl_command, response_excerpt
from conformance.context import Context
from conformance.infra import refusal
from conformance.results import CheckResult, Status, Violation
from conformance.settings import SCHEMA_PHASES

SCHEMA_CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "positive_data_acceptance",
    "missing_required_header",
    "unsupported_method",
    "ignored_auth",
)
"""The schemathesis checks the suite runs (each reported as ``schema.<name>``)."""
OTHER_CHECKS = (
    "use_after_free",
    "ensure_resource_availability",
    "object_level_authorization",
    "allow_header_conformance",
)
"""Schemathesis checks switched off: stateful or out of the issue's contract."""
NOT_A_SERVER_ERROR = ["2xx", "3xx", "4xx"]
"""schemathesis' own expected statuses for ``not_a_server_error``."""
POSITIVE_DEFAULT = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]
"""schemathesis' own expected statuses for positive data; 400 is added where the spec documents it."""
SCHEMA_SHARE = 0.75
"""Part of the request budget schemathesis may use; the rest is kept for the behaviour checks."""
MAX_STREAM_EVENTS = 100_000
"""Read whole event streams (schemathesis stops after 20 events by default)."""
OBSERVED_BODY_BYTES = 64 * 1024
ENGINE_PROBES = 2
"""Requests the engine's probing phase sends before any hook is registered for them."""
NO_WEBHOOK = "https://webhook.invalid/conformance"
"""Where generated requests point their webhook when no receiver runs (``.invalid`` never resolves)."""
Progress = Callable[[str], None]


def schema_check_ids(selects: Callable[[str], bool]) -> list[str]:
    """The ``schema.*`` check ids a selection includes."""
    return [f"schema.{name}" for name in SCHEMA_CHECKS if selects(f"schema.{name}")]


def _merge(target: dict[str, Any], extra: dict[str, Any]) -> None:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            _merge(target[key], value)
        else:
            target[key] = value


def checks_config(checks: list[str]) -> dict[str, Any]:
    """The checks part of the configuration: which checks run, and how much of a stream they read.

    Shared with the live-traffic proxy, which judges responses with the same checks.
    """
    return {
        "max-stream-events": MAX_STREAM_EVENTS,
        "checks": {name: {"enabled": name in checks} for name in SCHEMA_CHECKS + OTHER_CHECKS},
    }


def build_config(ctx: Context, checks: list[str]) -> dict[str, Any]:
    """The schemathesis configuration (``schemathesis.toml`` keys) for one provider run."""
    settings, spec = ctx.settings, ctx.spec
    phases: dict[str, Any] = {p: {"enabled": p in settings.phases} for p in SCHEMA_PHASES}
    phases["stateful"] = {"enabled": False}
    config: dict[str, Any] = {
        "base-url": settings.base,
        "headers": spec.auth_headers(settings.api_key),
        "workers": 1,
        **checks_config(checks),
        "request-timeout": settings.timeout,
        "generation": {
            "mode": "all",
            "max-examples": settings.max_examples,
            # The example database lives in the user cache (or --hypothesis-database), never the cwd; a seeded
            # run uses none, so that it reproduces exactly whatever earlier runs found.
            "database": "none" if settings.seed is not None else str(settings.hypothesis_home / "examples"),
            "deterministic": settings.seed is not None,
        },
        "phases": phases,
    }
    if settings.seed is not None:
        config["seed"] = settings.seed
    parameters: dict[str, Any] = {}
    if settings.org_id:
        parameters["organization_id"] = settings.org_id
    dictionaries: dict[str, Any] = {}
    models = ctx.models()
    if models:
        dictionaries["known-models"] = {"values": models}
        for name in ("model", "model_id"):
            parameters[f"body.{name}"] = {"dictionary": "known-models", "probability": 0.5}
    tools = sorted(
        {
            str(e["tool"])
            for op in spec.operations
            for e in spec.examples(op).values()
            if isinstance(e, dict) and isinstance(e.get("tool"), str)
        }
    )
    if tools:
        dictionaries["known-tools"] = {"values": tools}
        parameters["body.tool"] = {"dictionary": "known-tools", "probability": 0.5}
    if spec.document.get("webhooks"):
        # Generated requests must never make the target post to arbitrary hosts.
        receiver = ctx.receiver
        parameters["body.webhook"] = f"{receiver.public_url}/schemathesis" if receiver else NO_WEBHOOK
    if parameters:
        config["parameters"] = parameters
    if dictionaries:
        config["dictionaries"] = dictionaries
    overrides: dict[str, dict[str, Any]] = {}
    for op_id in ctx.profile.costly:
        if settings.spend == "none":
            overrides[op_id] = {"enabled": False}
        elif settings.spend == "minimal":
            # Documented examples are sent (each costs once); generated cases are negative, hence refused.
            negative = {"generation": {"mode": "negative"}}
            overrides[op_id] = {"phases": {"coverage": negative, "fuzzing": dict(negative)}}
    for op in spec.operations:
        # A documented server-side status other than 500 (e.g. 502 for a failed upstream) is behaviour the
        # spec promises, not a crash; 500 stays a violation everywhere.
        declared = [key for key in op.raw.get("responses", {}) if key.startswith("5") and key != "500"]
        if declared:
            statuses = [*NOT_A_SERVER_ERROR, *declared]
            allowed = {"checks": {"not_a_server_error": {"expected-statuses": statuses}}}
            _merge(overrides.setdefault(op.operation_id, {}), allowed)
    for op_id in ctx.profile.runtime_rejections:
        accepted = {"checks": {"positive_data_acceptance": {"expected-statuses": [*POSITIVE_DEFAULT, "400"]}}}
        _merge(overrides.setdefault(op_id, {}), accepted)
    if overrides:
        config["operations"] = [
            {"include-operation-id": op_id, **extra} for op_id, extra in overrides.items()
        ]
    return config


@dataclass(slots=True)
class _Tally:
    evaluated: int = 0
    violations: list[Violation] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    omitted: int = 0


def _flat(headers: Any) -> dict[str, str]:
    return {str(k): str(v[0] if isinstance(v, list) and v else v) for k, v in dict(headers or {}).items()}


class SchemaRun:
    """One schemathesis run against one provider, turned into ``schema.*`` results."""

    def __init__(
        self, ctx: Context, progress: Progress, on_phase: Callable[[str], None] | None = None
    ) -> None:
        self.ctx = ctx
        self.progress = progress
        self.on_phase = on_phase
        self.checks = schema_check_ids(ctx.settings.selects)
        self.tallies = {name.removeprefix("schema."): _Tally() for name in self.checks}
        self.errors: list[str] = []
        self.stopped: str | None = None
        self.unhooked = self._unhooked_requests()
        self.share = int(ctx.guard.max_requests * SCHEMA_SHARE) - self.unhooked
        self.seed: int | None = None
        self.phase_cases: dict[str, int] = {}
        self._stream: Any = None

    def run(self) -> list[CheckResult]:
        """Run the phases and return one result per selected schemathesis check."""
        if not self.checks:
            return []
        started, used = time.monotonic(), self.ctx.guard.used
        names = [name.removeprefix("schema.") for name in self.checks]
        config = SchemathesisConfig.from_dict(build_config(self.ctx, names))
        schema = schemathesis.openapi.from_path(self.ctx.spec.path, config=config)
        self.seed = config.seed
        schema.hooks.register_hook_with_name(self._after_call, "after_call")
        stream = from_schema(schema).execute()
        self._stream = stream
        try:
            for event in stream:
                self._handle(event)
        finally:
            self.ctx.guard.charge(self.unhooked)
        duration, requests = time.monotonic() - started, self.ctx.guard.used - used
        return [self._result(name, duration / max(1, len(names)), requests) for name in names]

    def _why_nothing(self) -> tuple[Status, str, str | None]:
        """Why a check evaluated no response: its status, the reason and the flag it needs."""
        costly = self.ctx.profile.costly
        all_costly = all(op.operation_id in costly for op in self.ctx.spec.operations)
        if self.ctx.settings.spend == "none" and all_costly:
            return Status.SKIP, "every operation costs money: run with --allow-spend", "--allow-spend"
        if self.stopped and "budget" in self.stopped:
            return Status.SKIP, "the request budget ran out first: raise --max-requests", "--max-requests"
        if self.stopped:
            return Status.SKIP, f"schemathesis stopped before reaching it: {self.stopped}", None
        return Status.NA, "no case this check applies to", None

    def _unhooked_requests(self) -> int:
        """An upper bound of the requests schemathesis sends outside ``after_call``.

        The probing phase sends two; ``ignored_auth`` re-sends one case per authenticated operation once
        without the key and once per security scheme with a wrong one.
        """
        count = ENGINE_PROBES
        if "schema.ignored_auth" in self.checks:
            for op in self.ctx.spec.operations:
                if not op.public:
                    count += 1 + len(op.raw.get("security", self.ctx.spec.document.get("security", [])))
        return count

    # -- engine hooks and events --------------------------------------------------------------------

    def _after_call(self, context: Any, case: Any, response: Any) -> None:
        guard = self.ctx.guard
        guard.account()
        request = response.request
        exchange = Exchange(
            method=str(request.method),
            url=str(request.url),
            request_headers=_flat(request.headers),
            request_body=request.body.encode() if isinstance(request.body, str) else request.body,
            status=int(response.status_code),
            headers=_flat(response.headers),
            content=bytes(response.content or b"")[:OBSERVED_BODY_BYTES],
        )
        operation = self.ctx.spec.find(str(case.operation.method).upper(), str(case.operation.path))
        self.ctx.observe(operation, exchange)
        hold = guard.observe(exchange.status, exchange.headers)
        if hold is not None and hold >= guard.max_retry_after:
            self._stop(f"the target asked to wait {hold:g} s or more (Retry-After)")
        if guard.used >= self.share:
            self._stop(f"schemathesis used its share ({self.share}) of the request budget")
        guard.wait_turn()

    def _stop(self, why: str) -> None:
        if self.stopped is None:
            self.stopped = why
            self.progress(f"schemathesis stopped: {why}")
        if self._stream is not None:
            self._stream.stop()

    def found(self) -> int:
        """Violations found so far (for the progress display)."""
        return sum(len(t.violations) + t.omitted for t in self.tallies.values())

    def _handle(self, event: Any) -> None:
        if isinstance(event, events.ScenarioFinished):
            self._scenario(event)
        elif isinstance(event, events.PhaseStarted) and event.phase.name.value in SCHEMA_PHASES:
            if event.phase.is_enabled and self.on_phase is not None:
                self.on_phase(event.phase.name.value)
        elif isinstance(event, events.PhaseFinished) and event.phase.name.value in SCHEMA_PHASES:
            name = event.phase.name.value
            if event.phase.is_enabled:
                self.progress(f"schemathesis {name} phase: {self.phase_cases.get(name, 0)} cases")
        elif isinstance(event, events.NonFatalError):
            self.errors.append(self.ctx.redact.text(f"{event.label}: {event.info.title}: {event.value}"))
        elif isinstance(event, events.FatalError):
            self.errors.append(self.ctx.redact.text(f"schemathesis failed: {event.exception}"))

    def _scenario(self, event: Any) -> None:
        recorder = event.recorder
        phase = event.phase.value
        self.phase_cases[phase] = self.phase_cases.get(phase, 0) + len(recorder.interactions)
        for case_id, nodes in recorder.checks.items():
            for node in nodes:
                tally = self.tallies.get(node.name)
                if tally is None:
                    continue
                tally.evaluated += 1
                if node.failure_info is not None:
                    self._failure(tally, node.name, recorder, case_id, node.failure_info.failure)

    def _failure(self, tally: _Tally, name: str, recorder: Any, case_id: str, failure: Any) -> None:
        case_id = failure.case_id or case_id
        interaction = recorder.interactions.get(case_id)
        node = recorder.cases.get(case_id)
        case = node.value if node is not None else None
        status = interaction.response.status_code if interaction and interaction.response else None
        operation = (
            self.ctx.spec.find(str(case.operation.method).upper(), str(case.operation.path)) if case else None
        )
        if self._refused_by_front_end(operation, interaction):
            return
        label = operation.label if operation else str(failure.operation)
        key = f"{label}|{failure.title}|{status}"
        if key in tally.seen:
            return
        tally.seen.add(key)
        if len(tally.violations) >= MAX_LISTED_VIOLATIONS:
            tally.omitted += 1
            return
        message = f"{failure.title}: {failure.message}".strip()
        schema_path = getattr(failure, "schema_path", None)
        if schema_path:
            message += f"\n(schema path: {'/'.join(map(str, schema_path))})"
        request = response = None
        redact = self.ctx.redact
        if interaction is not None:
            sent = interaction.request
            request = curl_command(sent.method, sent.uri, _flat(sent.headers), sent.body, redact)
            if interaction.response is not None:
                answer = interaction.response
                response = response_excerpt(
                    answer.status_code, _flat(answer.headers), answer.content or b"", redact
                )
        pointer = (
            operation.response_pointer(status)
            if operation and status
            else (operation.pointer if operation else None)
        )
        tally.violations.append(
            Violation(
                check=f"schema.{name}",
                operation=redact.text(label),
                message=redact.text(message[:2000]),
                request=request,
                response=response,
                location=self.ctx.spec.location(pointer) if pointer else None,
            )
        )

    def _refused_by_front_end(self, operation: Any, interaction: Any) -> bool:
        """Whether the failing answer came from a proxy refusing an over-long request (a warning, then)."""
        if interaction is None or interaction.response is None:
            return False
        sent, answer = interaction.request, interaction.response
        body = sent.body.encode() if isinstance(sent.body, str) else sent.body
        content_type = next((v for k, v in _flat(answer.headers).items() if k.lower() == "content-type"), "")
        media = content_type.split(";")[0].strip().lower()
        request = (str(sent.method), str(sent.uri), _flat(sent.headers), body)
        content = answer.content or b""
        found = refusal(self.ctx.spec, operation, request, int(answer.status_code), media, content)
        return found is not None

    # -- results ------------------------------------------------------------------------------------

    def _result(self, name: str, duration: float, requests: int) -> CheckResult:
        tally = self.tallies[name]
        result = CheckResult(
            provider=self.ctx.settings.provider,
            check=f"schema.{name}",
            status=Status.PASS,
            violations=tally.violations,
            omitted=tally.omitted,
            duration=duration,
            requests=requests,
        )
        notes = []
        if tally.violations:
            result.status = Status.FAIL
        elif tally.evaluated == 0 and self.errors and not self.ctx.observed:
            result.status = Status.ERROR
            notes.append(self.errors[0])
        elif tally.evaluated == 0:
            result.status, why, result.needs = self._why_nothing()
            notes.append(why)
        if tally.evaluated:
            notes.append(f"{tally.evaluated} responses checked")
        if self.stopped:
            notes.append(f"stopped early: {self.stopped}")
        result.detail = "; ".join(notes)
        return result
