"""What every check of one provider run shares: settings, spec, HTTP client, observed responses, caches."""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from conformance.client import Exchange, HttpClient, Redactor, RequestGuard
from conformance.infra import refusal
from conformance.profiles import Profile
from conformance.results import Violation
from conformance.settings import Settings
from conformance.spec import OperationInfo, SpecInfo
from conformance.webhook_receiver import WebhookReceiver

MAX_OBSERVED = 5000
"""Responses kept from the schemathesis run for the envelope and rate-limit checks."""
_PLACEHOLDER = re.compile(r"[<>]|^your_|example")


class Skip(Exception):
    """A check cannot run: the message says why, ``needs`` the flag that helps."""

    def __init__(self, message: str, needs: str | None = None) -> None:
        super().__init__(message)
        self.needs = needs


class NotApplicable(Skip):
    """A check does not apply to this target's spec: not counted as run or as not run."""


@dataclass(slots=True)
class Context:
    """One provider run's shared state; checks read it and send requests through ``client``."""

    settings: Settings
    profile: Profile
    spec: SpecInfo
    guard: RequestGuard
    client: HttpClient
    redact: Redactor
    receiver: WebhookReceiver | None = None
    """The local webhook receiver, when ``--webhook-listen`` is given and the spec has webhooks."""
    observed: list[tuple[OperationInfo | None, Exchange]] = field(default_factory=list)
    """Responses schemathesis received (bounded), for checks that look at every response."""
    cache: dict[str, Any] = field(default_factory=dict)
    """Results one check computes and another reuses (e.g. the streamed and plain chat answers)."""
    lock: threading.Lock = field(default_factory=threading.Lock)
    warnings: list[str] = field(default_factory=list)
    """What is worth telling but is not the target's violation (a proxy refusing an over-long request)."""

    # -- evidence -----------------------------------------------------------------------------------

    def observe(self, operation: OperationInfo | None, exchange: Exchange) -> None:
        """Keep a response schemathesis received (not one a front end sent: that is only a warning)."""
        if self.refused(operation, exchange):
            return
        with self.lock:
            if len(self.observed) < MAX_OBSERVED:
                self.observed.append((operation, exchange))

    def refused(self, operation: OperationInfo | None, exchange: Exchange) -> bool:
        """Whether a front end refused this request as over-long (warned once per operation and status)."""
        request = (exchange.method, exchange.url, exchange.request_headers, exchange.request_body)
        found = refusal(self.spec, operation, request, exchange.status, exchange.media_type, exchange.content)
        if found is None:
            return False
        with self.lock:
            key = found.split(" [", 1)[0]
            if not any(w.startswith(key) for w in self.warnings):
                self.warnings.append(self.redact.text(found))
        return True

    def violation(
        self,
        check: str,
        operation: OperationInfo | str,
        message: str,
        exchange: Exchange | None = None,
        pointer: str | None = None,
    ) -> Violation:
        """A violation with the request as curl, a response excerpt and the spec location (all redacted)."""
        label = operation.label if isinstance(operation, OperationInfo) else operation
        if pointer is None and isinstance(operation, OperationInfo):
            pointer = operation.response_pointer(exchange.status) if exchange else operation.pointer
        return Violation(
            check=check,
            operation=self.redact.text(label),
            message=self.redact.text(message),
            request=exchange.curl(self.redact) if exchange else None,
            response=exchange.excerpt(self.redact) if exchange else None,
            location=self.spec.location(pointer) if pointer else None,
        )

    # -- permissions --------------------------------------------------------------------------------

    def require_spend(self, what: str) -> None:
        """Skip unless ``--allow-spend`` was given."""
        if self.settings.spend == "none":
            raise Skip(f"spending needed for {what}: run with --allow-spend", needs="--allow-spend")

    def require_operations(self, *operation_ids: str) -> list[OperationInfo]:
        """The operations a check needs, or skip when the spec lacks any of them."""
        found = [self.spec.operation(op) for op in operation_ids]
        missing = [op for op, info in zip(operation_ids, found, strict=True) if info is None]
        if missing:
            raise NotApplicable(f"the spec has no {', '.join(missing)} operation")
        return [info for info in found if info is not None]

    # -- requests -----------------------------------------------------------------------------------

    def path(self, op: OperationInfo, **params: str) -> str:
        """The operation's path with its parameters (the organization from ``--org-id``) filled in."""
        values = dict(params)
        if self.settings.org_id:
            values.setdefault("organization_id", self.settings.org_id)
        path = op.path
        for name, value in values.items():
            path = path.replace("{" + name + "}", value)
        if "{" in path:
            raise Skip(f"no value for a path parameter of {op.label}")
        return path

    def call(self, op: OperationInfo, *, params: Mapping[str, str] | None = None, **kwargs: Any) -> Exchange:
        """Send a request to an operation (path parameters from ``params``)."""
        return self.client.request(op.method, self.path(op, **(params or {})), **kwargs)

    # -- models -------------------------------------------------------------------------------------

    def models(self, kind: str | None = None) -> list[str]:
        """Model ids: the models endpoint's (narrowed to ``--model``), else ``--model``, else examples'."""
        listed = self._listed_models()
        if listed is not None:
            ids = [
                str(m["id"]) for m in listed if "id" in m and (kind is None or m.get("type", kind) == kind)
            ]
            return [m for m in self.settings.models if m in ids] if self.settings.models else ids
        return list(self.settings.models) or self._example_models()

    def _listed_models(self) -> list[dict[str, Any]] | None:
        if "models" in self.cache:
            cached: list[dict[str, Any]] | None = self.cache["models"]
            return cached
        listing: list[dict[str, Any]] | None = None
        op = self.spec.operation("listModels")
        if op is not None:
            exchange = self.call(op, auth=not op.public)
            body = exchange.json()
            if exchange.status == 200 and isinstance(body, dict) and isinstance(body.get("data"), list):
                listing = [m for m in body["data"] if isinstance(m, dict)]
        self.cache["models"] = listing
        return listing

    def _example_models(self) -> list[str]:
        found: list[str] = []
        for op in self.spec.operations:
            for example in self.spec.examples(op).values():
                if isinstance(example, dict):
                    for name in ("model", "model_id"):
                        value = example.get(name)
                        if isinstance(value, str) and not _PLACEHOLDER.search(value) and value not in found:
                            found.append(value)
        return found

    def model(self, kind: str | None = None) -> str:
        """One usable model id, or skip when none is known."""
        models = self.models(kind)
        if not models:
            what = f"{kind} model" if kind else "model"
            raise Skip(f"no {what} id is known for this target: pass --model", needs="--model")
        return models[0]
