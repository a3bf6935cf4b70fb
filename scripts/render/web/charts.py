"""The interactive charts of report.html: pure functions from an analysed run to plotly figures.

The same figures as the PNGs of :mod:`scripts.render.plot` (and the same colour per mode), plus the latency
distributions. Hovering a point shows its figure, interval, flags and the generator's CPU, because those
decide whether a number is the server's: a generator-bound bar is cross-hatched as on the PNG. A function
returns None where the run has nothing to draw.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial

import plotly.graph_objects as go
from plotly.colors import sample_colorscale
from plotly.subplots import make_subplots

from scripts.analysis.analysis import AnalysedRun, ordered
from scripts.analysis.stats import FoldedCell
from scripts.common.formatting import MISSING, format_rps, format_sig
from scripts.records import distribution
from scripts.records.distribution import SPECTRUM_TICKS, spectrum_label, spectrum_x
from scripts.records.records import Flag, OpenLoopRecord
from scripts.render.plot_style import DRAWN_PERCENTILES, mode_colors

MARGIN = {"l": 70, "r": 20, "t": 60, "b": 60}
LAYOUT = {"template": "plotly_white", "margin": MARGIN,
          "legend": {"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
          "hoverlabel": {"align": "left"}}
HOVER = "%{customdata[0]}<extra></extra>"
# Legends of side-by-side panels go under them, where they cannot cover a panel's title.
LEGEND_BELOW = {"orientation": "h", "y": -0.22, "yanchor": "top", "x": 0, "xanchor": "left"}
# Throughput spans 4 req/s (cgi) to 40,000 (prefork): a log view shows the small bars.
SCALE_BUTTONS = [{"type": "buttons", "direction": "right", "x": 0, "xanchor": "left", "y": 1.0, "yanchor": "bottom",
                  "pad": {"b": 4}, "showactive": True,
                  "buttons": [{"label": "linear", "method": "relayout", "args": [{"yaxis.type": "linear"}]},
                              {"label": "log", "method": "relayout", "args": [{"yaxis.type": "log"}]}]}]


def _interval(f: FoldedCell) -> str:
    if f.throughput_ci95 is None:
        return f"req/s: no interval ({f.repeats_ok} repeat{'s' if f.repeats_ok != 1 else ''})"
    low, high = f.throughput_ci95
    return f"req/s 95% CI {format_rps(max(0.0, low))} to {format_rps(high)} ({f.repeats_ok} repeats)"


def _generator(f: FoldedCell) -> str:
    cpu = MISSING if f.generator_cpu is None else f"{f.generator_cpu:.0%}"
    return f"generator {f.generator or MISSING}, {cpu} of its CPU" + (f" ({f.generator_warning})"
                                                                        if f.generator_warning else "")


def _flags(f: FoldedCell) -> str:
    return "flags: " + (", ".join(str(flag) for flag in f.flags) or "none")


def hover(f: FoldedCell, value: str) -> str:
    """What hovering one figure shows: the number, its interval, flags and the generator's CPU."""
    return "<br>".join((f"<b>{f.mode}</b> {f.scenario} @ {f.concurrency}", value, _interval(f), _flags(f),
                        _generator(f)))


def _main(run: AnalysedRun, scenario: str) -> list[FoldedCell]:
    level = run.main_concurrency.get(scenario)
    return [f for f in run.figures if f.scenario == scenario and f.concurrency == level]


def log_axis(values: Iterable[float | None], title: str) -> dict[str, object]:
    """A log axis labelled in full numbers: 1-2-5 steps over up to two decades, decades beyond. Plotly's own
    labels read "5 2 1 5 2" inside a decade, and decades alone leave a 20-700 ms range with one label."""
    present = [v for v in values if v is not None and v > 0]
    if not present:
        return {"type": "log", "title": title}
    low, high = math.floor(math.log10(min(present))), math.ceil(math.log10(max(present)))
    steps = (1, 2, 5) if high - low <= 2 else (1,)
    ticks = [m * 10.0**e for e in range(low, high + 1) for m in steps]
    return {"type": "log", "title": title, "tickvals": ticks, "ticktext": [f"{t:,.10g}" for t in ticks]}


def _figure(title: str, **layout: object) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(title=title, **{**LAYOUT, **layout})
    return fig


