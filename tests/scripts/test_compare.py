"""scripts.compare on real run folders: the stored run (schema 1) against copies of itself changed the ways runs
differ (a slower mode, another commit, an interrupted run, nothing in common), through the command line."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.analysis import comparison
from scripts.records import records
from scripts.render import csv_export, runs_index
from scripts.report import render_run
from tests.conftest import ROOT

STORED = Path(__file__).parent / "data" / "run-v1"


def copy_run(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copytree(STORED, target)
    (target / "summary.expected.md").unlink()
    return target


def edit_cells(run: Path, mode: str, change: dict[str, object], scale: float = 1.0) -> int:
    """Rewrite ``mode``'s cell records on disk: fields replaced, throughput scaled. Returns how many changed."""
    changed = 0
    for path in (run / "cells").glob("*.json"):
        data = json.loads(path.read_text())
        if data["mode"] != mode:
            continue
        data.update(change)
        data["throughput_rps"] = data["throughput_rps"] * scale if data.get("throughput_rps") else None
        path.write_text(json.dumps(data))
        changed += 1
    return changed


def cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scripts.compare", *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)


@pytest.mark.slow
def test_a_run_against_itself_is_within_noise_everywhere(tmp_path: Path) -> None:
    a, b = copy_run(tmp_path, "a"), copy_run(tmp_path, "b")
    result = cli(a, b)
    assert result.returncode == 0, result.stderr
    assert "0 regressions, 0 improvements" in result.stdout
    assert "**regression**" not in result.stdout and "within noise" in result.stdout
    assert "untested (1 repeat)" in result.stdout  # the cells measured once cannot be tested
    assert "older records (22 of schema 1" in result.stdout  # said, and compared all the same
    assert "Plan and environment: no differences recorded." in result.stdout
    assert (b / "compare.html").stat().st_size > 100_000  # plotly inlined


def add_third_repeat(run: Path) -> None:
    """A third repeat of prefork plaintext @32 (the stored run has two), 2% under the first."""
    data = json.loads((run / "cells" / "005-prefork-plaintext-c32-r0.json").read_text())
    data.update(index=16, repeat=2, throughput_rps=data["throughput_rps"] * 0.98)
    (run / "cells" / "016-prefork-plaintext-c32-r2.json").write_text(json.dumps(data))


def test_a_slower_mode_is_a_regression_and_the_environment_change_is_named(tmp_path: Path) -> None:
    a, b = copy_run(tmp_path, "a"), copy_run(tmp_path, "b")
    add_third_repeat(a)
    add_third_repeat(b)
    assert edit_cells(b, "prefork", {}, scale=0.7) == 11
    plan = json.loads((b / "plan.json").read_text())
    plan["environment"]["python"] = "3.12.1"
    (b / "plan.json").write_text(json.dumps(plan))
    side_a, side_b = comparison.load_side(a), comparison.load_side(b)
    result = comparison.compare(side_a, side_b)
    verdicts = {c.key.label: c.throughput.verdict for c in result.cells}
    # 30% slower over three repeats whose spread is 2%: beyond any noise, even after Holm's correction for the
    # 16 tests of this comparison. Over two repeats (t with at most two degrees of freedom) the same 30% is not.
    assert verdicts["prefork plaintext @32"] == "regression"
    assert verdicts["prefork plaintext close @32"] == "within noise"
    assert verdicts["prefork plaintext @1"] == "untested"
    assert verdicts["uvicorn plaintext @32"] == "within noise"
    change = next(c.throughput.change for c in result.cells if c.key.label == "prefork plaintext @32")
    assert change is not None and change.change == pytest.approx(-0.3)
    assert [(d.key, d.a, d.b, d.explains) for d in result.differences] == [
        ("environment.python", "3.11.7", "3.12.1", True)]
    text = comparison.markdown(result)
    assert "**regression**" in text and "| environment.python | 3.11.7 | 3.12.1 | yes |" in text


@pytest.mark.slow
def test_an_interrupted_run_compares_what_it_has(tmp_path: Path) -> None:
    a, b = copy_run(tmp_path, "a"), copy_run(tmp_path, "b")
    for path in (b / "cells").glob("0[2-4]*.json"):
        path.unlink()
    (b / "cells" / "999-broken.json").write_text("{not json")
    result = cli(a, b)
    assert result.returncode == 0, result.stderr
    assert "incomplete: 14 of 52 planned cells recorded" in result.stdout
    assert "Only in a (3): prefork db reuse @32; prefork db per-request @32; prefork mixed @32" in result.stdout
    assert "8 cells matched" in result.stdout  # of the 11 cells (repeats grouped) of run a
    assert "skipping record" in result.stderr and "999-broken.json" in result.stderr


