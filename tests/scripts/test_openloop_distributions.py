"""The open-loop ladder's latency distributions: kept per step in OpenLoopRecord, drawn in report.html.

Input: hand-made records (round trip, the chart's data), the stored run ``data/run-v1`` (written before the
histograms), and one real short bench run whose ladder climbs 50 and 200 req/s against prefork and uvicorn, opened
in a real headless Chromium (tests/scripts/browser.py).
"""

from __future__ import annotations

import dataclasses
import json
import random
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scripts.analysis.analysis import analyse, analyse_figures
from scripts.load.generators.native import histogram_ms
from scripts.load.histogram import Histogram
from scripts.records import distribution, records
from scripts.records.records import OpenLoopRecord, RecordError, openloop_from_json, to_json
from scripts.render import plot
from scripts.render.web import charts
from scripts.report import render_run
from tests.conftest import ROOT
from tests.scripts.browser import check_charts, screenshot

STORED = Path(__file__).parent / "data" / "run-v1"


def step(mode: str, rate: float, histogram: dict[float, int], kept_up: bool = True) -> OpenLoopRecord:
    count = sum(histogram.values())
    return OpenLoopRecord(mode=mode, status="ok", offered_rate=rate, achieved_rate=rate, sent=count, completed=count,
                          ok_count=count, errors={"timeout": 0, "status": 0}, latency_ms={"p50": min(histogram)},
                          generator_kept_up=kept_up, latency_histogram=histogram)


STEPS = (step("prefork", 50.0, {0.4: 90, 0.9: 9, 4.2: 1}),
         step("prefork", 200.0, {0.5: 300, 2.0: 80, 40.0: 19, 180.5: 1}),
         step("uvicorn", 200.0, {0.3: 399, 1.1: 1}, kept_up=False))


def test_a_step_keeps_its_histogram_through_the_round_trip() -> None:
    for record in STEPS:
        on_disk = json.loads(json.dumps(to_json(record)))
        assert on_disk["latency_histogram"] == [[ms, n] for ms, n in sorted(record.latency_histogram.items())]
        assert openloop_from_json(on_disk) == record


def test_a_compacted_histogram_keeps_count_and_spectrum_in_few_pairs() -> None:
    rng = random.Random(13)
    engine = Histogram()
    for _ in range(6400):  # 3,200 req/s for 2 s, the default ladder's top step: a 20 ms sleep and a queue's tail
        engine.record_seconds(0.020 + rng.expovariate(1 / 0.004) + (rng.random() < 0.02) * rng.uniform(0.1, 2.0))
    full = distribution.of_generator(histogram_ms(engine))
    small = distribution.compact(full)
    assert sum(small.values()) == sum(full.values()) == 6400
    assert distribution.spectrum(small) == distribution.spectrum(full)
    assert len(small) <= len(distribution.spectrum(full)) < len(full) / 10


def test_a_step_written_before_histograms_loads_without_one() -> None:
    old = to_json(STEPS[0])
    del old["latency_histogram"]
    assert openloop_from_json(old) == dataclasses.replace(STEPS[0], latency_histogram={})


def test_a_histogram_that_cannot_be_read_is_refused_with_the_reason() -> None:
    bad = {**to_json(STEPS[0]), "latency_histogram": [[0.4, "many"]]}
    with pytest.raises(RecordError, match="latency_histogram"):
        openloop_from_json(bad)


def test_the_stored_run_still_loads_and_renders_without_open_loop_spectra(tmp_path: Path) -> None:
    run = tmp_path / "run-v1"
    shutil.copytree(STORED, run)
    loaded = records.load(run)
    assert loaded.openloop and all(p.latency_histogram == {} for p in loaded.openloop)
    assert charts.openloop_spectra(analyse(loaded)) == []
    render_run(run)
    page = (run / "report.html").read_text()
    assert "chart-openloop-spectrum" not in page and 'id="chart-openloop"' in page