def throughput(run: AnalysedRun) -> go.Figure:
    colors = mode_colors(run.modes)
    fig = _figure("Requests per second at each scenario's main concurrency (95% intervals; hatched: "
                  "generator-bound)", yaxis_title="requests/s", barmode="group", updatemenus=SCALE_BUTTONS)
    fig.update_layout(margin={**MARGIN, "t": 90})
    for mode in run.modes:
        cells = [f for s in run.scenarios for f in _main(run, s) if f.mode == mode and f.ok]
        if not cells:
            continue
        values = [f.throughput_rps or 0.0 for f in cells]
        ci = [f.throughput_ci95 or (v, v) for f, v in zip(cells, values, strict=True)]
        fig.add_trace(go.Bar(
            name=mode, x=[f.scenario for f in cells], y=values, marker_color=colors[mode],
            marker_pattern_shape=["/" if Flag.GENERATOR_BOUND in f.flags else "" for f in cells],
            error_y={"type": "data", "symmetric": False, "visible": any(f.throughput_ci95 for f in cells),
                     "array": [max(0.0, hi - v) for (_, hi), v in
                                                                   zip(ci, values, strict=True)],
                     "arrayminus": [max(0.0, v - max(0.0, lo)) for (lo, _), v in zip(ci, values, strict=True)]},
            customdata=[[hover(f, f"{format_rps(f.throughput_rps)} req/s (median)")] for f in cells],
            hovertemplate=HOVER))
    return fig


def latency(run: AnalysedRun) -> go.Figure:
    colors = mode_colors(run.modes)
    fig = _figure("Latency percentiles at each scenario's main concurrency (log scale)", barmode="group")
    shown: list[float] = []
    for mode in run.modes:
        points = [(f, p) for s in run.scenarios for f in _main(run, s) if f.mode == mode and f.ok
                  for p in DRAWN_PERCENTILES if f.latency_ms.get(p)]
        if points:
            shown += [f.latency_ms[p] for f, p in points]
            fig.add_trace(go.Bar(
                name=mode, x=[f"{f.scenario} {p}" for f, p in points], y=[f.latency_ms[p] for f, p in points],
                marker_color=colors[mode],
                customdata=[[hover(f, f"{p} {format_sig(f.latency_ms[p])} ms")] for f, p in points],
                hovertemplate=HOVER))
    fig.update_layout(yaxis=log_axis(shown, "ms"))
    return fig


def _spectrum_figure(title: str) -> go.Figure:
    return _figure(title, xaxis={"type": "log", "title": "percentile (log of 1 / (1 - p): the tail spread out)",
                                 "tickvals": list(SPECTRUM_TICKS),
                                 "ticktext": [spectrum_label(t) for t in SPECTRUM_TICKS]})


def spectrum_trace(name: str, histogram: Mapping[float, int], color: str, text: Callable[[float, float], str],
                   meta: str | None = None) -> go.Scatter:
    """One line of a spectrum chart: ``histogram``'s latency at every percentile; hovering a point shows
    ``text(percentile, ms)``."""
    count = sum(histogram.values())
    points = distribution.spectrum(histogram)
    return go.Scatter(name=name, meta=meta, x=[spectrum_x(level, count) for level, _ in points],
                      y=[ms for _, ms in points], mode="lines+markers", marker={"size": 4},
                      line={"color": color, "shape": "hv"}, customdata=[[text(level, ms)] for level, ms in points],
                      hovertemplate=HOVER)


def _level(level: float) -> str:
    return "max (the slowest)" if level >= 100.0 else f"p{level:g}"


def _cell_hover(f: FoldedCell, level: float, ms: float) -> str:
    return hover(f, f"{_level(level)}: {format_sig(ms)} ms")


def spectra(run: AnalysedRun) -> list[tuple[str, go.Figure]]:
    """Per scenario with distributions: latency against percentile, one line per mode (log-log)."""
    colors = mode_colors(run.modes)
    out = []
    for scenario in run.scenarios:
        cells = [f for f in _main(run, scenario) if f.ok and f.latency_histogram]
        if not cells:
            continue
        fig = _spectrum_figure(f"{scenario}: latency by percentile (repeats merged)")
        for f in cells:
            fig.add_trace(spectrum_trace(f.mode, f.latency_histogram, colors[f.mode], partial(_cell_hover, f)))
        fig.update_layout(yaxis=log_axis([y for trace in fig.data for y in trace.y], "ms"))
        out.append((scenario, fig))
    return out


OPENLOOP_SPECTRA_INTRO = (
    "One chart per mode, one line per step of the open-loop ladder. At each step the generator sent requests at a "
    "fixed offered rate whatever the server did, and timed each from the moment it was due, so time spent queued "
    "counts (no coordinated omission). Read a line left to right: the median, then p90, p99, p99.9, each one step "
    "further into the slowest requests; the last point is the slowest request. While the server keeps up the lines "
    "lie together, low and flat. The first rate whose line lifts at the right is where the tail breaks (some "
    "requests queue); a line lifted all along is past the server's capacity (every request queues). Requests that "
    "failed or timed out are not in the lines (hover a point for how many; the table below counts them). A dotted "
    "line is a step where the generator fell behind its schedule: part of its latency is the generator's. Both axes "
    "are logarithmic, and every mode's chart has the same latency scale.")


