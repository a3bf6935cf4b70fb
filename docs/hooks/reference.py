"""The generated reference pages: modes, command-line options and record fields, read from the code.

mkdocs loads this file as a hook (``hooks:`` in mkdocs.yml). A page holds a marker such as
``<!-- generated: modes -->`` where its generated part goes; :func:`on_page_markdown` puts the Markdown there
at every build, so the pages cannot drift from the registry and the parsers. ``tests/test_docs.py`` imports
this file too and checks that every mode and every option string shows up.

Where the code keeps these things is said once, in the tuples below: the first candidate that imports wins,
so the pages build before and after the registry and the commands move. Drop a stale candidate at will.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]

# Modules that define MODES and mode_sets, newest layout first.
REGISTRY = ("scripts.modes",)
# Per command, "module:function" candidates. A function named `main` builds its parser inside and is run until it
# parses; any other is called with no arguments, or with the registry if it requires one.
COMMANDS: dict[str, tuple[str, ...]] = {
    "bench": ("scripts.bench:build_parser",),
    "faults": ("scripts.faults:build_parser",),
    "compare": ("scripts.compare:build_parser",),
    "serve": ("scripts.serve:build_parser",),
    "cow": ("scripts.cow:build_parser",),
    "tune": ("scripts.tune:build_parser",),
}
# The module of the typed records, and the records the schema page lists.
RECORDS = ("scripts.records.records",)
RECORD_CLASSES = ("CellRecord", "Resources", "OpenLoopRecord", "FaultRecord", "RunInfo", "RunProgress", "References")

MARKER = re.compile(r"<!--\s*generated:\s*([a-z-]+)\s*-->")


def _import(name: str) -> Any:
    """Import a module of the project, from the checkout this file is in (mkdocs runs hooks without it on the
    import path, and puts back the path it had after loading them)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    return importlib.import_module(name)


def registry() -> tuple[dict[str, Any], dict[str, tuple[str, ...]], dict[str, str]]:
    """The modes, their named sets and the families' display names, from wherever the registry lives."""
    for name in REGISTRY:
        try:
            module = _import(name)
            modes, mode_sets = module.MODES, module.mode_sets
        except (ImportError, AttributeError):
            continue
        try:
            sets = mode_sets(modes)
        except TypeError:  # a mode_sets() that knows its registry
            sets = mode_sets()
        families = dict(getattr(module, "FAMILIES", {}))
        return dict(modes), dict(sets), families
    raise ImportError(f"no mode registry in any of {', '.join(REGISTRY)}")


class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__(parser.prog)
        self.parser = parser


