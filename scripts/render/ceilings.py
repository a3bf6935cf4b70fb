"""Little's law beside the figures (:mod:`scripts.analysis.littles_law`): a section of summary.md and of report.html
that shows each figure of a scenario with a known wait beside its ceiling, and flags one above it."""

from __future__ import annotations

from scripts.analysis.analysis import AnalysedRun
from scripts.analysis.littles_law import TOLERANCE, Ceiling, ceilings, sample_waits
from scripts.common.formatting import MISSING, format_percent, format_rps
from scripts.render import html as h

HEADERS = ("scenario", "mode", "users", "at once", "why", "wait ms", "ceiling req/s", "req/s", "of ceiling", "check")
ABOVE = "above the ceiling: a measurement error"


def run_ceilings(run: AnalysedRun) -> list[Ceiling]:
    plan = run.info.plan if run.info else None
    threads = plan.get("threads") if plan else None
    return ceilings(run.figures, sample_waits(plan), threads=threads if isinstance(threads, dict) else None)


def intro(found: list[Ceiling]) -> str:
    waits = sorted({f"{c.scenario.split('/')[0]} ({c.wait_ms:g} ms)" for c in found})
    above = sum(c.above for c in found)
    text = (f"Every request of {', '.join(waits)} waits a known time, so a mode that serves N requests at once "
            "completes at most N / wait per second (Little's law). N is workers x threads for a pool, every "
            "connection (the users) for an event loop, and never more than the users. Below its ceiling a figure "
            f"is the mode's CPU, parsing or scheduling; more than {TOLERANCE:.0%} above it cannot happen and is "
            "a measurement error.")
    if above:
        text += f" {above} {'figure is' if above == 1 else 'figures are'} above the ceiling here: do not trust them."
    return text


def markdown(run: AnalysedRun) -> list[str]:
    found = run_ceilings(run)
    if not found:
        return []
    lines = ["## Little's law: each figure beside its ceiling", "", intro(found), "",
             "| " + " | ".join(HEADERS) + " |", "| --- | --- |" + " ---: |" * 2 + " --- |" + " ---: |" * 4 + " --- |"]
    for c in found:
        check = f"**{ABOVE}**" if c.above else MISSING
        lines.append(f"| {c.scenario} | {c.mode} | {c.users} | {c.holds} | {c.how} | {c.wait_ms:g} | "
                     f"{format_rps(c.ceiling_rps)} | {format_rps(c.rps)} | "
                     f"{MISSING if c.share is None else format_percent(100 * c.share)} | {check} |")
    return [*lines, ""]


def html_section(run: AnalysedRun) -> str:
    found = run_ceilings(run)
    if not found:
        return ""
    rows: list[list[h.Cell | str]] = [[
        c.scenario, c.mode, h.num(str(c.users), c.users), h.num(str(c.holds), c.holds), c.how,
        h.num(f"{c.wait_ms:g}", c.wait_ms), h.num(format_rps(c.ceiling_rps), c.ceiling_rps),
        h.num(format_rps(c.rps), c.rps),
        h.num(MISSING if c.share is None else format_percent(100 * c.share), c.share),
        h.Cell(ABOVE, css="bad") if c.above else h.Cell(MISSING)] for c in found]
    numeric = (False, False, True, True, False, True, True, True, True, False)
    return ('<section id="littles-law"><h2>Little\'s law: each figure beside its ceiling</h2>'
            f"<p>{h.esc(intro(found))}</p>" + h.table(HEADERS, rows, numeric=numeric) + "</section>")
