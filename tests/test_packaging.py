"""The wheel ships specs/ and fixtures/ inside the package, and an installed copy finds them."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from mockserver.resources import PROVIDER_IDS

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("aigen_contract-*.whl")
    return built


def test_wheel_contains_specs_fixtures_and_console_scripts(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for provider in PROVIDER_IDS:
        assert f"mockserver/_data/specs/{provider}.yaml" in names
        assert f"mockserver/_data/fixtures/seed/{provider}.yaml" in names
    for name in ("index.html", "app.js", "app.css"):  # the dashboard, served from the package
        assert f"mockserver/dashboard/{name}" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "mockserver = mockserver.__main__:main" in text
    assert "conformance = conformance.__main__:main" in text


def test_installed_wheel_finds_its_data_outside_the_source_tree(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    probe = (
        "import json, mockserver, mockserver.resources as r\n"
        "from mockserver.core.spec import load_spec\n"
        "print(json.dumps({'pkg': mockserver.__file__, 'specs': str(r.specs_dir()),"
        " 'fixtures': str(r.fixtures_dir()),"
        " 'ops': sum(len(load_spec(r.spec_path(p)).operations) for p in r.PROVIDER_IDS)}))\n"
    )
    # Run from an empty directory with the target first on the path, so the source tree cannot be used.
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={"PYTHONPATH": str(target), "PATH": ""},
        check=True,
        capture_output=True,
        text=True,
    )
    found = json.loads(result.stdout)
    assert found["pkg"].startswith(str(target))
    assert found["specs"] == str(target / "mockserver" / "_data" / "specs")
    assert found["fixtures"] == str(target / "mockserver" / "_data" / "fixtures")
    assert found["ops"] >= 19
