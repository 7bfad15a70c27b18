"""The README's Quick start works as written: its curl commands get 2xx JSON from ``python -m mockserver``."""

from __future__ import annotations

import json
import os
import re
import shlex
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``python -m mockserver`` as the Quick start starts it, on a free port instead of 8080."""
    port = free_port()
    log = tmp_path_factory.mktemp("quickstart") / "mockserver.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "mockserver", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            # As on a newcomer's machine: no MOCKSERVER_* variables changing the defaults.
            env={k: v for k, v in os.environ.items() if not k.startswith("MOCKSERVER_")},
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(base + "/_mock/providers", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"python -m mockserver did not start: {log.read_text(errors='replace')}")
                time.sleep(0.05)  # real time: waiting for a separate process to bind its port
        yield base
        assert requests.get(base + "/_mock/violations", timeout=5).json()["violations"] == []
    finally:
        server.terminate()
        server.wait(10)


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