def rate_colors(rates: Sequence[float]) -> list[str]:
    """A colour per offered rate, dark (low) to light (high) on viridis: the order reads without the legend.
    Its last, yellow fifth is left out, too pale on white."""
    if len(rates) < 2:
        return list(sample_colorscale("Viridis", [0.0]))[: len(rates)]
    return list(sample_colorscale("Viridis", [0.85 * i / (len(rates) - 1) for i in range(len(rates))]))


def _step_hover(p: OpenLoopRecord, level: float, ms: float) -> str:
    failed = sum(n for kind, n in p.errors.items() if kind != "status")
    return (f"<b>{p.mode}</b> offered {_rate(p.offered_rate)} req/s (achieved {format_rps(p.achieved_rate)})"
            f"<br>{_level(level)}: {format_sig(ms)} ms<br>{sum(p.latency_histogram.values()):,} answers drawn, "
            f"{failed:,} failed (not drawn)<br>generator kept up: {_yes_no(p.generator_kept_up)}")


def _rate(rate: float | None) -> str:
    return MISSING if rate is None else f"{rate:,g}"


def _yes_no(value: bool | None) -> str:
    return MISSING if value is None else "yes" if value else "no (dotted line)"


def openloop_spectra(run: AnalysedRun) -> list[tuple[str, go.Figure]]:
    """Per mode of the open-loop ladder: latency against percentile, one line per offered rate (log-log), every
    mode on the same latency axis so that modes compare by eye. A step whose generator fell behind is dotted."""
    steps = [p for p in run.openloop if p.ok and p.offered_rate and p.latency_histogram]
    shown = [ms for p in steps for ms in p.latency_histogram]
    out = []
    for mode in ordered(p.mode for p in steps):
        mine = sorted((p for p in steps if p.mode == mode), key=lambda p: p.offered_rate or 0.0)
        fig = _spectrum_figure(f"{mode}: open-loop latency by percentile, one line per offered rate")
        for p, color in zip(mine, rate_colors([p.offered_rate or 0.0 for p in mine]), strict=True):
            trace = spectrum_trace(f"{_rate(p.offered_rate)} req/s", p.latency_histogram, color,
                                   partial(_step_hover, p), meta=f"{mode} {_rate(p.offered_rate)} req/s")
            if p.generator_kept_up is False:
                trace.line.dash = "dot"
            fig.add_trace(trace)
        axis = log_axis(shown, "ms from intended send")
        axis["range"] = [math.log10(min(shown)) - 0.05, math.log10(max(shown)) + 0.05]
        fig.update_layout(yaxis=axis, legend_title_text="offered")
        out.append((mode, fig))
    return out


def _rps(f: FoldedCell) -> float | None:
    return f.throughput_rps


def _p99(f: FoldedCell) -> float | None:
    return f.latency_ms.get("p99")


def _cpu_ms(f: FoldedCell) -> float | None:
    return f.resources.cpu_ms_per_request if f.resources else None


def _memory(f: FoldedCell) -> float | None:
    return f.resources.memory_mean_mb if f.resources else None


def concurrency(run: AnalysedRun) -> list[tuple[str, go.Figure]]:
    """Per swept scenario: throughput and p99 against connections."""
    colors = mode_colors(run.modes)
    out = []
    for scenario in run.scenarios:
        if len(run.levels(scenario)) < 2:
            continue
        fig = make_subplots(rows=1, cols=2, subplot_titles=("requests/s", "p99 ms"))
        fig.update_layout(title=f"{scenario}: against concurrent connections",
                          **{**LAYOUT, "legend": LEGEND_BELOW, "margin": {**MARGIN, "b": 110}})
        for mode in run.modes_in(scenario):
            cells = sorted((f for f in run.figures if f.scenario == scenario and f.mode == mode and f.ok
                            and f.concurrency), key=lambda f: f.concurrency or 0)
            for col, (label, value) in enumerate((("req/s", _rps), ("p99", _p99)), start=1):
                fig.add_trace(go.Scatter(
                    name=mode, meta=f"{mode} {label}", legendgroup=mode, showlegend=col == 1,
                    x=[f.concurrency for f in cells],
                    y=[value(f) for f in cells], mode="lines+markers", line={"color": colors[mode]},
                    customdata=[[hover(f, f"{label} {format_sig(value(f))}")] for f in cells], hovertemplate=HOVER),
                    row=1, col=col)
        levels = run.levels(scenario)
        fig.update_xaxes(type="log", title_text="connections", tickvals=levels, ticktext=[str(v) for v in levels])
        fig.update_yaxes(**log_axis([_p99(f) for f in run.figures if f.scenario == scenario and f.ok], "p99 ms"),
                         row=1, col=2)
        out.append((scenario, fig))
    return out


