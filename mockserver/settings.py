"""One frozen settings object: CLI and environment flow into it, and from it into the app."""

from __future__ import annotations

import argparse
import functools
import ipaddress
import math
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from mockserver.resources import PROVIDER_IDS

JOURNAL_ENTRIES = 10_000
JOURNAL_BYTES = 24 * 1024 * 1024
"""Room for JOURNAL_ENTRIES entries with the longest path kept (2,048 characters): with the defaults the entry
cap binds first, and the journal skips counting bytes per request."""

ResponseValidation = Literal["off", "warn", "strict"]
MAX_JSON_BODY = 8 * 1024 * 1024
READ_TIMEOUT = 30.0
KEEPALIVE_TIMEOUT = 75.0
RESOURCE_TTL = 24 * 3600.0
MAX_RESOURCES = 10_000
SEED_SECRET = "seed"
"""``signing_secret`` value deriving the signing keys from the seed (reproducible tests, loopback only)."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the mock server is configured with; built once, never mutated."""

    host: str = "127.0.0.1"
    port: int = 8080
    seed: int = 0
    provider: str | None = None
    """Serve only this provider, at the root, instead of all five under ``/<id>``."""
    rate_limit: int | None = None
    """Requests per minute for every key, overriding the fixtures' per-key limits."""
    fixtures: Path | None = None
    """A folder laid out like the shipped ``fixtures/`` to seed from instead."""
    cors: bool = True
    cors_origins: tuple[str, ...] = ("*",)
    tokens_per_second: float | None = None
    """Streaming pace; ``None`` streams as fast as the client reads."""
    job_speed: float = 1.0
    """Job durations are divided by this factor (2.0 runs jobs twice as fast)."""
    response_validation: ResponseValidation = "warn"
    """Check every response against the spec: log (``warn``), fail the request (``strict``), or skip."""
    webhook_hosts: tuple[str, ...] | None = None
    """Only deliver webhooks to these ``HOST[:PORT]`` entries (``None``: the bind's default policy)."""
    shutdown_timeout: float = 10.0
    """Seconds in-flight requests (streams above all) may take to finish after SIGTERM or Ctrl-C."""
    signing_secret: str | None = field(default=None, repr=False)
    """What URL-signing and webhook secrets derive from: ``None`` random per start, ``"seed"`` the seed."""
    journal_max_entries: int = JOURNAL_ENTRIES
    journal_max_bytes: int = JOURNAL_BYTES
    """The request journal keeps its newest entries within both caps (paths count by their length)."""
    control_token: str | None = field(default=None, repr=False)
    """The bearer token ``/_mock`` requires (``None``: open, only allowed on a loopback bind)."""
    providers: tuple[str, ...] = field(default=PROVIDER_IDS)
    max_json_body: int = MAX_JSON_BODY
    """Largest JSON request body, in bytes (a larger one is the provider's 413); uploads have their own."""
    read_timeout: float = READ_TIMEOUT
    """Seconds a request's headers may take, and its body may go without progress, before a 408."""
    keepalive_timeout: float = KEEPALIVE_TIMEOUT
    """Seconds an idle keep-alive connection stays open."""
    resource_ttl: float = RESOURCE_TTL
    """Mock-clock seconds a resource requests created (job, generation, upload, file) is kept."""
    max_resources: int = MAX_RESOURCES
    """Most resources of one kind kept per provider; past it the oldest are dropped first."""
    replay: Path | None = None
    """A folder of recorded exchanges (``DIR/<provider>/*.yaml``) answering the requests they match."""
    replay_speed: float = 1.0
    """Replayed streams keep their recorded timing divided by this factor (0: as fast as possible)."""
    replay_strict: bool = False
    """A request no recording matches is a 404 in the provider's envelope instead of the mock's answer."""

    @property
    def loopback(self) -> bool:
        """Whether the server listens on loopback only (127.0.0.0/8, ::1, localhost)."""
        return is_loopback(self.host)

    def served_providers(self) -> tuple[str, ...]:
        """The provider ids this server answers for."""
        return (self.provider,) if self.provider else self.providers

    def with_changes(self, **changes: object) -> Settings:
        """A copy with some fields replaced."""
        return replace(self, **changes)  # type: ignore[arg-type]


