"""One frozen settings object per target: what the CLI (or pytest support) hands to the suite."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

Spend = Literal["none", "minimal", "full"]
"""How much the suite may spend: nothing, each costly operation as few times as possible, or freely."""

SCHEMA_PHASES: tuple[str, ...] = ("examples", "coverage", "fuzzing")
"""The schemathesis phases the suite runs, in order."""

DEFAULT_MAX_EXAMPLES = 25
DEFAULT_MAX_REQUESTS = 5000
DEFAULT_TIMEOUT = 30.0
DEFAULT_POLL_TIMEOUT = 120.0
DEFAULT_MAX_RETRY_AFTER = 120.0
CACHE_NAME = "aigen-contract"


def user_cache_dir() -> Path:
    """The platform's per-user cache directory for this tool (``$XDG_CACHE_HOME/aigen-contract``...)."""
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / CACHE_NAME


def default_hypothesis_database() -> Path:
    """Where Hypothesis keeps its example database unless ``--hypothesis-database`` says otherwise."""
    return user_cache_dir() / "hypothesis"


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything one conformance run against one provider deployment is configured with."""

    provider: str
    base_url: str
    api_key: str
    org_id: str | None = None
    junit_xml: Path | None = None
    report: Path | None = None
    max_examples: int = DEFAULT_MAX_EXAMPLES
    seed: int | None = None
    max_requests: int = DEFAULT_MAX_REQUESTS
    """Hard cap on HTTP requests to the target (schemathesis and behaviour checks together)."""
    rate_limit: float | None = None
    """Client-side pace in requests per second (``None``: as fast as the target answers)."""
    timeout: float = DEFAULT_TIMEOUT
    """Seconds one request (a whole streamed response included) may take."""
    poll_timeout: float = DEFAULT_POLL_TIMEOUT
    """Seconds an asynchronous job or a webhook delivery may take before the check gives up."""
    max_retry_after: float = DEFAULT_MAX_RETRY_AFTER
    """Longest ``Retry-After`` the suite waits out; a longer one stops the run instead."""
    spend: Spend = "none"
    exhaust_rate_limit: bool = False
    webhook_listen: tuple[str, int] | None = None
    webhook_public_url: str | None = None
    webhook_secret: str | None = None
    """Signing secret for webhook deliveries; without it signatures are not verified."""
    poor_api_key: str | None = None
    """A key of an account that cannot afford a large request (provokes the insufficient-balance refusal)."""
    checks: tuple[str, ...] = ()
    """Selected check ids or families (``schema``, ``streaming.events``...); empty selects every check."""
    phases: tuple[str, ...] = SCHEMA_PHASES
    models: tuple[str, ...] = ()
    """Model ids known to work on the target; otherwise discovered from its models endpoint or spec."""
    progress: bool = True
    """Show progress on stderr (a live display on a terminal, periodic lines otherwise)."""
    thorough: bool = False
    """``--thorough`` was given (minimal spend, the 429 probe and a webhook receiver are already applied)."""
    hypothesis_database: Path | None = None
    """Hypothesis' home (example database and caches); ``None``: the user cache directory."""

    @property
    def base(self) -> str:
        """The base URL without a trailing slash."""
        return self.base_url.rstrip("/")

    def with_changes(self, **changes: object) -> Settings:
        """A copy with some fields replaced."""
        return replace(self, **changes)  # type: ignore[arg-type]

    def selects(self, check_id: str) -> bool:
        """Whether the ``--checks`` selection includes this check (a family selects its members)."""
        if not self.checks:
            return True
        return any(check_id == token or check_id.startswith(token + ".") for token in self.checks)

    @property
    def hypothesis_home(self) -> Path:
        """Where Hypothesis writes: never the working directory."""
        return self.hypothesis_database or default_hypothesis_database()

    def secrets(self) -> tuple[str, ...]:
        """Values that must never appear in any output."""
        return tuple(s for s in (self.api_key, self.webhook_secret, self.poor_api_key) if s)
