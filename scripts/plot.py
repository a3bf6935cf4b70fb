"""Charts of a workerbench run: throughput, latency percentiles, and throughput against concurrency.

The ``*_figure`` functions are pure: an analysed run (:class:`scripts.analysis.AnalysedRun`) in, a
:class:`matplotlib.figure.Figure` out; what a figure shows (the main concurrency, knees, strategy pairs,
reference lines) comes computed. They build figures directly instead of through pyplot, so there is no global
figure registry to leak into and no interactive backend to pick; saving uses the Agg renderer. Only
:func:`write_charts` touches the filesystem.

Figures are expected in plan order: that order decides the order of scenarios (subplots) and modes (bars, lines).
A mode keeps its colour in every figure, and the modes that ship with workerbench keep it across runs too.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, NullLocator

from scripts.analysis import AnalysedRun, ordered
from scripts.files import write_atomic
from scripts.formatting import format_rps
from scripts.records import Flag, OpenLoopRecord
from scripts.stats import FoldedCell

DPI = 110
MAX_COLUMNS = 4
DRAWN_PERCENTILES = ("p50", "p90", "p99")
# Percentiles share their mode's colour and differ in strength, so a group still reads as "this mode".
_PERCENTILE_ALPHA = {"p50": 0.45, "p90": 0.72, "p99": 1.0}
# matplotlib's tab10, spelled out so that colours do not depend on the user's rc settings.
_PALETTE = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
)  # fmt: skip
_KNOWN_MODE_COLORS = {"fork": _PALETTE[0], "prefork": _PALETTE[1], "gunicorn-sync": _PALETTE[2], "uvicorn": _PALETTE[3]}
_NOTE_COLOR = "dimgray"
_LEGEND_ENTRY_WIDTH_IN = 1.6  # fits a name as long as "gunicorn-sync" at the default font size


# data -----------------------------------------------------------------------


def mode_colors(modes: Sequence[str]) -> dict[str, str]:
    """A colour per mode. Known modes have fixed colours so runs over different subsets of modes compare at a
    glance; other modes prefer colours no known mode uses, and only past ten modes do colours repeat."""
    colors = {mode: _KNOWN_MODE_COLORS[mode] for mode in modes if mode in _KNOWN_MODE_COLORS}
    reserved = set(_KNOWN_MODE_COLORS.values())
    spare = [c for c in _PALETTE if c not in reserved] + [c for c in _PALETTE if c in reserved - set(colors.values())]
    unknown = [mode for mode in modes if mode not in colors]
    for position, mode in enumerate(unknown):
        colors[mode] = spare[position % len(spare)]
    return {mode: colors[mode] for mode in modes}


def _throughput(figure: FoldedCell | None) -> float | None:
    return figure.throughput_rps if figure is not None and figure.ok else None


def _latency(figure: FoldedCell | None, percentile: str) -> float | None:
    return figure.latency_ms.get(percentile) if figure is not None and figure.ok else None


def _gap_label(figure: FoldedCell | None) -> str:
    """Why a bar is missing: the cell failed, was never measured, or was measured without this number."""
    if figure is None:
        return "not run"
    return "no data" if figure.ok else "failed"


def _colors(run: AnalysedRun) -> dict[str, str]:
    return mode_colors(run.modes)


# layout ---------------------------------------------------------------------


def _grid(panels: int) -> tuple[int, int]:
    columns = min(MAX_COLUMNS, max(panels, 1))
    return max(1, math.ceil(panels / columns)), columns


def _figure(panels: int, panel_size: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    rows, columns = _grid(panels)
    width, height = panel_size
    figure = Figure(figsize=(columns * width, rows * height), layout="constrained")
    axes = [figure.add_subplot(rows, columns, position + 1) for position in range(panels)]
    return figure, axes


def _empty_figure(message: str) -> Figure:
    figure = Figure(figsize=(6, 2))
    figure.text(0.5, 0.5, message, ha="center", va="center", color=_NOTE_COLOR)
    return figure


def _bar_panel_width(modes: int, per_mode: float) -> float:
    return max(3.6, 1.2 + per_mode * modes)


def _mode_ticks(ax: Axes, modes: Sequence[str]) -> None:
    # Slanted labels keep long names such as "gunicorn-sync" from running into each other.
    ax.set_xticks(range(len(modes)), labels=[str(m) for m in modes], rotation=25, ha="right", rotation_mode="anchor")


def _note_gap(ax: Axes, x: float, label: str) -> None:
    """Mark a missing bar at the foot of the axes, where it does not depend on the data's scale."""
    ax.text(
        x,
        0.03,
        label,
        transform=ax.get_xaxis_transform(),
        rotation=90,
        ha="center",
        va="bottom",
        fontsize=9,
        color=_NOTE_COLOR,
        fontstyle="italic",
    )


