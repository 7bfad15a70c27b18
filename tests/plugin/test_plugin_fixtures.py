"""The pytest plugin as a user meets it: test files with no conftest code, in a project of their own.

The users' files run in one separate pytest process (``user_run``), as in a project that only installed
the package; each test below checks one behaviour from its JUnit report. A separate process also keeps
the servers, ``openai`` and the modules they import out of this session (pytester's in-process runs
unload what they imported, which would leave this session with stale copies of those modules).
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
"""pytest-asyncio (installed here) warns in every run without it; a user's project sets it anyway."""

USER_FILES = {
    "test_basic.py": """
        def test_each_provider_is_served(aigen_mock):
            assert sorted(aigen_mock.providers) == [
                "artificialstudio", "modelstudio", "pahlavan", "spaceai", "studioaicore"
            ]
            assert aigen_mock.provider("modelstudio").organization_id == "org_mock_demo"
            body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "Hello!"}]}
            assert aigen_mock.post("spaceai", "/v1/chat/completions", json=body).status_code == 200
            assert aigen_mock.journal("spaceai")[0]["operation_id"] == "createChatCompletion"
    """,
    "test_markers.py": """
        import pytest

        URLS = {}

        @pytest.mark.aigen_mock(providers=["spaceai"], rate_limit=1, seed=3)
        def test_settings(aigen_mock, aigen_mock_server):
            URLS["limited"] = aigen_mock.base_url
            assert list(aigen_mock.providers) == ["spaceai"]
            assert aigen_mock_server.settings.seed == 3
            assert aigen_mock.get("spaceai", "/v1/models").status_code == 200
            assert aigen_mock.get("spaceai", "/v1/models").status_code == 429

        @pytest.mark.aigen_mock(providers=("spaceai",), rate_limit=1, seed=3)
        def test_same_settings_same_server(aigen_mock):
            URLS["limited again"] = aigen_mock.base_url
            assert aigen_mock.get("spaceai", "/v1/models").status_code == 200  # reset: a fresh window

        def test_default_server(aigen_mock):
            URLS["default"] = aigen_mock.base_url
            assert len(aigen_mock.providers) == 5

        @pytest.mark.aigen_mock(faults=[{"provider": "spaceai", "status": 503, "count": 1}])
        def test_faults(aigen_mock):
            URLS["faults"] = aigen_mock.base_url
            assert aigen_mock.get("spaceai", "/v1/models").status_code == 503
            assert aigen_mock.get("spaceai", "/v1/models").status_code == 200

        @pytest.mark.aigen_mock(seed=5)
        class TestClosestMarkerWins:
            @pytest.mark.aigen_mock(seed=6)
            def test_method_marker(self, aigen_mock_server):
                assert aigen_mock_server.settings.seed == 6

            def test_class_marker(self, aigen_mock_server):
                assert aigen_mock_server.settings.seed == 5

        def test_servers_are_shared_per_settings():
            assert URLS["limited"] == URLS["limited again"]
            assert URLS["limited"] != URLS["default"]
            assert URLS["faults"] == URLS["default"]  # faults are not settings: the shared server
    """,
    "test_reset.py": """
        import time

        SEED = {}

        def test_changes_everything(aigen_mock):
            SEED.update(wallet=aigen_mock.wallet("pahlavan"), keys=aigen_mock.keys())
            aigen_mock.set_wallet("pahlavan", 0)
            aigen_mock.create_key("pahlavan", "extra")
            aigen_mock.fault(500, count=None)
            aigen_mock.advance(3600)
            assert aigen_mock.get("spaceai", "/v1/models").status_code == 500

        def test_sees_the_seed_again(aigen_mock):
            assert aigen_mock.wallet("pahlavan") == SEED["wallet"] > 0
            assert aigen_mock.keys() == SEED["keys"]
            assert aigen_mock.faults() == []
            assert aigen_mock.journal() == []
            assert abs(aigen_mock.now() - time.time()) < 60
            assert aigen_mock.get("spaceai", "/v1/models").status_code == 200
    """,
    "test_config_dict.py": """
        import pytest

        @pytest.fixture
        def aigen_mock_settings():
            return {"seed": 9, "job_speed": 4.0, "providers": ["modelstudio"]}

        def test_dict(aigen_mock, aigen_mock_server):
            assert (aigen_mock_server.settings.seed, aigen_mock_server.settings.job_speed) == (9, 4.0)
            assert list(aigen_mock.providers) == ["modelstudio"]

        @pytest.mark.aigen_mock(seed=10)
        def test_marker_on_top(aigen_mock_server):
            assert (aigen_mock_server.settings.seed, aigen_mock_server.settings.job_speed) == (10, 4.0)
    """,
    "test_config_settings.py": """
        import pytest
        from mockserver.settings import Settings

        @pytest.fixture
        def aigen_mock_settings():
            return Settings(seed=11, providers=("studioaicore",), response_validation="strict")

        def test_settings_object(aigen_mock, aigen_mock_server):
            assert aigen_mock_server.settings.response_validation == "strict"
            assert list(aigen_mock.providers) == ["studioaicore"]
    """,
    "test_openai_clients.py": """
        HELLO = [{"role": "user", "content": "Hello!"}]

        def test_spaceai(aigen_spaceai_openai):
            completion = aigen_spaceai_openai.chat.completions.create(model="gpt-4o", messages=HELLO)
            assert completion.choices[0].message.content
            assert [m.id for m in aigen_spaceai_openai.models.list()][:1] == ["gpt-4o"]

        def test_pahlavan(aigen_pahlavan_openai, aigen_mock):
            completion = aigen_pahlavan_openai.chat.completions.create(model="glm-4.5", messages=HELLO)
            assert completion.usage.total_tokens > 0
    """,
    "test_openai_missing.py": """
        import sys
        import pytest

        @pytest.fixture(autouse=True)
        def no_openai(monkeypatch):
            monkeypatch.setitem(sys.modules, "openai", None)  # import openai now raises ImportError

        def test_client(aigen_spaceai_openai):
            raise AssertionError("not reached")
    """,
    "test_control_token.py": """
        import pytest
        import requests

        @pytest.mark.aigen_mock(control_token="plugin-control-token")
        def test_token_protected(aigen_mock, aigen_mock_server):
            assert aigen_mock_server.settings.control_token == "plugin-control-token"
            aigen_mock.advance(7)  # the fixture's reset and these calls carry the token
            assert aigen_mock.provider("spaceai").api_key
            assert aigen_mock.get("spaceai", "/v1/models").status_code == 200
            bare = requests.post(aigen_mock.base_url + "/_mock/reset", timeout=10)
            assert bare.status_code == 401
            assert bare.headers["WWW-Authenticate"].startswith("Bearer")
            assert aigen_mock.control("GET", "/clock")["offset"] == 7
    """,
    "test_violation.py": """
        from mockserver.core.journal import violation

        def test_mock_misbehaves(aigen_mock, aigen_mock_server):
            # Stands in for a mock bug: a response outside the spec, as the mock itself records it.
            found = violation("spaceai", "listModels", 200, "broken on purpose")
            aigen_mock_server.run(aigen_mock_server.mock.state.add_violation(found))
    """,
}


