"""``@pytest.mark.aigen_mock(replay=...)`` as a user writes it: recordings folder relative to the rootdir.

The user's project is run by pytest in a separate process (as in ``test_plugin_fixtures.py``); its test
file sits two folders below the rootdir, and pytest runs from there: a path resolved against the current
folder or the test file's would miss.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from mockserver.recordings import Exchange, RecordedRequest, RecordedResponse, RecordingWriter

pytest_plugins = ["pytester"]

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
MODELS = {
    "object": "list",
    "data": [{"id": "recorded-model", "object": "model", "created": 1700000000, "owned_by": "recorder"}],
}
USER_TEST = """
import pytest

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "never recorded"}]}


@pytest.mark.aigen_mock(replay="tests/recordings")
def test_replayed(aigen_mock):
    models = aigen_mock.get("spaceai", "/v1/models")
    assert models.status_code == 200
    assert [m["id"] for m in models.json()["data"]] == ["recorded-model"]
    assert aigen_mock.post("spaceai", "/v1/chat/completions", json=CHAT).status_code == 200  # falls through


@pytest.mark.aigen_mock(replay="tests/recordings", replay_strict=True)
def test_strict(aigen_mock):
    assert aigen_mock.post("spaceai", "/v1/chat/completions", json=CHAT).status_code == 404
    assert aigen_mock.get("spaceai", "/v1/models").json()["data"][0]["id"] == "recorded-model"


def test_without_replay(aigen_mock):
    ids = [m["id"] for m in aigen_mock.get("spaceai", "/v1/models").json()["data"]]
    assert "recorded-model" not in ids
"""


def write_recordings(root: Path) -> None:
    RecordingWriter(root, "spaceai").write(
        Exchange(
            "spaceai",
            RecordedRequest(method="GET", path="/v1/models"),
            RecordedResponse(status=200, headers={"content-type": "application/json"}, body=MODELS),
            "2026-12-03T02:00:00Z",
        )
    )


def test_the_marker_replays_a_folder_relative_to_the_rootdir(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeini(INI)
    write_recordings(pytester.path / "tests" / "recordings")
    user_tests = pytester.path / "tests" / "unit"
    user_tests.mkdir()
    (user_tests / "test_user.py").write_text(USER_TEST, encoding="utf-8")
    monkeypatch.chdir(user_tests)  # neither the current folder nor the test file's: the rootdir counts
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--aigen-mock-check-violations")
    result.assert_outcomes(passed=3)


def test_a_missing_recordings_folder_fails_the_test_naming_it(pytester: pytest.Pytester) -> None:
    pytester.makeini(INI)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.aigen_mock(replay="no/such/folder")
        def test_replayed(aigen_mock):
            pass
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*FixtureError: recordings folder */no/such/folder does not exist*"])
