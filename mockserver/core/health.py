"""Checks of what the mock depends on, for ``GET /_mock/health``.

A dependency implements ``HealthCheck``: an async ``health()`` answering at least ``{"status": ...}`` (one
of ``STATUSES``) and what describes it (``{"backend": "memory", "status": "ok"}``). The state
(``state.api.State``) is the one dependency: memory is always ``ok``; a shared backend says ``down`` when
its server does not answer.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any, Literal, Protocol

log = logging.getLogger("mockserver.health")

Status = Literal["ok", "degraded", "down"]
STATUSES: tuple[Status, ...] = ("ok", "degraded", "down")
CHECK_TIMEOUT = 2.0
"""Seconds a check may take; a slower one is reported ``down`` (a health probe must answer quickly)."""


class HealthCheck(Protocol):
    """A dependency that can tell whether it works."""

    async def health(self) -> dict[str, Any]:
        """``{"status": "ok" | "degraded" | "down", ...details}``; raising counts as ``down``."""
        ...


async def check_all(checks: Mapping[str, HealthCheck]) -> tuple[Status, dict[str, dict[str, Any]]]:
    """Run every check at once: the overall status (the worst one) and each check's answer by name."""
    answers = await asyncio.gather(*(_check(name, check) for name, check in checks.items()))
    report = dict(zip(checks, answers, strict=True))
    found = {answer["status"] for answer in answers}
    overall: Status = "down" if "down" in found else "degraded" if "degraded" in found else "ok"
    return overall, report


async def _check(name: str, check: HealthCheck) -> dict[str, Any]:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT):
            answer = dict(await check.health())
    except TimeoutError:
        answer = {"status": "down", "error": f"no answer within {CHECK_TIMEOUT:g} s"}
    except Exception as exc:
        answer = {"status": "down", "error": type(exc).__name__ + (f": {exc}" if str(exc) else "")}
    if answer.get("status") not in STATUSES:
        answer = {**answer, "status": "down", "error": f"unknown status {answer.get('status')!r}"}
    if answer["status"] != "ok":
        log.warning("health check %s: %s", name, answer)
    return answer
