"""Run the conformance suite from pytest: one test per check.

In your own test file::

    import os
    from conformance.pytest_support import conformance_tests

    test_spaceai_contract = conformance_tests(
        provider="spaceai",
        base_url="https://api.example.com",
        api_key=os.environ["SPACEAI_API_KEY"],
        spend="minimal",          # any other ``conformance.settings.Settings`` field works the same way
    )

pytest collects ``test_spaceai_contract[schema.not_a_server_error]``, ``...[streaming.events]`` and so on.
The suite runs once, when the first of these tests runs; each test then passes, fails with the check's
violations (operation, request as curl with the key redacted, response excerpt, spec location), or is
skipped with the reason (not applicable, spending not allowed...). An unreachable target fails every test.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from conformance.client import Redactor
from conformance.report import violations_text
from conformance.results import ProviderRun, Status
from conformance.settings import Settings
from conformance.suite import planned_checks, run_provider


def conformance_tests(*, provider: str, base_url: str, api_key: str, **options: Any) -> Callable[[str], None]:
    """A pytest test function parametrized with one case per check of the suite for this target."""
    options.setdefault("progress", False)
    settings = Settings(provider=provider, base_url=base_url, api_key=api_key, **options)
    redact = Redactor(settings.secrets())
    runs: list[ProviderRun] = []

    def run_once() -> ProviderRun:
        if not runs:
            runs.append(run_provider(settings))
        return runs[0]

    @pytest.mark.parametrize("check", planned_checks(settings))
    def test_contract(check: str) -> None:
        run = run_once()
        if run.fatal:
            pytest.fail(redact.text(run.fatal), pytrace=False)
        result = next(r for r in run.results if r.check == check)
        if result.status in (Status.SKIP, Status.NA):
            pytest.skip(redact.text(result.detail))
        if result.status is Status.ERROR:
            pytest.fail(redact.text(f"{check} could not run: {result.detail}"), pytrace=False)
        if result.status is Status.FAIL:
            pytest.fail(redact.text(f"{check} found violations:\n{violations_text(result)}"), pytrace=False)

    return test_contract
