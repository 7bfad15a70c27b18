"""``--against-mock``: start the embedded mock and check every provider it serves.

The options apply as they would to any target, so a run without flags skips what a default run skips (and
exits 3). With ``--thorough`` the mock, being free and local, gets everything: costly operations are fuzzed
too (``spend="full"``), the rate limit is exhausted, and a webhook receiver listens on a free loopback port.
Base URLs, keys, organizations and models come from
``GET /_mock/providers``; webhook signing secrets from ``GET /_mock/webhooks/secrets`` when the mock has it.
A seeded key named ``poor`` in a provider's ``extra_keys`` (an account with a nearly empty wallet) becomes the
``--poor-api-key`` of that provider's run.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from conformance.embedded import LOOPBACK, EmbeddedMock
from conformance.results import ProviderRun
from conformance.settings import Settings
from conformance.suite import run_provider
from mockserver.resources import PROVIDER_IDS

Progress = Callable[[str], None]
POOR_KEY_NAME = "poor"
"""The name of the mock's seeded key whose account cannot afford large requests."""


def _model_ids(models: list[Any]) -> tuple[str, ...]:
    return tuple(str(m["id"]) if isinstance(m, dict) else str(m) for m in models)


def mock_targets(mock: EmbeddedMock, template: Settings) -> list[Settings]:
    """Settings for each provider the running mock serves (restricted to ``template.provider`` if set)."""
    secrets = mock.webhook_secrets()
    targets = []
    for entry in mock.providers():
        if template.provider and entry["id"] != template.provider:
            continue
        targets.append(
            template.with_changes(
                provider=entry["id"],
                base_url=entry["base_url"],
                api_key=entry["api_key"],
                org_id=entry.get("organization_id"),
                models=template.models or _model_ids(entry.get("models") or []),
                spend="full" if template.thorough else template.spend,
                exhaust_rate_limit=template.exhaust_rate_limit or template.thorough,
                webhook_listen=template.webhook_listen or ((LOOPBACK, 0) if template.thorough else None),
                webhook_secret=template.webhook_secret or secrets.get(entry["id"]),
                poor_api_key=template.poor_api_key or (entry.get("extra_keys") or {}).get(POOR_KEY_NAME),
            )
        )
    return targets


def run_against_mock(
    template: Settings, progress: Progress | None = None, mock: EmbeddedMock | None = None
) -> tuple[list[ProviderRun], tuple[str, ...]]:
    """Check the providers of a mock (started here unless given); returns the runs and the secrets used."""
    own = mock is None
    server = mock or EmbeddedMock(quiet=True).start()
    try:
        targets = mock_targets(server, template)
        served = {t.provider for t in targets}
        runs = [run_provider(settings, progress) for settings in targets]
    finally:
        if own:
            server.stop()
    for provider in PROVIDER_IDS:
        if provider not in served and (not template.provider or provider == template.provider):
            missing = ProviderRun(provider=provider, base_url="(not served)")
            missing.fatal = "the embedded mock does not serve this provider (its module does not import)"
            runs.append(missing)
            if progress is not None:
                progress(f"[{provider}] ERROR {missing.fatal}")
    secrets = tuple(s for t in targets for s in t.secrets())
    return runs, secrets
