"""The project's modules import one another in one direction: no cycles (plot and report once imported each
other because the analysis lived in the report; see scripts/analysis/analysis.py)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import ROOT

PACKAGES = ("apps", "servers", "loadtests", "scripts")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports anywhere in its body (function-level imports count too)."""
    modules = {module_name(p): p for package in PACKAGES for p in (ROOT / package).rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                # "from scripts import plot" imports the module scripts.render.plot.
                targets = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            graph[name] |= {t for t in targets if t in modules and t != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt):], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_no_import_cycles() -> None:
    graph = import_graph()
    assert graph["scripts.report"] >= {"scripts.render.plot", "scripts.render.summary"}  # the graph sees real edges
    # A package's __init__ importing its own submodules is how a package is built, not a cycle.
    packages = {m for m in graph if (ROOT / m.replace(".", "/") / "__init__.py").exists()}
    found = [c for c in cycles(graph) if not (c[0] in packages and all(m.startswith(c[0]) for m in c))]
    assert found == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]


def test_renderers_do_not_reach_back_into_the_runner() -> None:
    graph = import_graph()
    runner = {"scripts.bench", "scripts.run.cell", "scripts.run.ladder", "scripts.plan.plan", "scripts.load.generators"}
    renderers = (
        "scripts.render.plot", "scripts.render.summary", "scripts.analysis.analysis", "scripts.records.records")
    for renderer in renderers:
        assert not graph[renderer] & runner, renderer


# The stages of scripts/, lowest first: a module imports only from its own stage or a lower one. The thin
# commands (scripts/bench.py, serve.py, compare.py, report.py, index.py, export.py, genbench.py, tune.py) sit above
# them all. tuning/ (the tune) runs servers and renders its own report: above run/ and render/.
STAGES = ("common", "modes", "records", "load", "plan", "run", "analysis", "render", "tuning", "faults")
COMMANDS = len(STAGES)


def stage_of(module: str) -> int | None:
    """The rank of a scripts module's stage (None: not a scripts module)."""
    parts = module.split(".")
    if parts[0] != "scripts" or len(parts) == 1:
        return None
    return STAGES.index(parts[1]) if parts[1] in STAGES else COMMANDS


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    found = []
    for module, imported in sorted(graph.items()):
        rank = stage_of(module)
        for target in sorted(imported):
            theirs = stage_of(target)
            if rank is not None and theirs is not None and theirs > rank:
                found.append((module, target))
    return found


def test_stages_import_only_downward() -> None:
    graph = import_graph()
    assert all(stage_of(m) is not None for m in graph if m.startswith("scripts."))
    # Every folder of scripts/ is a stage of the list (a new folder takes its place in it).
    folders = {p.name for p in (ROOT / "scripts").iterdir() if (p / "__init__.py").exists()}
    assert folders == set(STAGES)
    assert upward_imports(graph) == []


def test_the_stage_check_finds_an_upward_import() -> None:
    graph = {"scripts.records.records": {"scripts.render.plot"}, "scripts.render.plot": {"scripts.records.records"},
             "scripts.bench": {"scripts.run.cell"}}
    assert upward_imports(graph) == [("scripts.records.records", "scripts.render.plot")]
