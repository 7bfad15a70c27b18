"""Helpers shared by the conformance suite's tests (the fixtures are in ``conftest.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests

from conformance.embedded import EmbeddedMock, served_providers

SHARED_RATE_LIMIT = 100_000
"""Requests per minute on the shared mock: several runs per minute must never meet a 429."""
FAST = ("--max-examples", "5", "--seed", "0", "--quiet")
"""Options that keep a CLI run short and reproducible."""


@dataclass
class Target:
    """A running embedded mock and the listing of what it serves."""

    mock: EmbeddedMock

    def provider(self, provider_id: str) -> dict[str, Any]:
        """One provider's ``/_mock/providers`` entry."""
        return next(p for p in self.mock.providers() if p["id"] == provider_id)

    def args(self, provider_id: str) -> list[str]:
        """``--provider/--base-url/--api-key[/--org-id/--model]`` for one provider."""
        entry = self.provider(provider_id)
        args = ["--provider", provider_id, "--base-url", entry["base_url"], "--api-key", entry["api_key"]]
        if entry.get("organization_id"):
            args += ["--org-id", entry["organization_id"]]
        for model in entry.get("models") or []:
            args += ["--model", str(model)]
        return args

    def reset(self) -> None:
        """Back to the mock's seed state (wallets, jobs, rate-limit windows)."""
        requests.post(f"{self.mock.base_url}/_mock/reset", timeout=10).raise_for_status()

    def journal(self, provider_id: str) -> list[dict[str, Any]]:
        """The requests the mock received for a provider."""
        response = requests.get(f"{self.mock.base_url}/_mock/requests?provider={provider_id}", timeout=10)
        entries: list[dict[str, Any]] = response.json()["requests"]
        return entries


def implemented() -> tuple[str, ...]:
    """The providers the embedded mock serves (their modules import)."""
    return served_providers()
