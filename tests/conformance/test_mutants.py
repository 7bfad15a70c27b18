"""Proof that the suite catches violations: every mutant of ``mutants.py`` must make it fail, and say why.

Each mutant gets a dedicated embedded mock serving only its provider, built fresh and patched before it
serves (the ``mutant`` fixture); the suite then runs against it exactly as ``--against-mock --thorough``
would (spending allowed, the rate limit exhausted, a webhook receiver listening, signatures verified), with a
fixed seed and few examples. Most mutants run only the checks of the family they target; those without
``checks`` run the full default set, to show detection without hints. The unpatched mock, run the same
way, must conform.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _suite_helpers import FAST, Target
from mutants import FAMILIES, MUTANTS, Mutant

from conformance.client import Redactor
from conformance.mock_run import run_against_mock
from conformance.report import summary, violations_text
from conformance.results import ProviderRun, Status, exit_code
from conformance.settings import Settings
from mockserver.mock import Mock
from mockserver.resources import PROVIDER_IDS

SEED = 0
MAX_EXAMPLES = 5


def run_suite(target: Target, provider: str, checks: tuple[str, ...] = (), **changes: Any) -> ProviderRun:
    """The suite against one provider of an embedded mock, the way ``--against-mock --thorough`` runs it."""
    template = Settings(
        provider=provider,
        base_url="",
        api_key="",
        seed=SEED,
        max_examples=MAX_EXAMPLES,
        checks=checks,
        progress=False,
        thorough=True,
        **changes,
    )
    runs, _ = run_against_mock(template, mock=target.mock)
    assert len(runs) == 1, [run.provider for run in runs]
    return runs[0]


def failed(run: ProviderRun) -> set[str]:
    """The checks that ended FAIL."""
    return {result.check for result in run.results if result.status is Status.FAIL}


def _unpatched(mock: Mock) -> None:
    pass


def test_the_catalogue_spans_every_provider_and_family() -> None:
    assert len(MUTANTS) >= 25
    assert len({m.name for m in MUTANTS}) == len(MUTANTS)
    assert {m.provider for m in MUTANTS} == set(PROVIDER_IDS)
    assert {m.family for m in MUTANTS} == set(FAMILIES)
    assert sum(1 for m in MUTANTS if not m.checks) >= 5, "some mutants must run the full default check set"


@pytest.mark.parametrize("provider", PROVIDER_IDS)
def test_the_unpatched_mock_conforms(provider: str, mutant: Callable[..., Target]) -> None:
    run = run_suite(mutant(provider, _unpatched), provider)
    text = summary([run], Redactor(()))
    assert exit_code([run]) == 0, text
    assert not failed(run), text


@pytest.mark.parametrize("case", MUTANTS, ids=lambda m: m.name)
def test_the_mutant_is_caught(case: Mutant, mutant: Callable[..., Target]) -> None:
    target = mutant(case.provider, case.patch, **case.mock_settings)
    started = time.monotonic()
    run = run_suite(target, case.provider, case.checks, **case.settings)
    text = summary([run], Redactor(()))
    assert exit_code([run]) == 1, f"{case.name} was not caught ({time.monotonic() - started:.1f} s)\n{text}"
    missing = [check for check in case.caught_by if check not in failed(run)]
    assert not missing, f"{case.name}: {missing} did not fail\n{text}"
    if case.expect:
        result = next(r for r in run.results if r.check == case.caught_by[0])
        assert case.expect in violations_text(result), text


def test_a_key_echoed_by_the_target_never_reaches_any_output(
    mutant: Callable[..., Target], run_cli: Any, tmp_path: Any
) -> None:
    leaky = next(m for m in MUTANTS if m.name == "studioaicore-leaky-envelope")
    target = mutant(leaky.provider, leaky.patch)
    key = target.provider(leaky.provider)["api_key"]
    junit, report = tmp_path / "junit.xml", tmp_path / "report.md"
    code, out, err = run_cli(
        *target.args(leaky.provider),
        *FAST,
        "--checks",
        "envelope,schema.response_schema_conformance",
        "--junit-xml",
        str(junit),
        "--report",
        str(report),
    )
    assert code == 1
    assert "[REDACTED]" in out
    for text in (out, err, junit.read_text(), report.read_text()):
        assert key not in text


def test_the_readme_table_lists_every_mutant() -> None:
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    missing = [m.name for m in MUTANTS if f"| `{m.name}` | {m.provider} | {m.family} |" not in readme]
    assert not missing, f"add these mutants to README's table: {missing}"
    assert f"**Detection rate: {len(MUTANTS)} / {len(MUTANTS)} (100 %)**" in readme
