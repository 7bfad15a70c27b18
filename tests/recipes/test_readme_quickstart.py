"""The README's Quick start works as written: its curl commands get 2xx JSON from ``python -m mockserver``."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from conformance.cli import build_parser
from mockserver.resources import PROVIDER_IDS

ROOT = Path(__file__).resolve().parents[2]
README_ORIGIN = "http://127.0.0.1:8080"


def quick_start() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Quick start\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "the README has no '## Quick start' section"
    return match.group(1)


def curl_commands() -> list[str]:
    """The curl commands of the Quick start: whole lines of its sh blocks (continuations joined), in order,
    then the ones quoted inline in its prose."""
    section = quick_start()
    commands = []
    for block in re.findall(r"```sh\n(.*?)\n```", section, re.S):
        joined = re.sub(r"\\\n\s*", "", block)
        commands += [line for line in joined.splitlines() if line.startswith("curl ")]
    prose = re.sub(r"```.*?```", "", section, flags=re.S)
    return commands + re.findall(r"`(curl [^`]+)`", prose)


@pytest.fixture(scope="module")
def origin(mock_cli: Any) -> Iterator[str]:
    """``python -m mockserver`` as the Quick start starts it, on a free port instead of 8080."""
    with mock_cli() as base:
        yield base
        assert requests.get(base + "/_mock/violations", timeout=5).json()["violations"] == []


def test_the_quick_start_starts_the_mock_and_runs_the_conformance_suite() -> None:
    blocks = re.findall(r"```sh\n(.*?)\n```", quick_start(), re.S)
    assert "pip install -e ." in blocks[0]
    assert "python -m mockserver" in blocks[0].splitlines()
    assert "python -m conformance --against-mock" in blocks[-1].splitlines()
    assert build_parser().parse_args(["--against-mock"]).against_mock


def test_the_quick_start_calls_each_provider() -> None:
    calls = [c for c in curl_commands() if "/_mock/" not in c]
    assert len(calls) == len(PROVIDER_IDS)
    assert [re.search(r"8080/(\w+)/", c).group(1) for c in calls] == [  # type: ignore[union-attr]
        "studioaicore",
        "modelstudio",
        "artificialstudio",
        "pahlavan",
        "spaceai",
    ]


@pytest.mark.parametrize("command", curl_commands(), ids=lambda c: c.split()[2].split("8080")[-1])
def test_a_quick_start_curl_answers_2xx_json(origin: str, command: str) -> None:
    assert README_ORIGIN in command
    argv = [arg.replace(README_ORIGIN, origin) for arg in shlex.split(command)]
    result = subprocess.run([*argv, "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    body, _, status = result.stdout.rpartition("\n")
    assert 200 <= int(status) < 300, f"{command}\n-> {status}: {body}"
    assert isinstance(json.loads(body), dict)
