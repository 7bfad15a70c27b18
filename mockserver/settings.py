"""One frozen settings object: CLI and environment flow into it, and from it into the app."""

from __future__ import annotations

import argparse
import functools
import ipaddress
import math
import os
import re
import secrets
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, quote, unquote, urlencode, urlsplit

from mockserver.errors import ConfigError
from mockserver.resources import PROVIDER_IDS

JOURNAL_ENTRIES = 10_000
JOURNAL_BYTES = 24 * 1024 * 1024
"""Room for JOURNAL_ENTRIES entries with the longest path kept (2,048 characters): with the defaults the entry
cap binds first, and the journal skips counting bytes per request."""

ResponseValidation = Literal["off", "warn", "strict"]
MAX_JSON_BODY = 8 * 1024 * 1024
READ_TIMEOUT = 30.0
HOLD_SECONDS = 3600.0
"""Real seconds a request's wallet hold may stay open (a paced stream of a long completion may take many
minutes) before any instance's sweep gives it back: the backstop for an instance or a settle lost."""
KEEPALIVE_TIMEOUT = 75.0
RESOURCE_TTL = 24 * 3600.0
MAX_RESOURCES = 10_000
SEED_SECRET = "seed"
"""``signing_secret`` value deriving the signing keys from the seed (reproducible tests, loopback only)."""
MEMORY_STATE = "memory"
STATE_SCHEMES = ("redis", "rediss", "unix")
"""What ``--state`` may name besides ``memory``: the URL schemes of redis-py's ``from_url``."""
STATE_PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,64}")
HIDDEN = "***"
"""What a password in a state URL is shown as (banner, errors, logs)."""


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
    state: str = field(default="memory", repr=False)
    """Where state lives: ``memory`` (this process) or ``redis://[user:password@]HOST:PORT/DB`` (shared by
    every instance on the same prefix). Not in ``repr``: the URL may hold a password."""
    state_prefix: str = "aigen"
    """Every Redis key is under ``<state_prefix>:``, so mocks sharing one Redis do not see each other."""
    workers: int = 1
    """Processes serving one port (``SO_REUSEPORT``); more than one needs a shared ``state``."""
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
    hold_seconds: float = HOLD_SECONDS
    """Real seconds after which an open wallet hold of a request that never settled is given back (a job's
    hold has none: it ends with its job); a request running longer loses its hold and charges nothing."""
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


def display_url(url: str) -> str:
    """A state URL as it may be shown (banner, errors, logs): its password, in the address or in a
    ``password=`` query value, replaced by ``***``."""
    try:
        parts = urlsplit(url)
    except ValueError:  # unparsable (a bad IPv6 bracket...): keep only the scheme and what follows any '@'
        scheme, separator, rest = url.partition("://")
        return f"{scheme}{separator}{HIDDEN}@{rest.rsplit('@', 1)[1]}" if "@" in rest else url
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, address = netloc.rpartition("@")
        user, colon, _ = userinfo.partition(":")
        netloc = f"{user}{colon and ':' + HIDDEN}@{address}"
    query = parts.query
    if query and "pass" in query.lower():
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, HIDDEN if "pass" in k.lower() else v) for k, v in pairs], safe="*", quote_via=quote
        )
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    # Built by hand: urlunsplit would drop the empty address of unix:///path.
    fragment = f"#{parts.fragment}" if parts.fragment else ""
    return f"{parts.scheme}://{netloc}{parts.path}{'?' if query else ''}{query}{fragment}"


def url_secrets(url: str) -> list[str]:
    """The password(s) a state URL holds, as written and decoded (for the log redactor)."""
    try:
        parts = urlsplit(url)
        found = [parts.password or ""]
        found += [v for k, v in parse_qsl(parts.query, keep_blank_values=True) if "pass" in k.lower()]
    except ValueError:
        found = [url.partition("://")[2].rpartition("@")[0].partition(":")[2]]
    return sorted({text for value in found if value for text in (value, unquote(value))})


def check_state_url(url: str) -> str:
    """``url`` if ``--state`` may take it (``memory``, or a redis://, rediss:// or unix:// URL redis-py
    reads), else ``ConfigError`` with a one-line reason that never shows a password."""
    if url == MEMORY_STATE:
        return url
    shown = display_url(url)
    usage = "--state must be 'memory' or a redis://HOST:PORT/DB, rediss://HOST:PORT/DB or unix://PATH URL"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (reading it checks it: a port that is not a number raises ValueError)
    except ValueError as exc:
        reason = str(exc)
        for secret in url_secrets(url):
            reason = reason.replace(secret, HIDDEN)
        raise ConfigError(f"{usage}: {shown!r} is not a valid URL ({reason})") from None
    if parts.scheme not in STATE_SCHEMES or "://" not in url:
        raise ConfigError(f"{usage}, not {shown!r}")
    if parts.scheme == "unix":
        if not parts.path:
            raise ConfigError(f"{usage}: {shown!r} names no socket path")
        return url
    if not parts.hostname:
        raise ConfigError(f"{usage}: {shown!r} names no host")
    database = parts.path.removeprefix("/")
    if database and not database.isdigit():
        raise ConfigError(f"{usage}: the database in {shown!r} must be a number, not {database!r}")
    return url


