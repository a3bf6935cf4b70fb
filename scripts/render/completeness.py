"""The line every report of an interrupted run opens with: how much of its plan it measured, and what not.

summary.md, report.html and the results index show the same words (:func:`banner`), so a run cut short never
reads as a complete one; :func:`repeats_advice` keeps the advice about repeats in line with what the plan asked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from scripts.analysis.analysis import Completeness
from scripts.common.formatting import format_rps

MAX_LISTED = 12  # cells named in the banner; the rest are counted
_HEADS = {"interrupted": "interrupted",
          "running": "incomplete (the run stopped without finishing, or is still running)"}


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _ladder_gaps(c: Completeness) -> list[str]:
    return [f"the open-loop ladder of {mode}" + (f" past {format_rps(last)} req/s" if last else "")
            for mode, last in c.ladder_unfinished.items()]


def banner(c: Completeness | None) -> str | None:
    """``interrupted: 2 of 6 planned cells and 3 open-loop ladder steps measured; not measured: ...``; None for a run
    that measured its whole plan."""
    if c is None:
        return None
    measured = f"{c.measured} of {c.planned} planned cells"
    if c.ladder_steps or c.ladder_unfinished:
        measured += f" and {_plural(c.ladder_steps, 'open-loop ladder step')}"
    gaps = list(c.missing[:MAX_LISTED])
    if len(c.missing) > MAX_LISTED:
        gaps.append(f"and {len(c.missing) - MAX_LISTED} more cells")
    gaps += _ladder_gaps(c)
    return f"{_HEADS.get(c.state, c.state)}: {measured} measured" + (f"; not measured: {', '.join(gaps)}"
                                                                      if gaps else "")


def repeats_advice(plan: Mapping[str, Any], measured: int) -> str:
    """Why a figure has no interval: the plan asked for one measurement, or the run stopped before its repeats."""
    planned = plan.get("repeats")
    if isinstance(planned, int) and planned > measured:
        return f"the plan's {planned} repeats were not all measured: the run stopped before them"
    return "no repeats, so no interval: --repeats 3 gives one"