def _at(level: int | None) -> str:
    return "" if level is None else f" at {level} users"


def _rps_axis_formatter(value: float, _position: int) -> str:
    return "0" if value == 0 else format_rps(value)


def _finish_value_axis(ax: Axes, values: Iterable[float | None], headroom: float = 1.15) -> None:
    """Start the value axis at zero, with room above the highest value for its label."""
    measured = [value for value in values if value is not None]
    if measured:
        # An all-zero panel still needs a non-empty range.
        ax.set_ylim(0, max(measured) * headroom or 1.0)
    else:
        # Nothing measured: a scale would suggest numbers that do not exist.
        ax.set_ylim(0, 1)
        ax.set_yticks([])
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


# throughput -----------------------------------------------------------------


def _throughput_panel(ax: Axes, run: AnalysedRun, scenario: str) -> None:
    level = run.main_concurrency.get(scenario)
    modes = run.modes_in(scenario)
    cells = [run.figure(mode, scenario, level) for mode in modes]
    values = [_throughput(cell) for cell in cells]
    bound = [_generator_bound(cell) for cell in cells]
    bars = ax.bar(range(len(modes)), [v or 0.0 for v in values], color=[_colors(run)[m] for m in modes], width=0.7,
                  hatch=["xx" if b else "" for b in bound], edgecolor=["black" if b else "none" for b in bound])
    low, high = _ci_errors(cells, values)
    ax.errorbar(range(len(modes)), [v or 0.0 for v in values], yerr=[low, high], fmt="none", ecolor="black",
                capsize=3, linewidth=0.8)
    ax.bar_label(bars, labels=["" if v is None else format_rps(v) + ("\ngenerator-bound" if b else "")
                               for v, b in zip(values, bound, strict=True)], padding=2, fontsize=7)
    for x, (cell, value) in enumerate(zip(cells, values, strict=True)):
        if value is None:
            _note_gap(ax, x, _gap_label(cell))
    ax.set_title(f"{scenario}\nThroughput (requests/s){_at(level)}", fontsize=10)
    _mode_ticks(ax, modes)
    ax.yaxis.set_major_formatter(FuncFormatter(_rps_axis_formatter))
    _finish_value_axis(ax, values)


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
        return _empty_figure("no cells to plot")
    width = _bar_panel_width(max(len(run.modes_in(s)) for s in run.scenarios), per_mode=0.75)
    figure, axes = _figure(len(run.scenarios), (width, 3.8))
    for ax, scenario in zip(axes, run.scenarios, strict=True):
        _throughput_panel(ax, run, scenario)
    return figure


# latency --------------------------------------------------------------------


def _latency_panel(ax: Axes, run: AnalysedRun, scenario: str) -> None:
    level = run.main_concurrency.get(scenario)
    modes = run.modes_in(scenario)
    cells = [run.figure(mode, scenario, level) for mode in modes]
    colors = [_colors(run)[m] for m in modes]
    width = 0.8 / len(DRAWN_PERCENTILES)
    measured: list[float | None] = []
    for offset, percentile in enumerate(DRAWN_PERCENTILES):
        values = [_latency(cell, percentile) for cell in cells]
        measured += values
        positions = [x + (offset - (len(DRAWN_PERCENTILES) - 1) / 2) * width for x in range(len(modes))]
        ax.bar(
            positions,
            [v or 0.0 for v in values],
            width,
            color=colors,
            alpha=_PERCENTILE_ALPHA[percentile],
            edgecolor=colors,
            linewidth=0.8,
        )
    for x, cell in enumerate(cells):
        if all(_latency(cell, p) is None for p in DRAWN_PERCENTILES):
            _note_gap(ax, x, _gap_label(cell))
    ax.set_title(f"{scenario}\nLatency{_at(level)}", fontsize=10)
    ax.set_ylabel("latency (ms)")
    _mode_ticks(ax, modes)
    _finish_value_axis(ax, measured, headroom=1.05)


