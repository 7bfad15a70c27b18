"""Request bodies for behaviour checks, made from the spec's documented examples.

A documented example names placeholder models (``<model-id>``) and hosts (``https://your-server.com``); these
turn it into a request the target can serve: placeholder model ids become known models of the body's
``type`` (when the model listing says which type each model is), placeholder lists are dropped, and any URI
field points at the suite's own webhook receiver, or at a ``.invalid`` host that never resolves.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from conformance.context import Context
from conformance.runner import NO_WEBHOOK
from conformance.spec import OperationInfo
from mockserver.core.spec import resolve

PLACEHOLDER = re.compile(r"[<>]|^your_|example|your-")
MODEL_FIELDS = ("model", "model_id")


def webhook_url(ctx: Context) -> str:
    """Where a generated request may point its webhook: the receiver, or a host that never resolves."""
    return f"{ctx.receiver.public_url}/conformance" if ctx.receiver else NO_WEBHOOK


def _uri_fields(ctx: Context, schema: Any) -> set[str]:
    """Top-level body properties declared as URIs (webhooks, callbacks)."""
    schema = resolve(ctx.spec.document, schema or {})
    return {
        name
        for name, prop in schema.get("properties", {}).items()
        if str(resolve(ctx.spec.document, prop).get("format", "")).startswith("uri")
    }


def fill(ctx: Context, op: OperationInfo, example: dict[str, Any], kind: str | None = None) -> dict[str, Any]:
    """A documented example made sendable: known models (of ``kind``, else the body's ``type``)."""
    body = copy.deepcopy(example)
    kind = kind if kind is not None else (body.get("type") if isinstance(body.get("type"), str) else None)
    for name in MODEL_FIELDS:
        if isinstance(body.get(name), str) and PLACEHOLDER.search(body[name]):
            models = ctx.models(kind)
            if models:
                body[name] = models[0]
    for name, value in list(body.items()):
        if isinstance(value, list) and any(isinstance(v, str) and PLACEHOLDER.search(v) for v in value):
            del body[name]
    for name in _uri_fields(ctx, ctx.spec.request_schema(op)):
        if name in body:
            body[name] = webhook_url(ctx)
    return body


def documented_bodies(ctx: Context, op: OperationInfo) -> list[tuple[str, dict[str, Any]]]:
    """``(example name, body)`` for every documented JSON example that is valid once filled."""
    schema = ctx.spec.request_schema(op)
    found = []
    for name, example in ctx.spec.examples(op).items():
        if not isinstance(example, dict):
            continue
        body = fill(ctx, op, example)
        if schema is None or not ctx.spec.errors(schema, body):
            found.append((name, body))
    return found
