"""report.html, compare.html and results/index.html opened in a real headless Chromium (see tests/scripts/browser.py).

Input: the stored run (``data/run-v1``, schema 1, migrated by the loader), and one real short bench run whose
cells carry wrk's latency distributions.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scripts.analysis import comparison
from scripts.render.web import compare_html, runs_index
from scripts.report import render_run
from tests.conftest import ROOT
from tests.scripts.browser import check_charts, check_sorting, screenshot

STORED = Path(__file__).parent / "data" / "run-v1"


@pytest.fixture(scope="module")
def stored_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stored run, rendered once for the module's tests, which only read it (the index test adds a folder
    beside it)."""
    target = tmp_path_factory.mktemp("stored") / "run-v1"
    shutil.copytree(STORED, target)
    (target / "summary.expected.md").unlink()
    render_run(target)
    return target


def test_report_of_the_stored_run_in_a_browser(stored_run: Path, visit: Any, tmp_path: Path) -> None:
    seen = visit(stored_run / "report.html")
    screenshot(seen, tmp_path, "report-stored-run")
    assert seen.errors == []
    assert seen.remote_requests() == []
    charts = {c["id"] for c in check_charts(seen)}
    assert {"chart-throughput", "chart-latency", "chart-concurrency-0", "chart-openloop", "chart-resources",
            "chart-strategies"} <= charts
    # Hovering prefork's plaintext/close bar shows its figure, interval, flags and the generator's CPU.
    bar = seen.page.locator("#chart-throughput .trace.bars").nth(1).locator(".point").nth(1)
    box = bar.bounding_box()
    assert box is not None
    # Plotly's drag layer lies over the bars and takes the events, as it does for a person's mouse.
    seen.page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    seen.page.wait_for_selector("#chart-throughput .hoverlayer .hovertext")
    # SVG text has no innerText; its lines are <tspan>s.
    label = seen.page.eval_on_selector("#chart-throughput .hoverlayer .hovertext",
                                       "g => Array.from(g.querySelectorAll('tspan.line')).map(t => t.textContent)"
                                       ".join('\\n')")
    assert "prefork" in label and "26,849 req/s" in label and "req/s 95% CI 20,605 to 33,092" in label
    assert "flags: generator-bound" in label and "generator wrk, 97% of its CPU" in label
    verdict = seen.page.inner_text("#verdict")
    assert "prefork leads with" in verdict and "uvicorn" in verdict and "95% CI" in verdict
    # Sort the plaintext table (several concurrency levels) by requests/s.
    check_sorting(seen, "#table-0", 2)
    assert "Flags explained" in seen.page.inner_text("body") and "generator-bound" in seen.page.inner_text("#flags")
    env = seen.page.inner_text("#environment")
    assert "3.11.7" in env and "kernel" in env


def test_throughput_chart_draws_the_scenario_tables_figures(stored_run: Path, visit: Any) -> None:
    seen = visit(stored_run / "report.html")
    traces = seen.page.evaluate("() => document.getElementById('chart-throughput').data.map("
                                "t => ({mode: t.name, x: Array.from(t.x), y: Array.from(t.y)}))")
    tables = seen.page.evaluate("""() => Object.fromEntries(Array.from(document.querySelectorAll(
        "table[data-scenario]")).map(t => [t.getAttribute("data-scenario"), Array.from(t.tBodies[0].rows).map(
        r => [r.cells[0].textContent, parseFloat(r.cells[2].getAttribute("data-sort"))])]))""")
    checked = 0
    for trace in traces:
        for scenario, y in zip(trace["x"], trace["y"], strict=True):
            assert [trace["mode"], y] in tables[scenario], (trace["mode"], scenario, y)
            checked += 1
    assert checked >= 8


