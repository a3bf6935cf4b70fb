"""What a run's records mean: repeats folded, the main concurrency, speed checks, knees, strategy pairs.

The middle stage of the pipeline ``records -> analysis -> render``: :func:`analyse` turns a loaded
:class:`~scripts.records.records.Run` into an :class:`AnalysedRun`, and the renderers (:mod:`scripts.render.summary`,
:mod:`scripts.render.plot`) draw that and nothing else, so a number means the same in the table and on the chart.
Nothing here draws or formats.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from scripts.analysis import stats
from scripts.analysis.stats import FoldedCell
from scripts.common.formatting import format_rps
from scripts.modes import FAMILIES, FORK_LOOP, FORK_RATE, MODES, STDLIB_FORK, Mode
from scripts.records.records import Flag, OpenLoopRecord, References, Run, RunInfo, RunProgress

Bound = Literal["floor", "ceiling", "open"]
# When the knee is: the mode completed less than this share of the offered rate ...
KNEE_ACHIEVED = 0.95
# ... or its p99 passed this multiple of its lightest-load p99 (and at least KNEE_MIN_P99_MS).
KNEE_P99_FACTOR = 10.0
KNEE_MIN_P99_MS = 10.0


@dataclass(frozen=True, kw_only=True, slots=True)
class SpeedCheck:
    check: str
    a: float
    b: float
    ratio: float
    target: float  # 0: reported, not a target
    met: bool | None  # None: cannot tell (a generator-bound figure leaves it open)
    generator_bound: bool = False
    bound: Bound | None = None
    users: int | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class StrategyPair:
    scenario: str
    mode: str
    users: int | None
    backend: str | None
    reuse: float | None
    per_request: float | None
    ratio: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class ReferenceLine:
    """A machine rate drawn across the new-connection charts: no fork-per-request server passes it."""

    label: str
    rate: float
    style: str  # a matplotlib line style: "--", ":"


@dataclass(frozen=True, kw_only=True, slots=True)
class Completeness:
    """How much of its plan a run measured, when that is less than all of it (an interruption)."""

    state: str  # interrupted, or running (stopped without finishing, or still going)
    planned: int  # cells
    measured: int  # planned cells with a record
    missing: tuple[str, ...] = ()  # the planned cells without one, as people read them (unknown: empty)
    ladder_steps: int = 0  # open-loop steps recorded
    ladder_unfinished: Mapping[str, float | None] = field(default_factory=dict)  # mode -> last rate measured


@dataclass(frozen=True, kw_only=True, slots=True)
class AnalysedRun:
    figures: tuple[FoldedCell, ...]
    openloop: tuple[OpenLoopRecord, ...] = ()
    info: RunInfo | None = None
    references: References = field(default_factory=References)
    main_concurrency: Mapping[str, int | None] = field(default_factory=dict)
    checks: tuple[SpeedCheck, ...] = ()
    pairs: tuple[StrategyPair, ...] = ()
    knees: Mapping[str, float | None] = field(default_factory=dict)  # per mode of the open-loop ladder
    reference_lines: tuple[ReferenceLine, ...] = ()
    completeness: Completeness | None = None  # None: the run measured everything it planned

    @property
    def modes(self) -> list[str]:
        return by_family(f.mode for f in self.figures)

    @property
    def scenarios(self) -> list[str]:
        return ordered(f.scenario for f in self.figures)

    def modes_in(self, scenario: str) -> list[str]:
        return by_family(f.mode for f in self.figures if f.scenario == scenario)

    def levels(self, scenario: str) -> list[int]:
        return sorted({f.concurrency for f in self.figures if f.scenario == scenario and f.concurrency is not None})

    def figure(self, mode: str, scenario: str, users: int | None) -> FoldedCell | None:
        # A later figure for the same cell (a re-run) supersedes the earlier one.
        found = [f for f in self.figures if (f.mode, f.scenario, f.concurrency) == (mode, scenario, users)]
        return found[-1] if found else None

    def knee_text(self, mode: str) -> str:
        """What the open-loop ladder found for ``mode``, in words."""
        if not any(p.ok for p in self.openloop if p.mode == mode):
            return "no step measured (the ladder failed: see the table)"
        k = self.knees.get(mode)
        if k is None and self.completeness and mode in self.completeness.ladder_unfinished:
            return "kept up at every rate measured (its ladder was interrupted)"
        return "kept up at every rate" if k is None else f"knee at {format_rps(k)} req/s offered"


def ordered(values: Iterable[str | None]) -> list[str]:
    """Distinct values in order of first appearance: records come in plan order, the order the reader chose."""
    return list(dict.fromkeys(v for v in values if v is not None))


# modes -------------------------------------------------------------------------

# A mode that is not in the registry (a test's, or one since removed) is shown after the registered families.
OTHER_FAMILY = "other"
FAMILY_LABELS: dict[str, str] = {family: label for family, label in (*FAMILIES.items(), (OTHER_FAMILY, "other"))}


def family_of(mode: str, registry: Mapping[str, Mode] = MODES) -> str:
    return registry[mode].family if mode in registry else OTHER_FAMILY


def family_slot(mode: str, registry: Mapping[str, Mode] = MODES) -> int:
    """The mode's place within its family in the registry: the same in every run, whichever modes it measured
    (colours are derived from it). Unregistered modes share the last family and count from 0 by name."""
    if mode not in registry:
        return 0
    return [name for name, m in registry.items() if m.family == registry[mode].family].index(mode)


def by_family(modes: Iterable[str], registry: Mapping[str, Mode] = MODES) -> list[str]:
    """Distinct modes grouped by family (hand-written, WSGI servers, ASGI servers, other), in registry order
    within a family and in order of appearance outside the registry: every table and chart uses this order."""
    rank = {family: position for position, family in enumerate(FAMILY_LABELS)}
    names = list(registry)
    seen = ordered(modes)
    return sorted(seen, key=lambda m: (rank[family_of(m, registry)],
                                       names.index(m) if m in registry else len(names) + seen.index(m)))


def main_concurrency(figures: Sequence[FoldedCell], scenario: str) -> int | None:
    """The concurrency measured for the most modes in ``scenario``, or None without figures.

    Sweeps add levels for some scenarios only, so this is the level at which the modes compare side by side.
    Ties go to the level most scenarios share (the run's common level, not a sweep's extreme), then the largest.
    """
    modes_at: dict[int, set[str]] = defaultdict(set)
    scenarios_at: dict[int, set[str]] = defaultdict(set)
    for f in figures:
        if f.concurrency is None:
            continue
        scenarios_at[f.concurrency].add(f.scenario)
        if f.scenario == scenario:
            modes_at[f.concurrency].add(f.mode)
    if not modes_at:
        return None
    return max(modes_at, key=lambda level: (len(modes_at[level]), len(scenarios_at[level]), level))


# strategies -------------------------------------------------------------------


def strategy_pairs(figures: Sequence[FoldedCell]) -> list[StrategyPair]:
    """Figures measured under both database strategies, paired: the price of a connection per request."""
    by_key: dict[tuple[str, str, int | None], dict[str, FoldedCell]] = {}
    for f in figures:
        if f.db_strategy:
            by_key.setdefault((f.base_scenario or f.scenario, f.mode, f.concurrency), {})[f.db_strategy] = f
    pairs = []
    rank = {mode: position for position, mode in enumerate(by_family(mode for _, mode, _ in by_key))}
    for (scenario, mode, users), cells in sorted(by_key.items(), key=lambda item: rank[item[0][1]]):
        if "reuse" not in cells or "per-request" not in cells:
            continue
        reuse = cells["reuse"].throughput_rps if cells["reuse"].ok else None
        per_request = cells["per-request"].throughput_rps if cells["per-request"].ok else None
        ratio = reuse / per_request if reuse and per_request else None
        pairs.append(StrategyPair(scenario=scenario, mode=mode, users=users, backend=cells["reuse"].db_backend,
                                  reuse=reuse, per_request=per_request, ratio=ratio))
    return pairs


# speed checks -----------------------------------------------------------------


def verdict(ratio: float, target: float, a_bound: bool, b_bound: bool) -> bool | None:
    """Met (True), not met (False) or cannot tell (None).

    A generator-bound figure is a floor of the server's capacity (the server could have done more), so a
    bound numerator makes the ratio a floor and a bound denominator makes it a ceiling. A floor at or over
    the target still meets it; a ceiling under it still misses it; anything else cannot be told from this run.
    """
    if a_bound and b_bound:
        return None
    if a_bound:
        return True if ratio >= target else None
    if b_bound:
        return False if ratio < target else None
    return ratio >= target


class _Checks:
    """Builds the speed checks of one run from its figures at each scenario's main concurrency."""

    def __init__(self, figures: Sequence[FoldedCell]) -> None:
        self.figures = figures
        self.checks: list[SpeedCheck] = []

    def at_main(self, mode: str, scenario: str) -> FoldedCell | None:
        main = main_concurrency(self.figures, scenario)
        found = [f for f in self.figures if (f.mode, f.scenario, f.concurrency) == (mode, scenario, main)]
        return found[0] if found and found[0].ok else None

    def add(self, name: str, a: tuple[str, str], target: float, b: tuple[str, str] | None = None,
            b_rate: float | None = None) -> None:
        fa = self.at_main(*a)
        fb = self.at_main(*b) if b else None
        rate_b = fb.throughput_rps if fb else b_rate
        if fa is None or fa.throughput_rps is None or not rate_b or rate_b <= 0:
            return
        a_bound = Flag.GENERATOR_BOUND in fa.flags
        b_bound = fb is not None and Flag.GENERATOR_BOUND in fb.flags
        ratio = fa.throughput_rps / rate_b
        bound: Bound | None = ("floor" if a_bound and not b_bound else "ceiling" if b_bound and not a_bound
                               else "open" if a_bound else None)
        self.checks.append(SpeedCheck(check=name, a=fa.throughput_rps, b=rate_b, ratio=ratio, target=target,
                                      met=verdict(ratio, target, a_bound, b_bound),
                                      generator_bound=a_bound or b_bound, bound=bound, users=fa.concurrency))


