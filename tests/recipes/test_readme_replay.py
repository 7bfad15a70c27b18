"""The README's "Recording and replaying" section works as written.

Its YAML examples are written to a folder under the file names it gives, its ``python -m mockserver``
command serves them, its curl command gets the recorded answer, its pytest example passes in a user's project,
its flag table matches the command line and its drift warning is the one the mock logs.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from mockserver.recordings import load_recordings
from mockserver.settings import Settings, settings_from_args
from mockserver.testing.server import ServerThread

ROOT = Path(__file__).resolve().parents[2]
README_ORIGIN = "http://127.0.0.1:8080"
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"

pytest_plugins = ["pytester"]


def section() -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"^## Recording and replaying\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, "the README has no '## Recording and replaying' section"
    return match.group(1)


def examples() -> dict[str, str]:
    """The YAML examples by the file name the README gives each (``recordings/spaceai/...yaml``)."""
    found = re.findall(
        r"`(recordings/[^`]+\.yaml)`[^\n]*(?:\n[^\n`]+)*\n\n```yaml\n(.*?)\n```", section(), re.S
    )
    assert len(found) == 2
    return dict(found)


def shell_blocks() -> list[str]:
    return [re.sub(r"\\\n\s*", "", block) for block in re.findall(r"```sh\n(.*?)\n```", section(), re.S)]


def write_examples(root: Path) -> Path:
    """The README's examples under ``root`` (its ``recordings`` folder); returns that folder."""
    for name, text in examples().items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n", encoding="utf-8")
    return root / "recordings"


def test_the_examples_load_and_the_cli_replays_them(mock_cli: Any, tmp_path: Path) -> None:
    folder = write_examples(tmp_path)
    loaded = load_recordings(folder)["spaceai"]
    assert [e.response.events is not None for e in loaded] == [False, True]
    start, curl = shell_blocks()
    argv = shlex.split(start)
    assert argv[:3] == ["python", "-m", "mockserver"]
    with mock_cli(*[str(folder) if arg == "recordings" else arg for arg in argv[3:]]) as origin:
        command = [arg.replace(README_ORIGIN, origin) for arg in shlex.split(curl)]
        result = subprocess.run(
            [*command, "-w", "\n%{http_code}"], capture_output=True, text=True, timeout=30
        )
        body, _, status = result.stdout.rpartition("\n")
        assert status == "200", body
        recorded = yaml.safe_load(examples()["recordings/spaceai/000001-POST-v1-chat-completions.yaml"])
        assert json.loads(body) == recorded["response"]["body"]
        replay = requests.get(origin + "/_mock/replay", timeout=5).json()
        assert replay["drift"] == []
        assert replay["exchanges"]["spaceai"] == 2
        assert replay["replayed"] == 1


def test_the_pytest_example_passes_in_a_users_project(pytester: pytest.Pytester, tmp_path: Path) -> None:
    pytester.makeini(INI)
    write_examples(pytester.path / "tests")
    blocks = re.findall(r"```python\n(.*?)\n```", section(), re.S)
    assert len(blocks) == 1
    (pytester.path / "tests" / "test_replayed.py").write_text(blocks[0] + "\n", encoding="utf-8")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--aigen-mock-check-violations")
    result.assert_outcomes(passed=1)


def test_the_flag_table_is_the_command_line(monkeypatch: pytest.MonkeyPatch) -> None:
    rows = re.findall(r"^\| `(--replay[^`]*)` \| `([A-Z_]+)(?:=1)?` \|", section(), re.M)
    assert [flag.split()[0] for flag, _ in rows] == ["--replay", "--replay-speed", "--replay-strict"]
    assert settings_from_args(["--replay", "rec", "--replay-speed", "0", "--replay-strict"]) == Settings(
        replay=Path("rec"), replay_speed=0.0, replay_strict=True
    )
    for _, variable in rows:
        monkeypatch.setenv(variable, {"MOCKSERVER_REPLAY_SPEED": "2.5"}.get(variable, "1"))
    assert settings_from_args([]) == Settings(replay=Path("1"), replay_speed=2.5, replay_strict=True)
    assert settings_from_args([]).replay_speed == 2.5
    with pytest.raises(SystemExit):
        settings_from_args(["--replay-speed", "-1"])


def test_the_drift_warning_is_the_one_the_mock_logs(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    folder = write_examples(tmp_path)
    path = folder / "spaceai" / "000001-POST-v1-chat-completions.yaml"
    path.write_text(path.read_text().replace("created: 1796263149", "created: yesterday"))
    shown = re.search(r"^\.\.\. WARNING mockserver\.replay: (.*)$", section(), re.M)
    assert shown
    with caplog.at_level(logging.WARNING, logger="mockserver.replay"), ServerThread(Settings(replay=folder)):
        pass
    assert [r.getMessage() for r in caplog.records if r.name == "mockserver.replay"] == [shown.group(1)]
