"""The pytest plugin's state settings: ``state``/``state_prefix`` like any setting, run-wide flags and ini
options, a prefix per distinct server, and one per pytest-xdist worker (real xdist workers).

A run on a real Redis (keys landing under each worker's prefix) is in
``tests/mockserver/test_shared_service.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from textwrap import dedent

import pytest
from test_plugin_fixtures import INI, write_project

pytest_plugins = ["pytester"]

REDIS = "redis://:hunter2@127.0.0.1:6390/4"

RECORDING_POOL = """
    import json, os
    import pytest

    class RecordingPool:
        '''Stands in for the session's server pool: records the settings each test's server would get.'''
        def get(self, settings):
            return settings

    @pytest.fixture(scope="session")
    def aigen_mock_pool():
        return RecordingPool()
"""


def test_state_is_a_setting_like_any_other(pytester: pytest.Pytester) -> None:
    write_project(
        pytester.path,
        {
            "test_state.py": dedent(RECORDING_POOL)
            + dedent(f"""
            REDIS = {REDIS!r}

            def test_default(aigen_mock_server):
                assert (aigen_mock_server.state, aigen_mock_server.state_prefix) == ("memory", "aigen")

            @pytest.mark.aigen_mock(state=REDIS)
            def test_marker(aigen_mock_server):
                # Other settings than the default server's: a prefix of its own.
                assert (aigen_mock_server.state, aigen_mock_server.state_prefix) == (REDIS, "aigen-2")

            @pytest.mark.aigen_mock(state=REDIS, seed=4)
            def test_third_settings(aigen_mock_server):
                assert aigen_mock_server.state_prefix == "aigen-3"

            @pytest.mark.aigen_mock(state=REDIS)
            def test_same_settings_same_prefix(aigen_mock_server):
                assert aigen_mock_server.state_prefix == "aigen-2"

            @pytest.mark.aigen_mock(state=REDIS, state_prefix="shared", seed=1)
            def test_explicit_prefix_one(aigen_mock_server):
                assert aigen_mock_server.state_prefix == "shared"

            @pytest.mark.aigen_mock(state=REDIS, state_prefix="shared", seed=2)
            def test_explicit_prefix_two(aigen_mock_server):
                assert aigen_mock_server.state_prefix == "shared"  # shared on purpose

            @pytest.mark.aigen_mock(state="mysql://db/0")
            def test_bad_state(aigen_mock_server):
                pass

            @pytest.mark.aigen_mock(state_prefix="no spaces")
            def test_bad_prefix(aigen_mock_server):
                pass
            """),
        },
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist")
    result.assert_outcomes(passed=6, errors=2)
    output = result.stdout.str()
    assert "aigen_mock: --state must be 'memory' or a redis://" in output
    assert "aigen_mock: --state-prefix must be 1 to 64" in output


@pytest.mark.parametrize("source", ["flag", "ini"])
def test_the_run_wide_state_comes_from_a_flag_or_the_ini(pytester: pytest.Pytester, source: str) -> None:
    write_project(
        pytester.path,
        {
            "test_run.py": dedent(RECORDING_POOL)
            + dedent(f"""
            def test_default(aigen_mock_server):
                assert (aigen_mock_server.state, aigen_mock_server.state_prefix) == ({REDIS!r}, "ci-7")

            @pytest.fixture
            def aigen_mock_settings():
                return {{"seed": 3}}

            def test_fixture_keeps_the_run_state(aigen_mock_server):
                assert aigen_mock_server.seed == 3
                assert aigen_mock_server.state == {REDIS!r}

            @pytest.mark.aigen_mock(state="memory")
            def test_marker_wins(aigen_mock_server):
                assert aigen_mock_server.state == "memory"
            """),
        },
    )
    if source == "flag":
        args = ["--aigen-mock-state", REDIS, "--aigen-mock-state-prefix", "ci-7"]
    else:
        (pytester.path / "pytest.ini").write_text(
            INI + f"aigen_mock_state = {REDIS}\naigen_mock_state_prefix = ci-7\n", encoding="utf-8"
        )
        args = []
    pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:xdist", *args).assert_outcomes(passed=3)


def test_each_xdist_worker_gets_its_own_prefix(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist")
    out = pytester.path / "prefixes"
    out.mkdir()
    write_project(
        pytester.path,
        {
            "test_workers.py": f"""
            import json, os
            import pytest

            def record(name, server):
                worker = os.environ["PYTEST_XDIST_WORKER"]
                path = os.path.join({str(out)!r}, f"{{worker}}-{{name}}.json")
                with open(path, "w") as file:
                    json.dump(server.settings.state_prefix, file)

            def test_default(aigen_mock, aigen_mock_server):
                assert aigen_mock.get("spaceai", "/v1/models").status_code == 200  # a real server
                record("default", aigen_mock_server)

            @pytest.mark.aigen_mock(state_prefix="mine")
            def test_explicit(aigen_mock, aigen_mock_server):
                record("explicit", aigen_mock_server)
            """,
        },
    )
    # --dist each: every worker runs every test, so both workers are sure to start servers.
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-n", "2", "--dist", "each")
    result.assert_outcomes(passed=4)
    prefixes = {path.stem: json.loads(path.read_text()) for path in Path(out).iterdir()}
    assert prefixes == {
        "gw0-default": "aigen-gw0",
        "gw1-default": "aigen-gw1",
        "gw0-explicit": "mine-gw0",
        "gw1-explicit": "mine-gw1",
    }
