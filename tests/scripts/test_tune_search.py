"""The tune's search and reports, free of servers: bracketing and bisection, the majority of repeats, the climb
(its stop at ~5%, the memory budget, failed settings), the axes a registry entry derives, the production command,
the estimate and the report's text and charts."""

from __future__ import annotations

import io
import json
import shlex
from dataclasses import replace
from pathlib import Path

import pytest

from scripts.modes import MODES, Axis, Mode, Process, Tuning
from scripts.tuning import tune_report
from scripts.tuning.command import production_command, to_local
from scripts.tuning.estimate import estimate
from scripts.tuning.results import ModeResult, SettingResult, Trial, TuneRun, from_json, to_json
from scripts.tuning.search import Outcome, axis_values, climb, find_capacity, passes_majority


def counting(limit: float) -> tuple[list[float], object]:
    tried: list[float] = []

    def passes(rate: float) -> bool:
        tried.append(rate)
        return rate <= limit

    return tried, passes


@pytest.mark.parametrize("limit", [7.0, 49.0, 100.0, 333.0, 2100.0])
@pytest.mark.parametrize("start", [5.0, 100.0, 1000.0])
def test_bisection_finds_the_capacity_within_the_precision(limit: float, start: float) -> None:
    tried, passes = counting(limit)
    found = find_capacity(passes, start, precision=0.05)  # type: ignore[arg-type]
    assert limit / 1.05 <= found <= limit
    assert len(tried) <= 14  # bracketing and bisection, not a scan


def test_no_capacity_when_even_the_floor_fails() -> None:
    assert find_capacity(lambda r: False, 100.0) == 0.0


def test_capacity_at_the_ceiling_stops_there() -> None:
    assert find_capacity(lambda r: True, 100.0, ceiling=800.0) == 800.0


def test_majority_of_repeats_decides_and_stops_once_decided() -> None:
    outcomes = iter([True, True, False])
    calls: list[float] = []

    def trial(rate: float) -> bool:
        calls.append(rate)
        return next(outcomes)

    assert passes_majority(trial, 3)(10.0) is True
    assert len(calls) == 2  # two passes of three decide it
    flaky = iter([True, False, False])
    assert passes_majority(lambda r: next(flaky), 3)(10.0) is False


def test_axis_values_follow_the_server_cpus() -> None:
    assert axis_values("count", 1) == (1, 2, 3)
    assert axis_values("count", 4) == tuple(range(1, 10))
    assert axis_values("power", 1) == (1, 2, 4, 8, 16, 32, 64, 128, 256)
    assert axis_values("power", 1, (4, 48)) == (4, 8, 16, 32, 48)
    assert axis_values("count", 2, (2, 3)) == (2, 3)


def io_pool(setting: dict[str, int]) -> Outcome:
    """A thread pool on a 20 ms wait with one CPU: 50/s per thread until 1,800/s of CPU, 20 MB + 1 MB a thread."""
    threads, workers = setting.get("threads", 1), setting.get("workers", 1)
    return Outcome(capacity=min(50.0 * threads * workers, 1800.0 + 10 * workers),
                   memory_mb=20.0 * workers + threads * workers)


def test_climb_rises_until_capacity_stops_improving() -> None:
    measured: list[dict[str, int]] = []

    def measure(s: dict[str, int]) -> Outcome:
        measured.append(s)
        return io_pool(s)

    threads = (*axis_values("power", 1), 512, 1024)
    best, order = climb([("threads", threads), ("workers", axis_values("count", 1))], measure)
    assert best == {"threads": 64, "workers": 1}  # 32 threads: 1,600/s; 64: 1,800/s (+12%); 128, 256: no more
    assert {"threads": 256, "workers": 1} in order and {"threads": 512, "workers": 1} not in order  # two flat steps
    assert {"threads": 64, "workers": 3} in order  # 2 workers add 0.6%, 3 another 0.6%: the end of the axis
    assert order == measured  # each setting measured once


