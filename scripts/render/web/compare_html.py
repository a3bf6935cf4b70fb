"""``compare.html``: a :class:`scripts.analysis.comparison.Comparison` as one self-contained page
(see :mod:`scripts.render.web.html`).

First what changed (the headline and the cells that cleared the noise), then one chart per metric with every
matched cell's change and its 95% interval, coloured by verdict, then the sortable table, what differs in
plan and environment, and what could not be compared.
"""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from scripts.analysis.comparison import (
    Comparison,
    Metric,
    format_change,
    format_ci,
    format_p,
    geomean,
    headline,
    shared_shift,
    verdict_text,
)
from scripts.common.formatting import format_rps, format_sig
from scripts.render.web import html as h

VERDICT_COLORS = {"regression": "#d62728", "improvement": "#2ca02c", "within noise": "#7f7f7f",
                  "untested": "#bcbd22", "failed": "#000000"}


def _bounds(metric: Metric) -> tuple[float, float, float]:
    """B / A and its interval (the ratio itself where there is no interval)."""
    change = metric.change
    x = 1.0 + (change.change if change else 0.0)
    if change is None or change.interval is None:
        return x, x, x
    return x, 1.0 + change.interval[0], 1.0 + change.interval[1]


# The ratio axis is logarithmic, so -50% and +100% are as far from "no change" (and an interval is symmetric).
# Fine ticks while every interval stays within a factor of 1.5, decades of 2 beyond (fine ones would overlap).
FINE_TICKS = (0.67, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.25, 1.5)
WIDE_TICKS = (1 / 16, 0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


def ratio_ticks(points: list[tuple[float, float, float]]) -> tuple[float, ...]:
    widest = max((max(hi, 1 / lo) for _, lo, hi in points if lo > 0), default=1.0)
    return FINE_TICKS if widest <= 1.5 else WIDE_TICKS


def change_figure(c: Comparison, metric: str) -> go.Figure:
    """Every cell's change of ``metric`` with its interval, one trace per verdict (so the legend explains colour)."""
    fig = go.Figure()
    labels = [cell.key.label for cell in c.cells]
    ticks = ratio_ticks([_bounds(m) for cell in c.cells for m in [cell.throughput if metric == "throughput"
                                                                  else cell.p99]])
    for verdict, color in VERDICT_COLORS.items():
        chosen = [(cell.key.label, m) for cell in c.cells
                  for m in [cell.throughput if metric == "throughput" else cell.p99] if m.verdict == verdict]
        if not chosen:
            continue
        points = [_bounds(m) for _, m in chosen]
        fig.add_trace(go.Scatter(
            name=verdict, x=[label for label, _ in chosen], y=[x for x, _, _ in points], mode="markers",
            marker={"color": color, "size": 9},
            error_y={"type": "data", "symmetric": False, "array": [hi - x for x, _, hi in points],
                     "arrayminus": [x - lo for x, lo, _ in points]},
            customdata=[[format_ci(m.change), format_p(m), verdict_text(m)] for _, m in chosen],
            hovertemplate="%{x}<br>B / A %{y:.3f}<br>95% CI %{customdata[0]}<br>p (Holm) %{customdata[1]}"
                          "<br>%{customdata[2]}<extra></extra>"))
    fig.add_hline(y=1, line={"color": "#333", "width": 1})
    for bound in (1 - c.min_change, 1 + c.min_change):
        fig.add_hline(y=bound, line={"color": "#aaa", "width": 1, "dash": "dot"})
    what = "throughput (higher is better)" if metric == "throughput" else "p99 latency (lower is better)"
    fig.update_layout(title=f"{what}: B / A with 95% intervals",
                      yaxis={"type": "log", "title": "B / A", "tickvals": list(ticks),
                             "ticktext": [f"{t - 1:+.0%}" if t != 1 else "same" for t in ticks]},
                      xaxis={"categoryorder": "array", "categoryarray": labels, "tickangle": -35},
                      height=460, margin={"l": 60, "r": 20, "t": 50, "b": 140}, template="plotly_white",
                      legend={"orientation": "h", "y": 1.08, "x": 1, "xanchor": "right"})
    return fig


def _verdict_cell(metric: Metric) -> h.Cell:
    css = {"regression": "bad", "improvement": "good"}.get(metric.verdict, "muted")
    return h.Cell(verdict_text(metric), css=f"{css} nowrap")


def _table(c: Comparison) -> str:
    rows: list[list[h.Cell | str]] = []
    for cell in c.cells:
        t, p = cell.throughput, cell.p99
        rows.append([
            cell.key.label, h.num(format_rps(geomean(t.a)), geomean(t.a)),
            h.num(format_rps(geomean(t.b)), geomean(t.b)),
            h.num(format_change(t.change), t.change.change if t.change else None),
            h.Cell(format_ci(t.change), css="nowrap"),
            h.num(format_p(t), t.p_holm), _verdict_cell(t),
            h.num(format_sig(geomean(p.a)), geomean(p.a)), h.num(format_sig(geomean(p.b)), geomean(p.b)),
            h.num(format_change(p.change), p.change.change if p.change else None),
            h.Cell(format_ci(p.change), css="nowrap"),
            _verdict_cell(p)])
    headers = ("cell", "A req/s", "B req/s", "change", "95% CI", "p (Holm)", "throughput", "A p99 ms", "B p99 ms",
               "p99 change", "p99 95% CI", "p99")
    return h.table(headers, rows, numeric=[False, True, True, True, False, True, False, True, True, True, False,
                                           False], attrs=' id="cells"')


def _sides(c: Comparison) -> str:
    items = []
    for side, label in ((c.a, "A"), (c.b, "B")):
        notes = "".join(f"<li>{h.esc(n)}</li>" for n in side.notes)
        items.append(f"<li><b>{label}</b>: {h.esc(side.path)}" + (f"<ul>{notes}</ul>" if notes else "") + "</li>")
    return "<ul>" + "".join(items) + "</ul>"


def _differences(c: Comparison) -> str:
    if not c.differences:
        return "<h2>Plan and environment</h2><p>No differences recorded.</p>"
    rows = [[d.key, d.a, d.b, "yes" if d.explains else ""] for d in c.differences]
    return "<h2>Plan and environment differences</h2>" + h.table(("entry", "A", "B", "could explain a change"), rows)


def _unmatched(c: Comparison) -> str:
    parts = []
    for keys, side in ((c.only_a, c.a), (c.only_b, c.b)):
        if keys:
            parts.append(f"<p>Only in {h.esc(side.name)} ({len(keys)}): " + "; ".join(h.esc(k.label) for k in keys)
                         + "</p>")
    return "<h2>Not compared</h2>" + "".join(parts) if parts else ""


def _cleared(c: Comparison) -> str:
    items = [f'<li><span class="{"bad" if m.verdict == "regression" else "good"}">{m.verdict}</span> '
             f"{h.esc(cell.key.label)}, {m.name}: {format_change(m.change)} ({format_ci(m.change)}, "
             f"p {format_p(m)} after Holm)</li>"
             for cell in c.cells for m in (cell.throughput, cell.p99) if m.verdict in ("regression", "improvement")]
    return "<ul>" + "".join(items) + "</ul>" if items else "<p>No change cleared the noise.</p>"


def render(c: Comparison) -> h.Page:
    page = h.Page(title=f"workerbench: {c.b.name} against {c.a.name}", subtitle=h.esc(headline(c)),
                  charts=bool(c.cells))
    drift = f'<p class="bad">{h.esc(shared_shift(c))}</p>' if shared_shift(c) else ""
    page.add(f'<div class="verdict">{_cleared(c)}{drift}</div>', _sides(c))
    if c.cells:
        page.add("<h2>Changes</h2>",
                 h.chart(change_figure(c, "throughput"), "change-throughput",
                         "Requests/s of B over A per cell (geometric means of the repeats); dotted lines: the "
                         "smallest change that counts."),
                 h.chart(change_figure(c, "p99"), "change-p99", "p99 latency of B against A per cell."),
                 "<h2>Every matched cell</h2>", _table(c))
    page.add(_differences(c), _unmatched(c))
    return page


def write(c: Comparison, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return render(c).write(path)
