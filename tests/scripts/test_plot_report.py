"""Charts and Markdown summary built from synthetic cell records; no server or load generator involved."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from scripts import modes
from scripts.analysis import analysis
from scripts.common.formatting import format_rps, format_sig
from scripts.records.records import load_cells, references_from_json
from scripts.render import plot, plot_style, summary
from tests.scripts.figures import figure_from, run_of

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# The records come in this order, deliberately neither alphabetical nor the family order ...
MODES = ("prefork", "fork", "uvicorn")
# ... and are shown in this one: families (hand-written, WSGI, ASGI), registry order within a family.
SHOWN = ("fork", "prefork", "uvicorn")
SCENARIOS = ("plaintext", "json")
SWEEP = (32, 1, 8)  # out of order on purpose: tables and charts must sort levels numerically
LOG_TAIL = "Traceback (most recent call last):\nImportError: no module named 'nope'"


def ok_record(mode: str, scenario: str, users: int, rps: float, **overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "schema": 1,
        "mode": mode,
        "scenario": scenario,
        "concurrency": users,
        "workers": 2,
        "status": "ok",
        "error": None,
        "log_tail": "",
        "generator": "locust",
        "generator_cpu": 0.5,
        "duration_s": 10.0,
        "requests": int(rps * 10),
        "failures": 0,
        "throughput_rps": rps,
        "latency_ms": {"p50": 1.0, "p90": 2.0, "p99": 5.0, "p999": 9.0, "mean": 1.3, "max": 20.0},
        "resources": {
            "cpu_seconds": 3.2,
            "cpu_ms_per_request": 0.26,
            "requests_per_cpu_second": 3846.2,
            "rss_peak_mb": 80.14,
            "rss_mean_mb": 75.0,
            "memory_per_process_mb": 25.0,
            "processes_peak": 3,
        },
        "flags": [],
    }
    record.update(overrides)
    return record


def failed_record(mode: str, scenario: str, users: int) -> dict[str, Any]:
    return {
        "schema": 1,
        "mode": mode,
        "scenario": scenario,
        "concurrency": users,
        "workers": 2,
        "status": "failed",
        "error": "StartError: server exited with code 1",
        "log_tail": LOG_TAIL,
        "generator": "locust",
        "duration_s": 10.0,
        "throughput_rps": None,
        "latency_ms": None,
        "resources": None,
    }


@pytest.fixture
def records() -> list[dict[str, Any]]:
    """plaintext swept over three levels for every mode; json at 32 users with uvicorn failing."""
    cells: list[dict[str, Any]] = []
    for users in SWEEP:
        for rank, mode in enumerate(MODES):
            cells.append(ok_record(mode, "plaintext", users, 1000.0 * (rank + 1) + users))
    cells.append(
        ok_record(
            "prefork", "json", 32, 12345.4, requests=123454, failures=3,
            latency_ms={"p50": 1.234, "p90": 12.34, "p99": 123.4},
        )
    )  # fmt: skip
    cells.append(ok_record("fork", "json", 32, 56.78, resources=None))
    cells.append(failed_record("uvicorn", "json", 32))
    return cells


def heights_of(ax: Axes) -> list[float]:
    return [p.get_height() for p in ax.patches if isinstance(p, Rectangle)]


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])  # the IHDR chunk always comes first
    return width, height


def table_rows(markdown: str, scenario: str) -> list[list[str]]:
    """The body rows of ``scenario``'s table, split into stripped cells."""
    section = markdown.split(f"## {scenario}\n", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")][2:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


# charts ---------------------------------------------------------------------


def test_write_charts_writes_three_readable_pngs(records: list[dict[str, Any]], tmp_path: Path) -> None:
    written = plot.write_charts(run_of(records), tmp_path / "run")

    names = ["throughput.png", "latency.png", "concurrency.png", "resources.png"]
    assert written == [tmp_path / "run" / name for name in names]
    for path in written:
        width, height = png_size(path)
        assert width >= 400 and height >= 200
        assert path.stat().st_size > 10_000
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == sorted(names), "temporary files left behind"


def test_no_concurrency_chart_when_every_scenario_has_one_level(records: list[dict[str, Any]], tmp_path: Path) -> None:
    single = [r for r in records if r["concurrency"] == 32]

    assert plot.concurrency_figure(run_of(single)) is None
    written = plot.write_charts(run_of(single), tmp_path)
    assert [p.name for p in written] == ["throughput.png", "latency.png", "resources.png"]
    assert not (tmp_path / "concurrency.png").exists()


def test_write_charts_with_nothing_to_plot(tmp_path: Path) -> None:
    assert plot.write_charts(run_of([]), tmp_path) == []
    assert list(tmp_path.iterdir()) == []


def test_write_charts_with_only_failed_cells(tmp_path: Path) -> None:
    failed = [failed_record(mode, "db", users) for mode in MODES for users in (1, 32)]

    written = plot.write_charts(run_of(failed), tmp_path)

    assert [p.name for p in written] == ["throughput.png", "latency.png", "concurrency.png"]
    for path in written:
        png_size(path)


@pytest.mark.parametrize(
    ("levels_by_mode", "expected"),
    [
        ({"a": [1, 8, 32], "b": [1, 8, 32]}, 32),  # a tie goes to the largest level
        ({"a": [8, 32], "b": [8], "c": [8]}, 8),  # the level most modes share wins
        ({"a": [4]}, 4),
    ],
)
def test_primary_concurrency(levels_by_mode: dict[str, list[int]], expected: int) -> None:
    cells = [ok_record(mode, "s", users, 1.0) for mode, levels in levels_by_mode.items() for users in levels]

    assert analysis.main_concurrency([figure_from(c) for c in cells], "s") == expected
    assert analysis.main_concurrency([figure_from(c) for c in cells], "other") is None


def test_throughput_figure_shows_primary_level_values_and_failures(records: list[dict[str, Any]]) -> None:
    figure = plot.throughput_figure(run_of(records))

    plaintext, json_ax = figure.axes
    assert plaintext.get_title() == "plaintext\nThroughput (requests/s) at 32 users"
    assert [t.get_text() for t in plaintext.get_xticklabels()] == list(SHOWN)
    assert heights_of(plaintext) == [2032.0, 1032.0, 3032.0]
    json_texts = [t.get_text() for t in json_ax.texts]
    assert "12,345" in json_texts and "56.8" in json_texts
    assert "failed" in json_texts


def test_latency_figure_groups_percentiles_per_mode(records: list[dict[str, Any]]) -> None:
    figure = plot.latency_figure(run_of(records))

    json_ax = figure.axes[1]
    assert json_ax.get_ylabel() == "latency (ms, log scale)"  # 1 to 123 ms: the top is over ten times the median
    heights = sorted(heights_of(json_ax))
    assert heights == [0.0, 0.0, 0.0, 1.0, 1.234, 2.0, 5.0, 12.34, 123.4]
    assert [t.get_text() for t in figure.legends[0].get_texts()] == ["p50", "p90", "p99"]
    assert "failed" in [t.get_text() for t in json_ax.texts]


def test_concurrency_figure_plots_swept_scenarios_only(records: list[dict[str, Any]]) -> None:
    figure = plot.concurrency_figure(run_of(records))

    assert isinstance(figure, Figure)
    ax, p99 = figure.axes  # throughput, then p99, for the one swept scenario
    assert ax.get_title().startswith("plaintext: throughput")
    assert p99.get_title().startswith("plaintext: p99")
    lines = [line for line in ax.get_lines() if line.get_label() in MODES]
    assert [line.get_label() for line in lines] == list(SHOWN)
    assert np.asarray(lines[0].get_xdata()).tolist() == [1, 8, 32]
    assert np.asarray(lines[0].get_ydata()).tolist() == [2001.0, 2008.0, 2032.0]
    assert np.asarray(p99.get_lines()[0].get_ydata()).tolist() == [5.0, 5.0, 5.0]


def test_a_mode_has_the_same_colour_in_every_figure(records: list[dict[str, Any]]) -> None:
    bars = plot.throughput_figure(run_of(records)).axes[0].patches
    latency_bars = plot.latency_figure(run_of(records)).axes[0].patches
    figure = plot.concurrency_figure(run_of(records))
    assert figure is not None
    lines = {line.get_label(): line for line in figure.axes[0].get_lines()}

    colours = plot_style.mode_colors(list(MODES))
    assert len(set(colours.values())) == len(MODES)
    for position, mode in enumerate(SHOWN):
        expected = to_hex(colours[mode])
        assert to_hex(bars[position].get_facecolor()) == expected
        assert to_hex(latency_bars[position].get_facecolor()) == expected
        assert to_hex(lines[mode].get_color()) == expected


def test_figures_for_no_records_do_not_fail() -> None:
    assert isinstance(plot.throughput_figure(run_of([])), Figure)
    assert isinstance(plot.latency_figure(run_of([])), Figure)
    assert plot.concurrency_figure(run_of([])) is None


# summary --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(12345.4, "12,345"), (100.0, "100"), (99.96, "100"), (56.78, "56.8"), (0, "0.0"), (None, "\u2014")],
)
def test_format_rps(value: float | None, expected: str) -> None:
    assert format_rps(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(1.0, "1"), (3.0, "3"), (1.234, "1.23"), (12.34, "12.3"), (123.4, "123"), (1234.5, "1,234"), (0.0456, "0.0456"),
     (9.996, "10.0"), (0, "0"), (float("nan"), "\u2014"), (True, "\u2014")],
)  # fmt: skip
def test_format_sig(value: float, expected: str) -> None:
    assert format_sig(value) == expected


