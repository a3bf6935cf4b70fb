"""A real headless Chromium (Debian's ``chromium`` package) driven by playwright, and the checks every page of
ours must pass in it: no console errors, no request that leaves ``file://``, every chart drawn with the numbers
of its table, sortable tables that sort. Screenshots go to the test's tmp folder and to ``results/screenshots/``
(ignored by git), and their paths are printed, so a person can look at what a reader sees.

Never a browser download: playwright is pointed at the system's executable. Without it the tests fail with the
install hint; ``WORKERBENCH_NO_BROWSER=1`` skips them on a machine without one on purpose, except in CI
(``CI=true``), where they must run.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
INSTALL_HINT = "chromium not found: apt-get install chromium (Debian), and pip install playwright (the test extra)"
SCREENSHOTS = ROOT / "results" / "screenshots"
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def _missing(reason: str) -> None:
    if os.environ.get("WORKERBENCH_NO_BROWSER") == "1" and os.environ.get("CI") != "true":
        pytest.skip(f"{reason} and WORKERBENCH_NO_BROWSER=1")
    pytest.fail(f"{reason}: {INSTALL_HINT}, or set WORKERBENCH_NO_BROWSER=1 (outside CI) to skip the browser tests")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("playwright is not installed")
    exe = chromium_path()
    if exe is None:
        _missing("chromium is not installed")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


@dataclass
class Visit:
    """A page opened from disk, with everything it said and asked for while loading."""

    page: Any
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def remote_requests(self) -> list[str]:
        return [url for url in self.requests if not url.startswith(LOCAL_SCHEMES)]


@pytest.fixture
def visit(browser: Any) -> Iterator[Any]:
    """``visit(path)`` opens a file in a fresh 1280-wide page and returns the :class:`Visit`."""
    contexts: list[Any] = []

    def open_file(path: Path) -> Visit:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        seen = Visit(page=page)
        page.on("console", lambda msg: seen.errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: seen.errors.append(str(exc)))
        page.on("request", lambda request: seen.requests.append(request.url))
        page.goto(path.resolve().as_uri(), wait_until="load")
        page.wait_for_load_state("networkidle")
        return seen

    yield open_file
    for context in contexts:
        context.close()


def screenshot(visit: Visit, tmp_path: Path, name: str) -> Path:
    """A full-page screenshot kept with the test run and copied to results/screenshots/; its path is printed."""
    target = tmp_path / f"{name}.png"
    visit.page.screenshot(path=str(target), full_page=True)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    kept = SCREENSHOTS / target.name
    shutil.copyfile(target, kept)
    print(f"screenshot: {kept}")
    return kept


# what every chart and table must do ---------------------------------------------------------------------------------

_CHARTS_JS = """
() => Array.from(document.querySelectorAll("figure.chart")).map(fig => {
  const plot = fig.querySelector(".js-plotly-plot");
  const table = fig.querySelector("table[data-chart]");
  return {
    id: plot ? plot.id : null,
    table: table ? table.getAttribute("data-chart") : null,
    svg: plot ? plot.querySelectorAll(".main-svg").length : 0,
    drawn: plot ? plot.querySelectorAll(".trace .point, .trace .points path").length : 0,
    traces: plot ? plot.data.map(t => ({name: t.meta !== undefined ? String(t.meta) : t.name,
                                        x: Array.from(t.x || []), y: Array.from(t.y || [])})) : [],
    rows: table ? Array.from(table.tBodies[0].rows).map(r => ({
      name: r.cells[0].textContent, x: r.cells[1].getAttribute("data-sort") || r.cells[1].textContent,
      y: r.cells[2].getAttribute("data-sort")})) : [],
  };
})
"""


def check_charts(visit: Visit) -> list[dict[str, Any]]:
    """Every chart is drawn (an SVG with a mark per point) from exactly the numbers of the table under it."""
    charts: list[dict[str, Any]] = visit.page.evaluate(_CHARTS_JS)
    assert charts, "no charts on the page"
    for chart in charts:
        assert chart["id"] and chart["table"] == chart["id"], chart["id"]
        assert chart["svg"] >= 1, f"{chart['id']}: plotly drew nothing"
        drawn = [(t["name"], x, y) for t in chart["traces"] for x, y in zip(t["x"], t["y"], strict=True)]
        assert drawn, f"{chart['id']}: no data"
        assert chart["drawn"] >= sum(y is not None for _, _, y in drawn), f"{chart['id']}: fewer marks than points"
        assert len(chart["rows"]) == len(drawn), chart["id"]
        for (name, x, y), row in zip(drawn, chart["rows"], strict=True):
            assert row["name"] == name, (chart["id"], row, name)
            assert _same(row["x"], x), (chart["id"], row, x)
            assert (row["y"] in ("", None) and y is None) or float(row["y"]) == pytest.approx(y, rel=1e-5), \
                (chart["id"], row, y)
    return charts


def _same(shown: str, drawn: Any) -> bool:
    if isinstance(drawn, int | float):
        return float(shown) == pytest.approx(float(drawn), rel=1e-5)
    return shown == str(drawn)


def column_values(visit: Visit, table: str, column: int) -> list[float | None]:
    raw: list[str | None] = visit.page.eval_on_selector(
        table, f"t => Array.from(t.tBodies[0].rows).map(r => r.cells[{column}].getAttribute('data-sort'))")
    return [None if v in (None, "") else float(v) for v in raw]


def check_sorting(visit: Visit, table: str, column: int) -> None:
    """A click on the header sorts ascending (missing values last), a second click descending."""
    before = column_values(visit, table, column)
    present = [v for v in before if v is not None]
    assert len(set(present)) >= 2, f"{table}: nothing to sort"
    header = f"{table} thead th:nth-child({column + 1})"
    visit.page.click(header)
    ascending = column_values(visit, table, column)
    assert ascending == sorted(present) + [None] * (len(before) - len(present))
    assert visit.page.get_attribute(header, "aria-sort") == "ascending"
    visit.page.click(header)
    assert column_values(visit, table, column) == sorted(present, reverse=True) + [None] * (len(before) - len(present))
