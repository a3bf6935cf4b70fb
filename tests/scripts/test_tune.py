"""The tune against real servers on loopback: a fixed pool on the 20 ms endpoint (its capacity is known: workers /
20 ms), the p99 target, the memory budget, the printed command started by hand, a user's app (and one that does not
import, and a setting a server refuses), and the report in Chromium. Bounded: one interval a rate, a coarse
bisection."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from scripts import tune
from scripts.modes import MODES, Tuning
from scripts.tuning import results, tune_report
from scripts.tuning.measure import Target, measure_setting
from scripts.tuning.reproduce import reproduce
from tests.scripts.browser import screenshot
from tests.scripts.test_tune_search import sample_run

pytestmark = pytest.mark.slow
QUICK = Target(slo_p99_ms=100.0, repeats=1, duration_s=1.0, precision=0.1)


def _plan(tmp_path: Path, *args: str) -> tune.TunePlan:
    return tune.plan_from_args(["--quick", "--out", str(tmp_path / "run"), *args])[0]


def _measure(tmp_path: Path, mode: str, setting: dict[str, int], target: Target = QUICK,
             **changes: Any) -> results.SettingResult:
    plan = dataclasses.replace(_plan(tmp_path, "--modes", mode, "--scenarios", "io").plan, **changes)
    return measure_setting(plan, mode, "io", setting, target=target, start_rate=20.0, db_path=tmp_path / "w.sqlite",
                           logs=tmp_path / "logs")


@pytest.mark.alone  # a capacity of at least 25/s: beside other tests the 20/s interval stalled (p99 253 ms) in CI
def test_a_fixed_pool_on_the_20ms_endpoint_has_the_capacity_of_workers_over_20ms(tmp_path: Path) -> None:
    found = _measure(tmp_path, "gunicorn-sync", {"workers": 1})
    assert found.ok, found.error
    # One worker, 20 ms a request: 50/s at most; on a shared machine somewhat less, never more.
    assert 25.0 <= found.capacity_rps <= 50.0 * 1.1, found.trials
    assert found.p99_ms is not None and found.p99_ms < 100.0
    assert found.cpu_ms_per_request is not None and found.cpu_ms_per_request > 0
    assert found.memory_mb is not None and found.memory_mb > 5
    assert found.trials[0].rate == 20.0 and any(not t.passed for t in found.trials)


def test_a_p99_target_under_the_service_time_leaves_no_capacity(tmp_path: Path) -> None:
    found = _measure(tmp_path, "gunicorn-sync", {"workers": 2}, dataclasses.replace(QUICK, slo_p99_ms=15.0))
    assert found.ok and found.capacity_rps == 0.0  # every request waits 20 ms
    assert all(not t.passed and (t.p99_ms or 0) >= 15.0 for t in found.trials)


def test_a_setting_the_server_refuses_fails_with_the_reason(tmp_path: Path) -> None:
    refusing = dataclasses.replace(MODES["gunicorn-sync"], tuning=Tuning(threads_flag="--no-such-option"))
    plan = _plan(tmp_path, "--modes", "gunicorn-sync", "--scenarios", "io").plan
    found = _measure(tmp_path, "gunicorn-sync", {"workers": 1, "threads": 4}, start_timeout=10.0,
                     registry={**plan.registry, "gunicorn-sync": refusing})
    assert not found.ok and found.error and "--no-such-option" in found.log_tail


def _main(tmp_path: Path, *args: str) -> tuple[int, results.TuneRun]:
    code = tune.main(["--quick", "--out", str(tmp_path / "run"), *args])
    return code, results.load(tmp_path / "run")


def test_the_memory_budget_stops_the_workers_rising(tmp_path: Path) -> None:
    budget = 29.0  # one sync worker and its master hold ~25 MB of PSS, each more worker ~7 MB
    code, run = _main(tmp_path, "--modes", "gunicorn-sync", "--scenarios", "io", "--workers", "1",
                      "--memory-budget", f"{budget:g}")
    assert code == 0
    (entry,) = run.modes
    two = entry.result({"workers": 2})
    assert two is not None and two.memory_mb is not None and two.memory_mb > budget
    assert entry.result({"workers": 3}) is None  # no rising past the budget
    best = entry.result(entry.best)
    assert best is None or (best.memory_mb is not None and best.memory_mb <= budget)
    assert f"Memory budget: {budget:g} MB" in (tmp_path / "run" / "summary.md").read_text()


def test_the_printed_command_reproduces_the_capacity(tmp_path: Path) -> None:
    code, run = _main(tmp_path, "--modes", "gunicorn-sync", "--scenarios", "io", "--workers-range", "1-2",
                      "--workers", "1")
    assert code == 0
    (entry,) = run.modes
    assert entry.production_command and entry.production_command.startswith("gunicorn apps.wsgi:app --bind ")
    again = reproduce(tmp_path / "run", entry)
    # A shared 2-core machine: the done-when figure (within 15%) is measured with repeats; here, the same ballpark.
    assert 0.6 <= again.ratio <= 1.5, again


def test_rounds_measure_a_setting_again_against_a_fresh_server(tmp_path: Path) -> None:
    code, run = _main(tmp_path, "--modes", "gunicorn-sync", "--scenarios", "io", "--workers-range", "1-1",
                      "--workers", "1", "--grid", "--rounds", "2")
    assert code == 0
    (entry,) = run.modes
    (only,) = entry.settings
    assert only.ok and len(only.capacities) == 2 and only.capacity_rps == min(only.capacities)  # the lower middle
    assert len(only.trials) >= 4  # both rounds' trials: each round brackets (two rates at least) on its own
    logs = tmp_path / "run" / "logs" / "io" / "gunicorn-sync" / "workers1"
    assert (logs / "round-1" / "server.log").exists() and (logs / "round-2" / "server.log").exists()
    assert "Each setting measured 2 times" in (tmp_path / "run" / "summary.md").read_text()


def test_a_users_flask_app_tunes_end_to_end(tmp_path: Path) -> None:
    code, run = _main(tmp_path, "--modes", "gunicorn-sync", "--workers-range", "1-2", "--workers", "1",
                      "--app", "examples.flaskapp:app", "--scenario-file", "examples/flaskapp.toml",
                      "--request", "list")
    assert code == 0
    (entry,) = run.modes
    best = entry.result(entry.best)
    assert entry.scenario == "list" and best is not None and best.capacity_rps > 0
    assert entry.production_command and "examples.flaskapp:app" in entry.production_command


def test_an_app_that_fails_to_import_fails_each_setting_and_the_search_goes_on(tmp_path: Path) -> None:
    (tmp_path / "broken_app.py").write_text("import no_such_dependency_here\n\napp = None\n")
    code, run = _main(tmp_path, "--modes", "gunicorn-sync,prefork", "--workers-range", "1-2", "--workers", "1",
                      "--app", "broken_app:app", "--app-dir", str(tmp_path), "--paths", "/",
                      "--start-timeout", "8")
    assert code == 0
    assert [m.mode for m in run.modes] == ["prefork", "gunicorn-sync"]  # the second mode ran after the first failed
    for entry in run.modes:
        assert entry.best is None and len(entry.settings) == 2
        assert all(not s.ok and s.error for s in entry.settings)
        assert any("no_such_dependency_here" in s.log_tail for s in entry.settings)
    assert "no setting met the target" in (tmp_path / "run" / "summary.md").read_text()


def test_the_report_section_in_chromium(tmp_path: Path, visit: Any) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / results.FILE).write_text(json.dumps(results.to_json(sample_run())))
    tune_report.render(run_dir)
    page = visit(run_dir / tune_report.REPORT)
    assert page.errors == [] and page.remote_requests() == []
    charts = page.page.locator("section#tune figure.tune svg")
    assert charts.count() == 2
    assert page.page.locator("#tune-io-gunicorn-gthread rect").count() == 12
    assert page.page.locator("#tune-io-gunicorn-gthread svg").bounding_box()["width"] > 200
    text = page.page.locator("section#tune").inner_text()
    assert "Winner: gunicorn-gthread" in text and "gunicorn apps.wsgi:app --threads 8 --workers 3" in text
    assert "ESTIMATE, not a measurement" in text
    print(screenshot(page, tmp_path, "tune-report"))


def test_a_cpu_quota_holds_the_server_group_to_its_share(tmp_path: Path) -> None:
    import sys
    import time

    import psutil

    from scripts.common.procs import running
    from scripts.tuning.quota import QuotaError, cpu_quota

    spin = [sys.executable, "-c", "while True: pass"]
    with running(spin, log_path=tmp_path / "spin.log", cpus={0}) as proc:
        try:
            with cpu_quota(0.25) as confine:
                confine(proc.pid)
                used0, t0 = sum(psutil.Process(proc.pid).cpu_times()[:2]), time.monotonic()
                time.sleep(1.5)
                share = (sum(psutil.Process(proc.pid).cpu_times()[:2]) - used0) / (time.monotonic() - t0)
        except QuotaError as exc:
            pytest.skip(str(exc))
    assert share < 0.35, share  # a quarter of a CPU, give or take a period


def test_ctrl_c_keeps_what_was_measured(tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import ROOT

    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "scripts.tune", "--quick", "--modes", "gunicorn-sync",
                             "--scenarios", "io", "--out", str(out)], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # until the first setting is written
            if (out / results.FILE).exists() and results.load(out).modes and results.load(out).modes[0].settings:
                break
            time.sleep(0.5)
        proc.send_signal(signal.SIGINT)
        text = proc.communicate(timeout=60)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, text
    assert "ETA" in text and "interrupted: reporting what was measured" in text
    run = results.load(out)
    assert run.interrupted and run.modes[0].settings and run.modes[0].settings[0].ok
    assert "**Interrupted**" in (out / "summary.md").read_text()
