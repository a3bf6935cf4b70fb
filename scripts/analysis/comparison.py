"""What changed from run A to run B (``python -m scripts.compare``, ``nox -s compare -- A B``), cell by cell.

Cells are matched by mode, scenario, concurrency, keep-alive and database strategy. Per matched cell, for
throughput and p99 latency: B's change against A (ratio of the geometric means of the repeats), its 95%
confidence interval and Welch's t-test on the logarithms of the repeats (:mod:`scripts.analysis.significance` says why
that test). A change is called a regression or an improvement only when it clears the noise twice: the test
says p < 0.05 after Holm's correction for every test of the comparison (two per cell: without it, 24 tests at
5% raise a false alarm in most comparisons of identical runs) *and* the change is at least ``--min-change``
(default 5%). Why both: repeats within one run are measured minutes apart and share that moment's machine,
so they understate how much two runs differ; a change smaller than the run-to-run drift of a shared machine
is not worth an alarm even when the test is sure of it. Everything else is "within noise"; a cell with one
repeat on a side cannot be tested at all and says so. Then the plan and environment differences that could
explain a change (commit, versions, CPU model, CPU sets), and what could not be compared: cells measured in
one run only, failed cells, incomplete or older runs.

This module compares and writes Markdown; :mod:`scripts.render.compare_html` draws the page and :mod:`scripts.compare`
is the command line.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from scripts.analysis.significance import ALPHA, Change, holm, welch_log
from scripts.common.formatting import MISSING, count, format_rps, format_sig
from scripts.records import records
from scripts.records.records import CellRecord, Run

MIN_CHANGE = 0.05
Verdict = Literal["regression", "improvement", "within noise", "untested", "failed"]
Direction = Literal["higher", "lower"]  # which way is better
# Plan keys that say where a run went or how it was counted, not how it was measured.
_PLAN_NOISE = frozenset({"plan.out", "plan.cells"})
# Environment keys that could explain a change; listed first.
_EXPLAINS = ("environment.git_commit", "environment.git_dirty", "environment.cpu_model", "environment.cpu_count",
             "environment.kernel", "environment.python", "environment.server_cpus", "environment.client_cpus",
             "environment.wrk", "environment.packages", "environment.busy", "environment.cpu_busy_percent",
             "environment.load_average")


@dataclass(frozen=True, order=True, slots=True)
class CellKey:
    mode: str
    scenario: str
    concurrency: int
    keepalive: bool
    strategy: str

    @property
    def label(self) -> str:
        parts = [self.mode, self.scenario]
        if self.strategy:
            parts.append(self.strategy)
        if not self.keepalive:
            parts.append("close")
        return " ".join(parts) + f" @{self.concurrency}"


def key_of(record: CellRecord) -> CellKey:
    return CellKey(mode=record.mode, scenario=record.base_scenario or record.scenario.split("/")[0],
                   concurrency=record.concurrency or 0, keepalive=record.keepalive, strategy=record.db_strategy or "")


@dataclass(frozen=True, kw_only=True, slots=True)
class Metric:
    """One metric of one cell in both runs."""

    name: str
    a: tuple[float, ...]
    b: tuple[float, ...]
    change: Change | None
    verdict: Verdict
    better: Direction
    p_holm: float | None = None  # the test's p-value adjusted for every test of the comparison (Holm)


@dataclass(frozen=True, kw_only=True, slots=True)
class CellComparison:
    key: CellKey
    throughput: Metric
    p99: Metric


@dataclass(frozen=True, kw_only=True, slots=True)
class Difference:
    key: str
    a: str
    b: str
    explains: bool  # could explain a change in the figures


@dataclass(frozen=True, kw_only=True, slots=True)
class Side:
    """One run as the comparison sees it: where, what it held, and what a reader should know about it."""

    path: Path
    run: Run
    notes: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.path.name or str(self.path)


@dataclass(frozen=True, kw_only=True, slots=True)
class Comparison:
    a: Side
    b: Side
    cells: tuple[CellComparison, ...]
    only_a: tuple[CellKey, ...] = ()
    only_b: tuple[CellKey, ...] = ()
    differences: tuple[Difference, ...] = ()
    alpha: float = ALPHA
    min_change: float = MIN_CHANGE
    notes: tuple[str, ...] = field(default=())

    def count(self, verdict: Verdict) -> int:
        return sum(c.throughput.verdict == verdict for c in self.cells)

    def regressions(self) -> list[tuple[CellKey, Metric]]:
        """Every metric of every cell called a regression: significant after Holm and beyond --min-change."""
        return [(c.key, m) for c in self.cells for m in (c.throughput, c.p99) if m.verdict == "regression"]

    def untested(self) -> list[CellKey]:
        """Cells neither of whose metrics could be tested (one repeat on a side, or failed): a gate cannot see them."""
        return [c.key for c in self.cells if c.throughput.p_holm is None and c.p99.p_holm is None]


class RunUnreadable(Exception):
    """A run folder that holds nothing to compare; the message says why."""


# loading -----------------------------------------------------------------------------------------------------------


def load_side(path: Path) -> Side:
    """The run in ``path`` and what is odd about it; :class:`RunUnreadable` when there is nothing to compare."""
    if not path.exists():
        raise RunUnreadable(f"{path}: no such run folder")
    if not path.is_dir():
        raise RunUnreadable(f"{path}: not a folder (a run folder holds cells/ and plan.json)")
    if not (path / "cells").is_dir():
        raise RunUnreadable(f"{path}: no cells/ folder: not a workerbench run, or one interrupted before its "
                            "first cell")
    run = records.load(path)
    if not run.cells:
        raise RunUnreadable(f"{path}: no readable cell records in cells/")
    return Side(path=path, run=run, notes=tuple(_notes(path, run)))


def _notes(path: Path, run: Run) -> list[str]:
    notes = []
    older = {v: n for v, n in records.stored_versions(path).items() if v < records.SCHEMA_VERSION}
    if older:
        which = ", ".join(f"{n} of schema {v}" for v, n in sorted(older.items()))
        notes.append(f"older records ({which}; this workerbench writes {records.SCHEMA_VERSION}), read through "
                     "the loader's migration: figures compare, distributions they never had are missing")
    if run.info is None:
        notes.append("no readable plan.json: its plan and environment cannot be compared")
    else:
        planned = run.info.plan.get("cells")
        if isinstance(planned, int) and len(run.cells) < planned:
            notes.append(f"incomplete: {len(run.cells)} of {planned} planned cells recorded (an interrupted "
                         "run?); the rest cannot be compared")
    failed = sum(not c.ok for c in run.cells)
    if failed:
        notes.append(f"{failed} failed cell records (left out of the figures)")
    return notes


# comparing ---------------------------------------------------------------------------------------------------------


def _values(cells: Iterable[CellRecord], metric: str) -> tuple[float, ...]:
    out = []
    for c in cells:
        value = c.throughput_rps if metric == "throughput" else c.latency_ms.get("p99")
        if c.ok and value is not None and value > 0 and math.isfinite(value):
            out.append(float(value))
    return tuple(out)


def classify(change: Change | None, p: float | None, better: Direction, alpha: float, min_change: float) -> Verdict:
    if change is None:
        return "failed"
    if p is None:
        return "untested"
    if p >= alpha or abs(change.change) < min_change:
        return "within noise"
    up = change.change > 0
    return "improvement" if up == (better == "higher") else "regression"


def _tested(name: str, a: Sequence[CellRecord], b: Sequence[CellRecord], better: Direction, alpha: float) -> Metric:
    """The metric with its change and test, not yet classified (that needs every test's p-value)."""
    va, vb = _values(a, name), _values(b, name)
    change = welch_log(va, vb, alpha) if va and vb else None
    return Metric(name=name, a=va, b=vb, change=change, verdict="untested", better=better)


def _classified(metrics: Sequence[Metric], alpha: float, min_change: float) -> list[Metric]:
    """Every metric with its Holm-adjusted p-value and its verdict."""
    tested = [(i, m.change.p) for i, m in enumerate(metrics) if m.change is not None and m.change.p is not None]
    adjusted = dict(zip((i for i, _ in tested), holm([p for _, p in tested]), strict=True))
    return [dataclasses.replace(m, p_holm=adjusted.get(i),
                                verdict=classify(m.change, adjusted.get(i), m.better, alpha, min_change))
            for i, m in enumerate(metrics)]


def _grouped(run: Run) -> dict[CellKey, list[CellRecord]]:
    groups: dict[CellKey, list[CellRecord]] = {}
    for record in run.cells:
        groups.setdefault(key_of(record), []).append(record)
    return groups


def compare(a: Side, b: Side, *, alpha: float = ALPHA, min_change: float = MIN_CHANGE) -> Comparison:
    ga, gb = _grouped(a.run), _grouped(b.run)
    common = [k for k in ga if k in gb]  # A's plan order
    raw = [m for k in common for m in (_tested("throughput", ga[k], gb[k], "higher", alpha),
                                       _tested("p99", ga[k], gb[k], "lower", alpha))]
    metrics = _classified(raw, alpha, min_change)
    cells = tuple(CellComparison(key=k, throughput=metrics[2 * i], p99=metrics[2 * i + 1])
                  for i, k in enumerate(common))
    return Comparison(a=a, b=b, cells=cells, only_a=tuple(k for k in ga if k not in gb),
                      only_b=tuple(k for k in gb if k not in ga), differences=tuple(differences(a.run, b.run)),
                      alpha=alpha, min_change=min_change)


def _flatten(prefix: str, value: Any) -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(f"{prefix}.{k}", v))
        return out
    return {prefix: value}


