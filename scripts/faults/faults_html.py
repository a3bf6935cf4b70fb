"""A faults run's ``report.html``: one self-contained page, in the bench report's shell and style
(:mod:`scripts.render.html`).

Every run, bench or faults, writes its page as ``report.html`` (a faults run wrote ``faults.html`` before: a
re-render removes that old name, so a folder never holds two pages of one run).

For a reader who has not seen the suite before, in the order they ask: what was done and how to read it, the
caution x mode table (each caution of the long-lived worker model, the fault that measures it, each mode's
outcome in a few words), then per fault what was injected, an interactive availability timeline and a
sortable table with the failures split by how they ended; then memory against requests, slow clients
against K, the throughput cost of recycling, the environment, and cases the harness could not measure with
their log tails. A pure renderer: the records come measured (:mod:`scripts.faults`), this module lays them out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from statistics import median
from typing import Any

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from scripts.common.formatting import MISSING, format_rps, format_sig
from scripts.faults import faults_summary as fr
from scripts.records.records import FaultRecord
from scripts.render import completeness
from scripts.render import html as h
from scripts.render.charts import LAYOUT, MARGIN
from scripts.render.plot_style import mode_colors

PAGE_NAME = "report.html"
OLD_PAGE_NAME = "faults.html"  # what faults runs before 2026-11-29 wrote; results/index.html still links it
KINDS = ("refused", "reset", "timeout", "5xx", "wrong")
DASHES = {"refused": "dot", "reset": "solid", "timeout": "dash", "5xx": "dashdot", "wrong": "longdashdot",
          "failed": "solid", "unsent": "dot"}
# Every chart's legend on the right, one entry a line: eleven modes side by side would cover the plot.
LEGEND_RIGHT = {"orientation": "v", "x": 1.02, "xanchor": "left", "y": 1, "yanchor": "top", "font": {"size": 11}}
HOVER = "%{customdata[0]}<extra></extra>"

INTRO = """<section id="how-to-read"><h2>How to read this page</h2>
<p>Each <b>fault</b> was injected into each server <b>mode</b> (how the same app is served: a process per request,
a pool of long-lived workers, an event loop, threads) while a load generator sent a steady, moderate stream of
ordinary requests at a fixed rate (an <i>open loop</i>: it does not slow down when the server stalls, so a stall
shows up as failures and latency). The question each fault asks: what does this go-wrong cost the
<i>other</i> requests, and does the server heal itself?</p>
<ul>
<li><b>lost</b>: ordinary requests of the steady load that got no 2xx answer. How they failed:
<b>refused</b> (could not connect: nothing listening, or the backlog full), <b>reset</b> (connected, then the
connection closed without an answer, as when the process holding it dies), <b>timeout</b> (no answer within
the request timeout: the request sits behind a stuck process), <b>5xx</b> (the server answered with an error),
<b>wrong</b> (an answer neither 2xx nor 5xx, or not HTTP); <b>unsent</b>: scheduled but never sent by the end,
because every connection was still waiting. After a shutdown's SIGTERM the listener closes, which is the point:
its refused and unsent requests are counted in their columns but not as lost (lost counts the cut ones).</li>
<li><b>new processes</b>: processes of the server first seen after the fault, such as a worker started to
replace a dead one (&mdash; for a process per request, whose processes come and go anyway).</li>
<li><b>recovery</b>: seconds from the fault until the offered load is answered in full again and stays so
(&mdash;: not back by the end, or not measured).</li>
<li><b>n/a</b>: the fault means nothing for this process model (recycling a process that serves one request
anyway). <b>not offered</b>: the server has no such feature (a worker timeout, request-count recycling, a
reload signal), as registered in <code>scripts/modes/registry.py</code>; a fact about the server, not a failure.</li>
<li>In the timelines, time 0 is the fault's moment; colour is the mode, and in the lower panel the line's
style says how requests failed. Click a legend entry to hide a mode, drag to zoom, double-click to reset.</li>
</ul></section>"""

CAUTION_MEANING = {
    "state": "a value one request leaves in a module is seen by the next request the same process serves",
    "errors": "an exception, or a crash of the process, takes down more than the request that caused it",
    "leaks": "memory a request keeps grows the process until something restarts it; restarting costs throughput",
    "lifecycle": "stuck workers must be found and killed, workers replaced (reload), and the server stopped cleanly",
    "blocking calls": "a call that blocks without yielding (C code, a computation) stalls every green thread or "
                      "coroutine of its process, where threads and processes serve beside it",
    "cleanup": "a process that exits must close what it opened (here: its database connection)",
    "slow clients": "a client that sends or reads slowly ties up whatever serves it",
}


# the caution x mode table -----------------------------------------------------------------------------------------


def _matrix_cell(r: FaultRecord | None) -> h.Cell:
    if r is None:
        return h.Cell(MISSING, css="muted")
    css = {"n/a": "muted", "not offered": "muted", "failed": "bad"}.get(r.status, "")
    tint = fr.tone(r)
    return h.Cell(fr.short(r), css=f"{css} tone-{tint}" if tint else css)


def matrix(records: Sequence[FaultRecord]) -> str:
    modes = list(dict.fromkeys(r.mode for r in records))
    by = {(r.fault, r.mode): r for r in records}
    rows: list[list[h.Cell | str]] = []
    for caution, faults in fr.CAUTIONS:
        for fault in (f for f in faults if any((f, m) in by for m in modes)):
            link = h.Cell(f'<a href="#fault-{_anchor(fault)}">{h.esc(fault)}</a>', raw_html=True)
            rows.append([h.Cell(caution, css="nowrap"), link, *(_matrix_cell(by.get((fault, m))) for m in modes)])
    meanings = "".join(f"<li><b>{h.esc(c)}</b>: {h.esc(m)}</li>" for c, m in CAUTION_MEANING.items())
    return ('<section id="matrix"><h2>Each caution of the worker model, measured in every mode</h2>'
            f"<ul>{meanings}</ul>"
            '<p class="muted">A few words per case; the section of each fault has the numbers. "loris" and "no-read" '
            "are the two kinds of slow client, K:share of ordinary requests answered. "
            '<span class="tone-good">&nbsp;Green&nbsp;</span>: nothing lost, state isolated, everything closed. '
            '<span class="tone-bad">&nbsp;Red&nbsp;</span>: state leaked, requests lost for good, processes or '
            "connections left behind, most requests failing beside slow clients, or recycling that halves "
            "throughput.</p>"
            + h.table(("caution", "fault", *modes), rows, sortable=False, attrs=' id="matrix-table"')
            + "</section>")


def _anchor(fault: str) -> str:
    return fault.replace("+", "-")


# charts -----------------------------------------------------------------------------------------------------------


def _served_hover(r: FaultRecord, x: float, served: float) -> str:
    return (f"<b>{r.mode}</b> {x:+.1f} s from the fault<br>{served:.0f}% of the offered {r.offered_rate:g}/s "
            "answered 2xx")


def availability(fault: str, records: Sequence[FaultRecord]) -> go.Figure | None:
    """Share of the offered load answered 2xx (top) and failures/s by how they ended (bottom), against time."""
    usable = [r for r in records if fr.has_timeline(r)]
    if not usable:
        return None
    colors = mode_colors([r.mode for r in usable])
    drawn = [(r, *fr.timelines(r)) for r in usable]
    # Without a single failure a second, empty panel would only take room (and the time axis with it).
    panels = 2 if any(failed for *_, failed in drawn) else 1
    fig = make_subplots(rows=panels, cols=1, shared_xaxes=True, row_heights=(0.68, 0.32)[:panels],
                        vertical_spacing=0.06)
    for r, xs, served, failed in drawn:
        fig.add_trace(go.Scatter(
            name=r.mode, meta=f"{r.mode} answered %", legendgroup=r.mode, x=xs, y=served, mode="lines+markers",
            marker={"size": 3}, line={"color": colors[r.mode], "width": 1.6},
            customdata=[[_served_hover(r, x, y)] for x, y in zip(xs, served, strict=True)], hovertemplate=HOVER),
            row=1, col=1)
        for kind, values in failed.items():
            fig.add_trace(go.Scatter(
                name=f"{r.mode}: {kind}", meta=f"{r.mode} {kind}/s", legendgroup=r.mode, x=xs, y=values,
                mode="lines+markers", marker={"size": 3},
                line={"color": colors[r.mode], "dash": DASHES.get(kind, "solid"), "width": 1.3},
                customdata=[[f"<b>{r.mode}</b> {x:+.1f} s: {v:.1f} {kind}/s"]
                            for x, v in zip(xs, values, strict=True)],
                hovertemplate=HOVER), row=2, col=1)
    fig.add_vline(x=0, line={"color": "black", "dash": "dot", "width": 1})
    fig.update_layout(**{**LAYOUT, "legend": LEGEND_RIGHT, "margin": {**MARGIN, "t": 50}},
                      height=520 if panels == 2 else 400,
                      title=f"{fault}: served share{' and failures' if panels == 2 else ''} around the fault (0 s)"
                      + ("" if panels == 2 else ": no request failed"))
    fig.update_yaxes(title_text="% of offered answered 2xx", rangemode="tozero", row=1, col=1)
    if panels == 2:
        fig.update_yaxes(title_text="failures/s", rangemode="tozero", row=2, col=1)
    fig.update_xaxes(title_text=f"seconds from the fault (trailing mean over {fr.SMOOTH_S} s)", row=panels, col=1)
    return fig


def memory(records: Sequence[FaultRecord]) -> go.Figure | None:
    usable = [r for r in records if r.fault in ("leak", "leak+recycle", "leak+rss") and r.details.get("pss")]
    if not usable:
        return None
    colors = mode_colors(list(dict.fromkeys(r.mode for r in usable)))
    fig = go.Figure()
    fig.update_layout(**{**LAYOUT, "legend": LEGEND_RIGHT}, title="Memory leak: PSS of the process tree against "
                      "requests served (solid: no recycling; dashed: recycled by request count; "
                      "dotted: by RSS)", xaxis_title="requests served "
                      "(each keeps 16 KiB)", yaxis_title="PSS (MB)")
    for r in usable:
        recycled = r.fault in ("leak+recycle", "leak+rss")
        name = r.mode + {"leak+recycle": " recycled", "leak+rss": " recycled by RSS"}.get(r.fault, "")
        xs, ys = [p[0] for p in r.details["pss"]], [p[1] for p in r.details["pss"]]
        fig.add_trace(go.Scatter(
            name=name, x=xs, y=ys, mode="lines+markers", marker={"size": 4},
            line={"color": colors[r.mode],
                  "dash": ("dot" if r.fault == "leak+rss" else "dash") if recycled else "solid"},
            customdata=[[f"<b>{name}</b><br>{x:,} requests: {y:.0f} MB"] for x, y in zip(xs, ys, strict=True)],
            hovertemplate=HOVER))
    return fig


def slow_clients(records: Sequence[FaultRecord]) -> go.Figure | None:
    usable = [r for r in records if r.fault == "slow" and r.details.get("levels")]
    if not usable:
        return None
    kinds = list(dict.fromkeys(k for r in usable for k in r.details["levels"]))
    colors = mode_colors([r.mode for r in usable])
    fig = make_subplots(rows=1, cols=len(kinds), shared_yaxes=True, subplot_titles=[
        {"slowloris": "slowloris: half a request, then silence", "nonreader": "non-readers: ask for 2 MiB, read "
         "nothing"}.get(k, k) for k in kinds])
    for col, kind in enumerate(kinds, start=1):
        for i, r in enumerate(usable):
            levels = r.details["levels"].get(kind, [])
            fig.add_trace(go.Scatter(
                name=r.mode, meta=f"{r.mode} {kind}", legendgroup=r.mode, showlegend=col == 1,
                x=[lv["k"] for lv in levels], y=[lv["success_pct"] for lv in levels], mode="lines+markers",
                # Modes often share a value (0% or 100%): symbols and sizes that differ keep each one visible.
                marker={"symbol": i % 12, "size": 13 - (i % 6)}, line={"color": colors[r.mode], "width": 1.2},
                customdata=[[f"<b>{r.mode}</b> beside {lv['k']} {kind} clients ({lv['held']} held): "
                             f"{lv['success_pct']:g}% answered, p99 {format_sig(lv.get('p99_ms'))} ms"]
                            for lv in levels], hovertemplate=HOVER), row=1, col=col)
    ks = sorted({lv["k"] for r in usable for levels in r.details["levels"].values() for lv in levels})
    fig.update_xaxes(type="log", tickvals=ks, ticktext=[str(k) for k in ks], title_text="slow clients (K)")
    fig.update_yaxes(title_text="ordinary requests answered 2xx (%)", range=[-5, 105], row=1, col=1)
    # The subplots' own titles sit at their top: the figure's title needs room above them.
    fig.update_layout(**{**LAYOUT, "legend": LEGEND_RIGHT, "margin": {**MARGIN, "t": 100}},
                      title="Slow clients: ordinary requests answered beside K slow ones", hovermode="x", height=500)
    return fig


def recycling(records: Sequence[FaultRecord]) -> go.Figure | None:
    usable = [r for r in records if r.fault == "recycle" and r.ok]
    if not usable:
        return None
    every = usable[0].details.get("every", 1000)
    fig = go.Figure()
    fig.update_layout(**LAYOUT, title="The cost of recycling: requests/s at full speed", barmode="group",
                      yaxis_title="requests/s (median of the rounds)")
    for label, key, color in (("no recycling", "rps_without", "#1f77b4"),
                              (f"recycled every {every:,} requests", "rps_with", "#ff7f0e")):
        values = [median(r.details[key]) for r in usable]
        fig.add_trace(go.Bar(
            name=label, x=[r.mode for r in usable], y=values, marker_color=color,
            customdata=[[f"<b>{r.mode}</b> {label}: {format_rps(v)} req/s (rounds: "
                         f"{', '.join(format_rps(x) for x in r.details[key])})<br>{r.details['processes_started']} "
                         f"processes started per {r.details['duration_s']:g} s with recycling"]
                        for r, v in zip(usable, values, strict=True)], hovertemplate=HOVER))
    return fig


# per fault --------------------------------------------------------------------------------------------------------

LOAD_COLUMNS = ("mode", "lost", *KINDS, "unsent", "recovery s", "new processes", "verdict")


def _load_row(r: FaultRecord) -> list[h.Cell | str]:
    split = r.details.get("failures") or {}
    known = "failures" in r.details  # schema-1 records did not split their failures
    counts = [h.num(str(split.get(k, 0)) if known else MISSING, split.get(k, 0) if known else None)
              for k in (*KINDS, "unsent")]
    new = None if fr.per_request(r.mode) else r.details.get("new_processes")
    return [r.mode, h.num(h.esc(MISSING if r.requests_lost is None else r.requests_lost), r.requests_lost), *counts,
            h.num(MISSING if r.recovery_s is None else f"{r.recovery_s:.2f}", r.recovery_s),
            h.num(MISSING if new is None else str(new), new), _verdict(r)]


def _verdict(r: FaultRecord) -> h.Cell:
    if r.status == "failed":
        return h.Cell(f"harness failed: {r.error}", css="bad")
    return h.Cell(r.verdict, css="muted" if r.status in ("n/a", "not offered") else "")


def slow_table(records: Sequence[FaultRecord], attrs: str) -> str:
    """Share of ordinary requests answered per kind of slow client and K: one sortable column each."""
    kinds = list(dict.fromkeys(kind for r in records for kind in r.details.get("levels", {})))
    levels = sorted({(kind, lv["k"]) for r in records for kind, lvs in r.details.get("levels", {}).items()
                     for lv in lvs}, key=lambda key: (kinds.index(key[0]), key[1]))
    notes = any(not r.ok for r in records)  # a column for the cases the harness could not measure, if any
    rows: list[list[h.Cell | str]] = []
    for r in records:
        found = {(kind, lv["k"]): lv["success_pct"] for kind, lvs in r.details.get("levels", {}).items() for lv in lvs}
        cells = [h.num(MISSING if found.get(key) is None else f"{found[key]:g}%", found.get(key)) for key in levels]
        rows.append([r.mode, *cells, *([_verdict(r) if not r.ok else ""] if notes else [])])
    headers = ("mode", *(f"{fr.SLOW_SHORT.get(kind, kind)} K={k}" for kind, k in levels), *(["note"] if notes else []))
    return h.table(headers, rows, numeric=(False, *([True] * len(levels)), *([False] if notes else [])), attrs=attrs)


def recycle_table(records: Sequence[FaultRecord], attrs: str) -> str:
    rows: list[list[h.Cell | str]] = []
    for r in records:
        d = r.details
        if not r.ok:
            rows.append([r.mode, *([h.num(MISSING, None)] * 4), _verdict(r)])
            continue
        without, with_, ratio = median(d["rps_without"]), median(d["rps_with"]), d.get("ratio")
        rows.append([r.mode, h.num(format_rps(without), without), h.num(format_rps(with_), with_),
                     h.num(MISSING if ratio is None else f"{100 * (ratio - 1):+.0f}%", ratio),
                     h.num(", ".join(str(n) for n in d["processes_started"]), median(d["processes_started"])),
                     _verdict(r)])
    return h.table(("mode", "req/s without", "req/s recycled", "change", "processes started", "verdict"), rows,
                   numeric=(False, True, True, True, True, False), attrs=attrs)


def fault_table(fault: str, records: Sequence[FaultRecord]) -> str:
    attrs = f' id="table-{_anchor(fault)}" data-fault="{h.esc(fault)}"'
    if fault in ("slow", "recycle"):
        return (slow_table if fault == "slow" else recycle_table)(records, attrs)
    if any(fr.has_timeline(r) for r in records):
        numeric = (False, *([True] * (len(LOAD_COLUMNS) - 2)), False)
        return h.table(LOAD_COLUMNS, [_load_row(r) for r in records], numeric=numeric, attrs=attrs)
    return h.table(("mode", "outcome", "verdict"), [[r.mode, fr.short(r), _verdict(r)] for r in records],
                   attrs=attrs)


EXTRA_CHARTS = {
    "leak+recycle": ("memory", memory, "PSS (proportional set size: shared pages split among the processes that "
                     "share them) of the whole process tree, sampled every 0.25 s. A pool without recycling grows "
                     "by what each request keeps; recycling bounds it."),
    "slow": ("slow", slow_clients, "Each point: the share of the ordinary steady load answered 2xx while K slow "
             "clients were held open. A server that gives each connection a process or thread for its whole "
             "life runs out of them; an event loop multiplexes."),
    "recycle": ("recycle", recycling, "Full-speed throughput on /plaintext with and without request-count "
                "recycling, server and generator on their own CPUs; a worker forked from its master restarts "
                "in milliseconds, a spawned one re-imports everything."),
}


def fault_section(fault: str, records: Sequence[FaultRecord], everything: Sequence[FaultRecord],
                  meta: Mapping[str, Any]) -> str:
    """One fault: what was done, its timeline, any chart of its own (drawn from ``everything``: the memory chart
    spans both leak faults and sits under the second), and its table."""
    parts = [f'<section id="fault-{_anchor(fault)}"><h2>{h.esc(fault)}</h2><p>{h.esc(fr.what(fault, meta))}</p>']
    figure = availability(fault, records) if not fault.startswith("leak") else None
    if figure is not None:
        parts.append(h.chart(figure, f"chart-availability-{_anchor(fault)}",
                             "The share of the steady load answered 2xx (above 100% right after a stall: queued "
                             "requests answered at once); where requests failed, the lower panel has failures per "
                             "second, the line's style saying how they failed."))
    if fault in EXTRA_CHARTS:
        name, draw, caption = EXTRA_CHARTS[fault]
        extra = draw(everything)
        if extra is not None:
            parts.append(h.chart(extra, f"chart-{name}", caption))
    parts.append(fault_table(fault, records))
    return "".join(parts) + "</section>"


# the page ---------------------------------------------------------------------------------------------------------


def your_app_section(meta: Mapping[str, Any], records: Sequence[FaultRecord]) -> str:
    """A user's app: what was served and loaded, the faults that need the sample app and why, the modes that cannot
    serve it; empty for the sample app."""
    app = fr.your_app(meta)
    if app is None:
        return ""
    unmeasured = fr.unmeasured_cautions(records)
    parts = ['<section id="your-app"><h2>Your app</h2>',
             f"<p>Served: <code>{h.esc(app.served)}</code>. Every fault's steady load sends your request, "
             f"<code>{h.esc(app.request)}</code>, checked against its expectations before each fault.</p>"]
    if app.needs_sample_app:
        rows: list[list[h.Cell | str]] = [[f, h.Cell(n, css="muted")] for f, n in app.needs_sample_app.items()]
        rowless = (f" So the cautions they measure ({h.esc(', '.join(unmeasured))}) have no row in the table below; "
                   "run <code>python -m scripts.faults</code> without <code>--app</code> to see them on the sample app."
                   if unmeasured else "")
        parts.append("<h3>Needs the sample app</h3><p>Not run: these faults are requests to the sample app's fault "
                     f"endpoints (<code>apps/faults.py</code>), which your app does not have.{rowless}</p>"
                     + h.table(("fault", "what it needs"), rows, sortable=False, attrs=' id="needs-sample-app"'))
    if app.not_applicable:
        rows = [[m, h.Cell(why, css="muted")] for m, why in app.not_applicable.items()]
        parts.append("<h3>Not applicable</h3><p>Modes asked for that cannot serve your app.</p>"
                     + h.table(("mode", "why"), rows, sortable=False, attrs=' id="not-applicable"'))
    return "".join(parts) + "</section>"


def failures_section(records: Sequence[FaultRecord]) -> str:
    failed = [r for r in records if r.status == "failed"]
    if not failed:
        return ""
    parts = ['<section id="failed"><h2>Cases the harness could not measure</h2>']
    for r in failed:
        log = h.pre(r.log_tail) if r.log_tail.strip() else "<p>No server log captured.</p>"
        parts.append(f"<h3>{h.esc(r.fault)} / {h.esc(r.mode)}</h3>{h.pre(r.error or 'no error message')}"
                     f'<details class="log" open><summary>Server log tail</summary>{log}</details>')
    return "".join(parts) + "</section>"


def environment_section(meta: Mapping[str, Any]) -> str:
    env = meta.get("environment") or {}
    if not isinstance(env, Mapping) or not env:
        return '<section id="environment"><h2>Environment</h2><p>Not recorded in this run.</p></section>'
    flat = [[k, _value(v)] for k, v in env.items() if not isinstance(v, Mapping)]
    packages = env.get("packages") or {}
    rows = [[k, _value(v)] for k, v in packages.items()] if isinstance(packages, Mapping) else []
    return ('<section id="environment"><h2>Environment and versions</h2>' + h.table(("", ""), flat, sortable=False)
            + "<h3>Packages</h3>" + h.table(("package", "version"), rows, sortable=False) + "</section>")


def _value(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def _subtitle(run_dir: Path, records: Sequence[FaultRecord], meta: Mapping[str, Any]) -> str:
    env = meta.get("environment") or {}
    commit = str(env.get("git_commit") or MISSING)[:10] + (" (dirty)" if env.get("git_dirty") else "")
    started = str(meta.get("started") or MISSING).replace("T", " ").rstrip("Z")
    modes = list(dict.fromkeys(r.mode for r in records))
    faults = list(dict.fromkeys(r.fault for r in records))
    bits = [f"run {run_dir.name}", f"started {started} UTC", f"commit {commit}",
            f"{len(faults)} faults x {len(modes)} modes", "quick (short loads)" if meta.get("quick") else "default run",
            f"{meta.get('workers', 2)} workers per pool", str(env.get("cpu_model") or "CPU model not recorded")]
    links = " · ".join(f'<a href="{n}">{n}</a>' for n in ("faults.md", "faults.json") if (run_dir / n).exists())
    interrupted = completeness.faults_banner(meta, records)
    head = f'<b class="bad" id="interrupted">{h.esc(interrupted)}</b><br>' if interrupted else ""
    return head + h.esc(" · ".join(bits)) + (f"<br>{links}" if links else "")


def render(records: Sequence[FaultRecord], run_dir: Path, meta: Mapping[str, Any]) -> h.Page:
    page = h.Page(title="workerbench faults: what each server model costs when things go wrong",
                  subtitle=_subtitle(run_dir, records, meta), charts=bool(records))
    if not records:
        page.add("<p>No fault was recorded in this run.</p>")
        return page
    order = [f for _, faults in fr.CAUTIONS for f in faults] + [r.fault for r in records]
    faults = [f for f in dict.fromkeys(order) if any(r.fault == f for r in records)]
    sections = [fault_section(f, [r for r in records if r.fault == f], records, meta) for f in faults]
    mine = your_app_section(meta, records)
    toc = " ".join(f'<a href="#{a}">{label}</a>' for a, label in (("how-to-read", "How to read"),
                                                                  *([("your-app", "Your app")] if mine else []),
                                                                  ("matrix", "Cautions x modes")))
    toc += " · " + " ".join(f'<a href="#fault-{_anchor(f)}">{h.esc(f)}</a>' for f in faults)
    page.add(f'<nav class="toc">{toc} · <a href="#environment">Environment</a></nav>', INTRO, mine, matrix(records),
             *sections, failures_section(records), environment_section(meta))
    return page


def write_page(records: Sequence[FaultRecord], run_dir: Path, meta: Mapping[str, Any]) -> Path:
    """Write ``run_dir/report.html`` atomically (and drop an older run's ``faults.html``); returns its path."""
    path = render(records, run_dir, meta).write(run_dir / PAGE_NAME)
    (run_dir / OLD_PAGE_NAME).unlink(missing_ok=True)
    return path
