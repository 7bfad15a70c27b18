"""Fixtures for the conformance suite's tests: embedded mocks (plain or mutated) and a CLI runner.

Fixtures:
    mock_target   a session-wide embedded mock, reset before each test; ``mock_target.provider(id)`` gives
                  the listing (base URL, key, organization, models) of one provider
    mutant        ``mutant(provider, patch)``: a dedicated mock serving only ``provider`` whose ``Mock`` was
                  changed by ``patch(mock)`` before serving (monkeypatch a handler, the envelope, the limiter)
    run_cli       ``run_cli(*argv)``: ``conformance.cli.main`` in-process; returns (exit code, stdout, stderr)
    upstream      (per module) the proxy tests' upstream, ``_proxy_helpers.breaking_app`` in a thread: it
                  breaks one thing per request (header ``X-Break``)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _proxy_helpers import AppThread, breaking_app
from _suite_helpers import SHARED_RATE_LIMIT, Target, implemented
from aiohttp import web

from conformance.cli import main
from conformance.embedded import EmbeddedMock, mock_settings
from mockserver.app import create_app
from mockserver.mock import Mock, build_mock
from mockserver.settings import Settings as MockSettings


@pytest.fixture(scope="session")
def _shared_mock() -> Iterator[EmbeddedMock]:
    with EmbeddedMock(mock_settings(rate_limit=SHARED_RATE_LIMIT)) as mock:
        yield mock


@pytest.fixture
def mock_target(_shared_mock: EmbeddedMock) -> Target:
    """The shared embedded mock, reset to its seed state."""
    target = Target(_shared_mock)
    target.reset()
    return target


Patch = Callable[[Mock], None]


@pytest.fixture
def mutant() -> Iterator[Callable[..., Target]]:
    """``mutant(provider, patch, **mock_settings)``: a mock whose behaviour ``patch`` broke on purpose."""
    started: list[EmbeddedMock] = []

    def start(provider: str, patch: Patch, **changes: Any) -> Target:
        if provider not in implemented():
            pytest.skip(f"the mock does not serve {provider} yet")

        def factory(settings: MockSettings) -> web.Application:
            built = build_mock(settings)
            patch(built)
            return create_app(settings, built)

        changes.setdefault("providers", (provider,))
        mock = EmbeddedMock(mock_settings(**changes), app_factory=factory).start()
        started.append(mock)
        return Target(mock)

    yield start
    for mock in started:
        mock.stop()


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run the command line in this process; returns (exit code, stdout, stderr)."""

    def run(*argv: str) -> tuple[int, str, str]:
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


@pytest.fixture(scope="module")
def upstream() -> Iterator[AppThread]:
    app = AppThread(breaking_app).start()
    yield app
    app.stop()
