"""The mock as a shared service on a real redis-server (``redis_server``, ``own_redis``: see
tests/redis_fixture.py): ``--workers N`` processes on one port, instances sharing one prefix, the plugin's
prefixes in Redis.

Each test runs ``python -m mockserver`` as processes, as an operator would, and talks to them over HTTP.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from test_cli import START_TIMEOUT, clean_env, free_port, serving
from test_cli_process import finish

from mockserver.resources import PROVIDER_IDS

pytest_plugins = ["pytester"]

PASSWORD = "hunter2-secret"
STOP_SECONDS = 20.0
"""Bound on a stop of the parent and its workers (default --shutdown-timeout is 10 s; nothing is in
flight here, so a stop takes about a second)."""
ORG = "/modelstudio/api/v1/organizations/org_mock_demo"
JOB = {"model_id": "ms-demo-chat", "messages": [[{"role": "user", "content": "Hello"}]]}
MODELSTUDIO = {"Authorization": "Bearer ms_test_mockkey_0001"}


# -- processes ------------------------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                # The command name is in parentheses and may hold spaces: the fields after it are fixed.
                stat = (entry / "stat").read_text()
                if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
    return sorted(found)


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def listening_sockets(pid: int, port: int) -> set[int]:
    """The inodes of the TCP sockets ``pid`` listens with on ``port``."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table) as lines:
            next(lines)
            for line in lines:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(int(fields[9]))
    owned = set()
    fds = Path(f"/proc/{pid}/fd")
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            target = os.readlink(fd)
            if target.startswith("socket:["):
                owned.add(int(target[8:-1]))
    return inodes & owned


