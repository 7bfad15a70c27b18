"""``POST /api/v1/generations``: one endpoint for language, image and video requests, billed per request."""

from __future__ import annotations

from typing import Any

from mockserver.core import billing, media
from mockserver.core.calls import Call, JsonReply, Reply
from mockserver.core.chat import generate_chat
from mockserver.core.textgen import prompt_tokens
from mockserver.errors import invalid_request
from mockserver.providers.pahlavan import videos
from mockserver.providers.pahlavan.charges import billing_fields, reserve
from mockserver.providers.pahlavan.envelope import input_required, model_not_found, upstream_failed
from mockserver.providers.pahlavan.models import (
    available,
    find_model,
    first_available,
    image_cost,
    language_cost,
    model_chain,
    token_budget,
)
from mockserver.providers.pahlavan.outputs import Owner, deliver

GENERATION_ID_PREFIX = "gen_"
IMAGES_PER_REQUEST = 1
"""The spec has no image-count setting: every image request renders one image."""


def _envelope(call: Call, generation_id: str, kind: str, model: str) -> dict[str, Any]:
    return {
        "id": generation_id,
        "object": "generation",
        "type": kind,
        "model": model,
        "created": int(call.now()),
        "status": "succeeded",
    }


async def create_generation(call: Call) -> Reply:
    """Dispatch on ``type``; the rules the schema cannot state are checked here."""
    body = call.body
    kind = body["type"]
    if body["model"] not in call.state.models:
        # An unknown model is reported before any rule about the rest of the request.
        raise model_not_found(body["model"])
    if kind != "language" and "models" in body:
        raise invalid_request(
            "'models' (a fallback chain) is only accepted for language requests.", field="models"
        )
    if kind != "video" and "async" in body:
        raise invalid_request("'async' is only accepted for video requests.", field="async")
    if kind == "language":
        return await _language(call)
    if kind == "image":
        return await _image(call)
    return await videos.create(call, unified=True)


async def _language(call: Call) -> Reply:
    """Answer the conversation with the first model of the chain that responds; bill its tokens."""
    body = call.body
    settings = body.get("settings") or {}
    chain = model_chain(call, body["model"], body.get("models"), kind="language")
    messages = body.get("messages")
    if not messages:
        raise input_required("messages", "language")
    model = first_available(chain)
    budget = token_budget(model, settings.get("max_tokens"))
    hold = await reserve(call, language_cost(model, prompt_tokens(messages), budget))
    result = generate_chat(
        call, model=model["id"], messages=messages, max_tokens=budget, id_prefix=GENERATION_ID_PREFIX
    )
    usage = result.usage()
    cost = language_cost(model, usage["prompt_tokens"], usage["completion_tokens"])
    charge = await billing.settle(call.services.state, hold, cost)
    return JsonReply(
        {
            **_envelope(call, result.id, "language", model["id"]),
            "output_text": result.completion.text,
            "usage": usage,
            "finish_reason": result.completion.finish_reason,
            **billing_fields(charge),
        }
    )


async def _image(call: Call) -> Reply:
    """Render the prompt as a PNG, deliver it (file store or storage) and bill it per image."""
    body = call.body
    model = find_model(call, body["model"], kind="image")
    prompt = body.get("prompt")
    if not prompt:
        raise input_required("prompt", "image")
    if not available(model):
        raise upstream_failed([model["id"]])
    cost = image_cost(model, IMAGES_PER_REQUEST)
    hold = await reserve(call, cost)
    generation_id = call.services.ids.new(GENERATION_ID_PREFIX)
    try:
        png = media.render_image(prompt, call.services.settings.seed)
        output = await deliver(
            call.services, Owner.of(call), png, media.PNG, f"{generation_id}.png", body.get("settings") or {}
        )
    except BaseException:
        await billing.release(call.services.state, hold)
        raise
    charge = await billing.settle(call.services.state, hold, cost)
    return JsonReply(
        {
            **_envelope(call, generation_id, "image", model["id"]),
            "output_urls": [output.url(call.origin)],
            **billing_fields(charge),
        }
    )