def _parser_of_main(main: Callable[..., Any]) -> argparse.ArgumentParser:
    """The parser a `main(argv)` builds: stop it at its first parse, before it does anything."""
    original = argparse.ArgumentParser.parse_known_args

    def stop(self: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> Any:
        raise _Parsed(self)

    argparse.ArgumentParser.parse_known_args = stop  # type: ignore[method-assign]
    try:
        main([])
    except _Parsed as parsed:
        return parsed.parser
    finally:
        argparse.ArgumentParser.parse_known_args = original  # type: ignore[method-assign]
    raise RuntimeError(f"{main.__module__}.main() returned without parsing its arguments")


def _resolve(candidate: str) -> Callable[..., Any] | None:
    module_name, _, function = candidate.partition(":")
    try:
        return getattr(_import(module_name), function)  # type: ignore[no-any-return]
    except (ImportError, AttributeError):
        return None


def parser(command: str) -> argparse.ArgumentParser:
    """The argparse parser of one command (bench, faults, compare, serve)."""
    for candidate in COMMANDS[command]:
        function = _resolve(candidate)
        if function is None:
            continue
        if function.__name__ == "main":
            return _parser_of_main(function)
        required = [p for p in inspect.signature(function).parameters.values()
                    if p.default is inspect.Parameter.empty
                    and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        result = function(registry()[0]) if required else function()
        assert isinstance(result, argparse.ArgumentParser), candidate
        return result
    raise ImportError(f"no parser for {command} in any of {', '.join(COMMANDS[command])}")


def _cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


# --- modes -----------------------------------------------------------------------------------------------------


def _memberships() -> tuple[dict[str, Any], dict[str, tuple[str, ...]], dict[str, str], dict[str, list[str]]]:
    modes, sets, families = registry()
    member = {name: [s for s, names in sets.items() if name in names] for name in modes}
    return modes, sets, families, member


def modes_markdown() -> str:
    """The table of every mode, in the order every table and chart shows them."""
    modes, sets, families, member = _memberships()
    lines = [
        f"{len(modes)} modes, in the order every table and chart shows them (by family, then registry order).",
        "",
        "| mode | family | interface | what it is | sets |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in sets.get("all", tuple(modes)):
        m = modes[name]
        lines.append(f"| [`{name}`](#{name}) | {families.get(m.family, m.family)} | {m.interface.upper()} "
                     f"| {_cell(m.summary)} | {', '.join(_code(s) for s in member[name])} |")
    return "\n".join(lines)


def mode_sets_markdown() -> str:
    """The named sets of --modes."""
    _modes, sets, _families, _member = _memberships()
    lines = ["| set | modes |", "| --- | --- |"]
    lines += [f"| `{s}` | {', '.join(_code(n) for n in names)} |" for s, names in sets.items()]
    return "\n".join(lines)


def mode_details_markdown() -> str:
    """A section per mode: its settings, features and command line."""
    modes, sets, families, member = _memberships()
    lines: list[str] = []
    for name in sets.get("all", tuple(modes)):
        lines += _mode_section(modes[name], families, member[name])
    return "\n".join(lines)


def _at_once(m: Any) -> str:
    """What the mode serves at once with 2 workers: the numerator of its Little's-law ceiling in the reports."""
    try:
        held, how = _import("scripts.analysis.littles_law").holds(m, 2)
    except (ImportError, AttributeError):
        return "not stated"
    if not held:
        return f"{how}: on `io` (20 ms a request) at most the users / 20 ms"
    return f"{how}: on `io` (20 ms a request) at most {held / 0.02:,.0f} req/s with 2 workers, fewer with fewer users"


def _mode_section(m: Any, families: dict[str, str], sets: list[str]) -> list[str]:
    argv = m.argv(host="127.0.0.1", port=8000, workers=2, python="python")
    facts = [
        ("family", f"{families.get(m.family, m.family)} ({m.interface.upper()})"),
        ("sets", ", ".join(_code(s) for s in sets)),
        ("its settings here", _cell(m.process.defaults) or "its own defaults"),
        ("workers", "`--workers` sizes its pool" if m.process.uses_workers
         else "no process pool: `--workers` does not apply"),
        ("threads", f"{m.process.threads} per worker (`--threads`)" if m.process.threads else "no thread pool"),
        ("serves at once", _at_once(m)),
        ("tune searches", ", ".join(a.name + (f" (`{a.flag}`)" if a.flag else "") for a in m.tuning_axes)
         or "nothing: one setting"),
        ("packages", ", ".join(_code(p) for p in m.process.packages) or "this project only"),
        ("worker timeout", _code(m.faults.worker_timeout_flag or "") or "not offered"),
        ("recycling", _code(m.faults.max_requests_flag or "") or "not offered"),
        ("recycling by memory", _code(m.faults.max_rss_flag or "") or "not offered"),
        ("reload signal", _code(m.faults.reload_signal.name) if m.faults.reload_signal else "not offered"),
    ]
    where = m.placement
    if where.only_scenarios:
        facts.append(("scenarios", "only " + ", ".join(_code(s) for s in where.only_scenarios)))
    if where.min_duration_s:
        facts.append(("measured interval", f"at least {where.min_duration_s:g} s"))
    if not where.in_sweeps:
        facts.append(("concurrency sweep", "sits it out"))
    for t in m.checks.speed:
        held = f"held to {t.ratio:g}x" if t.ratio else "reported"
        facts.append(("speed check", f"{_cell(t.check)} (`{t.scenario}`, {held})"))
    for backend, ratio in m.checks.reuse:
        held = f"held to {ratio:g}x" if ratio else "reported"
        facts.append(("connection reuse check", f"{backend}: {held}"))
    lines = [f"### `{m.name}` {{ #{m.name} }}", "", _cell(m.summary), "", "| property | value |", "| --- | --- |"]
    lines += [f"| {key} | {value} |" for key, value in facts]
    lines += ["", "Its command line, with 2 workers on 127.0.0.1:8000:", "", "```sh", " ".join(argv), "```", ""]
    return lines


# --- options ---------------------------------------------------------------------------------------------------


def _metavar(action: argparse.Action) -> str:
    if action.nargs == 0:
        return ""
    if action.metavar is not None:
        return " ".join(action.metavar) if isinstance(action.metavar, tuple) else str(action.metavar)
    if action.choices is not None:
        return "{" + ",".join(str(c) for c in action.choices) + "}"
    return action.dest if not action.option_strings else action.dest.upper()


def _default(action: argparse.Action) -> str:
    default = action.default
    if default is None or default is argparse.SUPPRESS or action.nargs == 0:
        return ""
    if isinstance(default, (list, tuple)):
        default = ",".join(str(d) for d in default)
    return _code(str(default))


def _help(action: argparse.Action, prog: str) -> str:
    text = action.help or ""
    try:
        text = text % {**vars(action), "prog": prog}
    except (KeyError, TypeError, ValueError):
        pass
    return _cell(text)


# Pages that hold what some group titles still call a README section (the README is short now): the title
# loses the pointer, and a link to the page follows it.
README_SECTIONS = {
    "Benchmark your own app": "../tutorials/your-app.md",
    "Two machines": "../how-to/two-machines.md",
}
README_POINTER = re.compile(r"""[;,]?\s*see (?:the )?README(?::|'s) "?([^")]+)"?""")


def _group_heading(title: str) -> list[str]:
    found = README_POINTER.search(title)
    if not found or found.group(1).strip() not in README_SECTIONS:
        return [f"### {title}", ""]
    section = found.group(1).strip()
    rest = (title[:found.start()] + title[found.end():]).replace("()", "").strip()
    return [f"### {rest}", "", f"See [{section.lower()}]({README_SECTIONS[section]}).", ""]


def option_strings(p: argparse.ArgumentParser) -> Iterator[str]:
    """Every option string (and positional name) the parser takes."""
    for action in p._actions:
        if action.help is argparse.SUPPRESS:
            continue
        yield from action.option_strings or [action.dest]


def options_markdown(command: str) -> str:
    p = parser(command)
    lines = [f"`{p.prog}`" + (f": {p.description.strip()}" if p.description else ""), ""]
    for group in p._action_groups:
        actions = [a for a in group._group_actions if a.help is not argparse.SUPPRESS]
        if not actions:
            continue
        lines += _group_heading(group.title or "options")
        if group.description:
            lines += [_cell(group.description), ""]
        lines += ['<div class="wb-options" markdown>', "", "| option | value | default | what it does |",
                  "| --- | --- | --- | --- |"]
        for a in actions:
            flags = ", ".join(f"`{s}`" for s in (a.option_strings or [a.dest]))
            lines.append(f"| {flags} | {_code(_metavar(a))} | {_default(a)} | {_help(a, p.prog)} |")
        lines += ["", "</div>", ""]
    return "\n".join(lines)


# --- records ---------------------------------------------------------------------------------------------------


def _records_module() -> Any:
    for name in RECORDS:
        try:
            return _import(name)
        except ImportError:
            continue
    raise ImportError(f"no records module in any of {', '.join(RECORDS)}")


def _field_comments(cls: type) -> dict[str, str]:
    """The comment at the end of each field's line in the class's source."""
    comments: dict[str, str] = {}
    for line in inspect.getsource(cls).splitlines():
        found = re.match(r"\s+(\w+):[^#]*#\s*(.*)$", line)
        if found:
            comments[found.group(1)] = found.group(2).strip()
    return comments


def _type_name(annotation: object) -> str:
    return str(annotation).replace("typing.", "").replace("collections.abc.", "")


def records_markdown() -> str:
    module = _records_module()
    lines = [f"Schema version today: **{module.SCHEMA_VERSION}**.", ""]
    for name in RECORD_CLASSES:
        cls = getattr(module, name, None)
        if cls is None or not dataclasses.is_dataclass(cls):
            continue
        doc = inspect.getdoc(cls) or ""
        comments = _field_comments(cls)
        lines += [f"### `{name}`", "", _cell(doc.split("\n\n")[0]), ""]
        lines += ["| field | type | default | note |", "| --- | --- | --- | --- |"]
        for f in dataclasses.fields(cls):
            if f.default is not dataclasses.MISSING:
                default = _code(repr(f.default))
            elif f.default_factory is not dataclasses.MISSING:
                default = _code(repr(f.default_factory()))
            else:
                default = "required"
            # A code span keeps its pipes (int | None) out of the table's columns.
            kind = " ".join(_type_name(f.type).split())
            lines.append(f"| `{f.name}` | `{kind}` | {default} | {_cell(comments.get(f.name, ''))} |")
        lines.append("")
    return "\n".join(lines)


# --- the hook --------------------------------------------------------------------------------------------------

GENERATED: dict[str, Callable[[], str]] = {
    "modes": modes_markdown,
    "mode-sets": mode_sets_markdown,
    "mode-details": mode_details_markdown,
    "records": records_markdown,
    **{f"options-{c}": (lambda c=c: options_markdown(c)) for c in COMMANDS},  # type: ignore[misc]
}


def render(markdown: str) -> str:
    """The page with each marker replaced by what it names."""
    def replace(found: re.Match[str]) -> str:
        key = found.group(1)
        if key not in GENERATED:
            raise KeyError(f"unknown generated section {key!r}; known: {', '.join(GENERATED)}")
        return GENERATED[key]()

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return render(markdown)