def test_summary_tables(records: list[dict[str, Any]]) -> None:
    markdown = summary.summary_markdown(run_of(records))

    assert markdown.startswith("# workerbench results\n")
    assert markdown.index("## plaintext") < markdown.index("## json")
    header = ("| mode | users | req/s | 95% CI | p50 ms | p99 ms | errors | CPU ms/req | req/CPU-s | memory MB | "
              "MB/process | generator | flags |")
    assert markdown.count(header) == 2
    plaintext = table_rows(markdown, "plaintext")
    assert [(row[0], row[1]) for row in plaintext] == [(mode, str(users)) for mode in SHOWN for users in (1, 8, 32)]
    gen = "locust (50% CPU)"
    assert plaintext[3] == ["prefork", "1", "1,001", "\u2014", "1", "5", "0/10,010", "0.260", "3,846", "75.0", "25.0",
                            gen, "\u2014"]
    assert table_rows(markdown, "json") == [
        # Measured, but without the server's CPU and memory (as against a --target without a status source).
        ["fork", "32", "56.8", "\u2014", "1", "5", "0/567"] + ["not measured"] * 4 + [gen, "\u2014"],
        ["prefork", "32", "12,345", "\u2014", "1.23", "123", "3/123,454 (0.0024%)", "0.260", "3,846", "75.0", "25.0",
         gen, "\u2014"],
        ["uvicorn", "32"] + ["\u2014"] * 9 + ["locust", "failed"],
    ]


