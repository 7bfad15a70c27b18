"""The suite's reports mask every credential header the recording format names (one list,
``mockserver.recordings.CREDENTIAL_HEADERS``), not only ``Authorization``: over real HTTP, a mutated mock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from _suite_helpers import FAST, Target
from mutants import on_envelope

from conformance.checks.envelope import WRONG_KEY
from conformance.spec import SpecInfo
from mockserver.errors import ApiError
from mockserver.mock import Mock

GOOGLE_KEY_HEADER = "X-Goog-Api-Key"
"""A credential header (Google's APIs take their key in it) that the suite's own short list lacked."""


def _broken_envelope(error: ApiError, documented: Any) -> Any:
    return {"oops": error.message}


def test_a_credential_header_only_the_recording_list_names_is_masked_in_reports(
    mutant: Callable[..., Target], run_cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A provider whose key goes in X-Goog-Api-Key: the suite sends every key, right or wrong, in it.
    monkeypatch.setattr(SpecInfo, "auth_headers", lambda self, key: {GOOGLE_KEY_HEADER: key})

    def patch(mock: Mock) -> None:
        # The mock takes any key in X-Goog-Api-Key (the wrong one too: a 200 where a 401 is due, a finding
        # of its own); without it, its 401 (and every error) comes in a broken envelope.
        auth = mock.providers["studioaicore"].auth
        require = auth.require

        def google_style(operation: Any, key: Any, headers: Any) -> None:
            if GOOGLE_KEY_HEADER not in headers:
                require(operation, key, headers)

        auth.require = google_style  # type: ignore[method-assign]
        on_envelope("studioaicore", _broken_envelope)(mock)

    target = mutant("studioaicore", patch)
    report = tmp_path / "report.md"
    quiet = [a for a in FAST if a != "--quiet"]
    code, out, err = run_cli(
        *target.args("studioaicore"), *quiet, "--checks", "envelope", "--report", str(report)
    )
    assert code == 1, out
    texts = {"stdout": out, "stderr": err, "report": report.read_text()}
    for name, text in texts.items():
        # The wrong key the envelope check provokes a 401 with is no secret the suite knows: only the
        # header's name can tell that its value must not be shown.
        assert WRONG_KEY not in text, name
    assert f"'{GOOGLE_KEY_HEADER}: [REDACTED]'" in out
