"""``python -m mockserver`` with ``--state``, ``--state-prefix`` and ``--workers``: what it refuses, on one
line and with exit code 2, before serving anything, and how it shows a state URL (never its password).

The tests that need a running redis-server (``--workers 2`` serving, a password-protected Redis) are in
``test_shared_service.py``.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from test_cli import START_TIMEOUT, clean_env, free_port

from mockserver.__main__ import banner, state_unreachable
from mockserver.errors import StateError
from mockserver.settings import HOLD_SECONDS, Settings, display_url, settings_from_args, url_secrets

PASSWORD = "hunter2-secret"


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """``python -m mockserver <args>`` to completion, with only ``env`` as ``MOCKSERVER_*`` variables."""
    return subprocess.run(
        [sys.executable, "-m", "mockserver", *args],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        env={**clean_env(), **env},
        check=False,
    )


def refused(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused start printed, after checking it is exactly that: code 2, one line, no
    banner, no traceback, no password."""
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mockserver: ")
    assert PASSWORD not in result.stderr
    return lines[0]


def test_the_hold_deadline_flag_and_variable_reach_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOCKSERVER_HOLD_SECONDS", raising=False)
    assert settings_from_args([]).hold_seconds == HOLD_SECONDS == 3600.0
    assert settings_from_args(["--hold-seconds", "2.5"]).hold_seconds == 2.5
    monkeypatch.setenv("MOCKSERVER_HOLD_SECONDS", "90")
    assert settings_from_args([]).hold_seconds == 90.0
    for bad in ("0", "nan", "inf", "1e12", "soon"):
        result = run("--hold-seconds", bad)
        assert result.returncode == 2
        assert "--hold-seconds: must be a number of seconds above 0, at most 3.16224e+07" in result.stderr


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("bogus", "not 'bogus'"),
        ("http://127.0.0.1:6379/0", "not 'http://127.0.0.1:6379/0'"),
        (f"http://user:{PASSWORD}@127.0.0.1:6379/0", "not 'http://user:***@127.0.0.1:6379/0'"),
        (f"redis://:{PASSWORD}@127.0.0.1:6379/zero", "the database in 'redis://:***@127.0.0.1:6379/zero'"),
        ("redis://127.0.0.1:port/0", "is not a valid URL"),
        ("redis:///0", "names no host"),
        ("unix://", "names no socket path"),
    ],
)
def test_a_bad_state_url_is_one_line_and_exit_code_2(url: str, shown: str) -> None:
    line = refused(run("--state", url))
    assert line.startswith("mockserver: --state must be 'memory' or a redis://HOST:PORT/DB"), line
    assert shown in line


def test_the_state_variable_is_checked_like_the_flag() -> None:
    line = refused(run(MOCKSERVER_STATE=f"mysql://root:{PASSWORD}@db/0"))
    assert "not 'mysql://root:***@db/0'" in line


@pytest.mark.parametrize("prefix", ["", "a b", "a:b", "x" * 65, "é"])
def test_a_bad_state_prefix_is_one_line_and_exit_code_2(prefix: str) -> None:
    line = refused(run("--state-prefix", prefix))
    assert line.startswith("mockserver: --state-prefix must be 1 to 64 letters, digits, '_', '.' or '-'")


def test_memory_state_with_several_workers_is_refused() -> None:
    line = refused(run("--workers", "2"))
    assert line == (
        "mockserver: --workers 2 needs a shared --state (redis://HOST:PORT/DB): with 'memory' every "
        "worker would keep its own keys, wallets and jobs and they would diverge"
    )
    # The same from the environment, and with memory named explicitly.
    assert refused(run(MOCKSERVER_WORKERS="3")).startswith("mockserver: --workers 3 needs a shared")
    assert refused(run("--workers", "2", "--state", "memory")).startswith("mockserver: --workers 2")


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one process", "two workers"])
def test_an_unreachable_redis_is_one_line_naming_the_url_without_its_password(workers: list[str]) -> None:
    port = free_port()  # nothing listens there
    url = f"redis://:{PASSWORD}@127.0.0.1:{port}/0"
    line = refused(run("--port", str(free_port()), "--state", url, *workers))
    assert line.startswith(f"mockserver: cannot open the state at redis://:***@127.0.0.1:{port}/0: "), line