def test_interval_and_flags_are_shown(records: list[dict[str, Any]]) -> None:
    flagged = ok_record("uvicorn", "plaintext", 32, 4000.0) | {
        "throughput_ci95": [3900.0, 4100.0], "flags": ["generator-bound"], "generator_cpu": 0.97}
    markdown = summary.summary_markdown(run_of([flagged]))
    row = table_rows(markdown, "plaintext")[0]
    assert row[3] == "3,900 to 4,100"
    assert row[-2:] == ["locust (97% CPU)", "generator-bound"]
    assert "**generator-bound**: the load generator used more than 85% of its CPUs" in markdown


def test_summary_lists_failed_cells_with_their_log(records: list[dict[str, Any]]) -> None:
    markdown = summary.summary_markdown(run_of(records))

    failures = markdown.split("## Failed cells\n", 1)[1]
    assert "### uvicorn / json / 32 users" in failures
    assert "StartError: server exited with code 1" in failures
    assert f"```text\n{LOG_TAIL}\n```" in failures
    assert "prefork /" not in failures


def test_summary_without_failures_has_no_failed_section(records: list[dict[str, Any]]) -> None:
    markdown = summary.summary_markdown(run_of([r for r in records if r["status"] == "ok"]))

    assert "## Failed cells" not in markdown
    assert "11 figures: 11 ok, 0 failed." in markdown


def test_log_tail_cannot_close_its_fence_early() -> None:
    record = failed_record("fork", "db", 1) | {"log_tail": "before\n```\nafter"}

    markdown = summary.summary_markdown(run_of([record]))

    assert "````text\nbefore\n```\nafter\n````" in markdown