def check_state_prefix(prefix: str) -> str:
    """``prefix`` if it is 1-64 letters, digits, '_', '.' or '-', else ``ConfigError``."""
    if not STATE_PREFIX.fullmatch(prefix):
        raise ConfigError(
            f"--state-prefix must be 1 to 64 letters, digits, '_', '.' or '-', not {prefix[:80]!r}"
        )
    return prefix


def check_state(settings: Settings) -> Settings:
    """``settings`` if their state, prefix and workers go together, else ``ConfigError`` (one line)."""
    check_state_url(settings.state)
    check_state_prefix(settings.state_prefix)
    if settings.workers > 1:
        if settings.state == MEMORY_STATE:
            raise ConfigError(
                f"--workers {settings.workers} needs a shared --state (redis://HOST:PORT/DB): with "
                "'memory' every worker would keep its own keys, wallets and jobs and they would diverge"
            )
        if not hasattr(socket, "SO_REUSEPORT"):
            raise ConfigError(f"--workers {settings.workers} needs SO_REUSEPORT, which this system lacks")
    return settings


def _control_token(text: str) -> str:
    # Sent as 'Authorization: Bearer TOKEN': visible ASCII, no spaces (and never echoed in the error).
    if not text or not all("!" <= char <= "~" for char in text):
        raise argparse.ArgumentTypeError("must be non-empty visible ASCII without spaces")
    return text


MAX_HOLD_SECONDS = 366 * 86_400.0
"""The longest ``--hold-seconds`` (a year: deadlines stay exact integers of milliseconds in Redis's Lua)."""


def _hold_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan  # the same one-line usage error as any other bad value
    if not (math.isfinite(value) and 0 < value <= MAX_HOLD_SECONDS):
        raise argparse.ArgumentTypeError(f"must be a number of seconds above 0, at most {MAX_HOLD_SECONDS:g}")
    return value


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
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number greater than 0, not {text!r}") from None
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
    parser.add_argument(
        "--state",
        metavar="URL",
        # Checked after parsing (check_state): an error names the URL without its password, on one line.
        default=env.get("MOCKSERVER_STATE") or MEMORY_STATE,
        help="where the mock keeps its state: 'memory' (this process, the default) or "
        "redis://[:PASSWORD@]HOST:PORT/DB (also rediss://, unix://), shared by every instance on the "
        "same --state-prefix",
    )
    parser.add_argument(
        "--state-prefix",
        metavar="NAME",
        default=env.get("MOCKSERVER_STATE_PREFIX") or "aigen",
        help="keep every Redis key under NAME: (1-64 of A-Z a-z 0-9 _ . -), so mocks sharing one Redis "
        "do not see each other (default: aigen)",
    )
    parser.add_argument(
        "--hold-seconds",
        type=_hold_seconds,
        metavar="S",
        default=env.get("MOCKSERVER_HOLD_SECONDS") or str(HOLD_SECONDS),
        help="give back a billed request's wallet hold S real seconds after it was made if it never "
        "settled (an instance killed mid-request, a state lost before the settle; default: "
        f"{HOLD_SECONDS:g})",
    )
    parser.add_argument(
        "--workers",
        type=_positive_int,
        metavar="N",
        default=env.get("MOCKSERVER_WORKERS") or "1",
        help="serve the port from N processes (SO_REUSEPORT); more than 1 needs a shared --state "
        "(default: 1)",
    )
    # Set by the parent of --workers N on each worker it starts; not for people.
    parser.add_argument("--worker-index", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    return parser


@dataclass(frozen=True, slots=True)
class WorkerRole:
    """What the parent of ``--workers N`` tells each worker process it starts (hidden flags)."""

    index: int
    """0 for the first worker (started alone, before the others), then 1, 2... (kept by a replacement)."""
    ready_fd: int
    """A pipe the worker writes one JSON line to once it listens (its port and banner), then closes."""


def settings_from_args(argv: Sequence[str] | None = None) -> Settings:
    """Parse the command line (and ``MOCKSERVER_*`` variables) into settings (``ConfigError`` when the
    state flags do not go together)."""
    return parse_command_line(argv)[0]


def parse_command_line(argv: Sequence[str] | None = None) -> tuple[Settings, WorkerRole | None]:
    """The settings, and the worker role when the parent of ``--workers N`` started this process."""
    parser = build_parser()
    args = parser.parse_args(argv)
    role = None
    if (args.worker_index is None) != (args.worker_ready_fd is None):
        parser.error("--worker-index and --worker-ready-fd go together")
    if args.worker_index is not None:
        role = WorkerRole(index=args.worker_index, ready_fd=args.worker_ready_fd)
    settings = Settings(
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
        state=args.state,
        state_prefix=args.state_prefix,
        workers=args.workers,
        hold_seconds=args.hold_seconds,
        replay=args.replay,
        replay_speed=args.replay_speed,
        replay_strict=args.replay_strict,
    )
    return check_state(settings), role
