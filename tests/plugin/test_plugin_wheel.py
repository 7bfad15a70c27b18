"""The built wheel carries the plugin: a fresh virtual environment with only the package installed gets
the fixtures in a test file without any conftest code.

No network: the wheel is built without build isolation, and the fresh environment borrows the current
one's third-party packages through a ``.pth`` line (which, unlike a site folder, does not run the editable
install's own ``.pth``), so ``mockserver`` can only come from the wheel.
"""

from __future__ import annotations

import configparser
import os
import site
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from mockserver.testing.golden import golden_dir

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    pip_wheel = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*pip_wheel, "-w", str(out), str(ROOT)], check=True, capture_output=True)
    (built,) = out.glob("aigen_contract-*.whl")
    return built


def test_the_wheel_registers_the_plugin_and_ships_the_kit(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    names = set(archive.namelist())
    entry_points = configparser.ConfigParser()
    entry_points.read_string(archive.read(next(n for n in names if n.endswith("entry_points.txt"))).decode())
    assert dict(entry_points["pytest11"]) == {"aigen_mock": "mockserver.plugin"}
    for module in ("plugin", "testing/__init__", "testing/control", "testing/golden", "testing/server"):
        assert f"mockserver/{module}.py" in names
    golden = {p.relative_to(golden_dir()).as_posix() for p in golden_dir().rglob("*.json")}
    shipped = {n.removeprefix("mockserver/_data/fixtures/golden/") for n in names if "/fixtures/golden/" in n}
    assert golden
    assert shipped == golden


def test_a_fresh_environment_gets_the_fixtures_without_conftest(wheel: Path, tmp_path: Path) -> None:
    env_dir = tmp_path / "fresh"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    (purelib,) = (env_dir / "lib").glob("python3*/site-packages")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(purelib), str(wheel)],
        check=True,
        capture_output=True,
    )
    (purelib / "borrowed_dependencies.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    project = tmp_path / "project"
    project.mkdir()
    (project / "test_with_the_plugin.py").write_text(
        "import mockserver\n"
        "\n"
        "def test_chat(aigen_mock):\n"
        f"    assert mockserver.__file__.startswith({str(purelib)!r})\n"
        "    body = {'model': 'gpt-4o', 'messages': [{'role': 'user', 'content': 'Hello!'}]}\n"
        "    assert aigen_mock.post('spaceai', '/v1/chat/completions', json=body).status_code == 200\n"
    )
    (project / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    # The plugin must be found through its entry point alone, as in a user's run.
    ignored = {"PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_DISABLE_PLUGIN_AUTOLOAD", "PYTEST_PLUGINS"}
    env = {k: v for k, v in os.environ.items() if k not in ignored | {"VIRTUAL_ENV"}}
    result = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert not list(project.glob("conftest.py"))
