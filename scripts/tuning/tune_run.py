"""A tune run: for each scenario and mode, the mode's default setting, then the climb along its axes, each setting's
capacity by bisection; written to ``tune.json`` after every setting, so an interrupted run keeps what it measured."""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from scripts.common.files import write_json_atomic
from scripts.modes.tuning import THREADS, WORKERS
from scripts.plan.plan import Plan
from scripts.tuning import results
from scripts.tuning.command import production_command
from scripts.tuning.measure import Target, measure_setting, merged
from scripts.tuning.quota import cpu_quota
from scripts.tuning.results import ModeResult, SettingResult, Trial, TuneRun, setting_label
from scripts.tuning.search import IMPROVES, Outcome, axis_values, climb, setting_key

FIRST_RATE = 100.0  # where the first setting's bracketing starts; later ones start at the best so far


@dataclass(frozen=True, kw_only=True)
class TunePlan:
    plan: Plan  # the modes, scenarios, CPUs, app and folder, as the bench has them
    target: Target
    memory_budget_mb: float | None = None
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)  # axis name -> (lowest, highest) given
    quick: bool = False
    grid: bool = False  # measure every setting of the ranges (the check of the climb), not the climb
    cpu_quota: float | None = None  # the server gets this share of one CPU's time (scripts.tuning.quota)
    rounds: int = 1  # each setting measured this often, its capacity the median (the grid: round by round)

    def axes(self, mode: str) -> list[tuple[str, tuple[int, ...]]]:
        n = len(self.plan.server_cpus) or 1
        return [(a.name, axis_values(a.kind, n, self.ranges.get(a.name)))
                for a in self.plan.registry[mode].tuning_axes]

    def default(self, mode: str) -> dict[str, int]:
        """The setting the bench runs the mode at: its workers and its own threads (granian: its default)."""
        m = self.plan.registry[mode]
        names = {a.name for a in m.tuning_axes}
        setting = {WORKERS: self.plan.workers} if WORKERS in names else {}
        if THREADS in names and m.process.threads is not None:
            setting[THREADS] = m.process.threads
        return setting

    def estimate_settings(self) -> int:
        """Settings a run measures, roughly: the default and about four steps an axis (the grid: every setting)."""
        def one(mode: str) -> int:
            axes = self.axes(mode)
            if self.grid and axes:
                default = self.default(mode)
                inside = all(default.get(name) in values for name, values in axes)
                return math.prod(len(v) for _, v in axes) + (0 if inside else 1)
            return 1 + sum(min(4, len(v)) for _, v in axes)
        return sum(one(m) for m in self.plan.modes
                   for s in self.plan.scenarios if s in (self.plan.registry[m].placement.only_scenarios or (s,)))


def _outcome(r: SettingResult) -> Outcome:
    return Outcome(capacity=r.capacity_rps if r.ok else None, memory_mb=r.memory_mb)


