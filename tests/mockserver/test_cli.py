"""The command line: ``python -m mockserver`` prints each provider's base URL and key, serves, and stops."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import requests

from mockserver.__main__ import main
from mockserver.resources import PROVIDER_IDS

BANNER_LINE = re.compile(r"^\s+(?P<id>\w+)\s+(?P<base>http://\S+)\s+key: (?P<key>\S+)$")
START_TIMEOUT = 30.0


def free_port() -> int:
    """A loopback port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env() -> dict[str, str]:
    """The environment without ``MOCKSERVER_*`` settings, so only the arguments count."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MOCKSERVER_")}


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m mockserver`` to completion (for arguments it rejects)."""
    return subprocess.run(
        [sys.executable, "-m", "mockserver", *args],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        env=clean_env(),
        check=False,
    )


def wait_for_port(port: int, deadline: float) -> None:
    """Block until something accepts connections on the port (bounded)."""
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@contextmanager
def serving(*args: str) -> Iterator[tuple[dict[str, tuple[str, str]], subprocess.Popen[str]]]:
    """Start the CLI; yields {provider: (base URL, key)} read from its banner, once the port answers."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    )
    watchdog = threading.Timer(START_TIMEOUT, process.kill)  # a hung start fails instead of hanging
    watchdog.start()
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert f"127.0.0.1:{port}" in first, first + (process.stderr.read() if process.stderr else "")
        providers = {}
        for line in iter(process.stdout.readline, ""):
            match = BANNER_LINE.match(line.rstrip("\n"))
            if match is None:
                break
            providers[match["id"]] = (match["base"], match["key"])
            if len(providers) == (1 if "--provider" in args else len(PROVIDER_IDS)):
                break
        wait_for_port(port, time.monotonic() + START_TIMEOUT)
        yield providers, process
    finally:
        watchdog.cancel()
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    """Interrupt the server like Ctrl-C; its exit code and standard error."""
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=10)
    return process.returncode, stderr


def test_full_server_prints_every_provider_and_answers() -> None:
    with serving("--seed", "1") as (providers, process):
        assert list(providers) == list(PROVIDER_IDS)
        base = providers["spaceai"][0]
        assert base.endswith("/spaceai")
        listing = requests.get(base.rsplit("/", 1)[0] + "/_mock/providers", timeout=10).json()["providers"]
        assert {p["id"]: (p["base_url"], p["api_key"]) for p in listing} == providers
        for provider_id, (base_url, key) in providers.items():
            assert base_url.endswith(f"/{provider_id}")
            assert key
        response = requests.get(
            base + "/v1/models", headers={"Authorization": f"Bearer {providers['spaceai'][1]}"}, timeout=10
        )
        assert response.status_code == 200
        assert "gpt-4o" in [m["id"] for m in response.json()["data"]]
        code, stderr = stop(process)
    assert code == 0, stderr
    assert "Traceback" not in stderr


def test_single_provider_at_the_root() -> None:
    with serving("--seed", "1", "--provider", "spaceai", "--rate-limit", "5") as (providers, process):
        assert list(providers) == ["spaceai"]
        base, key = providers["spaceai"]
        assert not base.endswith("/spaceai")
        response = requests.get(base + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "5"
        code, stderr = stop(process)
    assert code == 0, stderr


def test_seed_reaches_the_server(start_chat_mock: Any, chat_mock: Any) -> None:
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Tell me about tides"}]}

    def answer(base: str, key: str) -> str:
        response = requests.post(
            base + "/v1/chat/completions", json=body, headers={"Authorization": f"Bearer {key}"}, timeout=10
        )
        text: str = response.json()["choices"][0]["message"]["content"]
        return text

    with serving("--seed", "7", "--provider", "spaceai") as (providers, _):
        from_cli = answer(*providers["spaceai"])
    in_process = start_chat_mock(seed=7).provider("spaceai")
    assert from_cli == answer(in_process.base_url, in_process.api_key)
    seed_zero = chat_mock.provider("spaceai")
    assert from_cli != answer(seed_zero.base_url, seed_zero.api_key)


def test_bad_provider_exits_2() -> None:
    result = run_cli("--provider", "nope")
    assert result.returncode == 2
    assert "invalid choice: 'nope'" in result.stderr
    assert "usage: mockserver" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--provider", "nope"], "invalid choice: 'nope'"),
        (["--rate-limit", "0"], "must be greater than 0"),
        (["--rate-limit", "many"], "--rate-limit"),
        (["--tokens-per-second", "-1"], "must be greater than 0"),
        (["--job-speed", "0"], "must be greater than 0"),
        (["--journal-max-entries", "0"], "must be greater than 0"),
        (["--journal-max-bytes", "-5"], "must be greater than 0"),
        (["--response-validation", "sometimes"], "invalid choice"),
        (["--port", "http"], "--port"),
        (["--unknown-flag"], "unrecognized arguments"),
    ],
)
def test_bad_arguments_exit_2(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [k for k in os.environ if k.startswith("MOCKSERVER_")]:
        monkeypatch.delenv(name)
    with pytest.raises(SystemExit) as exited:
        main(args)
    assert exited.value.code == 2
    stderr = capsys.readouterr().err
    assert message in stderr
    assert "usage: mockserver" in stderr


def test_console_script_is_installed() -> None:
    (script,) = entry_points(group="console_scripts", name="mockserver")
    assert script.value == "mockserver.__main__:main"
    assert callable(script.load())
    executable = Path(sysconfig.get_path("scripts")) / "mockserver"
    result = subprocess.run(
        [str(executable), "--help"], capture_output=True, text=True, timeout=START_TIMEOUT, check=False
    )
    assert result.returncode == 0
    assert "--rate-limit" in result.stdout