def test_workers_do_not_join_another_reuse_port_server() -> None:
    # Another server on the port, itself bound with SO_REUSEPORT: workers binding with SO_REUSEPORT would
    # silently share its connections; the parent refuses the port as a single process would.
    with socket.socket() as other:
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        # The state is never opened: the port is refused before any worker starts.
        result = run("--port", str(port), "--workers", "2", "--state", "redis://127.0.0.1:1/0")
    assert refused(result) == f"mockserver: cannot listen on 127.0.0.1:{port}: Address already in use"


@pytest.mark.parametrize(("value", "message"), [("0", "must be greater than 0"), ("two", "whole number")])
def test_a_bad_worker_count_is_a_usage_error(value: str, message: str) -> None:
    result = run("--workers", value)
    assert result.returncode == 2
    assert message in result.stderr
    assert "usage: mockserver" in result.stderr


def test_the_flags_and_variables_reach_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [k for k in os.environ if k.startswith("MOCKSERVER_")]:
        monkeypatch.delenv(name)
    defaults = settings_from_args([])
    assert (defaults.state, defaults.state_prefix, defaults.workers) == ("memory", "aigen", 1)
    url = f"redis://:{PASSWORD}@127.0.0.1:6379/3"
    flags = settings_from_args(["--state", url, "--state-prefix", "ci-42.a_b", "--workers", "4"])
    assert (flags.state, flags.state_prefix, flags.workers) == (url, "ci-42.a_b", 4)
    assert PASSWORD not in repr(flags)  # the state URL is kept out of the settings' repr
    monkeypatch.setenv("MOCKSERVER_STATE", "unix:///run/redis.sock?db=2")
    monkeypatch.setenv("MOCKSERVER_STATE_PREFIX", "staging")
    monkeypatch.setenv("MOCKSERVER_WORKERS", "2")
    env = settings_from_args([])
    assert (env.state, env.state_prefix, env.workers) == ("unix:///run/redis.sock?db=2", "staging", 2)
    assert settings_from_args(["--state", "rediss://cache:6380/0"]).state == "rediss://cache:6380/0"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"redis://:{PASSWORD}@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
        (f"redis://default:{PASSWORD}@cache:6379/1", "redis://default:***@cache:6379/1"),
        ("redis://cache:6379/1", "redis://cache:6379/1"),
        (f"unix:///run/redis.sock?db=0&password={PASSWORD}", "unix:///run/redis.sock?db=0&password=***"),
        (f"rediss://:{PASSWORD.replace('-', '%2D')}@cache/0", "rediss://:***@cache/0"),
        (f"redis://:{PASSWORD}@[::1", "redis://***@[::1"),
    ],
)
def test_a_state_url_is_shown_without_its_password(url: str, shown: str) -> None:
    assert display_url(url) == shown
    assert (PASSWORD in url_secrets(url)) == (shown != url)  # what the log redactor is given


def test_the_banner_names_the_state_and_workers_without_the_password() -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:6379/0"
    settings = Settings(port=8080, state=url, state_prefix="staging", workers=2)
    first = banner(settings, {"spaceai": "sk-key"}).splitlines()[0]
    assert "(seed 0; state redis://:***@127.0.0.1:6379/0 prefix staging; 2 workers)" in first
    assert PASSWORD not in banner(settings, {"spaceai": "sk-key"})
    # The default banner stays as it was.
    assert "(seed 0); dashboard" in banner(Settings(), {}).splitlines()[0]


def test_a_state_error_line_never_shows_the_password() -> None:
    settings = Settings(state=f"redis://:{PASSWORD}@127.0.0.1:1/0")
    error = StateError(f"Error 111 connecting to redis://:{PASSWORD}@127.0.0.1:1/0.\nConnection refused.")
    line = state_unreachable(settings, error)
    assert line == (
        "cannot open the state at redis://:***@127.0.0.1:1/0: "
        "Error 111 connecting to redis://:***@127.0.0.1:1/0. Connection refused."
    )