def speed_checks(figures: Sequence[FoldedCell], references: References | None = None,
                 registry: Mapping[str, Mode] = MODES) -> list[SpeedCheck]:
    """The ratios the registry's modes are held to (``Mode.checks.speed``), each measured within this run: against
    other modes first, then against the machine's fork rate and the minimal fork loop, then connection reuse."""
    refs = references or References()
    c = _Checks(figures)
    targets = [(name, t) for name, mode in registry.items() for t in mode.checks.speed]
    for name, t in targets:
        if t.against not in (FORK_RATE, FORK_LOOP, STDLIB_FORK):
            c.add(t.check, (name, t.scenario), t.ratio, b=(t.against, t.scenario))
    if refs.stdlib_fork_rate:
        for name, t in targets:
            if t.against == STDLIB_FORK:
                c.add(t.check, (name, t.scenario), t.ratio, b_rate=refs.stdlib_fork_rate)
    fork, loop = refs.fork_rate, refs.fork_loop_rate
    if fork:
        for name, t in targets:
            if t.against == FORK_RATE:
                c.add(t.check, (name, t.scenario), t.ratio, b_rate=fork)
        if loop:
            # Not a check of ours: how close the least any Python fork server can do comes to that rate.
            c.checks.append(SpeedCheck(check="minimal Python fork loop (canned reply) / fork()+_exit+waitpid",
                                       a=loop, b=fork, ratio=loop / fork, target=0.0, met=None,
                                       users=refs.fork_loop_connections))
    if loop:
        for name, t in targets:
            if t.against == FORK_LOOP:
                c.add(t.check, (name, t.scenario), t.ratio, b_rate=loop)
    for pair in strategy_pairs(figures):
        reuse_targets = dict(registry[pair.mode].checks.reuse) if pair.mode in registry else {}
        if pair.ratio is None or not pair.reuse or not pair.per_request or not reuse_targets:
            continue
        target = reuse_targets.get(pair.backend or "", 0.0)
        c.checks.append(SpeedCheck(check=f"{pair.scenario} ({pair.backend}) reuse / per-request, {pair.mode}",
                                   a=pair.reuse, b=pair.per_request, ratio=pair.ratio, target=target,
                                   met=pair.ratio >= target, users=pair.users))
    return c.checks


