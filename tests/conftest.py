"""Shared fixtures: the mock server on a loopback port in a background thread, and a handle to drive it.

The server runs in a thread with its own event loop so that synchronous clients (``requests``,
schemathesis, the ``openai`` package) and asynchronous tests can all talk to it over real HTTP.

Fixtures:
    mock_server   session-wide server with every provider whose module imports (strict validation)
    mock          a ``MockClient`` on ``mock_server``, reset before the test, checked for violations after
    server_pool   session-wide cache: ``server_pool(**settings)`` starts one server per distinct settings
    attach_mock   turns any running server into a reset, violation-checked ``MockClient`` for one test
    start_mock    a dedicated server with custom settings for one test (``start_mock(rate_limit=3)``)
    mock_cli      ``with mock_cli("--fixtures", path) as origin``: ``python -m mockserver`` as a user runs it
    state_backend ``memory`` or ``redis``: every fixture above but ``mock_cli`` runs its servers on both
                  (test ids ``[memory]``, ``[redis]``; Redis: the session's redis-server, a prefix of each
                  server's own). A test about one backend pins it, with a comment saying why:
                  ``@pytest.mark.parametrize("state_backend", ["memory"], indirect=True)``.
                  ``mock_cli`` is the CLI as the README starts it (memory); the CLI on Redis is tested in
                  test_cli_state.py and test_shared_service.py.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from mockserver.resources import PROVIDER_IDS
from mockserver.settings import SEED_SECRET, Settings
from mockserver.testing.control import MockControl
from mockserver.testing.server import ServerThread

pytest_plugins = ["redis_fixture"]
"""redis-server fixtures (``redis_server``, ``redis_prefix``, ``own_redis``): tests/redis_fixture.py."""

LOOPBACK = "127.0.0.1"
TEST_RATE_LIMIT = 100_000
"""Requests per minute for the shared servers: high enough that no test trips a limit by accident."""


def provider_implemented(provider_id: str) -> bool:
    """Whether ``mockserver.providers.<id>`` imports and exposes its ``PROVIDER``."""
    try:
        module = importlib.import_module(f"mockserver.providers.{provider_id}")
    except ImportError:
        return False
    return hasattr(module, "PROVIDER")


def importable_providers() -> tuple[str, ...]:
    """The provider ids whose module is implemented, in listing order."""
    return tuple(p for p in PROVIDER_IDS if provider_implemented(p))


def server_settings(**changes: Any) -> Settings:
    """Settings for a test server: strict response validation, seed 0, no accidental rate limiting."""
    base = Settings(
        host=LOOPBACK,
        port=0,
        seed=0,
        rate_limit=TEST_RATE_LIMIT,
        response_validation="strict",
        providers=importable_providers(),
        # Tests (fuzzing above all) must never make the mock call anything but loopback.
        webhook_hosts=(LOOPBACK, "localhost"),
        # Reproducible signed URLs and webhook secrets (seed-derived keys are allowed on loopback only).
        signing_secret=SEED_SECRET,
    )
    return base.with_changes(**changes)


# The tests use the same control handle the pytest plugin gives users.
MockClient = MockControl


# -- fixtures -------------------------------------------------------------------------------------------

BACKENDS = ("memory", "redis")
"""The state backends every server fixture runs on."""


@pytest.fixture(scope="session", params=BACKENDS)
def state_backend(request: pytest.FixtureRequest) -> str:
    """The state backend of this test's servers (a test parameter: ``[memory]``, ``[redis]``)."""
    return str(request.param)


@pytest.fixture(scope="session")
def backend_settings(request: pytest.FixtureRequest, state_backend: str) -> Callable[[], dict[str, Any]]:
    """``backend_settings()``: the settings one new server needs for ``state_backend``: nothing for
    memory; the session's redis-server and a fresh prefix for Redis (skipped without redis-server, failed
    under CI)."""
    if state_backend == "memory":
        return dict
    url = request.getfixturevalue("redis_server").url

    def redis() -> dict[str, Any]:
        return {"state": url, "state_prefix": f"t{uuid.uuid4().hex[:12]}"}

    return redis


def _with_backend(backend: Callable[[], dict[str, Any]], changes: dict[str, Any]) -> dict[str, Any]:
    """``changes`` on the test's backend, unless they name a state of their own."""
    if "state" in changes:
        return changes
    return {**backend(), **changes}