def test_climb_looks_one_step_past_a_dip() -> None:
    figures = {1: 1000.0, 2: 950.0, 3: 1500.0, 4: 1450.0, 5: 1480.0, 6: 9999.0}
    best, order = climb([("workers", tuple(figures))], lambda s: Outcome(capacity=figures[s["workers"]]))
    assert best == {"workers": 3} and order[-1] == {"workers": 5}  # 4 and 5 add nothing over 3: 6 is not tried
    best, order = climb([("workers", tuple(figures))], lambda s: Outcome(capacity=figures[s["workers"]]), patience=1)
    assert best == {"workers": 1} and order == [{"workers": 1}, {"workers": 2}]  # the old rule stopped at the dip


def test_climb_stops_at_the_memory_budget() -> None:
    best, order = climb([("threads", axis_values("power", 1))], io_pool, memory_budget_mb=30.0)
    assert best == {"threads": 8}  # 16 threads hold 36 MB
    assert order[-1] == {"threads": 16}


def test_a_failed_setting_is_skipped_and_the_search_goes_on() -> None:
    def refuses_four(s: dict[str, int]) -> Outcome:
        return Outcome(capacity=None) if s["threads"] == 4 else io_pool(s)

    best, order = climb([("threads", (1, 2, 4, 8, 16))], refuses_four)
    assert {"threads": 4} in order and best == {"threads": 16}


def test_every_setting_failing_gives_no_best() -> None:
    best, order = climb([("workers", (1, 2, 3))], lambda s: Outcome(capacity=None))
    assert best is None and len(order) == 3


def test_tuning_axes_derive_from_the_process_model() -> None:
    axes = {name: [a.name for a in m.tuning_axes] for name, m in MODES.items()}
    assert axes["gunicorn-sync"] == ["workers"] and axes["prefork"] == ["workers"]
    assert axes["gunicorn-gthread"] == ["threads", "workers"]
    assert axes["waitress"] == ["threads"]
    assert axes["granian-wsgi"] == ["threads", "workers"]
    assert axes["fork"] == [] and axes["cgi"] == []
    # A new mode needs nothing (a pool: workers) or one field.
    new = Mode(name="x", interface="wsgi", summary="", command=lambda launch: ["x", str(launch.workers)],
               process=Process(uses_workers=False), tuning=Tuning(axes=(Axis(name="async", flag="--async"),)))
    assert [a.name for a in new.tuning_axes] == ["async"]
    assert new.argv(host="h", port=1, workers=2, setting={"async": 100}) == ["x", "2", "--async", "100"]
    with pytest.raises(ValueError):
        Axis(name="backlog")


def test_settings_reach_the_command_line() -> None:
    argv = MODES["granian-wsgi"].argv(host="h", port=1, workers=2, setting={"threads": 32, "workers": 3})
    assert argv[argv.index("--workers") + 1] == "3" and argv[-2:] == ["--blocking-threads", "32"]
    argv = MODES["gunicorn-gthread"].argv(host="h", port=1, workers=2, setting={"threads": 64})
    assert argv[argv.index("--threads") + 1] == "64" and argv[argv.index("--workers") + 1] == "2"


def test_the_production_command_is_the_servers_own() -> None:
    line = production_command(MODES["gunicorn-gthread"], {"threads": 64, "workers": 1})
    assert line.startswith("gunicorn apps.wsgi:app --bind 0.0.0.0:8000 --workers 1 ")
    assert "--threads 64" in line
    assert production_command(MODES["waitress"], {"threads": 32}).startswith("waitress-serve --listen=0.0.0.0:8000")
    assert production_command(MODES["prefork"], {"workers": 3}).startswith("python -m servers.prefork apps.wsgi:app")
    assert production_command(MODES["uvicorn"], {"workers": 3}, app="examples.fastapp:app").startswith(
        "uvicorn examples.fastapp:app --host 0.0.0.0 --port 8000 --workers 3")
    local = to_local(line, "127.0.0.1", 4321)
    assert "127.0.0.1:4321" in local and shlex.join(local).count("8000") == 0
    assert to_local(production_command(MODES["uvicorn"], {"workers": 1}), "127.0.0.1", 5)[2:6] == [
        "--host", "127.0.0.1", "--port", "5"]


