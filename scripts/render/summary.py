"""``summary.md``: an analysed run (:mod:`scripts.analysis.analysis`) rendered as Markdown.

One table per scenario, then the flags explained, the speed checks, the open-loop ladder, the
connection-reuse comparison, the failed cells with their log tails, and the charts. A pure renderer:
figures, checks and knees come computed; this module only lays them out.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from scripts.analysis.analysis import AnalysedRun, SpeedCheck, analyse_figures
from scripts.analysis.stats import FoldedCell
from scripts.common.files import write_text_atomic
from scripts.common.formatting import MISSING, as_number, format_mb, format_percent, format_rps, format_sig
from scripts.records.records import FLAG_MEANINGS, Flag, OpenLoopRecord
from scripts.render import ceilings, completeness

COLUMNS = ("mode", "users", "req/s", "95% CI", "p50 ms", "p99 ms", "errors", "CPU ms/req", "req/CPU-s", "memory MB",
           "MB/process", "generator", "flags")
# Numbers right-aligned so that magnitudes line up when the Markdown is rendered.
_ALIGNMENT = ("---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---", "---")
NOT_MEASURED = "not measured"
# A failed cell whose server log is empty: it ran and said nothing (servers log warnings and errors only).
NO_LOG = "The server wrote nothing to its log: it logs warnings and errors only, so the error above is all there is."
# The plan's headline settings first; whatever else it holds follows in its own order.
_PLAN_KEY_ORDER = ("modes", "scenarios", "concurrency", "duration_s", "duration", "workers")


# cells of a table -------------------------------------------------------------


def format_errors(figure: FoldedCell) -> str:
    """``failures/requests``, plus the error rate when there were failures."""
    failures, requests = figure.failures, figure.requests
    if failures is None and requests is None:
        return MISSING
    text = f"{failures:,}/" if failures is not None else f"{MISSING}/"
    text += f"{requests:,}" if requests is not None else MISSING
    if failures and requests:
        text += f" ({format_percent(100 * failures / requests)})"
    return text


def format_interval(figure: FoldedCell) -> str:
    if figure.throughput_ci95 is None:
        return MISSING
    low, high = figure.throughput_ci95
    return f"{format_rps(max(0.0, low))} to {format_rps(high)}"


def format_flags(figure: FoldedCell) -> str:
    if not figure.ok:
        return "failed"
    return ", ".join(str(f) for f in figure.flags) or MISSING


def _format_plan_value(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, Mapping):
        return json.dumps(value, default=str)
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(_format_plan_value(item) for item in value) or "none"
    return " ".join(str(value).split("\n"))


def _table_cell(text: str) -> str:
    # A pipe would split the column and a newline would end the row.
    return text.replace("|", "\\|").replace("\n", " ")


def _fenced(text: str, info: str = "text") -> list[str]:
    """``text`` in a code fence longer than any backtick run inside it, so a log cannot close the fence early."""
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", text.rstrip("\n"), fence]


def _row(f: FoldedCell) -> str:
    res = f.resources
    generator = f.generator or MISSING
    if f.generator_cpu is not None:
        generator += f" ({f.generator_cpu:.0%} CPU{', wanted more' if f.generator_warning else ''})"
    cells: tuple[str, ...] = (
        f.mode, MISSING if f.concurrency is None else str(f.concurrency), format_rps(f.throughput_rps),
        format_interval(f), format_sig(f.latency_ms.get("p50")), format_sig(f.latency_ms.get("p99")),
        format_errors(f), format_sig(res.cpu_ms_per_request if res else None),
        format_rps(res.requests_per_cpu_second if res else None), format_mb(res.memory_mean_mb if res else None),
        format_mb(res.memory_per_process_mb if res else None), generator, format_flags(f),
    )
    if f.ok and res is None:  # a server the bench did not start, without a status source (scripts.plan.target)
        cells = (*cells[:7], *([NOT_MEASURED] * 4), *cells[11:])
    return "| " + " | ".join(_table_cell(cell) for cell in cells) + " |"


# sections -------------------------------------------------------------------


def _plan_section(plan: Mapping[str, Any]) -> list[str]:
    keys = [key for key in _PLAN_KEY_ORDER if key in plan]
    keys += [key for key in plan if key not in _PLAN_KEY_ORDER]
    return ["## Run", "", *(f"- {key}: {_format_plan_value(plan[key])}" for key in keys), ""]


def _scenario_section(run: AnalysedRun, scenario: str) -> list[str]:
    rank = {mode: i for i, mode in enumerate(run.modes)}
    # Figures without a concurrency go last rather than breaking the sort.
    rows = sorted((f for f in run.figures if f.scenario == scenario),
                  key=lambda f: (rank[f.mode], f.concurrency is None, f.concurrency or 0))
    return [f"## {scenario}", "", "| " + " | ".join(COLUMNS) + " |", "| " + " | ".join(_ALIGNMENT) + " |",
            *(_row(f) for f in rows), ""]


def _overview(figures: Sequence[FoldedCell], plan: Mapping[str, Any]) -> str:
    if not figures:
        return "No cells were recorded."
    failed = sum(not f.ok for f in figures)
    text = f"{len(figures)} figures: {len(figures) - failed} ok, {failed} failed."
    repeats = max(f.repeats for f in figures)
    if repeats > 1:
        text += (f" Each figure is the median of {repeats} repeats (modes interleaved); "
                 "the 95% CI is the Student-t interval of their mean.")
    else:
        text += f" Each figure is one measurement ({completeness.repeats_advice(plan, repeats)})."
    return text


def _flags_section(figures: Sequence[FoldedCell]) -> list[str]:
    seen: dict[Flag, list[str]] = {}
    for f in figures:
        if f.ok:
            for flag in f.flags:
                seen.setdefault(flag, []).append(f"{f.mode} {f.scenario} @ {f.concurrency}")
    if not seen:
        return []
    lines = ["## Flags", ""]
    for flag, where in seen.items():
        lines.append(f"- **{flag}**: {FLAG_MEANINGS[flag]} ({len(where)}: {'; '.join(where)})")
    lines += [f"  - {f.mode} {f.scenario} @ {f.concurrency}: {f.generator_warning}" for f in figures
              if f.ok and f.generator_warning]
    return [*lines, ""]


def _check_row(c: SpeedCheck) -> str:
    verdict = {True: "met", False: "**not met**", None: "cannot tell"}[c.met]
    if c.generator_bound:
        what = {"floor": "the ratio is a floor", "ceiling": "the ratio is a ceiling"}.get(c.bound or "", "both sides")
        verdict += f" (generator-bound: not a capacity; {what})"
    target = f">= {c.target:g}x" if c.target else "reported"
    return (f"| {c.check} | {c.users} | {format_rps(c.a)} | {format_rps(c.b)} | {c.ratio:.2f}x | {target} | "
            f"{verdict if c.target else ''} |")


def _speed_section(checks: Sequence[SpeedCheck]) -> list[str]:
    if not checks:
        return []
    return ["## Speed checks", "",
            "Ratios measured within this run (server and generator pinned apart, plaintext unless named).", "",
            "| check | users | req/s | against | ratio | target | |",
            "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
            *(_check_row(c) for c in checks), ""]


_OPENLOOP_INTRO = (
    "Requests sent at a constant rate on a fixed schedule, whatever the answers; latency counts from each"
    " request's intended send time, so time a request waited behind a stalled server is counted (the"
    " coordinated-omission correction of wrk2 and HdrHistogram). Every mode gets the same doubling ladder"
    " of rates on `{path}`, {step} per step, and leaves it one step after it completes less than half the offered"
    " rate. The knee is the first offered rate where the mode completed under 95% of it or its p99 passed ten"
    " times its light-load p99.")


def openloop_intro(run: AnalysedRun) -> str:
    """The ladder's paragraph, naming the path and step length this run's ladder used (its records say)."""
    paths = sorted({p.path for p in run.openloop if p.path}) or ["/io?ms=20"]  # records before the path was kept
    steps = sorted({p.duration_s for p in run.openloop if p.duration_s})
    step = " or ".join(f"{d:g} s" for d in steps) if steps else "a few seconds"
    return _OPENLOOP_INTRO.format(path="`, `".join(paths), step=step)


def _openloop_row(p: OpenLoopRecord) -> str:
    if not p.ok:
        return (f"| {p.mode} | {MISSING} | {MISSING} | {MISSING} | {MISSING} | {MISSING} | {MISSING} |"
                f" failed: {_table_cell(str(p.error))} |")
    kept = {True: "yes", False: "**no**", None: MISSING}[p.generator_kept_up]
    return (f"| {p.mode} | {format_rps(p.offered_rate)} | {format_rps(p.achieved_rate)} | "
            f"{format_sig(p.latency_ms.get('p50'))} | {format_sig(p.latency_ms.get('p99'))} | "
            f"{format_sig(p.latency_uncorrected_ms.get('p99'))} | {sum(p.errors.values())} | {kept} |")


def _openloop_section(run: AnalysedRun) -> list[str]:
    if not run.openloop:
        return []
    lines = ["## Latency against offered load (open loop)", "", openloop_intro(run), "",
             "| mode | offered req/s | achieved req/s | p50 ms | p99 ms | p99 uncorrected ms | errors "
             "| generator kept up |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]
    knees = []
    for mode in run.knees:
        lines += [_openloop_row(p) for p in run.openloop if p.mode == mode]
        knees.append(f"- {mode}: {run.knee_text(mode)}")
    return [*lines, "", *knees, ""]


def _strategy_section(run: AnalysedRun) -> list[str]:
    if not run.pairs:
        return []
    lines = [
        "## Connection reuse", "",
        "The database scenarios measured twice: `reuse` keeps one connection per worker process, `per-request`"
        " connects, queries and closes for every request.", "",
        "| scenario | backend | mode | users | reuse req/s | per-request req/s | reuse / per-request |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for p in run.pairs:
        ratio = MISSING if p.ratio is None else f"{p.ratio:.1f}x"
        lines.append(f"| {p.scenario} | {p.backend or MISSING} | {p.mode} | {p.users} | "
                     f"{format_rps(p.reuse)} | {format_rps(p.per_request)} | {ratio} |")
    return [*lines, ""]


def _failures_section(figures: Sequence[FoldedCell]) -> list[str]:
    lines = []
    for f in figures:
        if f.ok:
            continue
        log = _fenced(f.log_tail) if f.log_tail.strip() else [f"_{NO_LOG}_"]
        error = f.error or f"no error message (status: {f.status})"
        lines += [f"### {f.mode} / {f.scenario} / {f.concurrency} users", "", "Error:", "", *_fenced(error), "",
                  "Log tail:", "", *log, ""]
    return ["## Failed cells", "", *lines] if lines else []


def _charts_section(charts: Sequence[str]) -> list[str]:
    lines = ["## Charts", ""]
    for name in charts:
        # Quote the link target so a file name with spaces still resolves; the alt text stays readable.
        lines += [f"![{name}]({quote(name)})", ""]
    return lines


# public API -----------------------------------------------------------------


def summary_markdown(run: AnalysedRun, *, charts: Sequence[str] = (), extra: Sequence[str] = ()) -> str:
    """The whole report as Markdown; figures in plan order, which decides the order of scenarios and modes.
    ``extra``: lines of sections rendered elsewhere (a user's app: scripts.render.userapp_report), after the plan."""
    interrupted = completeness.banner(run.completeness)
    lines = ["# workerbench results", "", *([f"**{interrupted}**", ""] if interrupted else []),
             _overview(run.figures, run.info.plan if run.info else {}), ""]
    if run.info and run.info.plan:
        lines += _plan_section(run.info.plan)
    lines += extra
    for scenario in run.scenarios:
        lines += _scenario_section(run, scenario)
    lines += ceilings.markdown(run)
    lines += _flags_section(run.figures)
    lines += _speed_section(run.checks)
    lines += _openloop_section(run)
    lines += _strategy_section(run)
    lines += _failures_section(run.figures)
    if charts:
        lines += _charts_section(charts)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_summary(run: AnalysedRun, out_dir: Path, *, charts: Sequence[str] = (), extra: Sequence[str] = ()) -> Path:
    """Write ``out_dir/summary.md`` atomically, so a reader never sees half a report; returns its path."""
    target = out_dir / "summary.md"
    write_text_atomic(target, summary_markdown(run, charts=charts, extra=extra))
    return target


def markdown_of(figures: Sequence[FoldedCell]) -> str:
    """The summary of bare figures (no plan, references or ladder): for tools and tests."""
    return summary_markdown(analyse_figures(figures))


__all__ = ["COLUMNS", "as_number", "format_errors", "format_flags", "format_interval", "markdown_of",
           "summary_markdown", "write_summary"]