def _shown(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, list | tuple):
        return ", ".join(_shown(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def differences(a: Run, b: Run) -> list[Difference]:
    """Plan and environment entries that differ, those that could explain a change first."""
    fa = _flatten("plan", a.info.plan if a.info else {}) | _flatten("environment", a.info.environment if a.info else {})
    fb = _flatten("plan", b.info.plan if b.info else {}) | _flatten("environment", b.info.environment if b.info else {})
    keys = [k for k in dict.fromkeys([*fa, *fb]) if k not in _PLAN_NOISE and _shown(fa.get(k)) != _shown(fb.get(k))]
    found = [Difference(key=k, a=_shown(fa.get(k)), b=_shown(fb.get(k)),
                        explains=any(k == e or k.startswith(e + ".") for e in _EXPLAINS)) for k in keys]
    return sorted(found, key=lambda d: not d.explains)


# output -----------------------------------------------------------------------------------------------------------


def format_change(change: Change | None) -> str:
    if change is None:
        return MISSING
    return f"{change.change:+.1%}"


def format_ci(change: Change | None) -> str:
    if change is None or change.interval is None:
        return MISSING
    low, high = change.interval
    return f"{low:+.1%} to {high:+.1%}"


def format_p(metric: Metric) -> str:
    """The Holm-adjusted p-value the verdict rests on."""
    if metric.p_holm is None:
        return MISSING
    return "<0.001" if metric.p_holm < 0.001 else f"{metric.p_holm:.3f}"


def verdict_text(metric: Metric) -> str:
    if metric.verdict == "untested":
        return f"untested ({min(metric.change.n_a, metric.change.n_b) if metric.change else 0} repeat)"
    if metric.verdict == "failed":
        return "failed in " + " and ".join(side for side, v in (("A", metric.a), ("B", metric.b)) if not v)
    return metric.verdict


def geomean(values: Sequence[float]) -> float | None:
    """The geometric mean: what the change and its test are about (the report's tables show medians)."""
    return math.exp(statistics.fmean(math.log(v) for v in values)) if values else None


MARKDOWN_COLUMNS = ("cell", "A req/s", "B req/s", "change", "95% CI", "p (Holm)", "throughput", "A p99 ms", "B p99 ms",
                    "p99 change", "p99 95% CI", "p99")


def markdown(c: Comparison) -> str:
    lines = [f"# workerbench: {c.b.name} against {c.a.name}", "", headline(c), ""]
    if shared_shift(c):
        lines += [f"**{shared_shift(c)}**", ""]
    for side, label in ((c.a, "A"), (c.b, "B")):
        lines += [f"- {label}: {side.path}" + "".join(f"\n  - {note}" for note in side.notes)]
    lines.append("")
    if c.cells:
        lines += ["| " + " | ".join(MARKDOWN_COLUMNS) + " |",
                  "| --- |" + " ---: |" * 5 + " --- |" + " ---: |" * 4 + " --- |"]
        for cell in c.cells:
            t, p = cell.throughput, cell.p99
            lines.append("| " + " | ".join((
                cell.key.label, format_rps(geomean(t.a)), format_rps(geomean(t.b)), format_change(t.change),
                format_ci(t.change), format_p(t), _md_verdict(t), format_sig(geomean(p.a)),
                format_sig(geomean(p.b)), format_change(p.change), format_ci(p.change), _md_verdict(p))) + " |")
        lines.append("")
    lines += _md_unmatched(c) + _md_differences(c)
    return "\n".join(lines).rstrip("\n") + "\n"


def gate_lines(c: Comparison) -> list[str]:
    """What ``--fail-on-regression`` found: each regression with its change and p, or why nothing failed."""
    found = c.regressions()
    if found:
        return [f"regression beyond {c.min_change:.0%} in {len(found)} "
                f"{'metric' if len(found) == 1 else 'metrics'} (exit 3):"] + [
            f"  {key.label}: {'throughput' if m.name == 'throughput' else 'p99 latency'} {format_change(m.change)} "
            f"(95% CI {format_ci(m.change)}, p {format_p(m)} after Holm)" for key, m in found]
    lines = [f"no significant regression beyond {c.min_change:.0%} in {len(c.cells)} matched "
             f"{'cell' if len(c.cells) == 1 else 'cells'} (exit 0)"]
    blind = c.untested()
    if blind:
        lines.append(f"  but {len(blind)} of them could not be tested (one repeat or a failed side), so the gate "
                     "cannot see a regression there: " + "; ".join(k.label for k in blind)
                     + ". Gate on runs made with --repeats 3 or more.")
    return lines


def _md_verdict(metric: Metric) -> str:
    text = verdict_text(metric)
    return f"**{text}**" if metric.verdict in ("regression", "improvement") else text


def shift(c: Comparison, metric: str) -> tuple[float, float] | None:
    """The median change of ``metric`` over the matched cells and the share of cells that moved the same way."""
    changes = [m.change.change for cell in c.cells for m in [cell.throughput if metric == "throughput" else cell.p99]
               if m.change is not None]
    if len(changes) < 3:
        return None
    middle = statistics.median(changes)
    same = sum((x > 0) == (middle > 0) for x in changes if x != 0) / len(changes)
    return middle, same


def shared_shift(c: Comparison) -> str:
    """A warning when every cell moved together: a machine that got busier or slower, not one server's change."""
    found = shift(c, "throughput")
    if found is None:
        return ""
    middle, same = found
    if abs(middle) < c.min_change or same < 0.75:
        return ""
    return (f"Most cells moved together: throughput by a median of {middle:+.0%} across the {len(c.cells)} "
            f"matched cells ({same:.0%} of them the same way). A shift that every mode shares points at the "
            "machine (its load, CPU frequency, neighbours; see the load average below) more than at a server; "
            "compare ratios between modes within each run before blaming code.")


def headline(c: Comparison) -> str:
    if not c.cells:
        return (f"Nothing in common: no cell of {c.a.name} ({_cells_summary(c.a.run)}) was measured in "
                f"{c.b.name} ({_cells_summary(c.b.run)}). {_why_nothing(c)}")
    counts = {v: sum(x.throughput.verdict == v for x in c.cells) + sum(x.p99.verdict == v for x in c.cells)
              for v in ("regression", "improvement", "within noise", "untested", "failed")}
    tests = sum(m.p_holm is not None for x in c.cells for m in (x.throughput, x.p99))
    if not tests:
        return (f"{count(len(c.cells), 'cell')} matched, but none was measured more than once in both runs, so no "
                "change can be told from noise (one value has no spread to weigh it against): the changes below are "
                "single measurements. Compare runs made with --repeats 3 or more.")
    return (f"{count(len(c.cells), 'cell')} matched; throughput and p99 of each: "
            f"{count(counts['regression'], 'regression')}, {count(counts['improvement'], 'improvement')}, "
            f"{counts['within noise']} within noise, "
            f"{counts['untested']} untested (one repeat), {counts['failed']} failed. A change counts when Welch's "
            f"t-test on the log of the repeats gives p < {c.alpha:g} after Holm's correction for the {tests} tests "
            "made, and it is at "
            f"least {c.min_change:.0%}. The interval is the 95% CI of the ratio of geometric means for that cell "
            "alone (uncorrected, so one may exclude 0 and still be within noise); A and B are the geometric means "
            "of the repeats.")


def _cells_summary(run: Run) -> str:
    modes = sorted({r.mode for r in run.cells})
    scenarios = sorted({key_of(r).scenario for r in run.cells})
    users = sorted({r.concurrency for r in run.cells if r.concurrency})
    quick = ", a --quick run" if run.info is not None and run.info.plan.get("quick") else ""
    return (f"modes {', '.join(modes)}; scenarios {', '.join(scenarios)}; "
            f"{'user' if users == [1] else 'users'} {', '.join(map(str, users)) or MISSING}{quick}")


def _why_nothing(c: Comparison) -> str:
    """What kept the runs apart: the first of the match keys on which they share nothing."""
    ka, kb = {key_of(r) for r in c.a.run.cells}, {key_of(r) for r in c.b.run.cells}
    for part in ("mode", "scenario", "concurrency", "keepalive", "strategy"):
        if not {getattr(k, part) for k in ka} & {getattr(k, part) for k in kb}:
            break
    else:
        part = ""
    named = {"mode": "They share no mode", "scenario": "They share no scenario",
             "concurrency": "They share modes and scenarios but no concurrency (a --quick run measures at 16 users, a "
                            "normal one at 32): compare runs made at the same --concurrency",
             "keepalive": "They share no keep-alive setting", "strategy": "They share no database strategy"}
    return (named.get(part, "Their modes, scenarios and concurrency overlap, but never in the same cell")
            + ". Cells are matched by mode, scenario, concurrency, keep-alive and database strategy.")


def _md_unmatched(c: Comparison) -> list[str]:
    lines = []
    for keys, where in ((c.only_a, c.a.name), (c.only_b, c.b.name)):
        if keys:
            lines += [f"Only in {where} ({len(keys)}): " + "; ".join(k.label for k in keys), ""]
    return lines


def _md_differences(c: Comparison) -> list[str]:
    if not c.differences:
        return ["Plan and environment: no differences recorded.", ""]
    lines = ["## Plan and environment differences", "", "| | A | B | could explain a change |",
             "| --- | --- | --- | --- |"]
    lines += [f"| {d.key} | {d.a} | {d.b} | {'yes' if d.explains else ''} |" for d in c.differences]
    return [*lines, ""]
