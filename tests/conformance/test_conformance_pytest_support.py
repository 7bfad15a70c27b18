"""``conformance.pytest_support``: one pytest test per check, the suite run once for all of them."""

from __future__ import annotations

from typing import Any

import pytest
from _suite_helpers import Target

from conformance.pytest_support import conformance_tests
from conformance.settings import Settings
from conformance.suite import planned_checks

pytest_plugins = ["pytester"]


def _params(test: Any) -> list[str]:
    (mark,) = [m for m in test.pytestmark if m.name == "parametrize"]
    return list(mark.args[1])


def test_one_param_per_check_and_each_outcome_maps_to_pytest(mock_target: Target) -> None:
    entry = mock_target.provider("spaceai")
    test = conformance_tests(
        provider="spaceai",
        base_url=entry["base_url"],
        api_key=entry["api_key"],
        max_examples=5,
        seed=0,
        spend="minimal",
    )
    settings = Settings(provider="spaceai", base_url="http://x", api_key="k")
    assert _params(test) == planned_checks(settings)
    test("schema.response_schema_conformance")
    test("streaming.events")
    with pytest.raises(pytest.skip.Exception, match="no createRun"):
        test("jobs.run")
    # The suite ran once: a second look reuses the results (the journal does not grow).
    before = len(mock_target.journal("spaceai"))
    test("envelope.errors")
    assert len(mock_target.journal("spaceai")) == before


def test_an_unreachable_target_fails_every_test() -> None:
    test = conformance_tests(
        provider="spaceai", base_url="http://127.0.0.1:9", api_key="secret-key", timeout=2
    )
    with pytest.raises(pytest.fail.Exception, match="cannot connect") as failure:
        test("envelope.errors")
    assert "secret-key" not in str(failure.value)


def test_collected_by_pytest_from_a_users_test_file(mock_target: Target, pytester: pytest.Pytester) -> None:
    entry = mock_target.provider("studioaicore")
    pytester.makepyfile(
        f"""
        from conformance.pytest_support import conformance_tests

        test_contract = conformance_tests(
            provider="studioaicore", base_url={entry["base_url"]!r}, api_key={entry["api_key"]!r},
            max_examples=5, seed=0, spend="minimal", checks=("schema.not_a_server_error", "envelope", "jobs"),
        )
        """
    )
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, skipped=3)
