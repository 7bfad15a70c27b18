"""OpenAI-style chat completions, shared by every provider that answers in that shape."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mockserver.core.calls import Call
from mockserver.core.textgen import Completion, message_text, prompt_tokens

DONE = "[DONE]"
"""The literal data of the last event of an OpenAI-style stream."""


@dataclass(slots=True)  # not frozen: a frozen init costs more, and one is made per request
class ChatResult:
    """One generated chat answer, renderable as a completion or as stream chunks."""

    id: str
    created: int
    model: str
    completion: Completion
    prompt_tokens: int

    def usage(self) -> dict[str, int]:
        """Token counts; total is always prompt + completion."""
        completion_tokens = len(self.completion.tokens)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": self.prompt_tokens + completion_tokens,
        }

    def completion_body(self, extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The ``chat.completion`` object."""
        body = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": self.completion.text},
                    "finish_reason": self.completion.finish_reason,
                }
            ],
            "usage": self.usage(),
        }
        if extra:
            body.update(extra)
        return body

    def _chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "choices": choices,
            **extra,
        }

    async def chunks(
        self, *, include_usage: bool, final_extra: Mapping[str, Any] | None = None
    ) -> AsyncIterator[Any]:
        """The stream: a role chunk, one chunk per token, a finish chunk, the usage chunk, ``[DONE]``.

        ``final_extra`` (e.g. billing fields) rides on the last JSON chunk.
        """
        yield self._chunk(
            [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        )
        for token in self.completion.tokens:
            yield self._chunk([{"index": 0, "delta": {"content": token}, "finish_reason": None}])
        finish = [{"index": 0, "delta": {}, "finish_reason": self.completion.finish_reason}]
        if include_usage:
            yield self._chunk(finish)
            yield self._chunk([], usage=self.usage(), **(final_extra or {}))
        else:
            yield self._chunk(finish, **(final_extra or {}))
        yield DONE


def generate_chat(
    call: Call,
    model: str,
    messages: Sequence[Any],
    max_tokens: int | None,
    id_prefix: str,
    id_length: int = 24,
) -> ChatResult:
    """Answer the last user message; the text depends on the seed, provider, model and messages only.

    ``max_tokens`` cuts the same text, so a shorter budget yields a prefix of a longer one.
    """
    services = call.services
    last_user = ""
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            last_user = content if isinstance(content, str) else message_text(content)
            break
    salt = (call.state.provider_id, model, messages, call.input.body.get("temperature"))
    return ChatResult(
        services.ids.new(id_prefix, id_length),
        int(services.clock.now()),
        model,
        services.text.reply(last_user, salt=salt, max_tokens=max_tokens),
        prompt_tokens(messages),
    )
