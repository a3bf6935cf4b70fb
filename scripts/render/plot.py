"""Charts of a workerbench run: throughput, latency percentiles, and throughput against concurrency.

The ``*new_figure`` functions are pure: an analysed run (:class:`scripts.analysis.analysis.AnalysedRun`) in, a
:class:`matplotlib.figure.Figure` out; what a figure shows (the main concurrency, knees, strategy pairs,
reference lines) comes computed. They build figures directly instead of through pyplot, so there is no global
figure registry to leak into and no interactive backend to pick; saving uses the Agg renderer. Only
:func:`write_charts` touches the filesystem.

Scenarios (subplots) come in plan order; modes (bars, lines, legends) in family order (hand-written, WSGI servers,
ASGI servers), registry order within a family, whatever order the run measured them in. A mode's colour follows from
its family and its place in that family, so it is the same in every figure and every run.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from matplotlib import colormaps
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullLocator

from scripts.analysis.analysis import FAMILY_LABELS, AnalysedRun, by_family, family_of
from scripts.analysis.stats import FoldedCell
from scripts.common.files import write_atomic
from scripts.common.formatting import format_rps
from scripts.records import distribution
from scripts.records.distribution import SPECTRUM_TICKS, spectrum_label
from scripts.records.records import Flag, OpenLoopRecord
from scripts.render.plot_style import (
    DPI,
    DRAWN_PERCENTILES,
    LEGEND_ENTRY_WIDTH_IN,
    LEGEND_ROW_IN,
    LOG_LATENCY_RANGE,
    MAX_INTERVAL_AXIS,
    MAX_WIDTH_IN,
    NOTE_COLOR,
    PERCENTILE_ALPHA,
    at_level,
    bar_panel_width,
    bar_positions,
    empty_figure,
    finish_value_axis,
    gap_label,
    latency_of,
    mode_marker,
    mode_ticks,
    new_figure,
    note_gap,
    rps_axis_formatter,
    run_colors,
    throughput_of,
)

# throughput -----------------------------------------------------------------


def _throughput_panel(ax: Axes, run: AnalysedRun, scenario: str) -> None:
    level = run.main_concurrency.get(scenario)
    modes = run.modes_in(scenario)
    cells = [run.figure(mode, scenario, level) for mode in modes]
    values = [throughput_of(cell) for cell in cells]
    bound = [_generator_bound(cell) for cell in cells]
    xs = bar_positions(modes)
    bars = ax.bar(xs, [v or 0.0 for v in values], color=[run_colors(run)[m] for m in modes], width=0.7,
                  hatch=["xx" if b else "" for b in bound], edgecolor=["black" if b else "none" for b in bound])
    low, high = _ci_errors(cells, values)
    ax.errorbar(xs, [v or 0.0 for v in values], yerr=[low, high], fmt="none", ecolor="black",
                capsize=3, linewidth=0.8)
    ax.bar_label(bars, labels=["" if v is None else format_rps(v) + ("\ngenerator-bound" if b else "")
                               for v, b in zip(values, bound, strict=True)], padding=2, fontsize=7)
    for x, cell, value in zip(xs, cells, values, strict=True):
        if value is None:
            note_gap(ax, x, gap_label(cell))
    ax.set_title(f"{scenario}\nThroughput (requests/s){at_level(level)}", fontsize=10)
    mode_ticks(ax, modes, xs)
    ax.yaxis.set_major_formatter(FuncFormatter(rps_axis_formatter))
    # Room over the tallest bar for its label and, above that, the family names.
    finish_value_axis(ax, values, headroom=1.3)
    _fit_intervals(ax, xs, values, high)


def _fit_intervals(ax: Axes, xs: Sequence[float], values: Sequence[float | None], high: Sequence[float]) -> None:
    """Raise the axis to the top of the 95% intervals, but not past twice the tallest bar: one wide interval (a noisy
    cell of few repeats) would flatten every bar. An interval cut at the top is marked, with where it ends."""
    measured = [v for v in values if v is not None]
    if not measured:
        return
    tops = [(v or 0.0) + h for v, h in zip(values, high, strict=True)]
    bottom, top = ax.get_ylim()
    limit = max(measured) * MAX_INTERVAL_AXIS
    wanted = min(limit, max(tops) * 1.08)
    if wanted > top:
        ax.set_ylim(bottom, wanted)
        top = wanted
    for x, reach in zip(xs, tops, strict=True):
        if reach > top:
            ax.annotate(f"95% CI to {format_rps(reach)}", (x, top), xytext=(3, -16), textcoords="offset points",
                        ha="left", va="top", fontsize=6, rotation=90, clip_on=False)
            ax.plot([x], [top], marker="^", color="black", markersize=4, clip_on=False)


def _generator_bound(figure: FoldedCell | None) -> bool:
    return figure is not None and Flag.GENERATOR_BOUND in figure.flags


def _ci_errors(cells: Sequence[FoldedCell | None], values: Sequence[float | None]) -> tuple[list[float], list[float]]:
    """Error-bar lengths below and above each bar from the cells' 95% intervals (0 where there is none)."""
    low, high = [], []
    for cell, value in zip(cells, values, strict=True):
        ci = cell.throughput_ci95 if cell is not None else None
        if value is None or ci is None:
            low.append(0.0)
            high.append(0.0)
            continue
        low.append(max(0.0, value - max(0.0, float(ci[0]))))
        high.append(max(0.0, float(ci[1]) - value))
    return low, high