def test_summary_plan_and_charts(records: list[dict[str, Any]]) -> None:
    plan = {"workers": 2, "extra": "yes", "modes": list(MODES), "duration_s": 10.0, "sweep_levels": (1, 8, 32)}

    markdown = summary.summary_markdown(run_of(records, plan=plan), charts=["throughput.png", "my chart.png"])

    run = markdown.split("## Run\n", 1)[1].split("\n## ", 1)[0]
    bullets = [line for line in run.splitlines() if line.startswith("- ")]
    assert bullets == [
        "- modes: prefork, fork, uvicorn",
        "- duration_s: 10.0",
        "- workers: 2",
        "- extra: yes",
        "- sweep_levels: 1, 8, 32",
    ]
    charts = markdown.split("## Charts\n", 1)[1]
    assert "![throughput.png](throughput.png)" in charts
    assert "![my chart.png](my%20chart.png)" in charts
    assert markdown.endswith("\n") and not markdown.endswith("\n\n")


def test_summary_of_no_records() -> None:
    markdown = summary.summary_markdown(run_of([]))

    assert markdown.startswith("# workerbench results\n")
    assert "No cells were recorded." in markdown
    assert "## Failed cells" not in markdown and "|" not in markdown


def test_write_summary_replaces_the_file_atomically(records: list[dict[str, Any]], tmp_path: Path) -> None:
    (tmp_path / "summary.md").write_text("stale")

    path = summary.write_summary(run_of(records), tmp_path, charts=["throughput.png"])

    assert path == tmp_path / "summary.md"
    assert path.read_text(encoding="utf-8") == summary.summary_markdown(run_of(records), charts=["throughput.png"])
    assert [p.name for p in tmp_path.iterdir()] == ["summary.md"]


def test_load_records_orders_by_index_and_skips_corrupt_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cells = tmp_path / "cells"
    cells.mkdir()
    contents: dict[str, dict[str, Any]] = {
        "a.json": {"index": 2, "mode": "a"},
        "b.json": {"index": 0, "mode": "b"},
        "d.json": {"mode": "d"},  # no index: after every indexed record, by file name
        "c.json": {"mode": "c"},
        "e.json": {"index": 1, "mode": "e"},
    }
    for name, record in contents.items():
        (cells / name).write_text(json.dumps({"schema": 2, "scenario": "s", "status": "ok", **record}))
    (cells / "broken.json").write_text('{"index": 3, "mode": ')
    (cells / "list.json").write_text("[1, 2]")
    (cells / "notes.txt").write_text("not a record")

    loaded = load_cells(tmp_path)

    assert [r.mode for r in loaded] == ["b", "e", "a", "c", "d"]
    err = capsys.readouterr().err
    assert "broken.json" in err and "list.json" in err


def test_load_records_without_cells_folder(tmp_path: Path) -> None:
    assert load_cells(tmp_path) == []


# eleven modes -------------------------------------------------------------------


def test_colours_follow_family_and_place_whichever_modes_a_run_measured() -> None:
    everything = plot_style.mode_colors(list(modes.MODES))
    assert len(set(everything.values())) == len(modes.MODES)
    subset = ["hypercorn", "prefork", "granian-wsgi"]
    assert plot_style.mode_colors(subset) == {mode: everything[mode] for mode in subset}
    toys = plot_style.mode_colors(["toy-a", "toy-b"])
    assert len(set(toys.values())) == 2 and not set(toys.values()) & set(everything.values())


def test_modes_are_shown_by_family_whatever_order_they_were_measured_in() -> None:
    measured = ["hypercorn", "prefork", "waitress", "uvicorn", "fork", "toy"]
    records = [ok_record(mode, "plaintext", users, 100.0 + rank) for rank, mode in enumerate(measured)
               for users in (8, 32)]
    run = run_of(records)
    shown = ["fork", "prefork", "waitress", "uvicorn", "hypercorn", "toy"]
    assert run.modes == shown
    ax = plot.throughput_figure(run).axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == shown
    ticks = list(ax.get_xticks())
    assert ticks[2] - ticks[1] > 1 and ticks[3] - ticks[2] > 1 and ticks[1] - ticks[0] == 1  # gaps between families
    assert {"hand-written", "WSGI servers", "ASGI servers", "other"} <= {t.get_text() for t in ax.texts}
    figure = plot.concurrency_figure(run)
    assert figure is not None
    legend = figure.legends[0]
    headers = [t.get_text() for t in legend.get_texts() if t.get_fontweight() == "bold"]
    assert headers == ["hand-written", "WSGI servers", "ASGI servers", "other"]
    markers = {line.get_label(): line.get_marker() for line in figure.axes[0].get_lines()}
    assert markers["fork"] == markers["prefork"] != markers["waitress"] != markers["uvicorn"]


