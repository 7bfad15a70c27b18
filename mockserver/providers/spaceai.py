"""SpaceAI: OpenAI-compatible models list and chat completions (streamed on request)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mockserver.core.calls import Call, Handler, JsonReply, Reply
from mockserver.errors import ApiError
from mockserver.providers import _openai_style
from mockserver.state.api import ProviderState


class SpaceAI:
    """SpaceAI's quirks: `chatcmpl-` ids, a model catalogue with capabilities and per-token pricing."""

    id = "spaceai"

    def handlers(self) -> Mapping[str, Handler]:
        """Behaviour per operationId."""
        chat = _openai_style.chat_handler(id_prefix="chatcmpl-", streaming=True)
        return {"listModels": self.list_models, "createChatCompletion": chat}

    async def list_models(self, call: Call) -> Reply:
        """The catalogue, as seeded."""
        return JsonReply({"object": "list", "data": list(call.state.models.values())})

    def render_error(self, error: ApiError) -> dict[str, Any]:
        """StudioAICore's envelope, as the seeds index says SpaceAI shares it."""
        return _openai_style.render_error(error)

    def describe(self, state: ProviderState) -> dict[str, Any]:
        """Model ids for ``/_mock/providers``."""
        return _openai_style.describe_models(state.models)


PROVIDER = SpaceAI()
