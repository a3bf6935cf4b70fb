"""The line every report of an interrupted run opens with: how much of its plan it measured, and what not.

summary.md, report.html and the results index show the same words (:func:`banner`), so a run cut short never
reads as a complete one; :func:`repeats_advice` keeps the advice about repeats in line with what the plan asked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from scripts.analysis.analysis import Completeness
from scripts.common.formatting import format_rps
from scripts.records.records import FaultRecord

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


def faults_banner(meta: Mapping[str, Any], faults: Sequence[FaultRecord]) -> str | None:
    """``interrupted: 2 of 9 cases ran; not run: crash against uvicorn, ...`` for a faults run that stopped before
    its plan (faults.json's ``state``); None for a finished run, or one from before ``state`` was recorded."""
    state = meta.get("state")
    planned = [(f, m) for f in meta.get("faults") or () for m in meta.get("modes") or ()]
    if state not in ("interrupted", "running") or not planned:
        return None
    ran = {(r.fault, r.mode) for r in faults}
    missing = [f"{f} against {m}" for f, m in planned if (f, m) not in ran]
    gaps = missing[:MAX_LISTED] + ([f"and {len(missing) - MAX_LISTED} more"] if len(missing) > MAX_LISTED else [])
    return (f"{_HEADS[str(state)]}: {len(planned) - len(missing)} of {len(planned)} cases ran"
            + (f"; not run: {', '.join(gaps)}" if gaps else ""))