def test_compare_page_in_a_browser(stored_run: Path, visit: Any, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(stored_run, other)
    result = comparison.compare(comparison.load_side(stored_run), comparison.load_side(other))
    page = compare_html.write(result, tmp_path / "compare.html")
    seen = visit(page)
    screenshot(seen, tmp_path, "compare-stored-run")
    assert seen.errors == [] and seen.remote_requests() == []
    assert {c["id"] for c in check_charts(seen)} == {"change-throughput", "change-p99"}
    check_sorting(seen, "#cells", 1)
    assert "within noise" in seen.page.inner_text("#cells")


def test_index_page_in_a_browser(stored_run: Path, visit: Any, tmp_path: Path) -> None:
    (stored_run.parent / "not-a-run").mkdir()
    page = runs_index.write_index(stored_run.parent)
    seen = visit(page)
    screenshot(seen, tmp_path, "index")
    assert seen.errors == [] and seen.remote_requests() == []
    assert seen.page.get_attribute("table a", "href") == "run-v1/report.html"
    text = seen.page.inner_text("table")
    assert "prefork" in text and "not-a-run" not in text


@pytest.mark.slow
def test_a_real_run_reports_latency_distributions(visit: Any, tmp_path: Path, wrk_exe: str) -> None:
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "scripts.bench", "--modes", "prefork,uvicorn", "--scenarios",
                             "plaintext,json", "--concurrency", "8", "--no-sweep", "--no-close", "--no-open-loop",
                             "--repeats", "2", "--duration", "1", "--warmup", "0.2", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    seen = visit(out / "report.html")
    screenshot(seen, tmp_path, "report-real-run")
    assert seen.errors == [] and seen.remote_requests() == []
    charts = {c["id"] for c in check_charts(seen)}
    assert {"chart-spectrum-0", "chart-spectrum-1"} <= charts
    spectrum = seen.page.evaluate("() => document.getElementById('chart-spectrum-0').data.map(t => t.name)")
    assert sorted(spectrum) == ["prefork", "uvicorn"]


def test_failed_cells_show_their_error_and_log_tail(tmp_path: Path, visit: Any) -> None:
    run = tmp_path / "run"
    shutil.copytree(STORED, run)
    cell = run / "cells" / "045-prefork-mixed-c32-r0.json"
    data = json.loads(cell.read_text())
    data.update(status="failed", error="StartError: server exited with code 3", throughput_rps=None,
                log_tail="Traceback (most recent call last):\n<b>not markup</b>: cannot bind")
    cell.write_text(json.dumps(data))
    render_run(run)
    seen = visit(run / "report.html")
    assert seen.errors == []
    failed = seen.page.inner_text("#failed")
    assert "prefork / mixed / 32 users" in failed and "server exited with code 3" in failed
    assert "<b>not markup</b>: cannot bind" in failed  # shown as text, not interpreted
    assert "1 figure(s) failed" in seen.page.inner_text("#verdict")
    assert "no mode produced a figure" in seen.page.inner_text("#verdict")


def test_a_tuned_run_shows_its_tune_in_report_html_and_summary(tmp_path: Path, visit: Any) -> None:
    from scripts.tuning.results import to_json
    from tests.scripts.test_tune_search import sample_run

    run = tmp_path / "run"
    shutil.copytree(STORED, run)
    tune = to_json(sample_run())
    tune["plan"]["out"] = "/results/tune-20261207-030000"
    (run / "tune.json").write_text(json.dumps(tune))  # as bench --tuned copies it
    summary = render_run(run).read_text()
    assert "## Tuned settings" in summary and "/results/tune-20261207-030000" in summary
    row = "| gunicorn-gthread | io | threads=8 workers=3 | 1,900 | `gunicorn apps.wsgi:app --threads 8 --workers 3` |"
    assert row in summary
    seen = visit(run / "report.html")
    print(screenshot(seen, tmp_path, "report-tuned"))
    assert seen.errors == [] and seen.remote_requests() == []
    assert seen.page.locator("nav.toc a[href='#tune']").count() == 1
    section = seen.page.locator("section#tune")
    assert section.locator("h2").first.inner_text() == "Tune: each mode's best setting on this machine"
    assert section.locator("figure.tune svg").count() == 2 and section.locator("h4").count() == 2  # a mode: h4
    assert "Winner: gunicorn-gthread" in section.inner_text()
    assert "ran at the best settings of the tune run /results/tune-20261207-030000" in section.inner_text()
    # The tune comes after the bench's own figures: its charts are not pushed down the page.
    order = seen.page.evaluate("() => Array.from(document.querySelectorAll('section[id]')).map(s => s.id)")
    assert order.index("charts") < order.index("checks") < order.index("tune") < order.index("plan")
