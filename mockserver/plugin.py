"""The pytest plugin (entry point ``aigen_mock``): the mock as fixtures, for SDK and frontend tests.

Installed with the package, it needs no conftest code::

    def test_chat(aigen_mock):
        response = aigen_mock.post("spaceai", "/v1/chat/completions", json={...})

Fixtures:
    aigen_mock               a ``MockControl`` on a running mock, reset to the seed before the test
    aigen_mock_server        the ``ServerThread`` serving this test (started once per distinct settings)
    aigen_mock_settings      override it to configure the server: a dict of ``Settings`` fields or a Settings
    aigen_mock_pool          session-wide: one running server per distinct settings
    aigen_webhook_receiver   a local endpoint recording webhook deliveries (``.url``, ``.wait()``)
    aigen_spaceai_openai     ``openai.OpenAI`` on SpaceAI (skipped when ``openai`` is not installed)
    aigen_pahlavan_openai    ``openai.OpenAI`` on Pahlavan's OpenAI-compatible API (likewise)

Marker ``@pytest.mark.aigen_mock(**options)``: any ``Settings`` field (``seed``, ``providers``,
``rate_limit``, ``job_speed``, ``tokens_per_second``, ``fixtures``, ``cors_origins``, ``control_token``,
``replay`` (a recordings folder, relative to the rootdir), ``replay_speed``, ``replay_strict``...)
gives the test a server with those settings (cached per distinct settings; ``aigen_mock`` sends the
``control_token`` the server requires on every control call), and ``faults=[{...}]`` injects faults after the
reset (the keyword arguments of ``MockControl.fault``). The closest marker wins per option.

``--aigen-mock-check-violations`` (ini ``aigen_mock_check_violations = true``) fails a test after which
the mock reports responses outside its own spec.

State: ``state`` and ``state_prefix`` are settings like the others (marker, ``aigen_mock_settings``);
``--aigen-mock-state URL`` / ``--aigen-mock-state-prefix NAME`` (ini ``aigen_mock_state``,
``aigen_mock_state_prefix``) set them for the whole run. Every server gets a prefix of its own: servers of
different settings must not share state (they would reset and finish each other's jobs), so the second
distinct settings run on ``<prefix>-2``, the third on ``<prefix>-3``...; a prefix given explicitly (marker
or fixture) is kept, so tests may put two servers on one prefix on purpose. Under pytest-xdist every
worker's prefixes end in its id (``aigen-gw0``, ``aigen-gw1-2``...), so parallel workers never meet.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

# The plugin is loaded by every pytest run in an environment that has the package: import the mock (aiohttp,
# the specs, validators) only when a test asks for it.
if TYPE_CHECKING:
    from mockserver.settings import Settings
    from mockserver.testing.control import MockControl
    from mockserver.testing.server import ServerPool, ServerThread
    from mockserver.testing.webhooks import WebhookReceiver

MARKER = "aigen_mock"
CHECK_OPTION = "--aigen-mock-check-violations"
CHECK_INI = "aigen_mock_check_violations"
STATE_OPTION = "--aigen-mock-state"
STATE_INI = "aigen_mock_state"
PREFIX_OPTION = "--aigen-mock-state-prefix"
PREFIX_INI = "aigen_mock_state_prefix"
DEFAULT_PREFIX = "aigen"
SERVER_NUMBERS = pytest.StashKey[dict["Settings", int]]()
"""Per run: the number of each distinct server settings seen, in order (its prefix's suffix)."""
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
_TUPLE_SETTINGS = ("providers", "cors_origins", "webhook_hosts")
_PATH_SETTINGS = ("fixtures", "replay")
_NOT_SETTINGS = ("host", "port")
"""Fixed by the plugin: every server listens on loopback, on a free port."""
_OPENAI_MISSING = "needs the 'openai' package (pip install openai)"


def pytest_addoption(parser: pytest.Parser) -> None:
    """The violations check, as a command-line flag and an ini setting."""
    group = parser.getgroup("aigen-mock", "aigen-contract mock server")
    group.addoption(
        CHECK_OPTION,
        action="store_true",
        default=None,
        help="fail a test after which the mock reports responses outside its spec (GET /_mock/violations)",
    )
    parser.addini(CHECK_INI, type="bool", default=False, help="like " + CHECK_OPTION)
    group.addoption(
        STATE_OPTION,
        metavar="URL",
        default=None,
        help="where the plugin's mock servers keep state: memory (default) or redis://HOST:PORT/DB",
    )
    parser.addini(STATE_INI, default="memory", help="like " + STATE_OPTION)
    group.addoption(
        PREFIX_OPTION,
        metavar="NAME",
        default=None,
        help=f"the servers' Redis key prefix (default: {DEFAULT_PREFIX}; -<xdist worker id> is appended)",
    )
    parser.addini(PREFIX_INI, default=DEFAULT_PREFIX, help="like " + PREFIX_OPTION)


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker."""
    config.addinivalue_line(
        "markers",
        f"{MARKER}(**options): mock settings for this test (seed=, providers=, rate_limit=, job_speed=, "
        "tokens_per_second=, fixtures=, control_token=, replay=DIR (relative to the rootdir), "
        "replay_speed=, replay_strict=, ...: a server per distinct settings) and "
        "faults=[{...}] to inject",
    )


def default_settings() -> Settings:
    """What the plugin's servers run with unless told otherwise: seed 0, every provider, loopback webhooks."""
    from mockserver.settings import SEED_SECRET, Settings

    # Webhooks only to this machine: a test run must never post to a real host by accident. Signing keys
    # from the seed: signed URLs and webhook secrets repeat from run to run (the servers are loopback-only).
    return Settings(
        host="127.0.0.1", port=0, seed=0, webhook_hosts=LOOPBACK_HOSTS, signing_secret=SEED_SECRET
    )


def resolve_settings(base: Settings | Mapping[str, Any], options: Mapping[str, Any]) -> Settings:
    """``base`` (Settings, or changes to the defaults) with marker ``options`` applied on top."""
    from mockserver.settings import Settings

    settings = base if isinstance(base, Settings) else default_settings().with_changes(**_settings(base))
    return settings.with_changes(**_settings(options))


def run_state(config: pytest.Config) -> dict[str, str]:
    """The run-wide ``state`` and ``state_prefix`` (flag, then ini, then memory and ``aigen``)."""
    state = config.getoption(STATE_OPTION) or config.getini(STATE_INI) or "memory"
    prefix = config.getoption(PREFIX_OPTION) or config.getini(PREFIX_INI) or DEFAULT_PREFIX
    return {"state": str(state), "state_prefix": str(prefix)}


def xdist_worker(config: pytest.Config) -> str | None:
    """This process's pytest-xdist worker id (``gw0``...), or None outside xdist workers."""
    workerinput = getattr(config, "workerinput", None)
    if isinstance(workerinput, dict) and workerinput.get("workerid"):
        return str(workerinput["workerid"])
    return os.environ.get("PYTEST_XDIST_WORKER") or None


def isolate_state(settings: Settings, config: pytest.Config) -> Settings:
    """``settings`` on a state prefix of their own: numbered per distinct settings unless the prefix was
    chosen explicitly, and suffixed with the xdist worker id."""
    from mockserver.errors import ConfigError
    from mockserver.settings import check_state_prefix, check_state_url

    prefix = settings.state_prefix
    if prefix == run_state(config)["state_prefix"]:  # not chosen for this server
        numbers = config.stash.setdefault(SERVER_NUMBERS, {})
        number = numbers.setdefault(settings, len(numbers) + 1)
        prefix = prefix if number == 1 else f"{prefix}-{number}"
    worker = xdist_worker(config)
    if worker:
        prefix = f"{prefix}-{worker}"
    try:
        check_state_url(settings.state)
        check_state_prefix(prefix)
    except ConfigError as exc:
        raise pytest.UsageError(f"aigen_mock: {exc}") from None
    return settings.with_changes(state_prefix=prefix)


def _settings(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Validated, hashable ``Settings`` changes."""
    from mockserver.settings import Settings

    known = {f.name for f in dataclasses.fields(Settings)} - set(_NOT_SETTINGS)
    unknown = set(changes) - known
    if unknown:
        raise pytest.UsageError(
            f"aigen_mock: unknown setting(s) {sorted(unknown)}; "
            f"known: {sorted(known)} (and 'faults' in the marker)"
        )
    result = dict(changes)
    for name in _TUPLE_SETTINGS:
        if isinstance(result.get(name), list | str):  # a server per distinct settings: they must hash
            value = result[name]
            result[name] = (value,) if isinstance(value, str) else tuple(value)
    for name in _PATH_SETTINGS:
        if isinstance(result.get(name), str):
            result[name] = Path(result[name])
    return result


def _rooted(settings: Settings, rootdir: Path) -> Settings:
    """``replay`` relative to pytest's rootdir (where ``pytest.ini``/``pyproject.toml`` is), as the marker's
    ``replay="tests/recordings"`` reads, whatever the current directory or the test file's folder."""
    if settings.replay is not None and not settings.replay.is_absolute():
        return settings.with_changes(replay=rootdir / settings.replay)
    return settings


def marker_options(node: pytest.Item) -> dict[str, Any]:
    """The ``aigen_mock`` marker options of a test, the closest marker winning per option."""
    options: dict[str, Any] = {}
    for marker in reversed(list(node.iter_markers(MARKER))):
        if marker.args:
            raise pytest.UsageError(f"{MARKER} takes keyword arguments only, got {marker.args!r}")
        options.update(marker.kwargs)
    return options


def _check_violations(config: pytest.Config) -> bool:
    flag = config.getoption(CHECK_OPTION)
    return bool(config.getini(CHECK_INI)) if flag is None else bool(flag)


# -- fixtures -------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def aigen_mock_pool() -> Iterator[ServerPool]:
    """Running mock servers, one per distinct settings, started on first use and stopped at session end."""
    from mockserver.testing.server import ServerPool

    pool = ServerPool()
    yield pool
    pool.stop()


@pytest.fixture
def aigen_mock_settings() -> Settings | Mapping[str, Any]:
    """Override to configure the mock: ``{"seed": 7, "job_speed": 10.0, ...}`` or a whole ``Settings``."""
    return {}


@pytest.fixture
def aigen_mock_server(
    request: pytest.FixtureRequest,
    aigen_mock_pool: ServerPool,
    aigen_mock_settings: Settings | Mapping[str, Any],
) -> ServerThread:
    """The running server for this test's settings (shared with every test of the same settings)."""
    options = {k: v for k, v in marker_options(request.node).items() if k != "faults"}
    base = aigen_mock_settings
    if not isinstance(base, Mapping):  # a whole Settings is used as it is, its state included
        settings = resolve_settings(base, options)
    else:  # the run's state under the fixture's and the marker's choices
        settings = resolve_settings({**run_state(request.config), **base}, options)
    settings = _rooted(settings, request.config.rootpath)
    return aigen_mock_pool.get(isolate_state(settings, request.config))


@pytest.fixture
def aigen_mock(request: pytest.FixtureRequest, aigen_mock_server: ServerThread) -> Iterator[MockControl]:
    """A handle on the mock, reset to its seed before the test, with the marker's faults injected."""
    from mockserver.testing.control import MockControl

    faults = marker_options(request.node).get("faults") or []
    control = MockControl(aigen_mock_server.base_url, aigen_mock_server)
    try:
        control.reset()
        for fault in faults:
            control.fault(**fault)
        yield control
        if _check_violations(request.config):
            control.assert_no_violations()
    finally:
        control.close()


@pytest.fixture
def aigen_webhook_receiver() -> Iterator[WebhookReceiver]:
    """A webhook endpoint on 127.0.0.1 (``.url``) recording what it receives (``.received``, ``.wait()``)."""
    from mockserver.testing.webhooks import WebhookReceiver

    with WebhookReceiver() as receiver:
        yield receiver


def _openai_client(control: MockControl, provider_id: str, api_path: str) -> Any:
    openai = pytest.importorskip("openai", reason=f"the {provider_id} client fixture {_OPENAI_MISSING}")
    info = control.provider(provider_id)
    # No retries: a test sees exactly what the mock answered, at once.
    return openai.OpenAI(base_url=info.url(api_path), api_key=info.api_key, max_retries=0, timeout=10.0)


@pytest.fixture
def aigen_spaceai_openai(aigen_mock: MockControl) -> Iterator[Any]:
    """``openai.OpenAI`` pointed at the mock's SpaceAI (no retries, 10 s timeout)."""
    client = _openai_client(aigen_mock, "spaceai", "/v1")
    yield client
    client.close()


@pytest.fixture
def aigen_pahlavan_openai(aigen_mock: MockControl) -> Iterator[Any]:
    """``openai.OpenAI`` pointed at the mock's Pahlavan ``/api/v1`` (OpenAI-compatible chat completions)."""
    client = _openai_client(aigen_mock, "pahlavan", "/api/v1")
    yield client
    client.close()