def test_runs_measured_once_say_that_nothing_could_be_tested(tmp_path: Path) -> None:
    a, b = copy_run(tmp_path, "a"), copy_run(tmp_path, "b")
    for run in (a, b):
        for path in (run / "cells").glob("*-r1.json"):
            path.unlink()
    result = comparison.compare(comparison.load_side(a), comparison.load_side(b))
    assert {m.verdict for cell in result.cells for m in (cell.throughput, cell.p99)} == {"untested"}
    assert "none was measured more than once in both runs" in comparison.headline(result)


@pytest.mark.slow
def test_runs_with_nothing_in_common_say_so(tmp_path: Path) -> None:
    a, b = copy_run(tmp_path, "a"), copy_run(tmp_path, "b")
    for mode in ("fork", "prefork", "uvicorn", "gunicorn-sync"):
        edit_cells(b, mode, {"mode": f"{mode}-2"})
    result = cli(a, b)
    assert result.returncode == 1
    assert "Nothing in common" in result.stdout and "fork-2" in result.stdout


@pytest.mark.parametrize(("make", "message"), [
    (lambda tmp: tmp / "missing", "no such run folder"),
    (lambda tmp: tmp, "no cells/ folder"),
])
@pytest.mark.slow
def test_unreadable_runs_get_a_clear_message(tmp_path: Path, make: object, message: str) -> None:
    assert callable(make)
    result = cli(copy_run(tmp_path, "a"), make(tmp_path))
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_a_run_from_a_newer_workerbench_is_refused_per_record(tmp_path: Path) -> None:
    a, b = copy_run(tmp_path, "a"), copy_run(tmp_path, "b")
    for path in (b / "cells").glob("*.json"):
        data = json.loads(path.read_text())
        path.write_text(json.dumps({**data, "schema": records.SCHEMA_VERSION + 1}))
    result = cli(a, b)
    assert result.returncode == 2 and "no readable cell records" in result.stderr
    assert "newer than this workerbench reads" in result.stderr


