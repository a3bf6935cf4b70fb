"""A faults run's report.html and the faults runs in results/index.html, opened in a real headless Chromium
(tests/scripts/browser.py).

Input: a stored default faults run (``data/faults-v1``: 11 faults x 5 modes, schema 1, before failures were split by
kind), and one real short faults run of this code against prefork and waitress.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scripts.faults import faults_report
from scripts.records import records
from scripts.render import runs_index
from tests.conftest import ROOT
from tests.scripts.browser import check_charts, check_sorting, screenshot

STORED = Path(__file__).parent / "data" / "faults-v1"
MODES = ["cgi", "fork", "prefork", "gunicorn-sync", "uvicorn"]


@pytest.fixture(scope="module")
def stored_faults(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stored faults run, rendered once for the module's tests, which only read it."""
    target = tmp_path_factory.mktemp("stored") / "faults-v1"
    shutil.copytree(STORED, target)
    faults_report.render_run(target)
    return target


def test_schema_1_fault_records_are_read_as_the_current_schema(stored_faults: Path) -> None:
    run = records.load(stored_faults)
    assert len(run.faults) == 55 and run.cells == ()
    assert {r.schema for r in run.faults} == {records.SCHEMA_VERSION}
    hang = next(r for r in run.faults if r.fault == "hang" and r.mode == "prefork")
    assert hang.requests_lost == 32 and hang.processes and "failed_by" not in hang.timeline
    assert run.faults_meta["quick"] is False


def test_fault_records_the_loader_cannot_read(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = json.loads((STORED / "faults.json").read_text())
    doc["records"][0]["status"] = "fine"
    doc["records"][1]["mode"] = None
    (tmp_path / "faults.json").write_text(json.dumps(doc))
    assert len(records.load(tmp_path).faults) == 53
    err = capsys.readouterr().err
    assert "record 0: status must be one of ok, failed, n/a, not offered, got 'fine'" in err
    assert "record 1: mode must be a string" in err
    (tmp_path / "faults.json").write_text(json.dumps({**doc, "schema": records.SCHEMA_VERSION + 1}))
    with pytest.raises(records.RecordError, match="is newer than this workerbench reads"):
        records.load(tmp_path)


def test_faults_page_of_the_stored_run_in_a_browser(stored_faults: Path, visit: Any, tmp_path: Path) -> None:
    seen = visit(stored_faults / "report.html")
    screenshot(seen, tmp_path, "faults-stored-run")
    assert seen.errors == [] and seen.remote_requests() == []
    charts = {c["id"] for c in check_charts(seen)}
    assert {"chart-availability-crash", "chart-availability-hang", "chart-availability-shutdown", "chart-memory",
            "chart-slow"} <= charts
    header = seen.page.eval_on_selector_all("#matrix-table thead th", "ths => ths.map(t => t.textContent)")
    assert header == ["caution", "fault", *MODES]
    state = seen.page.eval_on_selector("#matrix-table", "t => Array.from(t.tBodies[0].rows).find(r => "
                                       "r.cells[1].textContent === 'state').innerText")
    assert "isolated" in state and "leaks (19/20)" in state
    # A newcomer's first questions are answered above the tables.
    assert "not offered" in seen.page.inner_text("#how-to-read") and "refused" in seen.page.inner_text("#how-to-read")
    check_sorting(seen, "#table-hang", 1)  # by requests lost
    assert "Not recorded" in seen.page.inner_text("#environment")  # the stored run predates it
    # Every fault of the matrix links to its own section.
    hrefs = seen.page.eval_on_selector_all("#matrix-table a", "as => as.map(a => a.getAttribute('href'))")
    assert all(seen.page.query_selector(href) is not None for href in hrefs) and len(hrefs) == 11


def test_a_real_faults_run_in_its_page_and_the_index(visit: Any, tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    runs_index.write_index(results)  # an index of ours: the run below rebuilds it
    out = results / "faults-real"
    done = subprocess.run([sys.executable, "-m", "scripts.faults", "--quick", "--modes", "prefork,waitress", "--faults",
                           "crash,recycle", "--out", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=240,
                          check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = records.load(out)
    crash = {r.mode: r for r in run.faults if r.fault == "crash"}
    # waitress is one process: os._exit ends the server, and every later request is refused.
    assert crash["waitress"].details["failures"]["refused"] > 0 and crash["waitress"].recovery_s is None
    assert crash["prefork"].details["new_processes"] >= 1  # the master forked a replacement
    recycle = {r.mode: r for r in run.faults if r.fault == "recycle"}
    assert recycle["waitress"].status == "not offered"
    assert recycle["prefork"].details["rps_without"][0] > 0 and recycle["prefork"].details["processes_started"][0] >= 1
    assert run.faults_meta["environment"]["python"] and run.faults_meta["quick"] is True

    seen = visit(out / "report.html")
    assert not (out / "faults.html").exists()  # one page per run, named as a bench run's
    screenshot(seen, tmp_path, "faults-real-run")
    assert seen.errors == [] and seen.remote_requests() == []
    assert {"chart-availability-crash", "chart-recycle"} <= {c["id"] for c in check_charts(seen)}
    crash_rows = seen.page.inner_text("#table-crash")
    assert "waitress" in crash_rows and "never recovers" in crash_rows
    assert "not offered" in seen.page.inner_text("#table-recycle")

    listed = visit(results / "index.html")
    assert listed.errors == []
    assert listed.page.get_attribute("table a", "href") == "faults-real/report.html"
    row = listed.page.inner_text("table tbody tr")
    assert "faults" in row and "2 faults x 2 modes, quick" in row
    assert "crash: " in row and "of 2 modes lose requests" in row
