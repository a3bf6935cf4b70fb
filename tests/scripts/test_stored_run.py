"""A small run written by the harness before records were versioned (schema 1), rendered by today's code.

``data/run-v1`` holds 19 cell records, 3 open-loop records, ``plan.json`` and ``reference.json`` from a
real run (only trimmed: fewer cells, shorter command lines and environment). ``summary.expected.md`` is
what the code of that time rendered from exactly these files; rendering must not change a table or a
speed check. One line differs on purpose: fork against the bare fork() rate is reported, no longer
held to 0.8x (that target was retired; fork is now held against the standard library's fork server,
which this old run did not measure).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.analysis import analysis
from scripts.records import records
from scripts.report import render_run
from tests.conftest import ROOT

STORED = Path(__file__).parent / "data" / "run-v1"


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(STORED, target)
    (target / "summary.expected.md").unlink()
    return target


def test_the_stored_run_renders_as_it_did_when_it_was_written(run_dir: Path) -> None:
    summary = render_run(run_dir)

    assert summary.read_text() == (STORED / "summary.expected.md").read_text()
    for chart in ("throughput.png", "latency.png", "concurrency.png", "db_strategies.png", "resources.png",
                  "openloop.png"):
        assert (run_dir / chart).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", chart


def test_the_stored_run_analysed(run_dir: Path) -> None:
    run = records.load(run_dir)
    assert len(run.cells) == 19 and len(run.openloop) == 3
    assert run.cells[0].resources is not None and run.cells[0].resources.memory_mean_mb == 11.5  # was rss_mean_mb
    analysed = analysis.analyse(run)
    checks = {c.check.split(",")[0]: c for c in analysed.checks}
    close = checks["prefork / gunicorn-sync"]
    assert (round(close.a), round(close.b), close.bound, close.met) == (26849, 9024, "floor", None)
    assert checks["prefork / uvicorn"].met is True and round(checks["prefork / uvicorn"].ratio, 2) == 1.61
    assert analysed.main_concurrency == {"plaintext": 32, "plaintext/close": 32, "db/reuse": 32,
                                         "db/per-request": 32, "mixed": 32}
    assert analysed.knees == {"prefork": 200.0}
    assert [line.label for line in analysed.reference_lines] == ["fork()+exit+wait", "minimal fork loop"]


@pytest.mark.slow
def test_report_command_renders_a_run_folder(run_dir: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "scripts.report", str(run_dir)], cwd=ROOT, capture_output=True,
                            text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(run_dir / "summary.md")
    assert (run_dir / "summary.md").read_text() == (STORED / "summary.expected.md").read_text()


@pytest.mark.slow
def test_report_command_refuses_a_folder_without_cells(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, "-m", "scripts.report", str(tmp_path)], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 2 and "no cell records" in result.stderr


@pytest.mark.slow
def test_report_command_says_a_missing_folder_is_missing(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-run"
    result = subprocess.run([sys.executable, "-m", "scripts.report", str(missing)], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 2 and f"no such folder: {missing}" in result.stderr
    assert not missing.exists()


@pytest.mark.slow
def test_the_faults_report_refuses_a_bench_run_and_a_mistyped_path(run_dir: Path, tmp_path: Path) -> None:
    render_run(run_dir)
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    command = [sys.executable, "-m", "scripts.faults.faults_report"]
    result = subprocess.run([*command, str(run_dir)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and f"no faults.json in {run_dir}" in result.stderr, result.stderr
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before  # report.html untouched
    assert not (run_dir / "faults.md").exists() and not (run_dir / "charts").exists()
    typo = tmp_path / "faults-typo"
    result = subprocess.run([*command, str(typo)], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2 and f"no such folder: {typo}" in result.stderr
    assert not typo.exists()


def test_a_run_left_running_reads_as_incomplete_with_what_it_did_not_measure(run_dir: Path) -> None:
    """progress.json still saying running: the bench was killed outright. Every report says so."""
    recorded = {c.index for c in records.load(run_dir).cells}
    planned = [f"mode{i} plaintext c=32 r0" for i in range(max(recorded) + 3)]
    progress = records.RunProgress(cells=tuple(planned), ladder_modes=("prefork", "uvicorn"))
    (run_dir / records.PROGRESS_NAME).write_text(json.dumps(records.to_json(progress)))
    analysed = analysis.analyse(records.load(run_dir))
    assert analysed.completeness is not None and analysed.completeness.measured == len(recorded)
    assert analysed.knee_text("prefork") == "knee at 200 req/s offered"
    summary = render_run(run_dir).read_text()
    missing = [what for i, what in enumerate(planned) if i not in recorded]
    assert (f"**incomplete (the run stopped without finishing, or is still running): {len(recorded)} of "
            f"{len(planned)} planned cells and 3 open-loop ladder steps measured; not measured: "
            f"{', '.join(missing[:12])}, and {len(missing) - 12} more cells, the open-loop ladder of prefork past "
            "800 req/s, the open-loop ladder of uvicorn**") in summary
    finished = dataclasses.replace(progress, state="finished", cells=tuple(planned[:max(recorded) + 1]),
                                   ladder_modes=("prefork",), ladder_done=("prefork",))
    (run_dir / records.PROGRESS_NAME).write_text(json.dumps(records.to_json(finished)))
    # The stored run's cells are a trimmed selection: its indices have gaps, which read as cells not measured.
    assert "interrupted:" in render_run(run_dir).read_text()
    holes = [i for i in range(max(recorded) + 1) if i not in recorded]
    gaps = analysis.analyse(records.load(run_dir)).completeness
    assert gaps is not None and gaps.missing == tuple(planned[i] for i in holes) and not gaps.ladder_unfinished
