"""The documentation: the generated reference pages list every mode and every option, and the README stays short.

The site itself is built by ``nox -s docs`` (mkdocs build --strict); these tests need no mkdocs: they run the
hook's generators (docs/hooks/reference.py) the build runs, and read the pages' sources.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README_MAX_LINES = 250


def _hook() -> ModuleType:
    spec = importlib.util.spec_from_file_location("workerbench_docs_reference", DOCS / "hooks" / "reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HOOK = _hook()


def _page(relative: str) -> str:
    """A page as the site shows it: its source with the generated parts put in."""
    return HOOK.render((DOCS / relative).read_text())  # type: ignore[no-any-return]


def test_readme_stays_short() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; the rest belongs in docs/"


def test_modes_page_lists_every_mode_of_the_registry() -> None:
    modes, sets, _families = HOOK.registry()
    page = _page("reference/modes.md")
    assert modes, "the registry is empty"
    for name, mode in modes.items():
        assert f'{{ #{name} }}' in page, f"no section for mode {name}"
        assert f"[`{name}`](#{name})" in page, f"mode {name} missing from the table"
        assert " ".join(mode.summary.split()) in page, f"mode {name}'s summary missing"
    for set_name in sets:
        assert f"| `{set_name}` |" in page, f"mode set {set_name} missing"


@pytest.mark.parametrize("command", sorted(HOOK.COMMANDS))
def test_options_page_lists_every_option(command: str) -> None:
    page = _page("reference/options.md")
    section = page.split(f"\n## {command}\n", 1)[1].split("\n## ", 1)[0]
    options = list(HOOK.option_strings(HOOK.parser(command)))
    assert options, f"{command} has no options?"
    for option in options:
        assert f"`{option}`" in section, f"{command} {option} missing from the options reference"


def test_every_generated_marker_is_known_and_used() -> None:
    markers = {m for page in DOCS.rglob("*.md") for m in HOOK.MARKER.findall(page.read_text())}
    assert markers == set(HOOK.GENERATED), "a generated section is unknown, or never placed on a page"


def test_prefork_theory_of_operation_lives_in_the_docs() -> None:
    # servers/prefork's docstring points here: the path is part of the contract.
    page = (DOCS / "explanation" / "prefork.md").read_text()
    for topic in ("## The master", "EPOLLEXCLUSIVE", "fair share", "Scoreboard", "SIGHUP"):
        assert topic in page


def test_every_page_is_in_the_nav() -> None:
    config = (ROOT / "mkdocs.yml").read_text()
    nav = set(re.findall(r":\s*([\w/-]+\.md)\s*$", config, flags=re.M))
    pages = {str(p.relative_to(DOCS)) for p in DOCS.rglob("*.md")}
    assert pages == nav, f"pages not in the nav: {sorted(pages - nav)}; nav entries, no page: {sorted(nav - pages)}"
