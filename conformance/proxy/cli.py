"""``python -m conformance proxy``: serve the proxy until SIGINT/SIGTERM, write the reports, exit."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from aiohttp import web

from conformance.proxy.reporting import provider_run, write_reports
from conformance.proxy.server import CHECKER, CONSOLE, LEDGER, create_app
from conformance.proxy.settings import DEFAULT_HOST, DEFAULT_PORT, ProxySettings
from conformance.results import EXIT_ERROR, exit_code
from mockserver.resources import PROVIDER_IDS

EPILOG = """exit status (after SIGINT or SIGTERM, once the reports are written):
  0  no violation was seen, on either side
  1  at least one violation was seen (a request breaking the spec counts: it is the client's)
  2  a usage error, an address it cannot listen on, or a --record folder it cannot create

An upstream that cannot be reached answers the client 502 and is said on the console; it is not a
violation of the contract. GET /_proxy/violations and GET /_proxy/exchanges are the proxy's own.
"""


def build_parser() -> argparse.ArgumentParser:
    """The ``conformance proxy`` command line."""
    parser = argparse.ArgumentParser(
        prog="conformance proxy",
        description="A reverse proxy that checks every exchange between a client and a deployment against "
        "the provider's spec (requests, responses, each streamed event) and reports violations as they pass.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--provider", required=True, choices=PROVIDER_IDS)
    parser.add_argument("--upstream", required=True, metavar="URL", help="the deployment (http or https)")
    parser.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help=f"port to listen on (default {DEFAULT_PORT}; 0 picks one)",
    )
    parser.add_argument(
        "--record",
        type=Path,
        metavar="DIR",
        help="write every exchange under DIR/<provider>/ (secrets redacted)",
    )
    parser.add_argument("--junit-xml", type=Path, metavar="PATH", help="write a JUnit report on exit")
    parser.add_argument("--report", type=Path, metavar="PATH", help="write a Markdown report on exit")
    parser.add_argument("--quiet", action="store_true", help="print only violations (no line per exchange)")
    return parser


def settings_from_args(argv: Sequence[str]) -> ProxySettings:
    """Parse and validate the options (usage errors exit 2)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not str(args.upstream).startswith(("http://", "https://")):
        parser.error("--upstream must be an http(s) URL")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    return ProxySettings(
        provider=args.provider,
        upstream=args.upstream,
        host=args.host,
        port=args.port,
        record=args.record,
        junit_xml=args.junit_xml,
        report=args.report,
        quiet=args.quiet,
    )


def bound_port(runner: web.AppRunner, asked: int) -> int:
    """The port the runner really listens on (``--port 0`` picks one)."""
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked


async def serve(settings: ProxySettings) -> int:
    """Listen until SIGINT/SIGTERM, then write the reports; returns the exit status."""
    try:
        app = create_app(settings)
    except OSError as exc:  # the --record folder cannot be made
        print(f"conformance proxy: cannot record to {settings.record}: {exc.strerror}", file=sys.stderr)
        return EXIT_ERROR
    ledger, checker = app[LEDGER], app[CHECKER]
    console = app[CONSOLE]
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(
            f"conformance proxy: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return EXIT_ERROR
    port = bound_port(runner, settings.port)
    started = time.monotonic()
    console.say(
        f"conformance proxy: {settings.provider} at http://{settings.host}:{port} -> {settings.upstream}"
        " (SIGINT or SIGTERM ends it)"
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await runner.cleanup()
    run = provider_run(settings, checker, ledger, time.monotonic() - started)
    print(write_reports(settings, run, ledger), flush=True)
    return exit_code([run])


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``conformance proxy``; returns the exit status."""
    try:
        settings = settings_from_args(list(argv or ()))
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else EXIT_ERROR
    return asyncio.run(serve(settings))
