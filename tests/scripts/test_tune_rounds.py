"""``--rounds``: a setting measured several times, its capacity the median round's; the grid measures round by round
(every setting once a round), the climb a setting's rounds back to back. The search and the records, in-process: one
round of one setting is a function here (the servers' side is tests/scripts/test_tune.py's)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from rich.console import Console

from scripts import tune
from scripts.tuning import tune_report
from scripts.tuning.measure import merged
from scripts.tuning.results import SettingResult, Trial, TuneRun, from_json, to_json
from scripts.tuning.tune_run import Runner


def one_round(setting: dict[str, int], capacity: float, *, p99: float = 40.0, ok: bool = True,
              error: str | None = None) -> SettingResult:
    return SettingResult(mode="gunicorn-sync", scenario="cpu", setting=setting, status="ok" if ok else "failed",
                         error=error, capacity_rps=capacity if ok else 0.0, p99_ms=p99 if ok else None,
                         cpu_ms_per_request=0.6, memory_mb=30.0, elapsed_s=30.0,
                         trials=(Trial(rate=capacity, achieved=capacity, p99_ms=p99, passed=ok),))


def test_the_median_round_gives_the_figures_and_every_round_is_kept() -> None:
    w1 = {"workers": 1}
    rounds = [one_round(w1, 1300.0, p99=80.0), one_round(w1, 1600.0, p99=90.0), one_round(w1, 1400.0, p99=60.0)]
    m = merged(rounds)
    assert m.ok and m.capacity_rps == 1400.0 and m.p99_ms == 60.0  # the 1,400/s round's p99, not another's
    assert m.capacities == (1300.0, 1600.0, 1400.0) and len(m.trials) == 3 and m.elapsed_s == 90.0
    assert merged(rounds[:1]) == rounds[0]  # one round: as measured
    assert merged(rounds[:2]).capacity_rps == 1300.0  # an even count: the lower middle one


def test_a_failed_round_is_left_out_and_all_failing_fails_the_setting() -> None:
    w1 = {"workers": 1}
    refused = one_round(w1, 0.0, ok=False, error="StartError: refused")
    m = merged([refused, one_round(w1, 1200.0), one_round(w1, 1500.0)])
    assert m.ok and m.capacities == (1200.0, 1500.0) and m.capacity_rps == 1200.0 and len(m.trials) == 3
    failed = merged([refused, one_round(w1, 0.0, ok=False, error="StartError: again")])
    assert not failed.ok and failed.error == "StartError: refused" and len(failed.trials) == 2


class Rounds:
    """One round of a setting: the figures given for it in turn; records each call with the rate it started at."""

    def __init__(self, figures: dict[int, list[float]]) -> None:
        self.figures = {w: list(v) for w, v in figures.items()}
        self.calls: list[tuple[int, float]] = []

    def __call__(self, plan: Any, mode: str, scenario: str, setting: dict[str, int], *, start_rate: float,
                 **_: Any) -> SettingResult:
        self.calls.append((setting["workers"], start_rate))
        return one_round(setting, self.figures[setting["workers"]].pop(0))


def _runner(tmp_path: Path, measure: Rounds, *args: str) -> tuple[Runner, str]:
    tp = tune.plan_from_args(["--modes", "gunicorn-sync", "--scenarios", "cpu", "--server-cpus", "0",
                              "--client-cpus", "1", "--out", str(tmp_path / "run"), *args])[0]
    (tmp_path / "run").mkdir(parents=True)
    out = io.StringIO()
    run = TuneRun(plan={"rounds": tp.rounds, "grid": tp.grid, "slo_p99_ms": 100.0}, environment={})
    runner = Runner(tp, run, tmp_path / "w.sqlite", Console(file=out, width=200), measure_one=measure)
    runner.tune_mode("cpu", "gunicorn-sync")
    return runner, out.getvalue()


def test_the_grid_measures_round_by_round_and_takes_each_settings_median(tmp_path: Path) -> None:
    measure = Rounds({1: [1300.0, 1250.0, 1400.0], 2: [1500.0, 1100.0, 1450.0], 3: [1600.0, 1350.0, 1380.0]})
    runner, said = _runner(tmp_path, measure, "--grid", "--rounds", "3")
    # Workers 1 to 3 (one server CPU), the default (2 workers) among them: each once a round, three rounds.
    assert [w for w, _ in measure.calls] == [1, 2, 3] * 3
    assert measure.calls[3] == (1, 1300.0)  # a setting's later round starts from its own last figure
    (entry,) = runner.run.modes
    assert {s.setting["workers"]: s.capacity_rps for s in entry.settings} == {1: 1300.0, 2: 1450.0, 3: 1380.0}
    assert (w2 := entry.result({"workers": 2})) is not None and w2.capacities == (1500.0, 1100.0, 1450.0)
    assert entry.best == {"workers": 2} and entry.production_command  # the best median, not the best round (1,600)
    assert "round 3 of 3" in said and "median of 3: 1,450.0/s" in said and runner.total == 9 * 1


def test_the_climb_measures_a_settings_rounds_back_to_back(tmp_path: Path) -> None:
    measure = Rounds({1: [1000.0, 1100.0], 2: [1500.0, 1400.0], 3: [1450.0, 1500.0]})
    runner, _ = _runner(tmp_path, measure, "--rounds", "2")
    # The default (2 workers), then the climb from 1 worker: 2 beats 1 by 5% or more, 3 does not beat 2.
    assert [w for w, _ in measure.calls] == [2, 2, 1, 1, 3, 3]
    (entry,) = runner.run.modes
    assert entry.best == {"workers": 2}
    assert (w2 := entry.result({"workers": 2})) is not None and w2.capacities == (1500.0, 1400.0)


def test_rounds_reach_the_record_and_the_summary(tmp_path: Path) -> None:
    measure = Rounds({1: [1300.0, 1250.0, 1400.0], 2: [1500.0, 1100.0, 1450.0], 3: [1600.0, 1350.0, 1380.0]})
    runner, _ = _runner(tmp_path, measure, "--grid", "--rounds", "3")
    assert from_json(to_json(runner.run)) == runner.run
    text = tune_report.summary_text(runner.run)
    assert "Each setting measured 3 times, round by round over the grid" in text
    assert "| workers=2 | 1,450 (median of 1,500 / 1,100 / 1,450) |" in text
    old = to_json(runner.run)  # a run file written before --rounds: no capacities
    for s in old["modes"][0]["settings"]:
        del s["capacities"]
    assert from_json(old).modes[0].settings[0].capacities == ()


def test_a_grid_run_replays_the_climb_on_its_own_figures(tmp_path: Path) -> None:
    # 2 and 3 workers each add less than 5% over 1, so the climb stops there and never sees the 5 the grid finds best.
    figures = {1: [1000.0], 2: [1020.0], 3: [1030.0], 4: [1040.0], 5: [1500.0]}
    runner, _ = _runner(tmp_path, Rounds(figures), "--grid", "--workers-range", "1-5")
    (entry,) = runner.run.modes
    assert entry.best == {"workers": 5}
    line = tune_report.climb_on_grid(entry)
    assert line == ("The climb on these figures would measure 3 of the 5 settings (workers=1, workers=2, workers=3) "
                    "and pick workers=1: 1,000/s, 0.67x the grid's best (workers=5, 1,500/s).")
    assert line in tune_report.summary_text(runner.run)
    climbed, _ = _runner(tmp_path / "climb", Rounds(figures), "--workers-range", "1-5")
    assert tune_report.climb_on_grid(climbed.run.modes[0]) is None  # not a grid: nothing to replay