def wait_until(condition: Any, what: str, seconds: float = START_TIMEOUT) -> None:
    """Poll ``condition()`` (real time: other processes) until true, or fail naming ``what``."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def answers(url: str) -> bool:
    """Whether a GET of ``url`` on a new connection answers 200 now."""
    try:
        return fresh_get(url).status_code == 200
    except requests.RequestException:
        return False


def origin_of(providers: dict[str, tuple[str, str]]) -> str:
    return providers["spaceai"][0].rsplit("/", 1)[0]


def fresh_get(url: str, **kwargs: Any) -> requests.Response:
    """A GET on a new connection (``Connection: close``), so connections spread over the workers."""
    return requests.get(
        url, headers={"Connection": "close", **kwargs.pop("headers", {})}, timeout=10, **kwargs
    )


def start_with_env(port: int, *args: str, **env: str) -> tuple[subprocess.Popen[str], list[str]]:
    """``python -m mockserver --port PORT ARGS`` with ``MOCKSERVER_*`` variables ``env``; the process and
    its banner's six lines (read with a watchdog: a hung start fails instead of hanging)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "mockserver", "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**clean_env(), **env},
    )
    watchdog = threading.Timer(START_TIMEOUT * 2, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        return process, [process.stdout.readline() for _ in range(6)]
    finally:
        watchdog.cancel()


@contextlib.contextmanager
def instance(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """``python -m mockserver ARGS`` on a free port, once its banner is out: its origin and process. Unlike
    ``test_cli.serving`` no watchdog runs past the start (tests here may take long with workers dying); the
    process is interrupted (then killed) at the end if still running."""
    port = free_port()
    process, lines = start_with_env(port, *args)
    try:
        assert lines[0].startswith(f"mockserver listening on http://127.0.0.1:{port} "), lines
        yield f"http://127.0.0.1:{port}", process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)
        try:
            process.communicate(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


# -- --workers ---------------------------------------------------------------------------------------------


def test_workers_share_one_port_and_print_one_banner(redis_server: Any, redis_prefix: str) -> None:
    args = ("--workers", "2", "--state", redis_server.url, "--state-prefix", redis_prefix)
    with instance(*args) as (origin, process):
        port = int(origin.rsplit(":", 1)[1])
        workers = children(process.pid)
        assert len(workers) == 2, workers
        # Each worker listens on the port with a socket of its own (SO_REUSEPORT), the parent with none.
        sockets = [listening_sockets(pid, port) for pid in workers]
        assert all(len(owned) == 1 for owned in sockets), sockets
        assert sockets[0] != sockets[1]
        assert listening_sockets(process.pid, port) == set()
        for _ in range(20):  # new connections, spread by the kernel over both workers
            assert fresh_get(origin + "/_mock/providers").status_code == 200
        code, stderr, took = finish(process, signal.SIGTERM)
    assert code == 0, stderr
    assert took < STOP_SECONDS, (took, stderr)
    assert "Traceback" not in stderr
    assert not any(alive(pid) for pid in workers)
    # Each worker logged its own stop.
    assert stderr.count("stopping: in-flight requests have up to") == 2, stderr


def test_workers_on_port_0_share_the_port_the_first_one_got(redis_server: Any, redis_prefix: str) -> None:
    process, lines = start_with_env(0, "--workers", "2", MOCKSERVER_STATE=redis_server.url)
    try:
        port = int(lines[0].split("http://127.0.0.1:", 1)[1].split()[0])
        assert port != 0
        workers = children(process.pid)
        assert len(workers) == 2
        assert all(listening_sockets(pid, port) for pid in workers)
        assert answers(f"http://127.0.0.1:{port}/_mock/providers")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=STOP_SECONDS)
    assert process.returncode == 0, stderr


def test_the_banner_is_printed_once_for_all_workers(redis_server: Any, redis_prefix: str) -> None:
    port = free_port()
    env = {"MOCKSERVER_STATE": redis_server.url, "MOCKSERVER_STATE_PREFIX": redis_prefix}
    process, lines = start_with_env(port, "--workers", "3", **env)
    try:
        # The banner comes once all three listen.
        assert len(children(process.pid)) == 3
        assert all(listening_sockets(pid, port) for pid in children(process.pid))
        assert answers(f"http://127.0.0.1:{port}/_mock/providers")
    finally:
        process.send_signal(signal.SIGINT)
        stdout, stderr = process.communicate(timeout=STOP_SECONDS)
    assert process.returncode == 0, stderr
    first = f"mockserver listening on http://127.0.0.1:{port} (seed 0; state {redis_server.url}"
    assert lines[0].startswith(first), lines
    assert "; 3 workers)" in lines[0]
    assert [line.split()[0] for line in lines[1:]] == list(PROVIDER_IDS)
    assert stdout == ""  # nothing more: one banner for the three workers


def test_a_worker_that_dies_is_replaced(redis_server: Any, redis_prefix: str) -> None:
    args = ("--workers", "2", "--state", redis_server.url, "--state-prefix", redis_prefix)
    with instance(*args) as (origin, process):
        port = int(origin.rsplit(":", 1)[1])
        first = children(process.pid)
        os.kill(first[0], signal.SIGKILL)
        wait_until(lambda: len(set(children(process.pid)) - set(first)) == 1, "a replacement worker")
        replacement = (set(children(process.pid)) - set(first)).pop()
        wait_until(lambda: bool(listening_sockets(replacement, port)), "the replacement to listen")
        for _ in range(20):
            assert fresh_get(origin + "/_mock/providers").status_code == 200
        code, stderr, _ = finish(process, signal.SIGTERM)
    assert code == 0, stderr  # a replaced worker is no failure of the stop
    assert f"(pid {first[0]}) was killed by SIGKILL; starting a new one" in stderr, stderr
    assert "Traceback" not in stderr


def test_ctrl_c_in_a_terminal_stops_parent_and_workers_cleanly(redis_server: Any, redis_prefix: str) -> None:
    args = ("--port", str(free_port()), "--workers", "2", "--state", redis_server.url)
    process = subprocess.Popen(
        [sys.executable, "-m", "mockserver", *args, "--state-prefix", redis_prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        start_new_session=True,  # its own process group, as a shell's foreground job
    )
    watchdog = threading.Timer(START_TIMEOUT * 2, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        assert "mockserver listening" in process.stdout.readline()
        workers = children(process.pid)
    finally:
        watchdog.cancel()
    os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C does: the signal reaches every process of the group
    _, stderr = process.communicate(timeout=STOP_SECONDS)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    assert not any(alive(pid) for pid in workers)


def test_workers_that_keep_dying_stop_the_server(redis_server: Any, redis_prefix: str) -> None:
    args = ("--workers", "2", "--state", redis_server.url, "--state-prefix", redis_prefix)
    with instance(*args) as (_, process):
        for kill in range(6):  # the sixth replacement within a minute is one too many
            current = set(children(process.pid))
            os.kill(min(current), signal.SIGKILL)
            if kill < 5:
                wait_until(lambda old=current: len(set(children(process.pid)) - old) == 1, "a replacement")
        _, stderr = process.communicate(timeout=STOP_SECONDS)
    assert process.returncode == 1, stderr
    assert "more than 5 workers exited within 60 s; stopping" in stderr, stderr
    assert stderr.count("was killed by SIGKILL; starting a new one") == 6


def test_a_replacement_that_cannot_start_stops_the_server(own_redis: Any, redis_prefix: str) -> None:
    args = ("--workers", "2", "--state", own_redis.url, "--state-prefix", redis_prefix)
    with instance(*args) as (_, process):
        own_redis.stop()  # a new worker cannot open the state now
        os.kill(children(process.pid)[0], signal.SIGKILL)
        _, stderr = process.communicate(timeout=STOP_SECONDS + START_TIMEOUT)
    assert process.returncode == 1, stderr
    assert "exited before listening (exited with code 2); stopping" in stderr, stderr
    assert "mockserver: cannot open the state at " in stderr


def test_workers_stop_when_the_parent_is_killed(redis_server: Any, redis_prefix: str) -> None:
    args = ("--workers", "2", "--state", redis_server.url, "--state-prefix", redis_prefix)
    with instance(*args) as (_, process):
        workers = children(process.pid)
        assert len(workers) == 2
        process.kill()  # no chance to stop its workers
        process.wait(10)
        wait_until(
            lambda: not any(alive(pid) for pid in workers), "the orphaned workers to stop", STOP_SECONDS
        )


def test_a_port_in_use_with_workers_is_one_line(redis_server: Any, redis_prefix: str) -> None:
    with socket.create_server(("127.0.0.1", 0)) as taken:  # no SO_REUSEPORT: nobody may join it
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "mockserver",
                "--port",
                str(port),
                "--workers",
                "2",
                "--state",
                redis_server.url,
                "--state-prefix",
                redis_prefix,
            ],
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT * 2,
            env=clean_env(),
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"mockserver: cannot listen on 127.0.0.1:{port}: Address already in use\n"
    assert result.stdout == ""


# -- a password-protected Redis ------------------------------------------------------------------------


def redis_cli(port: int, *args: str) -> str:
    """``redis-cli -p PORT ARGS...`` (Debian's redis-server package brings redis-cli along)."""
    program = shutil.which("redis-cli")
    assert program, "redis-cli is missing (it comes with redis-server's package, redis-tools)"
    return subprocess.run(
        [program, "-h", "127.0.0.1", "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout


def test_a_password_protected_redis_serves_and_no_line_shows_the_password(own_redis: Any) -> None:
    redis_cli(own_redis.port, "CONFIG", "SET", "requirepass", PASSWORD)
    url = f"redis://:{PASSWORD}@127.0.0.1:{own_redis.port}/0"
    with serving("--state", url, "--provider", "spaceai") as (providers, process):
        base, key = providers["spaceai"]  # (a single quick process: test_cli's helper with its watchdog)
        assert requests.get(base + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10).ok
        code, stderr, _ = finish(process, signal.SIGTERM)
        banner_seen = json.dumps(providers)
    assert code == 0, stderr
    assert PASSWORD not in stderr
    assert PASSWORD not in banner_seen


def test_a_password_is_not_shown_in_the_banner(own_redis: Any) -> None:
    redis_cli(own_redis.port, "CONFIG", "SET", "requirepass", PASSWORD)
    port = free_port()
    url = f"redis://:{PASSWORD}@127.0.0.1:{own_redis.port}/0"
    process, lines = start_with_env(port, "--workers", "2", MOCKSERVER_STATE=url)
    first = lines[0]
    try:
        assert answers(f"http://127.0.0.1:{port}/_mock/providers")
    finally:
        process.send_signal(signal.SIGTERM)
        stdout, stderr = process.communicate(timeout=STOP_SECONDS)
    assert process.returncode == 0, stderr
    assert f"state redis://:***@127.0.0.1:{own_redis.port}/0 prefix aigen; 2 workers" in first, first
    assert PASSWORD not in first + stdout + stderr


def test_a_wrong_password_is_one_line(own_redis: Any) -> None:
    redis_cli(own_redis.port, "CONFIG", "SET", "requirepass", PASSWORD)
    url = f"redis://:not-{PASSWORD}@127.0.0.1:{own_redis.port}/0"
    result = subprocess.run(
        [sys.executable, "-m", "mockserver", "--port", str(free_port()), "--state", url],
        capture_output=True,
        text=True,
        timeout=START_TIMEOUT,
        env=clean_env(),
        check=False,
    )
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith(
        f"mockserver: cannot open the state at redis://:***@127.0.0.1:{own_redis.port}/0: "
    )
    assert PASSWORD not in result.stderr


# -- one mock from several processes (needs the state on Redis end to end) -----------------------------


def create_job(origin: str) -> str:
    created = requests.post(origin + ORG + "/generate", json=JOB, headers=MODELSTUDIO, timeout=10)
    assert created.status_code == 200, created.text
    job_id: str = created.json()["job_id"]
    return job_id


def test_workers_serve_one_state(redis_server: Any, redis_prefix: str) -> None:
    args = ("--workers", "2", "--state", redis_server.url, "--state-prefix", redis_prefix)
    with instance(*args) as (origin, process):
        # Created over new connections, spread over both workers: ids unique across them.
        jobs = [create_job(origin) for _ in range(6)]
        assert len(set(jobs)) == len(jobs), jobs
        # One clock advance, on whichever worker takes it, finishes every job for both.
        requests.post(origin + "/_mock/clock/advance", json={"seconds": 600}, timeout=30).raise_for_status()
        for job_id in jobs * 2:
            polled = fresh_get(origin + ORG + f"/generate/{job_id}", headers=MODELSTUDIO)
            assert polled.status_code == 200, polled.text
            assert polled.json()["job_status"] == "completed"
        # The journal is shared: any worker lists every request (6 creations, the 12 polls before it) once
        # the other worker wrote its rows (each writes in batches, within a fraction of a second).
        listing = origin + "/_mock/requests?provider=modelstudio&limit=100"
        wait_until(lambda: len(fresh_get(listing).json()["requests"]) == 18, "18 journal entries", 10)
        code, stderr, _ = finish(process, signal.SIGTERM)
    assert code == 0, stderr


def test_two_instances_share_jobs_the_clock_and_reset(redis_server: Any, redis_prefix: str) -> None:
    shared = ("--state", redis_server.url, "--state-prefix", redis_prefix)
    with (
        instance(*shared) as (first, _),
        instance(*shared) as (second, _),
        instance("--state", redis_server.url, "--state-prefix", redis_prefix + "-other") as (other, _),
    ):
        job_id = create_job(first)
        poll = ORG + f"/generate/{job_id}"
        assert (
            requests.get(second + poll, headers=MODELSTUDIO, timeout=10).json()["job_status"] != "completed"
        )
        # The clock moved on the second moves it on the first: the job is done everywhere.
        requests.post(second + "/_mock/clock/advance", json={"seconds": 600}, timeout=30).raise_for_status()
        assert requests.get(first + poll, headers=MODELSTUDIO, timeout=10).json()["job_status"] == "completed"
        # Another prefix sees nothing of it.
        assert requests.get(other + poll, headers=MODELSTUDIO, timeout=10).status_code == 404
        # A reset on the second resets the first.
        requests.post(second + "/_mock/reset", timeout=30).raise_for_status()
        assert requests.get(first + poll, headers=MODELSTUDIO, timeout=10).status_code == 404


# -- the pytest plugin on Redis under xdist ----------------------------------------------------------------


def test_xdist_workers_keep_their_state_under_their_own_prefix(
    pytester: pytest.Pytester, redis_server: Any, redis_prefix: str
) -> None:
    pytest.importorskip("xdist")
    (pytester.path / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(
        test_on_redis="""
        def test_a_job(aigen_mock):
            body = {"model_id": "ms-demo-chat", "messages": [[{"role": "user", "content": "Hi"}]]}
            path = "/api/v1/organizations/org_mock_demo/generate"
            assert aigen_mock.post("modelstudio", path, json=body).status_code == 200
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--dist", "each",
        "--aigen-mock-state", redis_server.url, "--aigen-mock-state-prefix", redis_prefix,
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    for worker in ("gw0", "gw1"):
        keys = redis_cli(redis_server.port, "--scan", "--pattern", f"{redis_prefix}-{worker}:*").split()
        assert keys, f"nothing stored under {redis_prefix}-{worker}:"
    assert redis_cli(redis_server.port, "--scan", "--pattern", f"{redis_prefix}:*").split() == []