def _percentile_legend(figure: Figure) -> None:
    # Neutral grey: the legend explains the shading, while the x labels already name the modes.
    handles = [
        Patch(facecolor="#555555", edgecolor="#555555", alpha=_PERCENTILE_ALPHA[p], label=p) for p in DRAWN_PERCENTILES
    ]
    figure.legend(handles=handles, loc="outside upper center", ncols=len(DRAWN_PERCENTILES), frameon=False)


def latency_figure(run: AnalysedRun) -> Figure:
    """One grouped bar chart per scenario: p50, p90 and p99 of each mode at the scenario's primary concurrency."""
    if not run.scenarios:
        return _empty_figure("no cells to plot")
    width = _bar_panel_width(max(len(run.modes_in(s)) for s in run.scenarios), per_mode=0.85)
    figure, axes = _figure(len(run.scenarios), (width, 3.8))
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
        values = [_throughput(cell) if metric == "throughput" else _latency(cell, "p99") for cell in cells]
        measured += values
        ax.plot(
            levels, [math.nan if v is None else v for v in values], marker="o", color=_colors(run)[mode], label=mode
        )
        failed_at = [level for level, cell in zip(levels, cells, strict=True) if cell is not None and not cell.ok]
        if failed_at:
            any_failed = True
            ax.plot(
                failed_at,
                [0] * len(failed_at),
                linestyle="none",
                marker="x",
                markersize=8,
                markeredgewidth=2,
                color=_colors(run)[mode],
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
        ax.yaxis.set_major_formatter(FuncFormatter(_rps_axis_formatter))
        _finish_value_axis(ax, measured, headroom=1.08)
    else:
        ax.set_title(f"{scenario}: p99 latency by concurrency", fontsize=10)
        ax.set_ylabel("p99 latency (ms, log scale)")
        if any(v is not None and v > 0 for v in measured):
            ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    return any_failed


def _legend_columns(figure: Figure, entries: int) -> int:
    # A figure legend is not clipped by constrained layout, only cut off at the figure edge: wrap it to fit.
    return max(1, min(entries, int(figure.get_figwidth() // _LEGEND_ENTRY_WIDTH_IN)))


def _mode_legend(figure: Figure, run: AnalysedRun, modes: Sequence[str], show_failed: bool) -> None:
    handles: list[Line2D] = [Line2D([], [], color=_colors(run)[mode], marker="o", label=str(mode)) for mode in modes]
    if show_failed:
        handles.append(
            Line2D([], [], color=_NOTE_COLOR, marker="x", markeredgewidth=2, linestyle="none", label="failed")
        )
    figure.legend(
        handles=handles, loc="outside upper center", ncols=_legend_columns(figure, len(handles)), frameon=False
    )


def concurrency_figure(run: AnalysedRun) -> Figure | None:
    """Throughput and p99 against concurrency, one line per mode, for each scenario measured at several levels (so
    the point where each model stops scaling shows); None when no scenario was."""
    swept = [scenario for scenario in run.scenarios if len(run.levels(scenario)) > 1]
    if not swept:
        return None
    figure, axes = _figure(2 * len(swept), (4.6, 3.6))
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
    colors = _colors(run)
    width = _bar_panel_width(len(run.modes), per_mode=1.1)
    figure, axes = _figure(len(scenarios), (width, 3.8))
    for ax, (scenario, users) in zip(axes, scenarios, strict=True):
        rows = [p for p in pairs if p.scenario == scenario and p.users == users]
        xs = range(len(rows))
        for offset, values, hatch, label in ((-0.2, [p.reuse for p in rows], "", "reuse"),
                                             (0.2, [p.per_request for p in rows], "//", "per-request")):
            bars = ax.bar([x + offset for x in xs], [v or 0.0 for v in values], width=0.38, hatch=hatch,
                          color=[colors[p.mode] for p in rows], edgecolor="black", linewidth=0.4, label=label)
            ax.bar_label(bars, labels=["" if v is None else format_rps(v) for v in values], padding=2, fontsize=7)
        for x, p in zip(xs, rows, strict=True):
            if p.ratio is not None:
                ax.annotate(f"{p.ratio:.1f}x", (x, 0), xytext=(0, -28), textcoords="offset points",
                            ha="center", fontsize=8, fontweight="bold")
        ax.set_title(f"{scenario} ({rows[0].backend or ''}){_at(users)}\nreuse (plain) vs per-request (hatched)",
                     fontsize=10)
        _mode_ticks(ax, [p.mode for p in rows])
        ax.yaxis.set_major_formatter(FuncFormatter(_rps_axis_formatter))
        _finish_value_axis(ax, [p.reuse for p in rows] + [p.per_request for p in rows])
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


def resources_figure(run: AnalysedRun) -> Figure | None:
    """CPU time per request and memory per mode, for every scenario at its main concurrency."""
    rows = _resource_rows(run)
    if not rows:
        return None
    scenarios = list(dict.fromkeys(r[0] for r in rows))
    modes = run.modes
    figure = Figure(figsize=(max(7.0, 1.1 * len(scenarios) * max(1, len(modes)) * 0.45 + 2), 7.2),
                    layout="constrained")
    axes = figure.subplots(2, 1)
    width = 0.8 / max(1, len(modes))
    for panel, (ax, index, label) in enumerate(
            ((axes[0], 2, "CPU ms per request (log scale)"), (axes[1], 3, "memory, mean PSS of all processes (MB)"))):
        for m, mode in enumerate(modes):
            xs, ys = [], []
            for x, scenario in enumerate(scenarios):
                for row in rows:
                    value = row[index]
                    if row[0] == scenario and row[1] == mode and isinstance(value, float | int):
                        xs.append(x + (m - (len(modes) - 1) / 2) * width)
                        ys.append(value)
            ax.bar(xs, ys, width=width, color=_colors(run)[mode], label=str(mode) if panel == 0 else None)
        ax.set_xticks(range(len(scenarios)), labels=[str(s) for s in scenarios], rotation=20, ha="right")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.set_axisbelow(True)
        if index == 2:
            ax.set_yscale("log")
    figure.legend(loc="outside upper center", ncols=min(len(modes), 6), frameon=False)
    return figure


# open loop --------------------------------------------------------------------


def _openloop_lines(ax: Axes, run: AnalysedRun, mine: Sequence[OpenLoopRecord], key: str, color: str) -> None:
    xs = [p.offered_rate or math.nan for p in mine]
    ys = [p.latency_ms.get(key, math.nan) for p in mine]
    ax.plot(xs, ys, marker="o", color=color, label=mine[0].mode)
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
    modes = ordered(p.mode for p in ok)
    colors = mode_colors(modes)
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
    handles = [Line2D([], [], color=colors[mode], marker="o", label=str(mode)) for mode in modes]
    figure.legend(handles=handles, loc="outside upper center", ncols=min(len(modes), 6), frameon=False)
    return figure


def throughput_with_references(run: AnalysedRun) -> Figure:
    """The throughput chart with the machine's fork rates across its new-connection panels."""
    figure = throughput_figure(run)
    for ax in figure.axes:
        if "/close" not in ax.get_title().split("\n", 1)[0]:
            continue
        for line in run.reference_lines:
            ax.axhline(line.rate, color="black", linestyle=line.style, linewidth=0.9)
            ax.annotate(f"{line.label}: {format_rps(line.rate)}/s", (0.01 if line.side == "left" else 0.99, line.rate),
                        xycoords=("axes fraction", "data"), xytext=(0, 3), textcoords="offset points", fontsize=7,
                        ha=line.side)
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
