"""The self-contained HTML pages a run leaves (report.html, compare.html, index.html): one shell, one style.

Every page works offline and loads nothing: plotly.js (when a page has charts), the data, the style and the
few lines of JavaScript that sort tables are inlined. Charts are plotly figures (plotly writes
self-contained interactive charts; hand-written chart code would be ours to keep); each chart is followed by
a table of the numbers it draws, so a reader can copy them and the browser tests can check that what was
drawn is what the table says. Tables with ``class="sortable"`` sort by a click on a header; a cell's
``data-sort`` holds the number it sorts by, so "1,234" and "—" sort as numbers and missing values last.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from scripts.common.files import write_text_atomic
from scripts.common.formatting import MISSING, as_number

_STYLE = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 1.2em 3em; color: #1d1d1f; }
h1 { font-size: 1.6em; margin: 0.8em 0 0.2em; } h2 { margin-top: 1.8em; border-bottom: 1px solid #ddd; }
h3 { margin-top: 1.3em; }
.meta { color: #555; margin: 0 0 1em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.88em; }
.scroll { overflow-x: auto; max-width: 100%; }
td.num, td.nowrap, td:first-child { white-space: nowrap; }
th, td { padding: 0.25em 0.6em; border-bottom: 1px solid #e5e5e5; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; user-select: none; white-space: nowrap; }
table.sortable th::after { content: " \\2195"; color: #bbb; }
table.sortable th[aria-sort="ascending"]::after { content: " \\2191"; color: #333; }
table.sortable th[aria-sort="descending"]::after { content: " \\2193"; color: #333; }
.verdict { background: #f4f8fc; border-left: 4px solid #1f77b4; padding: 0.6em 1em; margin: 1em 0; }
.verdict li { margin: 0.25em 0; } .verdict h2 { margin-top: 0.3em; }
.flag { display: inline-block; background: #fff3cd; border-radius: 3px; padding: 0 0.35em; font-size: 0.85em; }
.bad { color: #b00020; font-weight: 600; } .good { color: #0a7a2f; font-weight: 600; } .muted { color: #777; }
details.chart-data summary, details.log summary { cursor: pointer; color: #555; font-size: 0.9em; }
pre { background: #f6f6f6; padding: 0.6em; overflow-x: auto; font-size: 0.85em; }
figure.chart { margin: 1em 0 1.6em; } figure.chart figcaption { color: #444; font-size: 0.92em; margin: 0.3em 0; }
nav.toc a { margin-right: 0.9em; }
.tone-good { background: #e6f4ea; } .tone-bad { background: #fce8ea; }
"""

# Sorting: numbers by data-sort (missing values last in either direction), text by its content.
_SORT_JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  table.querySelectorAll("thead th").forEach(function (th, column) {
    th.addEventListener("click", function () {
      var ascending = th.getAttribute("aria-sort") !== "ascending";
      table.querySelectorAll("thead th").forEach(function (other) { other.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", ascending ? "ascending" : "descending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[column];
        var raw = cell ? cell.getAttribute("data-sort") : null;
        if (raw !== null) { return raw === "" ? null : parseFloat(raw); }
        return cell ? cell.textContent.trim().toLowerCase() : null;
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) { return x === y ? 0 : (x === null ? 1 : -1); }
        var order = x < y ? -1 : (x > y ? 1 : 0);
        return ascending ? order : -order;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    });
  });
});
"""

PLOTLY_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "png"}}


def esc(value: object) -> str:
    return html.escape(str(value), quote=True)


@dataclass(frozen=True, slots=True)
class Cell:
    """A table cell: the text shown, the number it sorts by (None: sorts as text, or last when ``numeric``)."""

    text: str
    sort: float | None = None
    numeric: bool = False
    css: str = ""
    raw_html: bool = False  # text is trusted markup (built here), not data


def num(text: str, value: object) -> Cell:
    return Cell(text, as_number(value), numeric=True)


def table(headers: Sequence[str], rows: Iterable[Sequence[Cell | str]], *, sortable: bool = True,
          numeric: Sequence[bool] | None = None, attrs: str = "") -> str:
    """An HTML table; ``numeric`` right-aligns those columns (and sorts them by number)."""
    numeric = numeric or [False] * len(headers)
    head = "".join(f'<th class="num">{esc(h)}</th>' if n else f"<th>{esc(h)}</th>"
                   for h, n in zip(headers, numeric, strict=True))
    body = []
    for row in rows:
        cells = []
        for i, value in enumerate(row):
            cell = value if isinstance(value, Cell) else Cell(str(value))
            classes = " ".join(c for c in ("num" if cell.numeric or numeric[i] else "", cell.css) if c)
            sort = "" if not (cell.numeric or numeric[i]) else \
                f' data-sort="{"" if cell.sort is None else repr(float(cell.sort))}"'
            text = cell.text if cell.raw_html else esc(cell.text)
            cells.append(f'<td{f" class={chr(34)}{classes}{chr(34)}" if classes else ""}{sort}>{text}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    kind = ' class="sortable"' if sortable else ""
    # A wide table scrolls inside its own box instead of widening the whole page.
    return (f'<div class="scroll"><table{kind}{attrs}><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody>'
            "</table></div>")


def _point_text(value: object) -> str:
    number = as_number(value)
    if number is None:
        return MISSING if value is None else str(value)
    return f"{number:.6g}"


def chart(figure: go.Figure, chart_id: str, caption: str) -> str:
    """A plotly figure and, below it, the table of every point it draws (series, x, y)."""
    rows = []
    for trace in figure.data:
        xs = list(trace.x) if trace.x is not None else []
        ys = list(trace.y) if trace.y is not None else []
        series = str(trace.meta if trace.meta is not None else trace.name)  # meta: a fuller name than the legend's
        for x, y in zip(xs, ys, strict=True):
            rows.append([Cell(series), Cell(_point_text(x), as_number(x), numeric=as_number(x) is not None),
                         num(_point_text(y), y)])
    plot = figure.to_html(full_html=False, include_plotlyjs=False, div_id=chart_id, config=PLOTLY_CONFIG)
    numbers = table(("series", "x", "y"), rows, attrs=f' data-chart="{esc(chart_id)}"')
    return (f'<figure class="chart">{plot}<figcaption>{esc(caption)}</figcaption>'
            f'<details class="chart-data"><summary>The numbers in this chart</summary>{numbers}</details></figure>')


@dataclass
class Page:
    """A page being built: its sections in order, and whether it needs plotly.js."""

    title: str
    subtitle: str = ""
    sections: list[str] = field(default_factory=list)
    charts: bool = False

    def add(self, *parts: str) -> None:
        self.sections.extend(parts)

    def render(self) -> str:
        plotly = f"<script>{get_plotlyjs()}</script>" if self.charts else ""
        return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                f"<title>{esc(self.title)}</title><style>{_STYLE}</style>{plotly}</head><body>"
                f"<h1>{esc(self.title)}</h1>"
                + (f'<p class="meta">{self.subtitle}</p>' if self.subtitle else "")
                + "\n".join(self.sections)
                + f"<script>{_SORT_JS}</script></body></html>\n")

    def write(self, path: Path) -> Path:
        write_text_atomic(path, self.render())
        return path


def pre(text: str) -> str:
    return f"<pre>{esc(text)}</pre>"
