"""The command line: parse options into settings, run the suite, print and write the reports, exit 0/1/2/3."""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from conformance.client import Redactor
from conformance.progress import Progress
from conformance.report import outcome_line, summary, write_junit, write_markdown
from conformance.results import EXIT_ERROR, ProviderRun, exit_code
from conformance.settings import (
    DEFAULT_MAX_EXAMPLES,
    DEFAULT_MAX_REQUESTS,
    DEFAULT_POLL_TIMEOUT,
    DEFAULT_TIMEOUT,
    SCHEMA_PHASES,
    Settings,
)
from mockserver.resources import PROVIDER_IDS

USAGE_ERROR = EXIT_ERROR
EPILOG = """exit status:
  0  every check that applies to the target ran, and none found a violation
  1  at least one violation was found
  2  a usage error, an unreachable target, or a refused API key (nothing to trust)
  3  no violation, but some checks were not run; the RESULT line says which flag or fact each needs
     (e.g. --allow-spend, --exhaust-rate-limit, --webhook-listen, --model); --thorough turns on all
     but --model

The last line of stdout is the verdict, e.g.
  RESULT: no violations in 9 checks; 6 not run: 3 need --allow-spend, 1 needs --webhook-listen (exit 3)

`conformance proxy --provider ID --upstream URL ...` checks live traffic instead (`conformance proxy --help`).
"""
ENV_API_KEY = "CONFORMANCE_API_KEY"
ENV_WEBHOOK_SECRET = "CONFORMANCE_WEBHOOK_SECRET"
ENV_POOR_API_KEY = "CONFORMANCE_POOR_API_KEY"
NEEDS_ORG = ("modelstudio",)


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _listen(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise argparse.ArgumentTypeError("expected HOST:PORT, e.g. 0.0.0.0:8765 (port 0 picks a free one)")
    return host, int(port)


def _csv(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def build_parser() -> argparse.ArgumentParser:
    """The ``conformance`` command line."""
    parser = argparse.ArgumentParser(
        prog="conformance",
        description="Check a deployment of one of the five AI-generation APIs against its OpenAPI spec.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    target = parser.add_argument_group("target")
    target.add_argument("--provider", choices=PROVIDER_IDS)
    target.add_argument("--base-url", metavar="URL")
    target.add_argument(
        "--api-key",
        metavar="KEY",
        default=os.environ.get(ENV_API_KEY),
        help=f"the API key (default: ${ENV_API_KEY}; never printed)",
    )
    target.add_argument(
        "--poor-api-key",
        metavar="KEY",
        default=os.environ.get(ENV_POOR_API_KEY),
        help="a key of an account that cannot afford a large request, to provoke the insufficient-balance "
        f"refusal (default: ${ENV_POOR_API_KEY}; never printed; --against-mock uses the mock's own)",
    )
    target.add_argument("--org-id", metavar="ORG", help="organization id (required for modelstudio)")
    target.add_argument(
        "--model",
        dest="models",
        action="append",
        default=[],
        metavar="ID",
        help="a model id that works on the target (repeatable; default: discovered)",
    )
    target.add_argument(
        "--against-mock",
        action="store_true",
        help="start the embedded mock and check every provider it serves",
    )
    output = parser.add_argument_group("output")
    output.add_argument("--junit-xml", type=Path, metavar="PATH")
    output.add_argument("--report", type=Path, metavar="PATH", help="write a Markdown report")
    output.add_argument(
        "--quiet",
        action="store_true",
        help="no progress on stderr (live on a terminal, periodic lines otherwise)",
    )
    output.add_argument(
        "--hypothesis-database",
        type=Path,
        metavar="PATH",
        help="where Hypothesis keeps its example database (default: the user cache directory, "
        "e.g. ~/.cache/aigen-contract/hypothesis; never the working directory)",
    )
    scope = parser.add_argument_group("scope")
    scope.add_argument(
        "--checks",
        type=_csv,
        default=(),
        metavar="LIST",
        help="comma-separated check ids or families (schema, envelope, streaming.events...)",
    )
    scope.add_argument(
        "--phases",
        type=_csv,
        default=SCHEMA_PHASES,
        metavar="LIST",
        help=f"schemathesis phases (default: {','.join(SCHEMA_PHASES)})",
    )
    scope.add_argument(
        "--no-fuzz", action="store_true", help="skip the fuzzing phase (examples and coverage only)"
    )
    scope.add_argument("--max-examples", type=_positive_int, default=DEFAULT_MAX_EXAMPLES, metavar="N")
    scope.add_argument("--seed", type=int, metavar="N", help="reproducible generation (derandomized)")
    scope.add_argument("--list-checks", action="store_true", help="list the checks that would run and exit")
    safety = parser.add_argument_group("safety")
    safety.add_argument(
        "--max-requests",
        type=_positive_int,
        default=DEFAULT_MAX_REQUESTS,
        metavar="N",
        help="request budget for the whole run",
    )
    safety.add_argument(
        "--rate-limit", type=_positive_float, metavar="R", help="client-side requests per second"
    )
    safety.add_argument(
        "--timeout",
        type=_positive_float,
        default=DEFAULT_TIMEOUT,
        metavar="S",
        help="seconds per request (a whole stream included)",
    )
    safety.add_argument(
        "--poll-timeout",
        type=_positive_float,
        default=DEFAULT_POLL_TIMEOUT,
        metavar="S",
        help="seconds a job or a webhook delivery may take",
    )
    safety.add_argument(
        "--allow-spend",
        nargs="?",
        const="minimal",
        default="none",
        choices=("minimal", "full"),
        help="run operations that cost money: each as few times as possible (minimal, the "
        "default) or also in fuzzing (full)",
    )
    safety.add_argument("--exhaust-rate-limit", action="store_true", help="provoke a 429 (burns quota)")
    safety.add_argument(
        "--thorough",
        action="store_true",
        help="run every check a CI job can: --allow-spend (minimal), --exhaust-rate-limit and a webhook "
        "receiver (on a loopback target by itself, otherwise with --webhook-public-url); with "
        "--against-mock, full spending",
    )
    hooks = parser.add_argument_group("webhooks")
    hooks.add_argument("--webhook-listen", type=_listen, metavar="HOST:PORT", help="run a webhook receiver")
    hooks.add_argument("--webhook-public-url", metavar="URL", help="where the target reaches the receiver")
    hooks.add_argument(
        "--webhook-secret",
        metavar="SECRET",
        default=os.environ.get(ENV_WEBHOOK_SECRET),
        help=f"verify delivery signatures (default: ${ENV_WEBHOOK_SECRET})",
    )
    return parser


def settings_from_args(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Settings:
    """Validate the options of a single-target run into settings (usage errors exit 2)."""
    missing = [
        flag
        for flag, value in (
            ("--provider", args.provider),
            ("--base-url", args.base_url),
            ("--api-key", args.api_key),
        )
        if not value
    ]
    if missing:
        parser.error(f"missing {', '.join(missing)} (or use --against-mock)")
    if args.provider in NEEDS_ORG and not args.org_id:
        parser.error(f"{args.provider} needs --org-id: its paths are scoped to an organization")
    if not str(args.base_url).startswith(("http://", "https://")):
        parser.error("--base-url must be an http(s) URL")
    if args.thorough:
        _thorough(args, parser)
    return Settings(
        provider=args.provider,
        base_url=args.base_url,
        api_key=args.api_key,
        **_common(args, parser),
    )


def _loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _thorough(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """``--thorough`` on a single target: minimal spend, the 429 probe, a webhook receiver."""
    if args.allow_spend == "none":
        args.allow_spend = "minimal"
    args.exhaust_rate_limit = True
    if args.webhook_listen is not None:
        return
    if _loopback(args.base_url):
        args.webhook_listen = ("127.0.0.1", 0)
    elif args.webhook_public_url:
        # The receiver listens on every interface, on the public URL's port unless --webhook-listen says.
        args.webhook_listen = ("0.0.0.0", urlsplit(args.webhook_public_url).port or 0)
    else:
        parser.error(
            "--thorough on a target that is not on this machine needs --webhook-public-url URL (where the "
            "target reaches this machine's webhook receiver; --webhook-listen HOST:PORT picks the local side)"
        )


def _common(args: argparse.Namespace, parser: argparse.ArgumentParser) -> dict[str, Any]:
    phases = tuple(p for p in args.phases if not (args.no_fuzz and p == "fuzzing"))
    unknown = [p for p in phases if p not in SCHEMA_PHASES]
    if unknown:
        parser.error(f"unknown phase(s) {', '.join(unknown)}; choose from {', '.join(SCHEMA_PHASES)}")
    return {
        "org_id": args.org_id,
        "junit_xml": args.junit_xml,
        "report": args.report,
        "max_examples": args.max_examples,
        "seed": args.seed,
        "max_requests": args.max_requests,
        "rate_limit": args.rate_limit,
        "timeout": args.timeout,
        "poll_timeout": args.poll_timeout,
        "spend": args.allow_spend,
        "exhaust_rate_limit": args.exhaust_rate_limit,
        "webhook_listen": args.webhook_listen,
        "webhook_public_url": args.webhook_public_url,
        "webhook_secret": args.webhook_secret,
        "poor_api_key": args.poor_api_key,
        "checks": args.checks,
        "phases": phases,
        "models": tuple(args.models),
        "progress": not args.quiet,
        "thorough": args.thorough,
        "hypothesis_database": args.hypothesis_database,
    }


def _finish(runs: list[ProviderRun], settings: Settings, secrets: tuple[str, ...]) -> int:
    redact = Redactor(secrets)
    print(summary(runs, redact), flush=True)
    if settings.junit_xml:
        write_junit(runs, settings.junit_xml, redact)
    if settings.report:
        write_markdown(runs, settings.report, redact)
    for run in runs:
        if run.fatal:
            print(redact.text(f"conformance: {run.provider}: {run.fatal}"), file=sys.stderr)
    code = exit_code(runs)
    if settings.progress:
        print(outcome_line(runs), file=sys.stderr, flush=True)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments[:1] == ["proxy"]:
        from conformance.proxy.cli import main as proxy_main

        return proxy_main(arguments[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(arguments)
        if args.against_mock:
            if args.base_url:
                parser.error("--base-url does not go with --against-mock (the mock picks its own port)")
            template = Settings(
                provider=args.provider or "", base_url="", api_key="", **_common(args, parser)
            )
        else:
            template = settings_from_args(args, parser)
    except SystemExit as exc:
        return int(exc.code) if isinstance(exc.code, int) else USAGE_ERROR
    if args.list_checks:
        return _list_checks(
            [
                template.with_changes(provider=p)
                for p in PROVIDER_IDS
                if template.provider in ("", p) and (args.against_mock or p == template.provider)
            ]
        )
    progress = Progress() if template.progress else None
    if progress is not None:
        progress.start()
    try:
        if args.against_mock:
            from conformance.mock_run import run_against_mock

            if progress is not None:
                progress("starting the embedded mock")
            runs, secrets = run_against_mock(template, progress)
        else:
            from conformance.suite import run_provider

            runs, secrets = [run_provider(template, progress)], template.secrets()
    finally:
        if progress is not None:
            progress.stop()
    return _finish(runs, template, secrets)


def _list_checks(targets: list[Settings]) -> int:
    from conformance.suite import planned_checks

    for settings in targets:
        for check in planned_checks(settings):
            print(f"{settings.provider}\t{check}")
    return 0