def write_project(folder: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        lines = text.strip("\n").splitlines()
        indent = min(len(line) - len(line.lstrip()) for line in lines if line.strip())
        (folder / name).write_text("\n".join(line[indent:] for line in lines) + "\n", encoding="utf-8")
    (folder / "pytest.ini").write_text(INI, encoding="utf-8")


def outcomes(report: Path) -> dict[str, str]:
    """``file.py::[Class::]test`` -> passed, failed, error or skipped (with the message), from JUnit XML."""
    results: dict[str, str] = {}
    for case in ElementTree.parse(report).iter("testcase"):
        module, _, cls = case.attrib["classname"].rpartition(".")
        path = f"{module or cls}.py::" + (f"{cls}::" if module else "") + case.attrib["name"]
        verdicts = [f"{child.tag}: {child.attrib.get('message', '')}" for child in case]
        results[path] = verdicts[0] if verdicts else "passed"
    return results


@pytest.fixture(scope="module")
def user_run(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The users' files run by ``python -m pytest`` in their own folder: outcome per test."""
    project = tmp_path_factory.mktemp("user_project")
    write_project(project, USER_FILES)
    report = project.parent / f"{project.name}.xml"
    ignored = {"PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_PLUGINS"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-p",
            "no:cacheprovider",
            "--strict-markers",
            f"--junitxml={report}",
        ],
        cwd=project,
        env={k: v for k, v in os.environ.items() if k not in ignored},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    found = outcomes(report)
    assert len(found) == 18, result.stdout
    return found


def passed(results: dict[str, str], prefix: str) -> None:
    selected = {test: outcome for test, outcome in results.items() if test.startswith(prefix)}
    assert selected
    assert {test: outcome for test, outcome in selected.items() if outcome != "passed"} == {}


def test_fixtures_need_no_conftest_code(user_run: dict[str, str]) -> None:
    passed(user_run, "test_basic.py::")


def test_marker_options_apply_and_servers_are_shared_per_settings(user_run: dict[str, str]) -> None:
    passed(user_run, "test_markers.py::")


def test_the_fixture_sends_the_control_token_the_server_requires(user_run: dict[str, str]) -> None:
    passed(user_run, "test_control_token.py::")


def test_each_test_starts_from_the_seed(user_run: dict[str, str]) -> None:
    passed(user_run, "test_reset.py::")


def test_the_config_fixture_can_be_overridden(user_run: dict[str, str]) -> None:
    passed(user_run, "test_config_dict.py::")
    passed(user_run, "test_config_settings.py::")


def test_openai_client_fixtures(user_run: dict[str, str]) -> None:
    pytest.importorskip("openai")
    passed(user_run, "test_openai_clients.py::")


def test_openai_fixtures_skip_without_openai(user_run: dict[str, str]) -> None:
    outcome = user_run["test_openai_missing.py::test_client"]
    assert outcome.startswith("skipped")
    assert "needs the 'openai' package (pip install openai)" in outcome


def test_the_violations_check_is_off_by_default(user_run: dict[str, str]) -> None:
    passed(user_run, "test_violation.py::")


def test_the_violations_check_option_and_bad_marker_options(pytester: pytest.Pytester) -> None:
    write_project(
        pytester.path,
        {
            "test_violation.py": USER_FILES["test_violation.py"],
            "test_bad_marker.py": """
                import pytest

                @pytest.mark.aigen_mock(sed=1)
                def test_typo(aigen_mock):
                    pass

                @pytest.mark.aigen_mock("positional")
                def test_positional(aigen_mock):
                    pass
            """,
        },
    )
    assert not list(pytester.path.rglob("conftest.py"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--aigen-mock-check-violations")
    result.assert_outcomes(passed=1, errors=3)
    output = result.stdout.str()
    assert "the mock answered outside its spec" in output
    assert "broken on purpose" in output
    assert "unknown setting(s) ['sed']" in output
    assert "aigen_mock takes keyword arguments only" in output


@pytest.mark.parametrize(
    ("ini", "flag", "expected"), [("", False, False), ("true", False, True), ("false", True, True)]
)
def test_the_violations_check_reads_the_ini_then_the_flag(
    pytester: pytest.Pytester, ini: str, flag: bool, expected: bool
) -> None:
    pytester.makeini(INI + (f"aigen_mock_check_violations = {ini}\n" if ini else ""))
    pytester.makepyfile(
        f"""
        from mockserver.plugin import _check_violations

        def test_resolved(request):
            assert _check_violations(request.config) is {expected}
        """
    )
    args = ["--aigen-mock-check-violations"] if flag else []
    pytester.runpytest("-p", "no:cacheprovider", *args).assert_outcomes(passed=1)


def test_fixtures_marker_and_option_are_listed(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("--fixtures", "-p", "no:cacheprovider")
    result.stdout.fnmatch_lines(["aigen_mock -- *", "*reset to its seed before the test*"])
    listed = result.stdout.str()
    for name in (
        "aigen_mock_server",
        "aigen_mock_settings",
        "aigen_webhook_receiver",
        "aigen_spaceai_openai",
    ):
        assert name in listed
    assert "--aigen-mock-check-violations" in pytester.runpytest("--help").stdout.str()
    assert "aigen_mock(**options)" in pytester.runpytest("--markers").stdout.str()
