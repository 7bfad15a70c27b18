"""``POST /api/v1/chat/completions``: OpenAI-style chat with a fallback chain, billed once per request.

A streamed completion is charged once, at its end. The settlement happens when the stream produces its
last JSON chunk, because that chunk carries the final billing fields: settling later (after the last
write) could meet a different sub-cent carry when concurrent requests settle in between, and the chunk
would then show a charge the wallet never saw. A client that leaves before that point is charged
nothing: ``on_close`` releases the hold. (Inferred: the document only says billing fields exist.)
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from mockserver.core import billing
from mockserver.core.calls import Call, EventReply, JsonReply, Reply
from mockserver.core.chat import DONE, ChatResult, generate_chat
from mockserver.core.textgen import prompt_tokens
from mockserver.providers.pahlavan.charges import billing_fields, reserve
from mockserver.providers.pahlavan.models import (
    Model,
    first_available,
    language_cost,
    model_chain,
    token_budget,
)
from mockserver.state.records import HoldRecord as Hold  # import only: state-engines moves this module

CHAT_ID_PREFIX = "chatcmpl-"


def _charge(hold: Hold, model: Model, result: ChatResult) -> dict[str, Any]:
    """Settle the hold at the completion's real token counts; the billing fields of the charge."""
    usage = result.usage()
    cost = language_cost(model, usage["prompt_tokens"], usage["completion_tokens"])
    return billing_fields(billing.settle(hold, cost))


async def _settled_at_end(
    chunks: AsyncIterator[Any], settle: Callable[[], Mapping[str, Any]]
) -> AsyncIterator[Any]:
    """The stream with ``settle()``'s fields merged into its last JSON chunk (the one before ``[DONE]``).

    Each chunk is held back until the next arrives, so the last one is known when ``[DONE]`` shows up.
    """
    previous: dict[str, Any] | None = None
    async for item in chunks:
        if item == DONE:
            if previous is not None:
                yield {**previous, **settle()}
                previous = None
            yield item
            continue
        if previous is not None:
            yield previous
        previous = item
    if previous is not None:
        yield previous


async def create_chat_completion(call: Call) -> Reply:
    """A completion from the first model of the chain that answers; ``stream: true`` answers SSE."""
    body = call.body
    settings = body.get("settings") or {}
    model = first_available(model_chain(call, body["model"], body.get("models"), kind="language"))
    messages = body["messages"]
    budget = token_budget(model, body.get("max_tokens") or settings.get("max_tokens"))
    hold = reserve(call, language_cost(model, prompt_tokens(messages), budget))
    result = generate_chat(
        call, model=model["id"], messages=messages, max_tokens=budget, id_prefix=CHAT_ID_PREFIX
    )
    if not body.get("stream"):
        return JsonReply(result.completion_body(_charge(hold, model, result)))

    async def on_close(completed: bool) -> None:
        # Still open here only when the stream ended before its last chunk: the client left (or the
        # connection was cut), so nothing is charged.
        billing.release(hold)

    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    events = _settled_at_end(result.chunks(include_usage=include_usage), lambda: _charge(hold, model, result))
    return EventReply(events, on_close=on_close)