def test_a_latency_panel_spanning_orders_of_magnitude_goes_log_scale() -> None:
    slow = ok_record("cgi", "plaintext", 32, 2.0, latency_ms={"p50": 6000.0, "p90": 6500.0, "p99": 7000.0})
    fast = [ok_record(mode, "plaintext", 32, 10000.0) for mode in ("prefork", "uvicorn", "waitress")]
    assert plot.latency_figure(run_of([slow, *fast])).axes[0].get_yscale() == "log"
    assert plot.latency_figure(run_of(fast)).axes[0].get_yscale() == "linear"


def test_many_modes_wrap_bar_charts_into_fewer_columns() -> None:
    records = [ok_record(mode, scenario, 32, 1000.0) for mode in modes.MODES for scenario in SCENARIOS * 2]
    records += [ok_record(mode, f"s{i}", 32, 1000.0) for mode in modes.MODES for i in range(4)]
    figure = plot.throughput_figure(run_of(records))
    assert figure.get_figwidth() <= plot_style.MAX_WIDTH_IN
    assert len(figure.axes) == 6


def test_a_failed_sweep_point_is_marked_without_breaking_the_log_scale_panel() -> None:
    records = [ok_record(mode, "plaintext", users, 1000.0) for mode in ("prefork", "uvicorn") for users in (1, 8)]
    records += [failed_record("prefork", "plaintext", 128), ok_record("uvicorn", "plaintext", 128, 900.0)]
    figure = plot.concurrency_figure(run_of(records))
    assert figure is not None
    figure.savefig(io.BytesIO(), format="png")  # once, the marker at y=0 on the log axis collapsed the layout
    assert figure.axes[1].get_yscale() == "log"


def test_the_fork_rates_are_named_in_the_new_connection_panels_title() -> None:
    records = [ok_record(mode, scenario, 32, 900.0) for mode in ("fork", "prefork") for scenario in
               ("plaintext", "plaintext/close")]
    run = run_of(records, references=references_from_json({"fork": {"rate": 800.0},
                                                            "fork_loop": {"rate": 450.0, "connections": 32}}))
    figure = plot.throughput_with_references(run)
    keepalive, close = figure.axes
    assert close.get_title().endswith("dashed: fork()+exit+wait 800/s\ndotted: minimal fork loop 450/s")
    # One reference a line: side by side they ran over the neighbouring panel's title.
    figure.savefig(io.BytesIO(), format="png")  # lays the titles out
    renderer = figure._get_renderer()  # type: ignore[attr-defined]
    assert not keepalive.title.get_window_extent(renderer).overlaps(close.title.get_window_extent(renderer))
    assert "fork()" not in keepalive.get_title()
    assert len([line for line in close.get_lines() if line.get_linestyle() in ("--", ":")]) == 2


def test_the_throughput_axis_reaches_the_tops_of_the_intervals_within_reason() -> None:
    # A wide interval (two of three repeats agreeing, one far off) must neither run out of the panel unmarked
    # nor flatten the other bars: the axis rises to twice the tallest bar at most, and a cut interval is marked.
    steady = ok_record("prefork", "plaintext", 32, 1000.0, throughput_ci95=[950.0, 1050.0], repeats=3)
    wide = ok_record("uvicorn", "plaintext", 32, 900.0, throughput_ci95=[600.0, 1600.0], repeats=3)
    wild = ok_record("waitress", "plaintext", 32, 500.0, throughput_ci95=[100.0, 9000.0], repeats=3)
    ax = plot.throughput_figure(run_of([steady, wide])).axes[0]
    assert ax.get_ylim()[1] >= 1600.0
    assert not [t for t in ax.texts if t.get_text().startswith("95% CI to")]
    ax = plot.throughput_figure(run_of([steady, wide, wild])).axes[0]
    assert ax.get_ylim()[1] == pytest.approx(1000.0 * plot_style.MAX_INTERVAL_AXIS)
    marks = [t.get_text() for t in ax.texts if t.get_text().startswith("95% CI to")]
    assert marks == ["95% CI to " + format_rps(9000.0)]