def test_estimate_scales_with_cores_and_stops_at_memory() -> None:
    e = estimate(capacity_rps=900.0, cpu_ms_per_request=1.0, memory_mb=90.0, processes=3, server_cpus=1, workers=2,
                 cores=8, memory_gib=None)
    assert e.workers == 16 and e.capacity_rps == pytest.approx(7200.0) and not e.memory_bound
    tight = estimate(capacity_rps=900.0, cpu_ms_per_request=1.0, memory_mb=90.0, processes=3, server_cpus=1,
                     workers=2, cores=8, memory_gib=0.2)
    assert tight.memory_bound and tight.workers is not None and tight.workers < 16
    assert tight.capacity_rps < e.capacity_rps and tight.memory_mb <= 0.2 * 1024 + 30


def setting(mode: str, s: dict[str, int], cap: float, ok: bool = True) -> SettingResult:
    return SettingResult(mode=mode, scenario="io", setting=s, status="ok" if ok else "failed", capacity_rps=cap,
                         p99_ms=40.0, cpu_ms_per_request=0.5, memory_mb=20.0 + sum(s.values()), processes=2,
                         error=None if ok else "StartError: refused", command=("gunicorn",),
                         trials=(Trial(rate=cap, achieved=cap, p99_ms=40.0, passed=True),))


def sample_run() -> TuneRun:
    gthread = ModeResult(mode="gunicorn-gthread", scenario="io", axes={"threads": [1, 2, 4, 8], "workers": [1, 2, 3]},
                         default={"workers": 2, "threads": 8}, best={"threads": 8, "workers": 3},
                         production_command="gunicorn apps.wsgi:app --threads 8 --workers 3",
                         settings=[setting("gunicorn-gthread", {"workers": 2, "threads": 8}, 700.0),
                                   setting("gunicorn-gthread", {"threads": 1, "workers": 1}, 50.0),
                                   setting("gunicorn-gthread", {"threads": 2, "workers": 1}, 0.0, ok=False),
                                   setting("gunicorn-gthread", {"threads": 8, "workers": 3}, 1900.0)])
    sync = ModeResult(mode="gunicorn-sync", scenario="io", axes={"workers": [1, 2, 3]}, default={"workers": 2},
                      best={"workers": 3}, production_command="gunicorn apps.wsgi:app --workers 3",
                      settings=[setting("gunicorn-sync", {"workers": 2}, 95.0),
                                setting("gunicorn-sync", {"workers": 3}, 140.0)])
    return TuneRun(plan={"slo_p99_ms": 100.0, "repeats": 3, "interval_s": 2.0, "precision": 0.05, "server_cpus": "0",
                         "client_cpus": "1", "for_cores": 8, "for_memory_gib": 4.0},
                   environment={"load_average": [1.0, 1.0, 1.0]}, modes=[gthread, sync])


def test_run_file_round_trips() -> None:
    run = sample_run()
    assert from_json(to_json(run)) == run


def test_summary_names_winner_ratio_command_and_trade_off() -> None:
    text = tune_report.summary_text(sample_run())
    assert "**Winner: gunicorn-gthread** at threads=8 workers=3" in text
    assert "2.71x" in text  # 1,900 / 700
    assert "gunicorn apps.wsgi:app --threads 8 --workers 3" in text
    assert "ESTIMATE, not a measurement: on 8 cores and 4 GiB" in text
    assert "failed: StartError: refused" in text