# open loop ----------------------------------------------------------------------


def knee(points: Sequence[OpenLoopRecord]) -> float | None:
    """The lowest offered rate at which a mode stopped keeping up: it completed less than 95% of the offered
    rate, or its p99 exceeded ten times its p99 at the lightest load (and 10 ms). None if it kept up throughout."""
    ok = sorted((p for p in points if p.ok and p.offered_rate is not None), key=lambda p: p.offered_rate or 0.0)
    if not ok:
        return None
    base = ok[0].latency_ms.get("p99") or 0.0
    for point in ok:
        offered = point.offered_rate or 0.0
        p99 = point.latency_ms.get("p99") or 0.0
        if (point.achieved_rate or 0.0) < KNEE_ACHIEVED * offered or p99 > max(KNEE_P99_FACTOR * base,
                                                                              KNEE_MIN_P99_MS):
            return float(offered)
    return None


def knees(points: Sequence[OpenLoopRecord]) -> dict[str, float | None]:
    return {mode: knee([p for p in points if p.mode == mode]) for mode in by_family(p.mode for p in points)}


def reference_lines(refs: References) -> tuple[ReferenceLine, ...]:
    lines = []
    if refs.fork_rate is not None:
        lines.append(ReferenceLine(label="fork()+exit+wait", rate=refs.fork_rate, style="--"))
    if refs.fork_loop_rate is not None:
        lines.append(ReferenceLine(label="minimal fork loop", rate=refs.fork_loop_rate, style=":"))
    if refs.stdlib_fork_rate is not None:
        lines.append(ReferenceLine(label="stdlib fork server", rate=refs.stdlib_fork_rate, style="-."))
    return tuple(lines)


