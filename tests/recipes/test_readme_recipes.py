"""The README's recipes are these test files, verbatim: a recipe cannot drift from what runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECIPES = sorted(Path(__file__).parent.glob("test_recipe_*.py"))
EXPECTED_RECIPES = {"batch_polling", "cors", "retry_after", "stream_cut", "upload", "wallet", "webhook"}


def section(title: str) -> str:
    """A top-level (``## ``) section of the README, without its heading."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.S | re.M)
    assert match, f"the README has no '## {title}' section"
    return match.group(1)


def code(path: Path) -> str:
    """A recipe file without its module docstring: what the README shows."""
    return re.sub(r'\A""".*?"""\n\n', "", path.read_text(encoding="utf-8"), flags=re.S).rstrip()


def test_every_recipe_has_a_file() -> None:
    assert {p.stem.removeprefix("test_recipe_") for p in RECIPES} == EXPECTED_RECIPES


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_the_readme_shows_the_recipe_as_it_runs(recipe: Path) -> None:
    blocks = re.findall(r"```python\n(.*?)\n```", section("Recipes"), re.S)
    assert code(recipe) in blocks, f"README '## Recipes' must show {recipe.name} (docstring aside)"


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_a_recipe_needs_no_conftest_code(recipe: Path) -> None:
    """Recipes use only the plugin's fixtures: a user can paste them into any project."""
    used = set(re.findall(r"def test_\w+\(([^)]*)\)", code(recipe)))
    fixtures = {name.strip() for args in used for name in args.split(",") if name.strip()}
    assert fixtures <= {"aigen_mock", "aigen_webhook_receiver", "aigen_spaceai_openai"}
    assert not (recipe.parent / "conftest.py").exists()
