"""Locate the data shipped with the package: the OpenAPI specs and the fixtures.

In a wheel, ``specs/`` and ``fixtures/`` are installed as ``mockserver/_data/specs`` and
``mockserver/_data/fixtures``; in a source checkout (and an editable install) they are the top-level
folders of the repository.
"""

from __future__ import annotations

from pathlib import Path

PROVIDER_IDS: tuple[str, ...] = ("studioaicore", "modelstudio", "artificialstudio", "pahlavan", "spaceai")
"""The five provider ids, in the order the mock lists them."""

_PACKAGE_DIR = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    installed = _PACKAGE_DIR / "_data" / name
    if installed.is_dir():
        return installed
    source = _PACKAGE_DIR.parent / name
    if source.is_dir():
        return source
    raise FileNotFoundError(f"cannot find the {name!r} data folder next to the mockserver package")


def specs_dir() -> Path:
    """The folder holding one OpenAPI document per provider (and ``control.yaml``)."""
    return _data_dir("specs")


def fixtures_dir() -> Path:
    """The folder holding the seed state and golden payloads."""
    return _data_dir("fixtures")


def spec_path(name: str) -> Path:
    """The path of the spec for a provider id (or ``control``)."""
    return specs_dir() / f"{name}.yaml"