@pytest.fixture(scope="session")
def server_pool(
    backend_settings: Callable[[], dict[str, Any]],
) -> Iterator[Callable[..., ServerThread]]:
    """``server_pool(**settings)``: a running server for those settings (on ``state_backend``), started
    once per session."""
    servers: dict[Settings, ServerThread] = {}

    def get(**changes: Any) -> ServerThread:
        settings = server_settings(**changes)
        if settings not in servers:
            servers[settings] = ServerThread(
                server_settings(**_with_backend(backend_settings, changes))
            ).start()
        return servers[settings]

    yield get
    for server in servers.values():
        server.stop()
        assert server.leftover_tasks == [], f"the server left tasks pending: {server.leftover_tasks}"


@pytest.fixture(scope="session")
def mock_server(server_pool: Callable[..., ServerThread]) -> ServerThread:
    """The shared server: every provider whose module imports, strict validation, seed 0."""
    return server_pool()


@pytest.fixture
def _test_servers() -> Iterator[list[ServerThread]]:
    """Servers started for one test; stopped after every client on them was checked."""
    servers: list[ServerThread] = []
    yield servers
    for server in servers:
        server.stop()
        assert server.leftover_tasks == [], f"the server left tasks pending: {server.leftover_tasks}"


@pytest.fixture
def attach_mock(_test_servers: list[ServerThread]) -> Iterator[Callable[[ServerThread], MockClient]]:
    """``attach_mock(server)``: a reset ``MockClient``; the server must report no violations afterwards."""
    clients: list[MockClient] = []

    def attach(server: ServerThread) -> MockClient:
        client = MockClient(server.base_url, server)
        client.reset()
        clients.append(client)
        return client

    yield attach
    try:
        for client in clients:
            assert client.violations() == [], "the mock answered outside its spec"
    finally:
        for client in clients:
            client.close()


@pytest.fixture
def mock(mock_server: ServerThread, attach_mock: Callable[[ServerThread], MockClient]) -> MockClient:
    """A handle on the shared server, reset before the test and checked for spec violations after it."""
    return attach_mock(mock_server)


@pytest.fixture
def start_server_as_set(
    attach_mock: Callable[[ServerThread], MockClient], _test_servers: list[ServerThread]
) -> Callable[..., MockClient]:
    """``start_server_as_set(**settings)``: a dedicated server with exactly these settings (memory unless
    they name a ``state``), stopped (cleanly) at the test's end."""

    def start(**changes: Any) -> MockClient:
        server = ServerThread(server_settings(**changes)).start()
        _test_servers.append(server)
        return attach_mock(server)

    return start


@pytest.fixture
def start_mock(
    start_server_as_set: Callable[..., MockClient], backend_settings: Callable[[], dict[str, Any]]
) -> Callable[..., MockClient]:
    """``start_mock(**settings)``: a dedicated server for this test on ``state_backend`` (unless the
    settings name a ``state``), stopped (cleanly) at its end."""

    def start(**changes: Any) -> MockClient:
        return start_server_as_set(**_with_backend(backend_settings, changes))

    return start


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


CliServer = contextlib.AbstractContextManager[str]


@contextlib.contextmanager
def run_mock_cli(args: tuple[str, ...], log: Path) -> Iterator[str]:
    """``python -m mockserver <args>`` on a free port, as on a newcomer's machine; yields its origin."""
    port = free_port()
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "mockserver", "--port", str(port), *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            # No MOCKSERVER_* variables changing the defaults.
            env={k: v for k, v in os.environ.items() if not k.startswith("MOCKSERVER_")},
        )
    origin = f"http://{LOOPBACK}:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                requests.get(origin + "/_mock/providers", timeout=1).raise_for_status()
                break
            except requests.RequestException:
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"python -m mockserver did not start: {log.read_text(errors='replace')}")
                time.sleep(0.05)  # real time: waiting for a separate process to bind its port
        yield origin
    finally:
        server.terminate()
        server.wait(10)


@pytest.fixture(scope="session")
def mock_cli(
    tmp_path_factory: pytest.TempPathFactory,
) -> Callable[..., contextlib.AbstractContextManager[str]]:
    """``with mock_cli(*args) as origin``: the CLI server for a block, its output kept for failures."""

    def start(*args: str) -> CliServer:
        return run_mock_cli(args, tmp_path_factory.mktemp("mock_cli") / "mockserver.log")

    return start