def test_heat_map_has_a_cell_per_setting_tried() -> None:
    run = sample_run()
    svg = tune_report.heatmap_svg(run.modes[0])
    assert svg.count("<rect") == 4 * 3 and "1,900" in svg and ">x<" in svg
    bars = tune_report.heatmap_svg(replace(run.modes[1]))
    assert bars.count("<rect") == 3 and "140" in bars


def test_a_mode_with_one_setting_has_its_table_and_no_empty_chart() -> None:
    fork = ModeResult(mode="fork", scenario="io", axes={}, default={}, best={},
                      production_command="python -m servers.fork apps.wsgi:app", settings=[setting("fork", {}, 148.0)])
    run = replace(sample_run(), modes=[*sample_run().modes, fork])
    section = tune_report.html_section(run)
    assert 'id="tune-io-fork"' not in section and 'id="tune-io-gunicorn-sync"' in section
    assert "<h3>fork</h3>" in section and "148" in section


def test_bench_tuned_runs_each_mode_at_its_best_setting_labelled(tmp_path: Path) -> None:
    from scripts.plan.plan import plan_from_args

    (tmp_path / "tune.json").write_text(json.dumps(to_json(sample_run())))
    plan = plan_from_args(["--tuned", str(tmp_path), "--modes", "gunicorn-sync,gunicorn-gthread,uvicorn", "--quick",
                           "--out", str(tmp_path / "bench")])
    assert plan is not None
    assert plan.modes == ("gunicorn-sync+tuned", "gunicorn-gthread+tuned", "uvicorn")  # uvicorn: no tune, as is
    gthread = plan.registry["gunicorn-gthread+tuned"]
    argv = gthread.argv(host="h", port=1, workers=plan.workers)
    assert argv[argv.index("--workers") + 1] == "3" and argv[argv.index("--threads") + 1] == "8"
    assert "tuned: threads=8 workers=3" in gthread.summary
    assert {c.mode for c in plan.cells()} == set(plan.modes)
    assert plan.describe()["tuned_run"] == str(tmp_path.resolve())
    assert "tuned_run" not in plan_from_args(["--quick", "--out", str(tmp_path / "other")]).describe()
    with pytest.raises(SystemExit):
        plan_from_args(["--tuned", str(tmp_path / "nothing"), "--quick"])


@pytest.mark.slow  # the run folder's preparation reads the environment with a process or two
def test_a_tuned_bench_run_keeps_the_tune_runs_figures(tmp_path: Path) -> None:
    from rich.console import Console

    from scripts.bench import prepare
    from scripts.plan.plan import plan_from_args

    (tmp_path / "tune.json").write_text(json.dumps(to_json(sample_run())))
    plan = plan_from_args(["--tuned", str(tmp_path), "--modes", "gunicorn-sync", "--quick",
                           "--out", str(tmp_path / "bench")])
    prepare(plan, Console(file=io.StringIO()))  # the run folder: plan.json, and the tune run's figures beside it
    assert (tmp_path / "bench" / "tune.json").read_text() == (tmp_path / "tune.json").read_text()
    assert json.loads((tmp_path / "bench" / "plan.json").read_text())["plan"]["tuned_run"] == str(tmp_path.resolve())


def test_a_best_below_a_setting_measured_higher_says_why() -> None:
    run = sample_run()
    sync = run.modes[1]
    run.modes[1] = replace(sync, best={"workers": 2})  # kept: 3 workers measured 140/s, 47% more: no such note
    assert "less than 5% more" not in tune_report.trade_off(run.modes[1], 100.0)
    close = replace(sync, best={"workers": 2}, settings=[setting("gunicorn-sync", {"workers": 2}, 95.0),
                                                           setting("gunicorn-sync", {"workers": 3}, 98.0)])
    text = tune_report.trade_off(close, 100.0)
    assert "workers=3 measured 98/s, less than 5% more: a step is taken only for 5% or more" in text
