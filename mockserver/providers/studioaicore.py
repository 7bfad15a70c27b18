"""StudioAICore: one chat endpoint, `chat-` ids, rate-limit headers on every response."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mockserver.core.calls import Handler
from mockserver.errors import ApiError
from mockserver.providers import _openai_style
from mockserver.state.api import ProviderState


class StudioAICore:
    """StudioAICore's quirks: the `/v1/chat` path and `chat-` completion ids; no streaming documented."""

    id = "studioaicore"

    def handlers(self) -> Mapping[str, Handler]:
        """Behaviour per operationId."""
        return {"createChat": _openai_style.chat_handler(id_prefix="chat-", streaming=False)}

    def render_error(self, error: ApiError) -> dict[str, Any]:
        """`{"error": {"type", "message", "code"}}` (documented)."""
        return _openai_style.render_error(error)

    def describe(self, state: ProviderState) -> dict[str, Any]:
        """Model ids for ``/_mock/providers``."""
        return _openai_style.describe_models(state.models)


PROVIDER = StudioAICore()
