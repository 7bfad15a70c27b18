"""What each stage of the request path costs: instructions per request with one piece taken out.

    python bench/ablate.py [--requests 1000] [piece ...]

Pieces: ``handler`` (the chat handler answers a fixed completion), ``validation`` (the body is parsed but not
validated), ``rate`` (no counting; fixed rate-limit headers), ``check`` (no response check: the CLI's
``--response-validation off``), ``journal`` (nothing recorded), ``pipeline`` (the provider's route answers
like the bare baseline: what is left is the app's layout). Each runs the mock with that piece replaced,
under callgrind as ``bench/instructions.py`` does, and prints the difference to the full mock. A measuring
aid: it replaces internals by name, so it follows their renames. Needs Debian's ``valgrind``; ~1.5 min a
piece. Only loopback is used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from instructions import per_request  # noqa: E402  (bench/ is a folder of scripts, not a package)
from run import free_port, mock_command  # noqa: E402

PIECES = ("handler", "validation", "rate", "check", "journal", "pipeline")


def serve(port: int, piece: str) -> None:
    """Run the mock (as the CLI would) with ``piece`` taken out."""
    import gc

    from aiohttp import web

    import mockserver.core.pipeline as pipeline
    from mockserver.app import create_app
    from mockserver.mock import build_mock
    from mockserver.settings import settings_from_args

    # The CLI's arguments as the benchmarks pass them (mock_command), without the interpreter and module.
    settings = settings_from_args(mock_command(port, "off" if piece == "check" else "warn")[3:])
    mock = build_mock(settings)
    service = mock.providers["spaceai"]
    if piece == "handler":
        from bare_server import COMPLETION

        from mockserver.core.calls import Call, JsonReply, Reply

        fixed = json.loads(COMPLETION)

        async def fixed_reply(call: Call) -> Reply:
            return JsonReply(fixed)

        service.handlers["createChatCompletion"] = fixed_reply
    elif piece == "validation":
        import orjson

        from mockserver.core.validation import ValidRequest

        def parse_only(op, path, query, headers, content_type, raw):  # type: ignore[no-untyped-def]
            return ValidRequest({}, {}, {}, orjson.loads(raw), raw, content_type)

        pipeline.validate_request = parse_only  # type: ignore[assignment]
    elif piece == "rate":
        from mockserver.core.ratelimit import RateState

        fixed_state = RateState(100_000_000, 99_999_999, 4_102_444_800, False)
        service._count = lambda request, key, state: fixed_state  # type: ignore[method-assign]
    elif piece == "journal":
        mock.journal.record = lambda *entry: None  # type: ignore[method-assign]
    elif piece == "pipeline":
        from bare_server import COMPLETION

        async def bare_like(_plan: object, request: web.Request, *_: object) -> web.Response:
            await request.read()
            return web.Response(text=COMPLETION, content_type="application/json")

        service._serve = bare_like  # type: ignore[method-assign,assignment]
    app = create_app(settings, mock)
    gc.collect()
    gc.freeze()  # as the CLI does
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def main() -> int:
    if sys.argv[1:2] == ["serve"]:
        serve(int(sys.argv[2]), sys.argv[3])
        return 0
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument(
        "pieces", nargs="*", metavar="piece", help=f"any of {', '.join(PIECES)} (default: all)"
    )
    args = parser.parse_args()
    unknown = [p for p in args.pieces if p not in PIECES]
    if unknown:
        parser.error(f"unknown pieces {unknown}; choose from {', '.join(PIECES)}")
    port = free_port()
    full = per_request(mock_command(port), port, args.requests)
    print(f"full mock: {full / 1000:.0f}k instructions/request")
    for piece in args.pieces or PIECES:
        port = free_port()
        without = per_request([sys.executable, __file__, "serve", str(port), piece], port, args.requests)
        print(f"without {piece:<10} {without / 1000:4.0f}k  (the piece: {(full - without) / 1000:.0f}k)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
