"""A real redis-server for the tests: one per session on a free loopback port in a temporary folder.

Fixtures (registered by ``tests/conftest.py``):
    redis_server     the session's server (AOF on, no RDB snapshots); ``.url``
    redis_prefix     a fresh key prefix per test, so tests never see each other's keys
    own_redis        a server of the test's own, to stop and restart (durability, backend faults)

Without ``redis-server`` these tests skip with the reason, so the README's test command works anywhere;
with ``CI`` set they fail instead (CI installs it: a missing server there is a broken CI, not a skip).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

LOOPBACK = "127.0.0.1"
START_SECONDS = 15.0
"""How long a starting server may take to answer PING."""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


def _answers(port: int) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def require_redis_server() -> str:
    """The redis-server program, or skip (fail under CI) when it is missing."""
    program = shutil.which("redis-server")
    if program is None:
        reason = "redis-server is not installed (apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the Redis tests: {reason}")
        pytest.skip(reason)
    return program


class RedisServer:
    """One redis-server process on a loopback port, with its data folder (AOF on)."""

    def __init__(self, program: str, folder: Path) -> None:
        self.program = program
        self.folder = folder
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:<port>/0``."""
        return f"redis://{LOOPBACK}:{self.port}/0"

    def start(self) -> None:
        """Start it (on the same port and folder as before, after a ``stop``) and wait until it answers."""
        self.process = subprocess.Popen(
            [
                self.program,
                "--port", str(self.port),
                "--bind", LOOPBACK,
                "--dir", str(self.folder),
                "--save", "",
                "--appendonly", "yes",
                "--daemonize", "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + START_SECONDS
        while not _answers(self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.process.returncode}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer within {START_SECONDS} s")
            time.sleep(0.05)

    def stop(self) -> None:
        """Stop it by its PID (SIGTERM: the AOF is flushed), waiting until it is gone."""
        process, self.process = self.process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def restart(self) -> None:
        """Stop and start again on the same port and folder (what the AOF kept comes back)."""
        self.stop()
        self.start()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's redis-server."""
    server = RedisServer(require_redis_server(), tmp_path_factory.mktemp("redis"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix no other test uses."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, which it may stop and restart."""
    server = RedisServer(require_redis_server(), tmp_path / "redis")
    server.folder.mkdir()
    server.start()
    try:
        yield server
    finally:
        server.stop()