def test_the_chart_draws_each_steps_spectrum_one_line_per_rate() -> None:
    spectra = dict(charts.openloop_spectra(analyse_figures([], openloop=STEPS)))
    assert list(spectra) == ["prefork", "uvicorn"]
    for mode, fig in spectra.items():
        mine = [p for p in STEPS if p.mode == mode]
        assert [t.name for t in fig.data] == [f"{p.offered_rate:g} req/s" for p in mine]
        for trace, p in zip(fig.data, mine, strict=True):
            count = sum(p.latency_histogram.values())
            points = distribution.spectrum(p.latency_histogram)
            assert list(trace.y) == [ms for _, ms in points]
            assert list(trace.x) == [distribution.spectrum_x(level, count) for level, _ in points]
            assert trace.line.dash == (None if p.generator_kept_up else "dot")
            assert f"offered {p.offered_rate:g} req/s" in trace.customdata[0][0]
    # One latency scale for every mode, spanning every step's fastest and slowest answer.
    ranges = {tuple(fig.layout.yaxis.range) for fig in spectra.values()}
    assert len(ranges) == 1
    low, high = ranges.pop()
    assert 10**low < 0.3 and 10**high > 180.5


def test_the_png_draws_the_same_spectra() -> None:
    figure = plot.openloop_spectra_figure(analyse_figures([], openloop=STEPS))
    assert figure is not None
    for ax, mode in zip(figure.axes, ("prefork", "uvicorn"), strict=True):
        mine = [p for p in STEPS if p.mode == mode]
        assert [line.get_label() for line in ax.get_lines()] == [f"{p.offered_rate:g}/s" for p in mine]
        for line, p in zip(ax.get_lines(), mine, strict=True):
            assert list(line.get_ydata()) == [ms for _, ms in distribution.spectrum(p.latency_histogram)]
    assert plot.openloop_spectra_figure(analyse_figures([])) is None


@pytest.mark.slow
def test_a_real_runs_ladder_distributions_in_a_browser(visit: Any, tmp_path: Path, wrk_exe: str) -> None:
    out = tmp_path / "run"
    result = subprocess.run([sys.executable, "-m", "scripts.bench", "--modes", "prefork,uvicorn", "--scenarios", "io",
                             "--no-sweep", "--no-close", "--repeats", "1", "--duration", "1", "--warmup", "0.2",
                             "--open-loop-rates", "50,200", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    steps = [p for p in records.load(out).openloop if p.ok]
    assert {(p.mode, p.offered_rate) for p in steps} == {(m, r) for m in ("prefork", "uvicorn") for r in (50.0, 200.0)}
    for p in steps:
        # Every completed request, timed from its intended send: the percentiles the ladder reports read back.
        assert sum(p.latency_histogram.values()) == p.completed
        spectrum = dict(distribution.spectrum(p.latency_histogram))
        for key, level in (("p50", 50.0), ("p99", 99.0)):
            assert spectrum[level] == pytest.approx(p.latency_ms[key], rel=2e-3)
    seen = visit(out / "report.html")
    assert seen.errors == [] and seen.remote_requests() == []
    charts = {c["id"]: c for c in check_charts(seen)}
    for i, mode in enumerate(("prefork", "uvicorn")):
        chart = charts[f"chart-openloop-spectrum-{i}"]
        assert [t["name"] for t in chart["traces"]] == [f"{mode} 50 req/s", f"{mode} 200 req/s"]
        for trace, p in zip(chart["traces"], sorted((p for p in steps if p.mode == mode),
                                                    key=lambda p: p.offered_rate or 0.0), strict=True):
            assert trace["y"] == pytest.approx([ms for _, ms in distribution.spectrum(p.latency_histogram)])
    seen.page.locator("#openloop-distributions").scroll_into_view_if_needed()
    # force: plotly's drag layer lies over the points and takes the mouse, then shows the nearest point.
    seen.page.locator("#chart-openloop-spectrum-0 .trace .point").last.hover(force=True)
    hovered = seen.page.wait_for_selector("#chart-openloop-spectrum-0 .hoverlayer .hovertext").text_content()
    assert "prefork" in hovered and "offered 200 req/s" in hovered and "max (the slowest)" in hovered, hovered
    screenshot(seen, tmp_path, "report-openloop-spectra")
