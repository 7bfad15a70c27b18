"""``billing.insufficient_balance`` provoked for real: a poor account's key, given or found by --against-mock.

The mock seeds Pahlavan's ``user_poor`` (one cent) with a key named ``poor``, listed under ``extra_keys`` in
``GET /_mock/providers``; ``--against-mock`` hands it to the check as ``--poor-api-key``.
"""

from __future__ import annotations

from typing import Any

import pytest
import requests
from _suite_helpers import FAST, Target, implemented

from conformance.mock_run import POOR_KEY_NAME

PAHLAVAN = "pahlavan"
CHECK = "billing.insufficient_balance"


@pytest.fixture(autouse=True)
def _pahlavan_served() -> None:
    if PAHLAVAN not in implemented():
        pytest.skip("the mock does not serve Pahlavan")


def check_status(out: str) -> str:
    """The status word (pass, FAIL, skip, ERROR) of the check's line in the summary."""
    (line,) = [line for line in out.splitlines() if line.split()[1:2] == [CHECK]]
    return line.split()[0]


def wallet(target: Target, account: str) -> Any:
    accounts = requests.get(f"{target.mock.base_url}/_mock/accounts?provider={PAHLAVAN}", timeout=10).json()
    return next(a["wallet_cents"] for a in accounts["accounts"] if a["id"] == account)


def test_the_mock_lists_a_poor_key(mock_target: Target) -> None:
    entry = mock_target.provider(PAHLAVAN)
    assert entry["extra_keys"][POOR_KEY_NAME] != entry["api_key"]


def test_passes_with_the_poor_key_and_charges_nothing(mock_target: Target, run_cli: Any) -> None:
    poor_key = mock_target.provider(PAHLAVAN)["extra_keys"][POOR_KEY_NAME]
    code, out, err = run_cli(
        *mock_target.args(PAHLAVAN), *FAST, "--allow-spend", "--checks", CHECK, "--poor-api-key", poor_key
    )
    assert code == 0, out
    assert check_status(out) == "pass", out
    refused = [e for e in mock_target.journal(PAHLAVAN) if e["operation_id"] == "createVideoGeneration"]
    assert [e["status"] for e in refused] == [402]
    assert wallet(mock_target, "user_poor") == 1
    assert poor_key not in out + err


def test_without_a_poor_key_it_is_skipped_and_says_how(mock_target: Target, run_cli: Any) -> None:
    code, out, _ = run_cli(*mock_target.args(PAHLAVAN), *FAST, "--allow-spend", "--checks", CHECK)
    assert code == 3, out
    assert check_status(out) == "skip", out
    assert "1 needs --poor-api-key (exit 3)" in out


def test_against_mock_finds_the_poor_key_itself(run_cli: Any) -> None:
    code, out, err = run_cli(
        "--against-mock", "--provider", PAHLAVAN, "--checks", CHECK, "--allow-spend", *FAST
    )
    assert code == 0, out + err
    assert check_status(out) == "pass", out
    assert "sp_live_mockkey0003" not in out + err  # redacted like the main key
