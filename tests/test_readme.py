"""README opens with the two commands that work on a fresh machine, and CI runs the test one verbatim."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _commands() -> list[str]:
    return re.findall(r"```sh\n(.*?)\n```", (ROOT / "README.md").read_text(encoding="utf-8"), re.S)


def test_readme_opens_with_install_and_start_then_install_and_test() -> None:
    start, test = _commands()[:2]
    assert "pip install" in start
    assert "python -m mockserver" in start
    assert "pip install -e '.[test]'" in test
    assert test.rstrip().endswith("pytest")


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    test_command = _commands()[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert test_command in ci.splitlines()
    assert "-eq 5" in ci, "CI must treat pytest's exit code 5 (no tests collected) as a failure"
