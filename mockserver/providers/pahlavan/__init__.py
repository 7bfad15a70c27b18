"""Pahlavan Studio: model catalogue, quotes, unified generations, chat, async videos, storage, wallet billing.

The provider is a package, one module per role: ``models`` (catalogue, fallback chains, prices),
``quotes``, ``generations``, ``chat``, ``videos``, ``charges`` (holds and billing fields on top of
``core.billing``), ``outputs`` (where generated files go), ``envelope`` (errors) and ``storage``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mockserver.core.calls import Call, Handler, JsonReply, Reply
from mockserver.errors import ApiError
from mockserver.providers.pahlavan import envelope, videos
from mockserver.providers.pahlavan.chat import create_chat_completion
from mockserver.providers.pahlavan.generations import create_generation
from mockserver.providers.pahlavan.models import list_models
from mockserver.providers.pahlavan.quotes import create_quote
from mockserver.providers.pahlavan.storage import storage_handlers
from mockserver.state.api import ProviderState


async def get_health(call: Call) -> Reply:
    """``GET /api/health``: always up."""
    return JsonReply({"status": "ok"})


class Pahlavan:
    """Pahlavan's quirks: `{"error", "details": {"code", "details"}}` errors, cents wallets, `vid_` jobs."""

    id = "pahlavan"

    def handlers(self) -> Mapping[str, Handler]:
        """Behaviour per operationId (storage from ``storage.py``)."""
        return {
            "getHealth": get_health,
            "listModels": list_models,
            "createQuote": create_quote,
            "createGeneration": create_generation,
            "createChatCompletion": create_chat_completion,
            "createVideoGeneration": videos.create_video_generation,
            "getVideoGeneration": videos.get_video_generation,
            **storage_handlers(),
        }

    def render_error(self, error: ApiError) -> dict[str, Any]:
        """The documented envelope."""
        return envelope.render_error(error)

    def describe(self, state: ProviderState) -> dict[str, Any]:
        """Model ids for ``/_mock/providers``."""
        return {"models": list(state.models)}


PROVIDER = Pahlavan()