class Runner:
    """Measures settings, keeps the run file current and tells the console how far it is."""

    def __init__(self, tp: TunePlan, run: TuneRun, db_path: Path, console: Console,
                 confine: Callable[[int], None] | None = None,
                 measure_one: Callable[..., SettingResult] = measure_setting) -> None:
        self.tp, self.run, self.db_path, self.console, self.confine = tp, run, db_path, console, confine
        self.measure_one = measure_one  # one round of one setting (measure.measure_setting's signature)
        self.done = 0
        self.total = max(1, tp.estimate_settings() * tp.rounds)
        self.rounds: dict[tuple[str, str, tuple[tuple[str, int], ...]], list[SettingResult]] = {}
        self.started = time.monotonic()

    def save(self) -> None:
        write_json_atomic(self.tp.plan.out / results.FILE, results.to_json(self.run))

    def eta(self) -> str:
        if not self.done:
            return "ETA -"
        per = (time.monotonic() - self.started) / self.done
        return f"ETA {max(0.0, per * (self.total - self.done)) / 60:.1f} min"

    def measure(self, entry: ModeResult, setting: dict[str, int]) -> SettingResult:
        """One more round of ``setting``: the entry then holds the median of its rounds (measure.merged)."""
        key = (entry.scenario, entry.mode, setting_key(setting))
        rounds = self.rounds.setdefault(key, [])
        # This setting's own last figure, or the last one measured (the climb's neighbour): the nearest guess.
        last = [r.capacity_rps for r in rounds if r.ok and r.capacity_rps > 0] or [
            s.capacity_rps for s in entry.settings[-1:] if s.ok and s.capacity_rps > 0]
        start = last[-1] if last else FIRST_RATE
        logs = self.tp.plan.out / "logs" / entry.scenario / entry.mode / (
            "-".join(f"{k}{v}" for k, v in setting.items()) or "only")
        if self.tp.rounds > 1:
            logs = logs / f"round-{len(rounds) + 1}"

        def line(t: Trial) -> None:
            verdict = "pass" if t.passed else "fail"
            self.console.print(f"    {t.rate:>8,.1f}/s offered  {t.achieved:>8,.1f}/s  p99 {t.p99_ms or 0:>8.1f} ms  "
                               f"{verdict}", highlight=False)

        of = f", round {len(rounds) + 1} of {self.tp.rounds}" if self.tp.rounds > 1 else ""
        self.console.print(f"[{self.done + 1}/~{self.total}] {entry.scenario} {entry.mode} {setting_label(setting)}"
                           f"{of} ({self.eta()})", highlight=False)
        result = self.measure_one(self.tp.plan, entry.mode, entry.scenario, setting, target=self.tp.target,
                                 start_rate=start, db_path=self.db_path, logs=logs, report=line,
                                 confine=self.confine)
        rounds.append(result)
        combined = merged(rounds)
        held = next((i for i, s in enumerate(entry.settings) if s.setting == setting), None)
        if held is None:
            entry.settings.append(combined)
        else:
            entry.settings[held] = combined
        self.done += 1
        self.save()
        said = (f"capacity {result.capacity_rps:,.1f}/s, p99 {result.p99_ms} ms, CPU {result.cpu_ms_per_request} "
                f"ms/request, {result.memory_mb} MB" if result.ok else f"[red]failed: {result.error}[/red]")
        if len(combined.capacities) > 1:
            said += f" (median of {len(combined.capacities)}: {combined.capacity_rps:,.1f}/s)"
        self.console.print(f"    -> {said}", highlight=False, soft_wrap=True)
        return combined

    def finish(self, entry: ModeResult, best: dict[str, int] | None) -> None:
        """Record the mode's best (the climb's pick, or the best measured where that is 5% better: the default may
        beat the climb, and an interrupted climb has no pick) and its production command."""
        tp = self.tp
        best_result = entry.result(best)
        fitting = [s for s in entry.settings if s.ok and (tp.memory_budget_mb is None or s.memory_mb is None
                                                          or s.memory_mb <= tp.memory_budget_mb)]
        top = max(fitting, key=lambda s: s.capacity_rps, default=None)
        if top is not None and top.capacity_rps > 0 and (
                best_result is None or top.capacity_rps > best_result.capacity_rps * IMPROVES):
            best = top.setting
        command = None if best is None else production_command(tp.plan.registry[entry.mode], best,
                                                               app=tp.plan.app_for(entry.mode), workers=tp.plan.workers)
        index = self.run.modes.index(entry)
        self.run.modes[index] = dataclasses.replace(entry, best=best, production_command=command)
        self.save()

    def tune_mode(self, scenario: str, mode: str) -> None:
        tp = self.tp
        axes = tp.axes(mode)
        entry = ModeResult(mode=mode, scenario=scenario, axes={n: list(v) for n, v in axes}, default=tp.default(mode),
                           best=None)
        self.run.modes.append(entry)
        try:
            self._search(entry, axes)
        except KeyboardInterrupt:
            self.finish(entry, None)
            raise

    def _search(self, entry: ModeResult, axes: list[tuple[str, tuple[int, ...]]]) -> None:
        tp = self.tp
        if tp.grid and axes:
            names = [n for n, _ in axes]
            grid = [dict(zip(names, values, strict=True)) for values in itertools.product(*(v for _, v in axes))]
            settings = [*([] if entry.default in grid else [entry.default]), *grid]
            for _ in range(tp.rounds):  # round by round, so that a drift in the machine falls on every setting
                for setting in settings:
                    self.measure(entry, setting)
            self.finish(entry, None)
            return

        def measure(setting: dict[str, int]) -> Outcome:
            held = entry.result(setting)
            if held is None:
                for _ in range(tp.rounds):
                    held = self.measure(entry, setting)
            assert held is not None
            return _outcome(held)

        default = measure(entry.default)
        if axes:
            best, _ = climb(axes, measure, memory_budget_mb=tp.memory_budget_mb)
        else:
            best = entry.default if default.capacity is not None else None
        self.finish(entry, best)


def tune(tp: TunePlan, run: TuneRun, db_path: Path, console: Console,
         after_mode: Callable[[TuneRun], None] = lambda r: None) -> TuneRun:
    """Every mode of every scenario; a KeyboardInterrupt propagates after the run file holds what was measured."""
    with ExitStack() as stack:
        confine = stack.enter_context(cpu_quota(tp.cpu_quota)) if tp.cpu_quota else None
        return _tune(Runner(tp, run, db_path, console, confine), after_mode)


def _tune(runner: Runner, after_mode: Callable[[TuneRun], None]) -> TuneRun:
    tp, console = runner.tp, runner.console
    rounds = f" x {tp.rounds} rounds" if tp.rounds > 1 else ""
    console.print(f"tune: {len(tp.plan.modes)} modes x {len(tp.plan.scenarios)} scenarios, about "
                  f"{runner.total // tp.rounds} settings{rounds} -> {tp.plan.out}")
    try:
        for scenario in tp.plan.scenarios:
            for mode in tp.plan.modes:
                only = tp.plan.registry[mode].placement.only_scenarios
                if only and scenario not in only and tp.plan.app is None:
                    console.print(f"{scenario} {mode}: skipped, the mode is measured on {', '.join(only)} only")
                    continue
                runner.tune_mode(scenario, mode)
                after_mode(runner.run)
    except KeyboardInterrupt:
        runner.run = dataclasses.replace(runner.run, interrupted=True)
        runner.save()
        raise
    return runner.run
