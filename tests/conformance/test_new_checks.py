"""The listing, usage and extremes checks against the embedded mock: listed, run, skipped with the flag."""

from __future__ import annotations

from typing import Any

from _suite_helpers import FAST, Target

NEW_CHECKS = ("listing.parameters", "usage.arithmetic", "extremes.values", "extremes.costly")


def _line(out: str, check: str) -> str:
    return next(line for line in out.splitlines() if line.split()[1:2] == [check])


def test_the_new_checks_are_listed(mock_target: Target, run_cli: Any) -> None:
    code, out, _ = run_cli(*mock_target.args("pahlavan"), "--list-checks")
    assert code == 0
    for check in NEW_CHECKS:
        assert f"pahlavan\t{check}" in out


def test_without_spend_the_costly_ones_are_skipped_naming_the_flag(mock_target: Target, run_cli: Any) -> None:
    code, out, _ = run_cli(*mock_target.args("pahlavan"), *FAST, "--checks", "listing,usage,extremes")
    assert code == 3, out  # checks not run: exit 3
    assert _line(out, "listing.parameters").startswith("pass")
    assert _line(out, "extremes.values").startswith("pass")
    assert "--allow-spend" in _line(out, "usage.arithmetic")
    assert _line(out, "usage.arithmetic").startswith("skip")
    assert "--allow-spend full" in _line(out, "extremes.costly")
    quotes = [e for e in mock_target.journal("pahlavan") if e["operation_id"] == "createQuote"]
    assert len(quotes) > 10, "extremes.values sends extreme quotes"
    billed = [e for e in mock_target.journal("pahlavan") if e["operation_id"] == "createGeneration"]
    assert not billed


def test_minimal_spend_runs_usage_but_not_the_costly_extremes(mock_target: Target, run_cli: Any) -> None:
    args = (*mock_target.args("spaceai"), *FAST, "--checks", "usage,extremes", "--allow-spend")
    code, out, _ = run_cli(*args)
    assert code == 3, out  # extremes.costly not run
    assert _line(out, "usage.arithmetic").startswith("pass")
    assert "streamed answers checked" in _line(out, "usage.arithmetic")
    assert _line(out, "extremes.costly").startswith("skip")
    assert "--allow-spend full" in _line(out, "extremes.costly")
    code, out, _ = run_cli(*args, "full")
    assert code == 0, out
    assert _line(out, "extremes.costly").startswith("pass")
