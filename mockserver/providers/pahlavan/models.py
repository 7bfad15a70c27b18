"""Pahlavan's model catalogue: the public listing, lookups, fallback chains and prices."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from mockserver.core.calls import Call, JsonReply, Reply
from mockserver.errors import invalid_request
from mockserver.providers.pahlavan.envelope import model_not_found, upstream_failed

PUBLIC_FIELDS = (
    "id",
    "object",
    "owned_by",
    "name",
    "type",
    "pricing",
    "requirements",
    "provider_capabilities",
)
"""The documented model fields, in listing order; seed-only fields (``available``) stay private."""
DEFAULT_MAX_TOKENS = 4096
"""Token budget of a language request that sets none, for a model without a ``max_tokens`` cap."""
DEFAULT_VIDEO_SECONDS = 5
"""Length of a video whose request sets no ``duration_seconds``."""

Model = dict[str, Any]


def public_model(record: Model) -> dict[str, Any]:
    """A catalogue record as the API shows it: documented fields only, null/empty ones omitted."""
    shown = {**record, "object": "model"}
    return {name: shown[name] for name in PUBLIC_FIELDS if shown.get(name) not in (None, "", [], {})}


async def list_models(call: Call) -> Reply:
    """``GET /api/v1/models``: filtered by ``type``, ``q`` (id or name substring) and ``limit``."""
    query = call.input.query
    kind, text, limit = query.get("type"), str(query.get("q") or "").lower(), int(query["limit"])
    found = [
        public_model(m)
        for m in call.state.models.values()
        if (kind is None or m.get("type") == kind)
        and (not text or text in str(m["id"]).lower() or text in str(m.get("name", "")).lower())
    ]
    return JsonReply({"object": "list", "data": found[:limit]})


def find_model(call: Call, model_id: str, *, kind: str, field: str = "model") -> Model:
    """A catalogue model of the requested ``type``: 404 MODEL_NOT_FOUND, or 400 for another type."""
    model = call.state.models.get(model_id)
    if model is None:
        raise model_not_found(model_id, field)
    if model.get("type") != kind:
        raise invalid_request(
            f"Model '{model_id}' is a {model.get('type')} model; the request's type is '{kind}'.",
            field="type",
            model=model_id,
        )
    return model


def available(model: Model) -> bool:
    """Whether the model answers upstream (the seed's ``available: false`` makes it fail)."""
    return model.get("available", True) is not False


def model_chain(call: Call, model_id: str, fallbacks: Sequence[str] | None, *, kind: str) -> list[Model]:
    """``[model, *models]`` as catalogue records; every id is checked before any is tried.

    So an unknown id anywhere in the chain is a client error (404) even when an earlier model answers.
    """
    chain = [find_model(call, model_id, kind=kind)]
    chain += [find_model(call, m, kind=kind, field=f"models[{i}]") for i, m in enumerate(fallbacks or ())]
    return chain


def first_available(chain: Sequence[Model]) -> Model:
    """The first model of a chain that answers upstream; 502 when every one fails."""
    for model in chain:
        if available(model):
            return model
    raise upstream_failed([str(m["id"]) for m in chain])


def _rate(model: Model, name: str) -> Decimal:
    # Through str() so a YAML float like 0.6 becomes exactly Decimal("0.6").
    return Decimal(str((model.get("pricing") or {}).get(name, 0)))


def token_budget(model: Model, requested: int | None) -> int:
    """The completion tokens a language request may use: its own ``max_tokens`` within the model's cap."""
    cap = (model.get("requirements") or {}).get("max_tokens")
    budget = requested or cap or DEFAULT_MAX_TOKENS
    return min(budget, cap) if cap else budget


def language_cost(model: Model, prompt_tokens: int, completion_tokens: int) -> Decimal:
    """USD for a language request's tokens at the model's per-million rates."""
    tokens = _rate(model, "input_per_1m_tokens") * prompt_tokens
    tokens += _rate(model, "output_per_1m_tokens") * completion_tokens
    return tokens / 1_000_000


def image_cost(model: Model, images: int) -> Decimal:
    """USD for ``images`` images."""
    return _rate(model, "per_image") * images


def video_cost(model: Model, seconds: int) -> Decimal:
    """USD for ``seconds`` of video."""
    return _rate(model, "per_second") * seconds
