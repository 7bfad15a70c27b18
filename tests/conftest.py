"""Shared fixtures: the mock server on a loopback port in a background thread, and a handle to drive it.

The server runs in a thread with its own event loop so that synchronous clients (``requests``,
schemathesis, the ``openai`` package) and asynchronous tests can all talk to it over real HTTP.

Fixtures:
    mock_server   session-wide server with every provider whose module imports (strict validation)
    mock          a ``MockClient`` on ``mock_server``, reset before the test, checked for violations after
    server_pool   session-wide cache: ``server_pool(**settings)`` starts one server per distinct settings
    attach_mock   turns any running server into a reset, violation-checked ``MockClient`` for one test
    start_mock    a dedicated server with custom settings for one test (``start_mock(rate_limit=3)``)
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests

from mockserver.core.spec import load_document
from mockserver.resources import PROVIDER_IDS, spec_path
from mockserver.settings import Settings
from mockserver.testing.server import ServerThread

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
    )
    return base.with_changes(**changes)


@functools.cache
def auth_header(provider_id: str) -> tuple[str, str]:
    """(header name, value prefix) a provider's spec says the key travels in."""
    document = load_document(spec_path(provider_id))
    scheme_name = next(iter(document["security"][0]))
    scheme = document["components"]["securitySchemes"][scheme_name]
    if scheme["type"] == "http" and scheme["scheme"].lower() == "bearer":
        return "Authorization", "Bearer "
    return str(scheme["name"]), ""


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """One entry of ``GET /_mock/providers``."""

    id: str
    base_url: str
    api_key: str
    organization_id: str | None
    models: list[Any]
    extra_keys: dict[str, str] = field(default_factory=dict)
    """The provider's other seeded keys by name (``limited``, ``poor``...)."""

    def auth(self, key: str | None = None) -> dict[str, str]:
        """The credential header for this provider (its own key unless another is given)."""
        name, prefix = auth_header(self.id)
        return {name: prefix + (self.api_key if key is None else key)}


class MockClient:
    """A test's handle on a running mock: provider requests and control-API calls over real HTTP."""

    def __init__(self, base_url: str, server: ServerThread | None = None) -> None:
        self.base_url = base_url
        self.server = server
        self.http = requests.Session()
        self._providers: dict[str, ProviderInfo] | None = None

    # -- providers ----------------------------------------------------------------------------------

    @property
    def providers(self) -> dict[str, ProviderInfo]:
        """Every served provider by id, as ``GET /_mock/providers`` lists it."""
        if self._providers is None:
            listing = self.control("GET", "/providers")["providers"]
            self._providers = {p["id"]: ProviderInfo(**p) for p in listing}
        return self._providers

    def provider(self, provider_id: str) -> ProviderInfo:
        """One provider's listing."""
        return self.providers[provider_id]

    def url(self, provider_id: str, path: str) -> str:
        """An absolute URL under a provider's base URL."""
        return self.provider(provider_id).base_url + path

    def request(
        self, provider_id: str, method: str, path: str, *, auth: bool = True, **kwargs: Any
    ) -> requests.Response:
        """Call a provider (with its key unless ``auth=False``); ``kwargs`` go to ``requests``."""
        headers = dict(self.provider(provider_id).auth()) if auth else {}
        headers.update(kwargs.pop("headers", None) or {})
        kwargs.setdefault("timeout", 10)
        return self.http.request(method, self.url(provider_id, path), headers=headers, **kwargs)

    def get(self, provider_id: str, path: str, **kwargs: Any) -> requests.Response:
        """``GET`` on a provider."""
        return self.request(provider_id, "GET", path, **kwargs)

    def post(self, provider_id: str, path: str, **kwargs: Any) -> requests.Response:
        """``POST`` on a provider."""
        return self.request(provider_id, "POST", path, **kwargs)

    # -- control API --------------------------------------------------------------------------------

    def control(self, method: str, path: str, json: Any = None) -> Any:
        """Call ``/_mock<path>`` and return its JSON (raises on an HTTP error)."""
        response = self.http.request(method, f"{self.base_url}/_mock{path}", json=json, timeout=10)
        response.raise_for_status()
        return response.json()

    def reset(self) -> None:
        """Back to the seed state (store, clock, counters, journal, faults)."""
        self.control("POST", "/reset")

    def now(self) -> float:
        """The mock's clock."""
        return float(self.control("GET", "/clock")["now"])

    def advance(self, seconds: float) -> float:
        """Move the mock's clock forward; returns the new time."""
        return float(self.control("POST", "/clock/advance", {"seconds": seconds})["now"])

    def fault(self, **fault: Any) -> int:
        """Inject a fault (see ``POST /_mock/faults``); returns its id."""
        return int(self.control("POST", "/faults", fault)["id"])

    def journal(self, provider: str | None = None) -> list[dict[str, Any]]:
        """The request journal, oldest first."""
        query = f"?provider={provider}" if provider else ""
        entries: list[dict[str, Any]] = self.control("GET", f"/requests{query}")["requests"]
        return entries

    def violations(self) -> list[dict[str, Any]]:
        """Responses the mock sent outside its own spec (must stay empty)."""
        found: list[dict[str, Any]] = self.control("GET", "/violations")["violations"]
        return found

    def close(self) -> None:
        """Release the HTTP connections."""
        self.http.close()


# -- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def server_pool() -> Iterator[Callable[..., ServerThread]]:
    """``server_pool(**settings)``: a running server for those settings, started once per session."""
    servers: dict[Settings, ServerThread] = {}

    def get(**changes: Any) -> ServerThread:
        settings = server_settings(**changes)
        if settings not in servers:
            servers[settings] = ServerThread(settings).start()
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
def start_mock(
    attach_mock: Callable[[ServerThread], MockClient], _test_servers: list[ServerThread]
) -> Callable[..., MockClient]:
    """``start_mock(**settings)``: a dedicated server for this test, stopped (cleanly) at its end."""

    def start(**changes: Any) -> MockClient:
        server = ServerThread(server_settings(**changes)).start()
        _test_servers.append(server)
        return attach_mock(server)

    return start