def throughput_figure(run: AnalysedRun) -> Figure:
    """One bar chart per scenario: requests/s of each mode at the scenario's primary concurrency.

    Error bars are the 95% intervals of repeated runs; a cross-hatched bar is generator-bound.
    """
    if not run.scenarios:
        return empty_figure("no cells to plot")
    width = bar_panel_width(max(len(run.modes_in(s)) for s in run.scenarios), per_mode=0.65)
    figure, axes = new_figure(len(run.scenarios), (width, 3.8))
    for ax, scenario in zip(axes, run.scenarios, strict=True):
        _throughput_panel(ax, run, scenario)
    return figure


# latency --------------------------------------------------------------------


def _latency_panel(ax: Axes, run: AnalysedRun, scenario: str) -> None:
    level = run.main_concurrency.get(scenario)
    modes = run.modes_in(scenario)
    cells = [run.figure(mode, scenario, level) for mode in modes]
    colors = [run_colors(run)[m] for m in modes]
    width = 0.8 / len(DRAWN_PERCENTILES)
    xs = bar_positions(modes)
    measured: list[float | None] = []
    for offset, percentile in enumerate(DRAWN_PERCENTILES):
        values = [latency_of(cell, percentile) for cell in cells]
        measured += values
        positions = [x + (offset - (len(DRAWN_PERCENTILES) - 1) / 2) * width for x in xs]
        ax.bar(
            positions,
            [v or 0.0 for v in values],
            width,
            color=colors,
            alpha=PERCENTILE_ALPHA[percentile],
            edgecolor=colors,
            linewidth=0.8,
        )
    for x, cell in zip(xs, cells, strict=True):
        if all(latency_of(cell, p) is None for p in DRAWN_PERCENTILES):
            note_gap(ax, x, gap_label(cell))
    ax.set_title(f"{scenario}\nLatency{at_level(level)}", fontsize=10)
    mode_ticks(ax, modes, xs)
    positive = sorted(v for v in measured if v is not None and v > 0)
    if positive and positive[-1] > LOG_LATENCY_RANGE * positive[len(positive) // 2]:
        # One mode far slower than the rest (fork's hundreds of ms, cgi's seconds) would flatten every other bar.
        ax.set_yscale("log")
        ax.set_ylabel("latency (ms, log scale)")
        ax.set_ylim(positive[0] / 2, positive[-1] * 4)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        return
    ax.set_ylabel("latency (ms)")
    finish_value_axis(ax, measured, headroom=1.15 if len({family_of(m) for m in modes}) > 1 else 1.05)


def _percentile_legend(figure: Figure) -> None:
    # Neutral grey: the legend explains the shading, while the x labels already name the modes.
    handles = [
        Patch(facecolor="#555555", edgecolor="#555555", alpha=PERCENTILE_ALPHA[p], label=p) for p in DRAWN_PERCENTILES
    ]
    figure.legend(handles=handles, loc="outside upper center", ncols=len(DRAWN_PERCENTILES), frameon=False)


def latency_figure(run: AnalysedRun) -> Figure:
    """One grouped bar chart per scenario: p50, p90 and p99 of each mode at the scenario's primary concurrency."""
    if not run.scenarios:
        return empty_figure("no cells to plot")
    width = bar_panel_width(max(len(run.modes_in(s)) for s in run.scenarios), per_mode=0.72)
    figure, axes = new_figure(len(run.scenarios), (width, 3.8))
    for ax, scenario in zip(axes, run.scenarios, strict=True):
        _latency_panel(ax, run, scenario)
    _percentile_legend(figure)
    return figure


# concurrency ----------------------------------------------------------------


def _concurrency_panel(ax: Axes, run: AnalysedRun, scenario: str, metric: str = "throughput") -> bool:
    """Draw one sweep; True when it contains a failed cell, which the figure legend then explains."""
    levels = run.levels(scenario)
    any_failed = False
    measured: list[float | None] = []
    for mode in run.modes_in(scenario):
        cells = [run.figure(mode, scenario, level) for level in levels]
        # NaN leaves a gap in the line where a level is missing or failed, instead of joining across it.
        values = [throughput_of(cell) if metric == "throughput" else latency_of(cell, "p99") for cell in cells]
        measured += values
        ax.plot(
            levels, [math.nan if v is None else v for v in values], marker=mode_marker(mode), markersize=5,
            color=run_colors(run)[mode], label=mode
        )
        failed_at = [level for level, cell in zip(levels, cells, strict=True) if cell is not None and not cell.ok]
        if failed_at:
            any_failed = True
            # At the foot of the axes, not at y=0: on the log-scale p99 panel, 0 is minus infinity.
            ax.plot(
                failed_at,
                [0] * len(failed_at),
                transform=ax.get_xaxis_transform(),
                linestyle="none",
                marker="x",
                markersize=8,
                markeredgewidth=2,
                color=run_colors(run)[mode],
                clip_on=False,
            )
    if levels[0] > 0:
        ax.set_xscale("log", base=2)  # sweep levels grow geometrically (1, 8, 32, 128)
    ax.set_xticks(levels, labels=[str(level) for level in levels])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlabel("concurrent connections")
    if metric == "throughput":
        ax.set_title(f"{scenario}: throughput by concurrency", fontsize=10)
        ax.set_ylabel("requests/s")
        ax.yaxis.set_major_formatter(FuncFormatter(rps_axis_formatter))
        finish_value_axis(ax, measured, headroom=1.08)
    else:
        ax.set_title(f"{scenario}: p99 latency by concurrency", fontsize=10)
        ax.set_ylabel("p99 latency (ms, log scale)")
        if any(v is not None and v > 0 for v in measured):
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    return any_failed


def _legend_columns(figure: Figure, entries: int) -> int:
    # A figure legend is not clipped by constrained layout, only cut off at the figure edge: wrap it to fit.
    return max(1, min(entries, int(figure.get_figwidth() // LEGEND_ENTRY_WIDTH_IN)))


def _family_legend(figure: Figure, modes: Sequence[str], colors: dict[str, str],
                   extra: Sequence[Line2D] = (), marker: bool = True) -> None:
    """A legend with one column per family, headed by the family's name, so 11 modes read as three groups."""
    groups: dict[str, list[str]] = {}
    for mode in by_family(modes):
        groups.setdefault(family_of(mode), []).append(mode)
    columns: list[list[tuple[Artist, str]]] = []
    for family, members in groups.items():
        column: list[tuple[Artist, str]] = [(_blank(), FAMILY_LABELS[family])] if len(groups) > 1 else []
        column += [(Line2D([], [], color=colors[m], marker=mode_marker(m) if marker else None,
                           linewidth=2 if not marker else None), m) for m in members]
        columns.append(column)
    if extra:
        columns.append([(_blank(), "")] * (len(groups) > 1) + [(h, str(h.get_label())) for h in extra])
    if len(groups) == 1:  # no families to tell apart: wrap the one column to the figure's width
        flat = [entry for column in columns for entry in column]
        figure.legend(handles=[h for h, _ in flat], labels=[label for _, label in flat], loc="outside upper center",
                      ncols=_legend_columns(figure, len(flat)), frameon=False)
        return
    rows = max(len(column) for column in columns)
    # Constrained layout makes room for a legend outside the axes only out of the figure's height: add its rows.
    figure.set_figheight(figure.get_figheight() + LEGEND_ROW_IN * rows)
    # matplotlib fills a legend column by column: pad each family to the same height so each keeps its column.
    flat = [entry for column in columns for entry in column + [(_blank(), "")] * (rows - len(column))]
    legend = figure.legend(handles=[h for h, _ in flat], labels=[label for _, label in flat],
                           loc="outside upper center", ncols=len(columns), frameon=False)
    headers = set(FAMILY_LABELS.values())
    for text in legend.get_texts():
        if text.get_text() in headers:
            text.set_fontweight("bold")


def _blank() -> Artist:
    return Patch(visible=False)


def _mode_legend(figure: Figure, run: AnalysedRun, modes: Sequence[str], show_failed: bool) -> None:
    failed = [Line2D([], [], color=NOTE_COLOR, marker="x", markeredgewidth=2, linestyle="none", label="failed")]
    _family_legend(figure, modes, run_colors(run), extra=failed if show_failed else ())


def concurrency_figure(run: AnalysedRun) -> Figure | None:
    """Throughput and p99 against concurrency, one line per mode, for each scenario measured at several levels (so
    the point where each model stops scaling shows); None when no scenario was."""
    swept = [scenario for scenario in run.scenarios if len(run.levels(scenario)) > 1]
    if not swept:
        return None
    figure, axes = new_figure(2 * len(swept), (4.6, 3.6))
    any_failed = False
    for i, scenario in enumerate(swept):
        any_failed = _concurrency_panel(axes[2 * i], run, scenario) or any_failed
        _concurrency_panel(axes[2 * i + 1], run, scenario, metric="p99")
    shown = {mode for scenario in swept for mode in run.modes_in(scenario)}
    _mode_legend(figure, run, [mode for mode in run.modes if mode in shown], any_failed)
    return figure


# database strategies --------------------------------------------------------


def db_strategy_figure(run: AnalysedRun) -> Figure | None:
    """Per database scenario, each mode's requests/s with one connection per worker and with one per request."""
    pairs = [p for p in run.pairs if p.reuse is not None or p.per_request is not None]
    scenarios = list(dict.fromkeys((p.scenario, p.users) for p in pairs))
    if not scenarios:
        return None
    colors = run_colors(run)
    width = bar_panel_width(len(run.modes), per_mode=1.1)
    figure, axes = new_figure(len(scenarios), (width, 3.8))
    for ax, (scenario, users) in zip(axes, scenarios, strict=True):
        rows = [p for p in pairs if p.scenario == scenario and p.users == users]
        xs = bar_positions([p.mode for p in rows])
        for offset, values, hatch, label in ((-0.2, [p.reuse for p in rows], "", "reuse"),
                                             (0.2, [p.per_request for p in rows], "//", "per-request")):
            bars = ax.bar([x + offset for x in xs], [v or 0.0 for v in values], width=0.38, hatch=hatch,
                          color=[colors[p.mode] for p in rows], edgecolor="black", linewidth=0.4, label=label)
            ax.bar_label(bars, labels=["" if v is None else format_rps(v) for v in values], padding=2, fontsize=7)
        for x, p in zip(xs, rows, strict=True):
            if p.ratio is not None:
                # Over the pair, above its value labels: under the axis it would run into the slanted mode names.
                ax.annotate(f"{p.ratio:.1f}x", (x, max(p.reuse or 0.0, p.per_request or 0.0)), xytext=(0, 13),
                            textcoords="offset points", ha="center", va="bottom", fontsize=8, fontweight="bold")
        ax.set_title(f"{scenario} ({rows[0].backend or ''}){at_level(users)}\n"
                     "reuse (plain) vs per-request (hatched); in bold, reuse / per-request", fontsize=10)
        mode_ticks(ax, [p.mode for p in rows], xs)
        ax.yaxis.set_major_formatter(FuncFormatter(rps_axis_formatter))
        finish_value_axis(ax, [p.reuse for p in rows] + [p.per_request for p in rows], headroom=1.45)
    return figure


# resources ------------------------------------------------------------------


def _resource_rows(run: AnalysedRun) -> list[tuple[str, str, float | None, float | None]]:
    rows = []
    for scenario in run.scenarios:
        level = run.main_concurrency.get(scenario)
        for mode in run.modes_in(scenario):
            cell = run.figure(mode, scenario, level)
            res = cell.resources if cell is not None and cell.ok else None
            if res is not None:
                rows.append((scenario, mode, res.cpu_ms_per_request, res.memory_mean_mb))
    return rows


_RESOURCE_METRICS = ((2, "CPU ms per request (log scale)"), (3, "memory, mean PSS (MB)"))
_RESOURCE_BAR_IN = 0.2  # inches per bar: thin, as there are modes x scenarios of them


def _resource_panel(ax: Axes, run: AnalysedRun, rows: Sequence[tuple[str, str, float | None, float | None]],
                    scenarios: Sequence[str], index: int, label: str) -> None:
    modes = run.modes
    width = 0.8 / max(1, len(modes))
    for m, mode in enumerate(modes):
        xs, ys = [], []
        for x, scenario in enumerate(scenarios):
            for row in rows:
                value = row[index]
                if row[0] == scenario and row[1] == mode and isinstance(value, float | int):
                    xs.append(x + (m - (len(modes) - 1) / 2) * width)
                    ys.append(value)
        ax.bar(xs, ys, width=width, color=run_colors(run)[mode])
    ax.set_xticks(range(len(scenarios)), labels=[str(s) for s in scenarios])
    ax.set_ylabel(label, fontsize=9)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    if index == 2:
        ax.set_yscale("log")


def resources_figure(run: AnalysedRun) -> Figure | None:
    """CPU time per request and memory per mode, for every scenario at its main concurrency: a pair of panels
    (CPU over memory) per group of scenarios, as many scenarios to a group as fit the width."""
    rows = _resource_rows(run)
    if not rows:
        return None
    scenarios = list(dict.fromkeys(r[0] for r in rows))
    per_scenario = _RESOURCE_BAR_IN * max(1, len(run.modes)) + 0.5
    fit = max(1, min(len(scenarios), int((MAX_WIDTH_IN - 1.5) // per_scenario)))
    per_group = math.ceil(len(scenarios) / math.ceil(len(scenarios) / fit))  # groups of even size: 4 + 4, not 7 + 1
    groups = [scenarios[i:i + per_group] for i in range(0, len(scenarios), per_group)]
    figure = Figure(figsize=(max(7.0, per_group * per_scenario + 1.5), 3.0 * 2 * len(groups) + 0.8),
                    layout="constrained")
    axes = figure.subplots(2 * len(groups), 1, squeeze=False)[:, 0]
    for g, group in enumerate(groups):
        for m, (index, label) in enumerate(_RESOURCE_METRICS):
            _resource_panel(axes[2 * g + m], run, rows, group, index, label)
            axes[2 * g + m].set_xlim(-0.5, per_group - 0.5)  # the same bar width in every group
    for m in range(len(_RESOURCE_METRICS)):  # and the same scale, so groups compare
        limits = [axes[2 * g + m].get_ylim() for g in range(len(groups))]
        for g in range(len(groups)):
            axes[2 * g + m].set_ylim(min(lo for lo, _ in limits), max(hi for _, hi in limits))
    _family_legend(figure, run.modes, run_colors(run), marker=False)
    return figure


# open loop --------------------------------------------------------------------


def _openloop_lines(ax: Axes, run: AnalysedRun, mine: Sequence[OpenLoopRecord], key: str, color: str) -> None:
    xs = [p.offered_rate or math.nan for p in mine]
    ys = [p.latency_ms.get(key, math.nan) for p in mine]
    ax.plot(xs, ys, marker=mode_marker(mine[0].mode), markersize=5, color=color, label=mine[0].mode)
    k = run.knees.get(mine[0].mode)
    if k is not None:
        ax.axvline(k, color=color, linestyle=":", linewidth=0.9)
    if key == "p99":
        raw = [p.latency_uncorrected_ms.get("p99", math.nan) for p in mine]
        ax.plot(xs, raw, linestyle="--", linewidth=0.8, color=color, alpha=0.6)


def openloop_figure(run: AnalysedRun) -> Figure | None:
    """p50 and p99 (corrected for coordinated omission) against offered rate, one line per mode: the knees."""
    ok = [p for p in run.openloop if p.ok and p.offered_rate]
    if not ok:
        return None
    modes = by_family(p.mode for p in ok)
    colors = run_colors(run)
    figure = Figure(figsize=(11.0, 4.4), layout="constrained")
    axes = figure.subplots(1, 2)
    for ax, key in zip(axes, ("p50", "p99"), strict=True):
        for mode in modes:
            mine = sorted((p for p in ok if p.mode == mode), key=lambda p: p.offered_rate or 0.0)
            _openloop_lines(ax, run, mine, key, colors[mode])
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered load (requests/s, log scale)")
        ax.set_ylabel(f"{key} latency from intended send (ms, log scale)")
        ax.set_title(f"{key} against offered load" + (" (dashed: uncorrected)" if key == "p99" else "")
                     + "\ndotted line: the mode's knee", fontsize=10)
        ax.grid(alpha=0.3, which="both")
    _family_legend(figure, modes, colors)
    return figure


def _spectrum_axis(ax: Axes, right: float) -> None:
    """The x axis the spectra share with report.html: 1 / (1 - percentile) on a log scale, labelled in percent, up
    to ``right``. No 50% label: at a PNG panel's width it would overlap 0%."""
    ax.set_xscale("log")
    ticks = [t for t in SPECTRUM_TICKS if t != 2.0 and t <= right]
    ax.set_xticks(ticks, [spectrum_label(t) for t in ticks])
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_xlim(0.9, right * 1.3)
    ax.set_yscale("log")
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.10g}"))
    ax.grid(alpha=0.3, which="both")


def openloop_spectra_figure(run: AnalysedRun) -> Figure | None:
    """Per mode, latency by percentile at each offered rate of the ladder (dark: low, light: high; dotted: the
    generator fell behind), every panel on one latency scale: where the tail breaks as load grows."""
    steps = [p for p in run.openloop if p.ok and p.offered_rate and p.latency_histogram]
    if not steps:
        return None
    modes = by_family(p.mode for p in steps)
    figure, axes = new_figure(len(modes), (5.5, 3.6))
    figure.suptitle("Open loop: latency by percentile at each offered rate (dotted: the generator fell behind "
                    "its schedule)", fontsize=10)
    shown = [ms for p in steps for ms in p.latency_histogram]
    right = max(distribution.spectrum_x(100.0, sum(p.latency_histogram.values())) for p in steps)
    for ax, mode in zip(axes, modes, strict=True):
        mine = sorted((p for p in steps if p.mode == mode), key=lambda p: p.offered_rate or 0.0)
        for i, p in enumerate(mine):
            count = sum(p.latency_histogram.values())
            points = distribution.spectrum(p.latency_histogram)
            ax.plot([distribution.spectrum_x(level, count) for level, _ in points], [ms for _, ms in points],
                    drawstyle="steps-post", linewidth=1.3, linestyle=":" if p.generator_kept_up is False else "-",
                    color=colormaps["viridis"](0.85 * i / max(1, len(mine) - 1)), label=f"{p.offered_rate:,g}/s")
        _spectrum_axis(ax, right)
        ax.set_ylim(min(shown) / 1.2, max(shown) * 1.2)
        ax.set_title(mode, fontsize=10)
        ax.set_xlabel("percentile")
        ax.set_ylabel("ms from intended send")
        ax.legend(fontsize=7, title="offered", title_fontsize=7, loc="best")
    return figure


_LINE_STYLE_NAMES = {"--": "dashed", ":": "dotted", "-.": "dash-dotted", "-": "solid"}


def throughput_with_references(run: AnalysedRun) -> Figure:
    """The throughput chart with the machine's fork rates across its new-connection panels."""
    figure = throughput_figure(run)
    if not run.reference_lines:
        return figure
    # Named in the title, not beside the lines: the rates are close together at the foot of a panel whose scale
    # the fastest modes set, where labels would cover bars and each other. One per line: side by side they run
    # over the neighbouring panel's title.
    key = "\n".join(f"{_LINE_STYLE_NAMES.get(line.style, line.style)}: {line.label} {format_rps(line.rate)}/s"
                    for line in run.reference_lines)
    for ax in figure.axes:
        if "/close" not in ax.get_title().split("\n", 1)[0]:
            continue
        for line in run.reference_lines:
            ax.axhline(line.rate, color="black", linestyle=line.style, linewidth=0.9)
        ax.set_title(f"{ax.get_title()}\n{key}", fontsize=10)
    return figure


# files ----------------------------------------------------------------------

# Charts in the order the summary links them; a chart with nothing to show returns None and is left out.
CHARTS: tuple[tuple[str, Callable[[AnalysedRun], Figure | None]], ...] = (
    ("throughput.png", throughput_with_references),
    ("latency.png", latency_figure),
    ("concurrency.png", concurrency_figure),
    ("db_strategies.png", db_strategy_figure),
    ("resources.png", resources_figure),
    ("openloop.png", openloop_figure),
    ("openloop_spectra.png", openloop_spectra_figure),
)


def write_charts(run: AnalysedRun, out_dir: Path) -> list[Path]:
    """Write the charts as PNGs into ``out_dir`` and return the paths written; nothing at all without figures.

    A chart that cannot be drawn is reported on stderr and skipped: the run's summary must still be written, and it
    only links the charts that exist.
    """
    if not run.figures:
        return []
    written: list[Path] = []
    for name, build in CHARTS:
        path = out_dir / name
        try:
            figure = build(run)
            if figure is None:
                continue
            write_atomic(path, _png_writer(figure))
        except Exception as exc:
            print(f"warning: could not write chart {path}: {type(exc).__name__}: {exc}", file=sys.stderr)
            continue
        written.append(path)
    return written


def _png_writer(figure: Figure) -> Callable[[IO[bytes]], None]:
    def write(handle: IO[bytes]) -> None:
        figure.savefig(handle, format="png", dpi=DPI)

    return write
