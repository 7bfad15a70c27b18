"""The baseline: a bare aiohttp handler answering a fixed chat completion (no spec, no auth, no state)."""

from __future__ import annotations

import json
import sys

from aiohttp import web

COMPLETION = json.dumps(
    {
        "id": "chatcmpl-abc123",
        "object": "chat.completion",
        "created": 1677652288,
        "model": "gpt-4o",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Hello! How can I help you today?"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 25, "completion_tokens": 7, "total_tokens": 32},
    }
)


async def completion(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(text=COMPLETION, content_type="application/json")


def main() -> None:
    app = web.Application()
    app.router.add_post("/spaceai/v1/chat/completions", completion)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)


if __name__ == "__main__":
    main()
