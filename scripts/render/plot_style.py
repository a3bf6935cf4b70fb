"""The shared look of the run's PNG charts (:mod:`scripts.render.plot`): sizes, the colour and marker of each mode
(by family), the grid of panels, bar positions, tick labels and value axes."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from matplotlib.axes import Axes
from matplotlib.figure import Figure

from scripts.analysis.analysis import FAMILY_LABELS, AnalysedRun, by_family, family_of, family_slot
from scripts.analysis.stats import FoldedCell
from scripts.common.formatting import format_rps

DPI = 110
MAX_COLUMNS = 4
MAX_WIDTH_IN = 22.0  # a figure wider than this gets fewer columns and more rows
DRAWN_PERCENTILES = ("p50", "p90", "p99")
LOG_LATENCY_RANGE = 10.0  # a latency panel whose highest bar passes this multiple of its median goes log scale
# Percentiles share their mode's colour and differ in strength, so a group still reads as "this mode".
PERCENTILE_ALPHA = {"p50": 0.45, "p90": 0.72, "p99": 1.0}
# A family is a range of hues, so a reader sees the family before the mode: warm for this project's servers,
# greens for the WSGI servers, golds for the green-thread servers, blues and purples for the ASGI servers, greys for
# modes outside the registry.
# Spelled out (matplotlib's tab10 and tab20 among them) so that colours do not depend on the user's rc settings;
# past a family's last colour they repeat, with the family's marker still telling modes apart on lines.
FAMILY_PALETTES: dict[str, tuple[str, ...]] = {
    "hand-written": ("#8c564b", "#d62728", "#ff7f0e", "#e377c2"),
    "wsgi": ("#2ca02c", "#bcbd22", "#17becf", "#0b6e4f", "#98df8a"),
    "green": ("#e6ab02", "#a6761d"),
    "asgi": ("#1f77b4", "#9467bd", "#6baed6", "#393b79", "#c5b0d5", "#7570b3"),
    "other": ("#7f7f7f", "#4d4d4d", "#b0b0b0", "#262626"),
}
FAMILY_MARKERS = {"hand-written": "o", "wsgi": "s", "green": "v", "asgi": "^", "other": "D"}
NOTE_COLOR = "dimgray"
LEGEND_ENTRY_WIDTH_IN = 1.75  # fits a name as long as "gunicorn-uvicorn" at the default font size
LEGEND_ROW_IN = 0.3
FAMILY_GAP = 0.6  # extra space between two families' bars, in bar widths


# data -----------------------------------------------------------------------


def mode_colors(modes: Sequence[str]) -> dict[str, str]:
    """A colour per mode, from its family's palette at its place in the family (registered modes) or at its place
    among the unregistered ones here (other modes)."""
    others = [mode for mode in modes if family_of(mode) == "other"]
    colors = {}
    for mode in modes:
        family = family_of(mode)
        palette = FAMILY_PALETTES[family]
        slot = others.index(mode) if family == "other" else family_slot(mode)
        colors[mode] = palette[slot % len(palette)]
    return colors


def mode_marker(mode: str) -> str:
    return FAMILY_MARKERS[family_of(mode)]


def throughput_of(figure: FoldedCell | None) -> float | None:
    return figure.throughput_rps if figure is not None and figure.ok else None


def latency_of(figure: FoldedCell | None, percentile: str) -> float | None:
    return figure.latency_ms.get(percentile) if figure is not None and figure.ok else None


def gap_label(figure: FoldedCell | None) -> str:
    """Why a bar is missing: the cell failed, was never measured, or was measured without this number."""
    if figure is None:
        return "not run"
    return "no data" if figure.ok else "failed"


def run_colors(run: AnalysedRun) -> dict[str, str]:
    return mode_colors(by_family([*run.modes, *(p.mode for p in run.openloop)]))


# layout ---------------------------------------------------------------------


def panel_grid(panels: int, panel_width: float = 0.0) -> tuple[int, int]:
    # Wide panels (many modes) take fewer columns, so the figure stays readable on a screen without zooming.
    fit = max(1, int(MAX_WIDTH_IN // panel_width)) if panel_width else MAX_COLUMNS
    columns = min(MAX_COLUMNS, fit, max(panels, 1))
    return max(1, math.ceil(panels / columns)), columns


def new_figure(panels: int, panel_size: tuple[float, float]) -> tuple[Figure, list[Axes]]:
    width, height = panel_size
    rows, columns = panel_grid(panels, width)
    figure = Figure(figsize=(columns * width, rows * height), layout="constrained")
    axes = [figure.add_subplot(rows, columns, position + 1) for position in range(panels)]
    return figure, axes


def empty_figure(message: str) -> Figure:
    figure = Figure(figsize=(6, 2))
    figure.text(0.5, 0.5, message, ha="center", va="center", color=NOTE_COLOR)
    return figure


def bar_panel_width(modes: int, per_mode: float) -> float:
    # The family gaps take up to two more bars' room.
    return max(3.6, 1.2 + per_mode * (modes + (2 * FAMILY_GAP if modes > 5 else 0)))


def bar_positions(modes: Sequence[str]) -> list[float]:
    """Bar positions: one apart within a family, with a gap where the family changes."""
    positions, x, previous = [], 0.0, None
    for mode in modes:
        family = family_of(mode)
        if previous is not None and family != previous:
            x += FAMILY_GAP
        positions.append(x)
        x += 1.0
        previous = family
    return positions


def mode_ticks(ax: Axes, modes: Sequence[str], positions: Sequence[float] | None = None) -> None:
    """Mode names under the bars, and each family named over its group with a thin rule between groups."""
    xs = list(positions) if positions is not None else bar_positions(modes)
    # Slanted labels keep long names such as "gunicorn-uvicorn" from running into each other.
    ax.set_xticks(xs, labels=[str(m) for m in modes], rotation=30, ha="right", rotation_mode="anchor")
    families = [family_of(m) for m in modes]
    if len(set(families)) < 2:
        return
    start = 0
    for i in range(1, len(modes) + 1):
        if i < len(modes) and families[i] == families[start]:
            continue
        middle = (xs[start] + xs[i - 1]) / 2
        ax.text(middle, 0.985, FAMILY_LABELS[families[start]], transform=ax.get_xaxis_transform(), ha="center",
                va="top", fontsize=8, color=NOTE_COLOR, fontstyle="italic")
        if i < len(modes):
            ax.axvline((xs[i - 1] + xs[i]) / 2, color=NOTE_COLOR, linewidth=0.6, linestyle=":", alpha=0.7)
        start = i


def note_gap(ax: Axes, x: float, label: str) -> None:
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
        color=NOTE_COLOR,
        fontstyle="italic",
    )


def at_level(level: int | None) -> str:
    return "" if level is None else f" at {level} users"


def rps_axis_formatter(value: float, _position: int) -> str:
    return "0" if value == 0 else format_rps(value)


# An axis raised to fit the 95% intervals stops at this multiple of the tallest bar.
MAX_INTERVAL_AXIS = 2.0


def finish_value_axis(ax: Axes, values: Iterable[float | None], headroom: float = 1.15) -> None:
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