@functools.lru_cache(maxsize=256)  # the control API asks for every request's Host; parsing one costs ~5 us
def is_loopback(host: str) -> bool:
    """Whether a host name or address (brackets and a trailing dot allowed) is loopback only."""
    name = host.strip().lower().removeprefix("[").removesuffix("]").removesuffix(".")
    if name == "localhost":
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False  # any other name may resolve anywhere: not loopback
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # ::ffff:127.0.0.1 (Python 3.11 does not call it loopback)
    return address.is_loopback


def with_control_token(settings: Settings) -> tuple[Settings, str | None]:
    """``settings`` with a control token wherever one is needed (a non-loopback bind without one), and the
    token generated for it (``None`` when none was generated: given, or not needed on loopback)."""
    if settings.control_token is not None or settings.loopback:
        return settings, None
    token = secrets.token_urlsafe(32)
    return settings.with_changes(control_token=token), token


def _control_token(text: str) -> str:
    # Sent as 'Authorization: Bearer TOKEN': visible ASCII, no spaces (and never echoed in the error).
    if not text or not all("!" <= char <= "~" for char in text):
        raise argparse.ArgumentTypeError("must be non-empty visible ASCII without spaces")
    return text


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError("must be a number of seconds, 0 or more")
    return value


def _speed(text: str) -> float:
    value = float(text)
    if not (value >= 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError("must be a factor, 0 (as fast as possible) or more")
    return value


def _env_flag(text: str | None) -> bool:
    return (text or "").strip().lower() in ("1", "true", "yes", "on")


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be greater than 0")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m mockserver``."""
    env = os.environ
    parser = argparse.ArgumentParser(
        prog="mockserver",
        description="Serve mocks of the five AI-generation APIs, driven by their OpenAPI specs.",
    )
    parser.add_argument("--host", default=env.get("MOCKSERVER_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(env.get("MOCKSERVER_PORT", "8080")))
    parser.add_argument("--seed", type=int, default=int(env.get("MOCKSERVER_SEED", "0")))
    parser.add_argument("--provider", choices=PROVIDER_IDS, default=env.get("MOCKSERVER_PROVIDER") or None)
    parser.add_argument(
        "--rate-limit",
        type=_positive_int,
        metavar="RPM",
        default=_positive_int(env["MOCKSERVER_RATE_LIMIT"]) if env.get("MOCKSERVER_RATE_LIMIT") else None,
        help="requests per minute for every key (headers are still sent and counted)",
    )
    parser.add_argument("--fixtures", type=Path, metavar="PATH", default=env.get("MOCKSERVER_FIXTURES"))
    parser.add_argument("--no-cors", dest="cors", action="store_false", help="do not send CORS headers")
    parser.add_argument(
        "--cors-origin",
        dest="cors_origins",
        action="append",
        metavar="ORIGIN",
        help="allowed browser origin (repeatable; default: any)",
    )
    parser.add_argument(
        "--tokens-per-second",
        type=_positive_float,
        default=None,
        help="pace streamed tokens like a real model (default: as fast as possible)",
    )
    parser.add_argument(
        "--job-speed", type=_positive_float, default=1.0, help="divide every job duration by this factor"
    )
    parser.add_argument(
        "--webhook-host",
        dest="webhook_hosts",
        action="append",
        metavar="HOST[:PORT]",
        help="only deliver webhooks to this host, and port if given (repeatable; default: any host on a "
        "loopback bind, public addresses otherwise)",
    )
    parser.add_argument(
        "--signing-secret",
        metavar="SECRET",
        default=env.get("MOCKSERVER_SIGNING_SECRET") or None,
        help="derive URL-signing and webhook secrets from SECRET (default: random at each start; "
        f"'{SEED_SECRET}': from the seed, loopback only)",
    )
    parser.add_argument(
        "--shutdown-timeout",
        type=_non_negative_float,
        metavar="SECONDS",
        # A string default goes through ``type`` too: a bad variable is a usage error, not a traceback.
        default=env.get("MOCKSERVER_SHUTDOWN_TIMEOUT") or "10",
        help="on SIGTERM or Ctrl-C, let in-flight requests finish for at most this long (default: 10)",
    )
    parser.add_argument(
        "--max-json-body",
        type=_positive_int,
        metavar="BYTES",
        default=env.get("MOCKSERVER_MAX_JSON_BODY", str(MAX_JSON_BODY)),
        help="largest JSON request body; larger is the provider's 413 (default: 8 MiB; uploads: 110 MiB)",
    )
    parser.add_argument(
        "--read-timeout",
        type=_positive_float,
        metavar="SECONDS",
        default=env.get("MOCKSERVER_READ_TIMEOUT", str(READ_TIMEOUT)),
        help="408 and close when request headers take longer, or a body stalls longer (default: 30)",
    )
    parser.add_argument(
        "--keepalive-timeout",
        type=_positive_float,
        metavar="SECONDS",
        default=env.get("MOCKSERVER_KEEPALIVE_TIMEOUT", str(KEEPALIVE_TIMEOUT)),
        help="close keep-alive connections idle this long (default: 75)",
    )
    parser.add_argument(
        "--resource-ttl",
        type=_positive_float,
        metavar="SECONDS",
        default=env.get("MOCKSERVER_RESOURCE_TTL", str(RESOURCE_TTL)),
        help="forget jobs, generations, uploads and files this old on the mock clock (default: 86400)",
    )
    parser.add_argument(
        "--max-resources",
        type=_positive_int,
        metavar="N",
        default=env.get("MOCKSERVER_MAX_RESOURCES", str(MAX_RESOURCES)),
        help="keep at most N resources of each kind per provider, dropping the oldest (default: 10000)",
    )
    parser.add_argument(
        "--journal-max-entries",
        type=_positive_int,
        metavar="N",
        default=JOURNAL_ENTRIES,
        help=f"requests the journal keeps, newest first (default: {JOURNAL_ENTRIES})",
    )
    parser.add_argument(
        "--journal-max-bytes",
        type=_positive_int,
        metavar="BYTES",
        default=JOURNAL_BYTES,
        help=f"approximate size the journal keeps (default: {JOURNAL_BYTES} = 24 MiB)",
    )
    parser.add_argument(
        "--control-token",
        type=_control_token,
        metavar="TOKEN",
        default=env.get("MOCKSERVER_CONTROL_TOKEN") or None,
        help="require 'Authorization: Bearer TOKEN' on /_mock (default: open on a loopback --host; "
        "generated and printed once on any other)",
    )
    parser.add_argument(
        "--replay",
        type=Path,
        metavar="DIR",
        default=env.get("MOCKSERVER_REPLAY") or None,
        help="answer requests that match a recorded exchange in DIR/<provider>/ with the recording",
    )
    parser.add_argument(
        "--replay-speed",
        type=_speed,
        metavar="X",
        default=env.get("MOCKSERVER_REPLAY_SPEED") or "1",
        help="replay recorded streams X times as fast (default: 1, as recorded; 0: as fast as possible)",
    )
    parser.add_argument(
        "--replay-strict",
        action="store_true",
        default=_env_flag(env.get("MOCKSERVER_REPLAY_STRICT")),
        help="with --replay, answer a request no recording matches with a 404 (default: the mock answers)",
    )
    parser.add_argument(
        "--response-validation",
        choices=("off", "warn", "strict"),
        default=env.get("MOCKSERVER_RESPONSE_VALIDATION", "warn"),
    )
    return parser


def settings_from_args(argv: Sequence[str] | None = None) -> Settings:
    """Parse the command line (and ``MOCKSERVER_*`` variables) into settings."""
    args = build_parser().parse_args(argv)
    return Settings(
        host=args.host,
        port=args.port,
        seed=args.seed,
        provider=args.provider,
        rate_limit=args.rate_limit,
        fixtures=args.fixtures,
        cors=args.cors,
        cors_origins=tuple(args.cors_origins or ("*",)),
        tokens_per_second=args.tokens_per_second,
        job_speed=args.job_speed,
        response_validation=args.response_validation,
        webhook_hosts=tuple(args.webhook_hosts) if args.webhook_hosts else None,
        shutdown_timeout=args.shutdown_timeout,
        max_json_body=args.max_json_body,
        read_timeout=args.read_timeout,
        keepalive_timeout=args.keepalive_timeout,
        resource_ttl=args.resource_ttl,
        max_resources=args.max_resources,
        signing_secret=args.signing_secret,
        journal_max_entries=args.journal_max_entries,
        journal_max_bytes=args.journal_max_bytes,
        control_token=args.control_token,
        replay=args.replay,
        replay_speed=args.replay_speed,
        replay_strict=args.replay_strict,
    )