# the run --------------------------------------------------------------------------


def analyse_figures(figures: Sequence[FoldedCell], *, openloop: Sequence[OpenLoopRecord] = (),
                    info: RunInfo | None = None, references: References | None = None) -> AnalysedRun:
    """An analysed run from figures already folded (tests and tools build these directly)."""
    refs = references or References()
    scenarios = ordered(f.scenario for f in figures)
    return AnalysedRun(
        figures=tuple(figures), openloop=tuple(openloop), info=info, references=refs,
        main_concurrency={s: main_concurrency(figures, s) for s in scenarios},
        checks=tuple(speed_checks(figures, refs)), pairs=tuple(strategy_pairs(figures)),
        knees=knees(openloop), reference_lines=reference_lines(refs),
    )


def _from_progress(run: Run, progress: RunProgress) -> Completeness | None:
    recorded = {c.index for c in run.cells}
    missing = tuple(what for i, what in enumerate(progress.cells) if i not in recorded)
    unfinished = {m: max((p.offered_rate or 0.0 for p in run.openloop if p.mode == m and p.ok), default=None)
                  for m in progress.ladder_modes if m not in progress.ladder_done}
    if progress.state == "finished" and not missing and not unfinished:
        return None
    return Completeness(state="interrupted" if progress.state == "finished" else progress.state,
                        planned=len(progress.cells), measured=len(progress.cells) - len(missing), missing=missing,
                        ladder_steps=len(run.openloop), ladder_unfinished=unfinished)


def completeness(run: Run) -> Completeness | None:
    """What the run did not measure of its plan, from its progress.json; None when it measured everything, or for
    a run from before progress.json (whose plan.json counts its cells: compare reports a shortfall from that)."""
    return None if run.progress is None else _from_progress(run, run.progress)


def analyse(run: Run) -> AnalysedRun:
    """Fold the run's repeats and derive everything the renderers show."""
    analysed = analyse_figures(stats.fold_all(run.cells), openloop=run.openloop, info=run.info,
                               references=run.references)
    return replace(analysed, completeness=completeness(run))
