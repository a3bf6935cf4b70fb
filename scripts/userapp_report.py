"""The "Your app" section of summary.md: which modes could not serve the user's app, and what each mode
answered every request during verification, with any disagreement between the modes marked.

Modes are compared on status and content type (bodies only where the scenario file asks, through its
expectations: a mode whose body fails them fails its cell). Sample-app runs have no such section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from scripts.analysis import by_family, ordered
from scripts.records import CellRecord, Run

DISAGREE = "**differs**"


def answers_by_mode(cells: Sequence[CellRecord]) -> dict[str, dict[str, str]]:
    """mode -> request -> its answer (the first recorded: every cell of a mode verifies the same requests)."""
    table: dict[str, dict[str, str]] = {}
    for cell in cells:
        mine = table.setdefault(cell.mode, {})
        for request, answer in cell.answers.items():
            mine.setdefault(request, answer)
    return table


def disagreements(table: Mapping[str, Mapping[str, str]]) -> list[str]:
    """The requests two modes answered differently (a mode that never answered one is not counted)."""
    requests = ordered(r for answers in table.values() for r in answers)
    return [r for r in requests if len({a[r] for a in table.values() if r in a}) > 1]


def _answers_table(cells: Sequence[CellRecord]) -> list[str]:
    table = answers_by_mode(cells)
    modes = by_family(table)
    requests = ordered(r for mode in modes for r in table[mode])
    if not requests:
        return ["No mode answered a request during verification (see Failed cells)."]
    differ = set(disagreements(table))
    lines = ["| request | " + " | ".join(modes) + " | modes agree |",
             "| --- | " + " | ".join("---" for _ in modes) + " | --- |"]
    for request in requests:
        row = [table[m].get(request, "—") for m in modes]
        lines.append(f"| {request} | " + " | ".join(row) + f" | {DISAGREE if request in differ else 'yes'} |")
    verdict = (f"The modes disagree on {len(differ)} of {len(requests)} requests: " + ", ".join(sorted(differ)) + "."
               if differ else f"Every mode answered all {len(requests)} requests alike.")
    return [verdict, "", *lines]


def section(run: Run) -> list[str]:
    """The section's Markdown lines, or none for a sample-app run."""
    plan: Mapping[str, Any] = run.info.plan if run.info else {}
    app = plan.get("app")
    if not isinstance(app, Mapping):
        return []
    served = ", ".join(f"{kind.upper()} `{app[kind]}`" for kind in ("wsgi", "asgi") if app.get(kind))
    lines = ["## Your app", "", f"Served: {served}"
             + (f", scenarios from `{app['scenario_file']}`" if app.get("scenario_file") else "") + ".", ""]
    skipped = plan.get("not_applicable") or {}
    if skipped:
        lines += ["Not applicable (asked for, not run):", "", *(f"- {m}: {why}" for m, why in skipped.items()), ""]
    lines += ["### Answers during verification", "",
              "Each request's status and content type under each mode, checked before any load. A request "
              "that fails its expectations (a 404 or 500 included) fails its cell and is not measured. — : the "
              "mode did not run that request's scenario (cgi runs the first only), or its server did not start "
              "(see Failed cells).", "",
              *_answers_table(run.cells), ""]
    return lines
