"""The "Your app" section of summary.md and report.html: which modes could not serve the user's app, and what each mode
answered every request during verification, with any disagreement between the modes marked.

Modes are compared on status and content type (bodies only where the scenario file asks, through its
expectations: a mode whose body fails them fails its cell). Sample-app runs have no such section.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from scripts.analysis.analysis import by_family, ordered
from scripts.common.formatting import MISSING
from scripts.plan.userapp import ADAPTED_SUFFIX
from scripts.records.records import CellRecord, Run
from scripts.render.web import html as h

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


@dataclass(frozen=True, kw_only=True, slots=True)
class YourApp:
    """What both renderers show of a user-app run: the app, the modes left out, each request's answer per mode."""

    served: tuple[tuple[str, str], ...]  # (WSGI or ASGI, MODULE:CALLABLE)
    scenario_file: str | None
    not_applicable: Mapping[str, str]  # mode -> why
    modes: tuple[str, ...]
    requests: tuple[str, ...]
    answers: Mapping[str, Mapping[str, str]]  # mode -> request -> "STATUS CONTENT-TYPE"
    differ: frozenset[str]
    adapted: tuple[str, ...]  # the modes that served the app through a2wsgi
    sent: Mapping[str, str]  # request -> "METHOD PATH" (runs before it was recorded: none)

    def answer(self, mode: str, request: str) -> str:
        return self.answers[mode].get(request, MISSING)

    def label(self, request: str) -> str:
        """The request's name and, when the name is not its path already, what was sent."""
        sent = self.sent.get(request)
        return f"{request} ({sent})" if sent and sent.split(" ", 1)[-1] != request else request

    def verdict(self) -> str:
        if not self.requests:
            return "No mode answered a request during verification (see Failed cells)."
        if self.differ:
            return (f"The modes disagree on {len(self.differ)} of {len(self.requests)} requests: "
                    + ", ".join(sorted(self.differ)) + ".")
        return f"Every mode answered all {len(self.requests)} requests alike."


def your_app(run: Run) -> YourApp | None:
    """The section's content, or None for a sample-app run."""
    plan: Mapping[str, Any] = run.info.plan if run.info else {}
    app = plan.get("app")
    if not isinstance(app, Mapping):
        return None
    table = answers_by_mode(run.cells)
    modes = by_family(table)
    return YourApp(served=tuple((kind.upper(), str(app[kind])) for kind in ("wsgi", "asgi") if app.get(kind)),
                   scenario_file=app.get("scenario_file"), not_applicable=plan.get("not_applicable") or {},
                   modes=tuple(modes), requests=tuple(ordered(r for mode in modes for r in table[mode])),
                   answers=table, differ=frozenset(disagreements(table)),
                   adapted=tuple(m for m in by_family(c.mode for c in run.cells) if m.endswith(ADAPTED_SUFFIX)),
                   sent=app.get("requests") or {})


ANSWERS_NOTE = ("Each request's status and content type under each mode, checked before any load. A request that "
                "fails its expectations (a 404 or 500 included) fails its cell and is not measured. — : the mode did "
                "not run that request's scenario (cgi runs the first only), or its server did not start (see Failed "
                "cells).")
ADAPTED_NOTE = (f"MODE{ADAPTED_SUFFIX} (--adapt): the mode served your app through the a2wsgi adapter, since the app "
                "is of the other interface (WSGI under an ASGI server, or the reverse); its figures measure the "
                "adapter as much as the server.")


def _answers_table(app: YourApp) -> list[str]:
    if not app.requests:
        return [app.verdict()]
    lines = ["| request | " + " | ".join(app.modes) + " | modes agree |",
             "| --- | " + " | ".join("---" for _ in app.modes) + " | --- |"]
    for request in app.requests:
        row = [app.label(request), *(app.answer(m, request) for m in app.modes),
               DISAGREE if request in app.differ else "yes"]
        lines.append("| " + " | ".join(row) + " |")
    return [app.verdict(), "", *lines]


def section(run: Run) -> list[str]:
    """The section's Markdown lines, or none for a sample-app run."""
    app = your_app(run)
    if app is None:
        return []
    served = ", ".join(f"{kind} `{spec}`" for kind, spec in app.served)
    lines = ["## Your app", "", f"Served: {served}"
             + (f", scenarios from `{app.scenario_file}`" if app.scenario_file else "") + ".", ""]
    if app.adapted:
        lines += [f"{ADAPTED_NOTE} Here: {', '.join(app.adapted)}.", ""]
    if app.not_applicable:
        lines += ["Not applicable (asked for, not run):", "",
                  *(f"- {m}: {why}" for m, why in app.not_applicable.items()), ""]
    lines += ["### Answers during verification", "", ANSWERS_NOTE, "", *_answers_table(app), ""]
    return lines


def html_section(run: Run) -> str:
    """The same section for report.html, or "" for a sample-app run."""
    app = your_app(run)
    if app is None:
        return ""
    served = ", ".join(f"{kind} <code>{h.esc(spec)}</code>" for kind, spec in app.served)
    parts = ['<section id="your-app"><h2>Your app</h2>',
             f"<p>Served: {served}" + (f", scenarios from <code>{h.esc(app.scenario_file)}</code>"
                                      if app.scenario_file else "") + ".</p>"]
    if app.adapted:
        parts.append(f'<p id="adapted-note">{h.esc(ADAPTED_NOTE)} Here: {h.esc(", ".join(app.adapted))}.</p>')
    if app.not_applicable:
        rows: list[list[h.Cell | str]] = [[m, h.Cell(why, css="muted")] for m, why in app.not_applicable.items()]
        parts.append("<h3>Not applicable (asked for, not run)</h3>"
                     + h.table(("mode", "why"), rows, sortable=False, attrs=' id="not-applicable"'))
    parts.append(f"<h3>Answers during verification</h3><p class=\"muted\">{h.esc(ANSWERS_NOTE)}</p>"
                 f'<p class="{"bad" if app.differ else "good"}">{h.esc(app.verdict())}</p>')
    if app.requests:
        rows = [[app.label(request), *(app.answer(m, request) for m in app.modes),
                 h.Cell("differs", css="bad") if request in app.differ else h.Cell("yes", css="good")]
                for request in app.requests]
        parts.append(h.table(("request", *app.modes, "modes agree"), rows, sortable=False, attrs=' id="answers"'))
    return "".join(parts) + "</section>"
