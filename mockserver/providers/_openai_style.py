"""The `{"error": {"type", "message", "code"}}` envelope and chat handler StudioAICore and SpaceAI share."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mockserver.core.calls import Call, EventReply, Handler, JsonReply, Reply
from mockserver.core.chat import generate_chat
from mockserver.errors import ApiError, ErrorKind, not_found

ERROR_TYPES = {
    ErrorKind.INVALID_REQUEST: "invalid_request_error",
    ErrorKind.UNAUTHORIZED: "authentication_error",
    ErrorKind.PAYMENT_REQUIRED: "invalid_request_error",
    ErrorKind.FORBIDDEN: "permission_error",
    ErrorKind.SPEND_LIMIT: "permission_error",
    ErrorKind.NOT_FOUND: "not_found_error",
    ErrorKind.METHOD_NOT_ALLOWED: "method_not_allowed",
    ErrorKind.PAYLOAD_TOO_LARGE: "invalid_request_error",
    ErrorKind.REQUEST_TIMEOUT: "invalid_request_error",
    ErrorKind.RATE_LIMITED: "rate_limit_exceeded",
    ErrorKind.INTERNAL: "server_error",
    ErrorKind.UPSTREAM: "server_error",
    ErrorKind.UNAVAILABLE: "server_error",
}


def render_error(error: ApiError) -> dict[str, Any]:
    """`{"error": {"type", "message", "code"}}` with ``code`` equal to the HTTP status."""
    return {
        "error": {
            "type": error.code or ERROR_TYPES[error.kind],
            "message": error.message,
            "code": error.status,
        }
    }


def chat_handler(*, id_prefix: str, streaming: bool) -> Handler:
    """The chat completion handler for a provider whose ids start ``id_prefix``.

    With ``streaming``, ``stream: true`` answers the completion as server-sent events. A handler made here
    is the provider's handler itself, not a wrapper: a call through another coroutine costs ~1% of a chat
    request.
    """

    async def chat(call: Call) -> Reply:
        body = call.input.body
        model = body["model"]
        if model not in call.state.models:
            raise not_found(f"The model '{model}' does not exist.", field="model")
        result = generate_chat(call, model, body["messages"], body.get("max_tokens"), id_prefix)
        if streaming and body.get("stream"):
            options = body.get("stream_options") or {}
            return EventReply(result.chunks(include_usage=bool(options.get("include_usage"))))
        return JsonReply(result.completion_body())

    return chat


def describe_models(call_state_models: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """``/_mock/providers`` fields: the model ids."""
    return {"models": list(call_state_models)}