@pytest.mark.slow
def test_export_csv_has_every_cell_as_a_row(tmp_path: Path) -> None:
    run = copy_run(tmp_path, "run")
    result = subprocess.run([sys.executable, "-m", "scripts.report", str(run), "--export", "csv"], cwd=ROOT,
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    with (run / "cells.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 19 and list(rows[0]) == list(csv_export.COLUMNS)
    first = rows[0]
    assert (first["mode"], first["scenario"], first["concurrency"], first["keepalive"]) == ("fork", "plaintext", "1",
                                                                                             "yes")
    assert float(first["throughput_rps"]) == 502.58 and first["memory_mean_mb"] == "11.5"  # migrated from rss_*
    assert {r["db_strategy"] for r in rows} == {"", "reuse", "per-request"}
    # The figure's flags, as the report shows them, on every repeat of its cell.
    flagged = {(r["mode"], r["scenario"], r["concurrency"], r["flags"]) for r in rows if r["flags"]}
    assert flagged == {("prefork", "plaintext/close", "32", "generator-bound"),
                       ("uvicorn", "plaintext", "32", "spread")}


def test_the_index_is_rebuilt_for_runs_in_a_results_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    results = tmp_path / "results"
    results.mkdir()
    monkeypatch.setattr(runs_index, "RESULTS", results)
    first = copy_run(results, "2026-11-29T090417")
    render_run(first)
    assert "2026-11-29T090417/report.html" in (results / "index.html").read_text()
    elsewhere = copy_run(tmp_path, "elsewhere")
    render_run(elsewhere)
    assert not (tmp_path / "index.html").exists()  # a run outside results/ leaves its neighbours alone
    second = copy_run(results, "2026-11-30T100000")
    render_run(second)
    text = (results / "index.html").read_text()
    assert "2026-11-30T100000/report.html" in text and "2026-11-29T090417/report.html" in text


# the CI gate: --fail-on-regression ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_the_gate_passes_a_run_against_itself_and_says_what_it_cannot_see(tmp_path: Path) -> None:
    a, b = copy_run(tmp_path, "a"), copy_run(tmp_path, "b")
    result = cli(a, b, "--fail-on-regression")
    assert result.returncode == 0, result.stderr
    assert "no significant regression beyond 5% in 11 matched cells (exit 0)" in result.stderr
    # The cells measured once: the gate says it is blind there rather than passing them quietly.
    assert "could not be tested (one repeat or a failed side)" in result.stderr
    assert "prefork plaintext @1" in result.stderr


@pytest.mark.slow
def test_the_gate_fails_on_a_regression_and_lists_it(tmp_path: Path) -> None:
    a, b = copy_run(tmp_path, "a"), copy_run(tmp_path, "b")
    add_third_repeat(a)
    add_third_repeat(b)
    edit_cells(b, "prefork", {}, scale=0.7)
    result = cli(a, b, "--fail-on-regression")
    assert result.returncode == 3, result.stderr
    assert "regression beyond 5% in 1 metric (exit 3):" in result.stderr
    assert "  prefork plaintext @32: throughput -30.0%" in result.stderr
    assert cli(a, b).returncode == 0  # without the flag a regression is a finding, not a failure
    # ... and a 30% drop under a 40% floor is not one.
    assert cli(a, b, "--fail-on-regression", "--min-change", "40").returncode == 0


@pytest.mark.slow
def test_the_gate_keeps_nothing_in_common_and_unreadable_as_1_and_2(tmp_path: Path) -> None:
    a, b = copy_run(tmp_path, "a"), copy_run(tmp_path, "b")
    for mode in ("fork", "prefork", "uvicorn", "gunicorn-sync"):
        edit_cells(b, mode, {"mode": f"{mode}-2"})
    assert cli(a, b, "--fail-on-regression").returncode == 1
    assert cli(a, tmp_path / "missing", "--fail-on-regression").returncode == 2


@pytest.mark.slow
@pytest.mark.parametrize(("option", "value"), [("--min-change", "-5"), ("--alpha", "1.5"), ("--alpha", "x")])
def test_bad_thresholds_are_usage_errors(tmp_path: Path, option: str, value: str) -> None:
    result = cli(copy_run(tmp_path, "a"), copy_run(tmp_path, "b"), option, value)
    assert result.returncode == 2 and f"argument {option}" in result.stderr and "Traceback" not in result.stderr


def gate_bench(out: Path, workers: int) -> None:
    """gunicorn-sync on io (a 20 ms wait) at 16 users: its throughput is bounded by workers / 20 ms, so one worker
    against two is a real regression of about half whatever else the machine is doing."""
    result = subprocess.run([sys.executable, "-m", "scripts.bench", "--modes", "gunicorn-sync", "--scenarios", "io",
                             "--concurrency", "16", "--repeats", "3", "--duration", "2", "--no-sweep", "--no-close",
                             "--no-open-loop", "--workers", str(workers), "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=240, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_the_gate_on_real_runs_passes_noise_and_fails_one_worker_against_two(tmp_path: Path) -> None:
    base, same, fewer = tmp_path / "base", tmp_path / "same", tmp_path / "fewer"
    gate_bench(base, workers=2)
    gate_bench(same, workers=2)
    gate_bench(fewer, workers=1)
    noise = cli(base, same, "--fail-on-regression", "--out", tmp_path / "c1")
    assert noise.returncode == 0, noise.stdout + noise.stderr
    assert "no significant regression beyond 5% in 1 matched cell (exit 0)" in noise.stderr
    real = cli(base, fewer, "--fail-on-regression", "--out", tmp_path / "c2")
    assert real.returncode == 3, real.stdout + real.stderr
    assert "gunicorn-sync io @16: throughput -" in real.stderr


@pytest.mark.slow
def test_a_quick_run_against_a_normal_one_says_the_concurrency_differs(tmp_path: Path) -> None:
    a, b = copy_run(tmp_path, "a"), copy_run(tmp_path, "b")
    for path in (b / "cells").glob("*.json"):  # b measured as --quick does: everything at 16 users
        data = json.loads(path.read_text())
        path.write_text(json.dumps({**data, "concurrency": 16}))
    plan = json.loads((b / "plan.json").read_text())
    plan["plan"]["quick"] = True
    (b / "plan.json").write_text(json.dumps(plan))
    result = cli(a, b)
    assert result.returncode == 1
    assert "users 16, a --quick run)" in result.stdout and "users 1, 32" in result.stdout
    assert "They share modes and scenarios but no concurrency" in result.stdout
    assert "They share no mode" not in result.stdout


@pytest.mark.slow
def test_one_cell_reads_as_one_cell(tmp_path: Path) -> None:
    a, b = copy_run(tmp_path, "a"), copy_run(tmp_path, "b")
    for run in (a, b):
        for path in (run / "cells").glob("*.json"):
            if not path.name.startswith("005-"):
                path.unlink()
    assert "1 cell matched, but none was measured more than once" in cli(a, b).stdout