def openloop(run: AnalysedRun) -> go.Figure | None:
    if not any(p.ok for p in run.openloop):
        return None
    colors = mode_colors(ordered(p.mode for p in run.openloop))
    rates = sorted({p.offered_rate for p in run.openloop if p.offered_rate})
    fig = _figure("Open loop on /io: latency against offered load (solid p99, dotted p50; log-log)",
                  xaxis={"type": "log", "title": "offered requests/s", "tickvals": rates,
                         "ticktext": [f"{r:,g}" for r in rates]},
                  yaxis=log_axis([v for p in run.openloop if p.ok for v in p.latency_ms.values()], "ms"))
    for mode, color in colors.items():
        points = sorted((p for p in run.openloop if p.mode == mode and p.ok and p.offered_rate),
                        key=lambda p: p.offered_rate or 0.0)
        knee = run.knees.get(mode)
        for key, dash in (("p99", "solid"), ("p50", "dot")):
            fig.add_trace(go.Scatter(
                name=f"{mode} {key}", legendgroup=mode, x=[p.offered_rate for p in points],
                y=[p.latency_ms.get(key) for p in points], mode="lines+markers", line={"color": color, "dash": dash},
                customdata=[[f"<b>{mode}</b> offered {format_rps(p.offered_rate)} req/s<br>achieved "
                             f"{format_rps(p.achieved_rate)}<br>{key} {format_sig(p.latency_ms.get(key))} ms<br>"
                             f"generator kept up: {p.generator_kept_up}, {_cpu(p.generator_cpu)} CPU<br>knee: "
                             f"{format_rps(knee) if knee else 'none'}"] for p in points],
                hovertemplate=HOVER))
    return fig


def _cpu(value: float | None) -> str:
    return MISSING if value is None else f"{value:.0%}"


def resources(run: AnalysedRun) -> go.Figure | None:
    cells = [f for s in run.scenarios for f in _main(run, s) if f.ok and f.resources is not None]
    if not cells:
        return None
    colors = mode_colors(run.modes)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("server CPU ms per request", "server memory MB (mean)"))
    fig.update_layout(title="Resources at each scenario's main concurrency", barmode="group",
                      **{**LAYOUT, "legend": LEGEND_BELOW, "margin": {**MARGIN, "b": 110}})
    for mode in run.modes:
        mine = [f for f in cells if f.mode == mode]
        for col, (label, value) in enumerate((("CPU ms/req", _cpu_ms), ("memory MB", _memory)), start=1):
            shown = [f for f in mine if value(f) is not None]
            if shown:
                fig.add_trace(go.Bar(name=mode, meta=f"{mode} {label}", legendgroup=mode, showlegend=col == 1,
                                     x=[f.scenario for f in shown], y=[value(f) for f in shown],
                                     marker_color=colors[mode],
                                     customdata=[[hover(f, f"{label} {format_sig(value(f))}")] for f in shown],
                                     hovertemplate=HOVER), row=1, col=col)
    return fig


def strategies(run: AnalysedRun) -> go.Figure | None:
    pairs = [p for p in run.pairs if p.reuse or p.per_request]
    if not pairs:
        return None
    fig = _figure("Database connection per worker (reuse) against one per request", yaxis_title="requests/s",
                  barmode="group", bargap=0.5 if len(pairs) < 3 else 0.2)
    labels = [f"{p.scenario} {p.mode}" for p in pairs]
    for name, values, color in (("reuse", [p.reuse for p in pairs], "#1f77b4"),
                                 ("per-request", [p.per_request for p in pairs], "#ff7f0e")):
        fig.add_trace(go.Bar(name=name, x=labels, y=values, marker_color=color,
                             customdata=[[f"<b>{p.mode}</b> {p.scenario} ({p.backend}) {name}: {format_rps(v)} "
                                          f"req/s<br>reuse / per-request: {_ratio(p.ratio)}"]
                                         for p, v in zip(pairs, values, strict=True)], hovertemplate=HOVER))
    return fig


def _ratio(value: float | None) -> str:
    return MISSING if value is None or not math.isfinite(value) else f"{value:.2f}x"
