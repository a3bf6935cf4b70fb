"""A tune run's report, from ``tune.json`` alone: ``summary.md``, ``report.html`` (with a chart per mode: capacity
over the settings tried, a heat map where there are two axes) and the console's closing text. The chart functions
are pure: records in, SVG text out."""

from __future__ import annotations

import html
import itertools
import math
from pathlib import Path

from scripts.tuning import results
from scripts.tuning.estimate import ASSUMPTION, estimate
from scripts.tuning.results import ModeResult, TuneRun, setting_label
from scripts.tuning.search import IMPROVES, Outcome, climb

SUMMARY, REPORT = "summary.md", "report.html"


def _fmt(value: float | None, spec: str = ",.1f", unit: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{unit}"


def winners(run: TuneRun) -> dict[str, ModeResult]:
    """Per scenario, the mode whose best setting has the highest capacity."""
    found: dict[str, ModeResult] = {}
    for m in run.modes:
        best = m.result(m.best)
        if best is None:
            continue
        held = found.get(m.scenario)
        held_best = held.result(held.best) if held else None
        if held_best is None or best.capacity_rps > held_best.capacity_rps:
            found[m.scenario] = m
    return found


def ratio(m: ModeResult) -> float | None:
    best, default = m.result(m.best), m.result(m.default)
    if best is None or default is None or not default.ok or default.capacity_rps <= 0:
        return None
    return best.capacity_rps / default.capacity_rps


def trade_off(m: ModeResult, slo_ms: float) -> str:
    """One paragraph naming what the best setting buys and what it costs."""
    best, default = m.result(m.best), m.result(m.default)
    if best is None:
        return f"{m.mode}: no setting met the target (p99 under {slo_ms:g} ms at 99% of the offered rate)."
    parts = [f"{m.mode} at {setting_label(m.best)} serves {best.capacity_rps:,.0f} requests/s with p99 under "
             f"{slo_ms:g} ms"]
    if default is not None and default.ok and default.capacity_rps > 0 and default.setting != best.setting:
        parts.append(f", {best.capacity_rps / default.capacity_rps:.2f}x its default ({setting_label(m.default)})")
        if best.memory_mb and default.memory_mb:
            parts.append(f", for {best.memory_mb / default.memory_mb:.2f}x the memory ({best.memory_mb:,.0f} MB "
                         f"against {default.memory_mb:,.0f} MB)")
    parts.append(". ")
    top = max((s for s in m.settings if s.ok), key=lambda s: s.capacity_rps, default=best)
    if best.capacity_rps < top.capacity_rps <= best.capacity_rps * IMPROVES:
        step = f"{(IMPROVES - 1) * 100:g}%"
        parts.append(f"{setting_label(top.setting)} measured {top.capacity_rps:,.0f}/s, less than {step} more: a "
                     f"step is taken only for {step} or more, so the smaller setting (less memory) is kept. ")
    if best.cpu_ms_per_request is not None:
        parts.append(f"Each request costs {best.cpu_ms_per_request:.2f} ms of CPU; ")
    if "threads" in (m.best or {}) and m.best and m.best["threads"] > 8:
        parts.append("many threads buy concurrency for waiting requests, but every worker's threads share one GIL, "
                     "so CPU-heavy requests gain nothing from them and each thread's stack and buffers cost memory.")
    elif "workers" in (m.best or {}):
        parts.append("workers run requests in parallel on separate CPUs but each holds a copy of the app, so memory "
                     "grows with every worker; past the CPUs, more workers only help requests that wait.")
    else:
        parts.append("its capacity is set by its process model, not by a setting.")
    return "".join(parts)


def estimate_line(run: TuneRun, m: ModeResult) -> str | None:
    cores, memory = run.plan.get("for_cores"), run.plan.get("for_memory_gib")
    best = m.result(m.best)
    if not cores or best is None or best.cpu_ms_per_request is None or best.memory_mb is None:
        return None
    server_cpus = (len([c for c in str(run.plan.get("server_cpus", "0")).split(",") if c]) or 1) * float(
        run.plan.get("cpu_quota") or 1.0)  # a quota of half a CPU: the measurement is of 0.5 CPU
    e = estimate(capacity_rps=best.capacity_rps, cpu_ms_per_request=best.cpu_ms_per_request,
                 memory_mb=best.memory_mb, processes=best.processes or 1, server_cpus=server_cpus,
                 workers=(m.best or {}).get("workers"), cores=cores, memory_gib=memory)
    where = f"{cores} core{'s' if cores != 1 else ''}" + (f" and {memory:g} GiB" if memory else "")
    workers = f" with {e.workers} workers" if e.workers else ""
    bound = " (memory-bound)" if e.memory_bound else ""
    return (f"ESTIMATE, not a measurement: on {where}, {m.mode}{workers} would serve about {e.capacity_rps:,.0f} "
            f"requests/s in {e.memory_mb:,.0f} MB{bound}. Assumed: {ASSUMPTION}.")


def climb_on_grid(m: ModeResult, memory_budget_mb: float | None = None) -> str | None:
    """For a grid run: the climb replayed on the grid's own figures (what it would have measured, and what it would
    have picked against the grid's best), so that the search is checked on one set of measurements."""
    if not m.axes or m.best is None or any(m.result(dict(zip(m.axes, v, strict=True))) is None
                                           for v in itertools.product(*m.axes.values())):
        return None  # not a complete grid

    def figure(setting: dict[str, int]) -> Outcome:
        s = m.result(setting)
        return Outcome(capacity=s.capacity_rps if s is not None and s.ok else None,
                       memory_mb=s.memory_mb if s is not None else None)

    pick, order = climb(list(m.axes.items()), figure, memory_budget_mb=memory_budget_mb)
    best, chosen = m.result(m.best), m.result(pick)
    if best is None or chosen is None or best.capacity_rps <= 0:
        return None
    return (f"The climb on these figures would measure {len(order)} of the {math.prod(map(len, m.axes.values()))} "
            f"settings ({', '.join(setting_label(o) for o in order)}) and pick {setting_label(pick)}: "
            f"{chosen.capacity_rps:,.0f}/s, {chosen.capacity_rps / best.capacity_rps:.2f}x the grid's best "
            f"({setting_label(m.best)}, {best.capacity_rps:,.0f}/s).")


def _row(m: ModeResult) -> str:
    best, default = m.result(m.best), m.result(m.default)
    r = ratio(m)
    return (f"| {m.mode} | {setting_label(m.best)} | {_fmt(best.capacity_rps if best else None, ',.0f')} | "
            f"{_fmt(best.p99_ms if best else None, '.1f')} | "
            f"{_fmt(best.cpu_ms_per_request if best else None, '.3f')} | "
            f"{_fmt(best.memory_mb if best else None, ',.0f')} | {setting_label(m.default)} | "
            f"{_fmt(default.capacity_rps if default and default.ok else None, ',.0f')} | "
            f"{_fmt(r, '.2f', 'x')} |")


def _settings_table(m: ModeResult) -> list[str]:
    lines = ["| setting | capacity /s | p99 ms | CPU ms/request | memory MB | rates tried | status |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for s in m.settings:
        status = "ok" if s.ok else f"failed: {s.error}"
        rounds = f" (median of {' / '.join(f'{c:,.0f}' for c in s.capacities)})" if len(s.capacities) > 1 else ""
        lines.append(f"| {setting_label(s.setting)} | {s.capacity_rps:,.0f}{rounds} | {_fmt(s.p99_ms, '.1f')} | "
                     f"{_fmt(s.cpu_ms_per_request, '.3f')} | {_fmt(s.memory_mb, ',.0f')} | {len(s.trials)} | "
                     f"{status} |")
    return lines


def summary_text(run: TuneRun) -> str:
    env, plan = run.environment, run.plan
    slo = float(plan.get("slo_p99_ms", 100.0))
    load = env.get("load_average") or [0, 0, 0]
    lines = ["# Tune: each mode's best setting on this machine", ""]
    if run.interrupted:
        lines += ["**Interrupted**: what was measured before Ctrl-C.", ""]
    lines += [f"Capacity: the highest offered rate (open loop, latency from the intended send) served at 99% or more "
              f"with p99 under {slo:g} ms; {plan.get('repeats')} interval(s) of {plan.get('interval_s')} s per rate, "
              f"bisected to {float(plan.get('precision', 0.05)) * 100:g}%. Server CPUs {plan.get('server_cpus')}, "
              f"generator CPUs {plan.get('client_cpus')}; load average at the start {load[0]:.2f} "
              f"(end: {plan.get('load_average_end', '-')}).", ""]
    if int(plan.get("rounds") or 1) > 1:
        lines += [f"Each setting measured {plan['rounds']} times"
                  f"{', round by round over the grid' if plan.get('grid') else ''}: its capacity, p99, CPU and "
                  "memory are those of the median round.", ""]
    if plan.get("memory_budget_mb"):
        lines += [f"Memory budget: {plan['memory_budget_mb']:g} MB (PSS of the whole server).", ""]
    for scenario in dict.fromkeys(m.scenario for m in run.modes):
        modes = [m for m in run.modes if m.scenario == scenario]
        win = winners(run).get(scenario)
        lines += [f"## {scenario}", ""]
        if win is not None:
            lines += [f"**Winner: {win.mode}** at {setting_label(win.best)}:", "", "```sh",
                      win.production_command or "", "```", ""]
        lines += ["| mode | best setting | capacity /s | p99 ms | CPU ms/request | memory MB | default setting | "
                  "default capacity /s | best / default |", "|---|---|---:|---:|---:|---:|---|---:|---:|"]
        lines += [_row(m) for m in modes]
        lines.append("")
        for m in modes:
            lines += [f"### {m.mode}", "", trade_off(m, slo), ""]
            if m.production_command:
                lines += ["Production command (the server's own, from the folder the app imports from):", "", "```sh",
                          m.production_command, "```", ""]
            if (line := estimate_line(run, m)) is not None:
                lines += [line, ""]
            if plan.get("grid") and (line := climb_on_grid(m, plan.get("memory_budget_mb"))) is not None:
                lines += [line, ""]
            lines += [*_settings_table(m), ""]
    return "\n".join(lines) + "\n"


# charts -------------------------------------------------------------------------------------------------------------


def _color(share: float) -> str:
    """White to blue by share of the best capacity."""
    share = max(0.0, min(1.0, share))
    return f"rgb({int(255 - 200 * share)},{int(255 - 130 * share)},{int(255 - 20 * share)})"


def heatmap_svg(m: ModeResult) -> str:
    """Capacity over the settings tried: a heat map for two axes (the first down, the second across), bars for one;
    a setting not tried is blank, a failed one is marked x."""
    axes = list(m.axes)
    tried = [s for s in m.settings if set(s.setting) == set(axes)]
    top = max((s.capacity_rps for s in tried), default=0.0) or 1.0
    if len(axes) >= 2:
        rows_axis, cols_axis = axes[0], axes[1]
        rows, cols = m.axes[rows_axis], m.axes[cols_axis]
    else:
        rows_axis, cols_axis = (axes[0] if axes else "setting"), ""
        rows, cols = (m.axes[axes[0]] if axes else [0]), [0]
    cw, ch, left, head = 64, 26, 110, 30
    cells = []
    for i, r in enumerate(rows):
        cells.append(f'<text x="{left - 6}" y="{head + i * ch + 17}" text-anchor="end">{rows_axis} {r}</text>')
        for j, c in enumerate(cols):
            s = next((s for s in tried if s.setting.get(rows_axis) == r and (not cols_axis
                                                                              or s.setting.get(cols_axis) == c)), None)
            x, y = left + j * cw, head + i * ch
            if s is None:
                cells.append(f'<rect x="{x}" y="{y}" width="{cw - 2}" height="{ch - 2}" fill="#f4f4f4"/>')
                continue
            label = f"{s.capacity_rps:,.0f}" if s.ok else "x"
            mark = ' stroke="#c00" stroke-width="2"' if s.setting == m.best else ""
            cells.append(f'<rect x="{x}" y="{y}" width="{cw - 2}" height="{ch - 2}" '
                         f'fill="{_color(s.capacity_rps / top) if s.ok else "#fdd"}"{mark}>'
                         f'<title>{html.escape(setting_label(s.setting))}: {label}/s</title></rect>'
                         f'<text x="{x + cw / 2 - 1}" y="{y + 17}" text-anchor="middle">{label}</text>')
    heads = [f'<text x="{left + j * cw + cw / 2}" y="20" text-anchor="middle">{cols_axis} {c}</text>'
             for j, c in enumerate(cols)] if cols_axis else [
        f'<text x="{left}" y="20">capacity, requests/s at the target</text>']
    width, height = max(left + max(len(cols), 4) * cw + 10, 420), head + len(rows) * ch + 10
    return (f'<svg xmlns="http://www.w3.org/2000/svg" class="tune-chart" data-mode="{html.escape(m.mode)}" '
            f'width="{width}" height="{height}" font-family="sans-serif" font-size="12">{"".join(heads + cells)}</svg>')


def _md_to_html(text: str, shift: int = 0) -> str:
    """Just enough Markdown for this summary: headings (``shift`` levels lower), tables, code blocks, paragraphs."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = lines.index("```", i + 1)
            out.append(f"<pre><code>{html.escape(chr(10).join(lines[i + 1:j]))}</code></pre>")
            i = j + 1
            continue
        if line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].startswith("|"):
                if not set(lines[i]) <= set("|-: "):
                    rows.append([html.escape(c.strip()) for c in lines[i].strip("|").split("|")])
                i += 1
            body = "".join(f"<tr>{''.join(f'<td>{c}</td>' for c in r)}</tr>" for r in rows[1:])
            out.append(f"<table><thead><tr>{''.join(f'<th>{c}</th>' for c in rows[0])}</tr></thead>"
                       f"<tbody>{body}</tbody></table>")
            continue
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            out.append(f"<h{level + shift}>{html.escape(line[level:].strip())}</h{level + shift}>")
        elif line.strip():
            out.append(f"<p>{html.escape(line).replace('**', '')}</p>")
        i += 1
    return "\n".join(out)


def html_section(run: TuneRun, shift: int = 0) -> str:
    """The tune's section of report.html: the summary, with each mode's chart after its paragraph; ``shift``: its
    headings that many levels lower (1 inside a bench's report.html, whose sections are h2)."""
    body = _md_to_html(summary_text(run), shift)
    scenario_h, mode_h = f"h{2 + shift}", f"h{3 + shift}"
    for m in run.modes:
        if not m.axes:
            continue  # one setting only (its process model sets its capacity): its table says it all
        marker = f"<{mode_h}>{html.escape(m.mode)}</{mode_h}>"
        chart = f'<figure class="tune" id="tune-{html.escape(m.scenario)}-{html.escape(m.mode)}">{heatmap_svg(m)}'
        chart += f"<figcaption>{html.escape(m.mode)} on {html.escape(m.scenario)}: capacity over the settings "
        chart += "tried (outlined: the best)</figcaption></figure>"
        at = body.find(marker, body.find(f"<{scenario_h}>{html.escape(m.scenario)}</{scenario_h}>"))
        if at >= 0:
            end = body.find("</p>", at) + len("</p>")
            body = body[:end] + chart + body[end:]
    return f'<section id="tune">{body}</section>'


def bench_summary(run: TuneRun) -> list[str]:
    """A bench run's summary.md section for ``--tuned``: the tune run its MODE+tuned modes took their settings from."""
    slo = float(run.plan.get("slo_p99_ms", 100.0))
    lines = ["## Tuned settings", "", f"The modes named MODE+tuned run at the best settings of the tune run "
             f"`{run.plan.get('out', '?')}` (its `{results.FILE}` is copied into this folder; report.html shows it "
             f"whole). Capacity: the highest open-loop rate served with p99 under {slo:g} ms.", "",
             "| mode | tuned on | setting | capacity /s | production command |", "|---|---|---|---:|---|"]
    for m in run.modes:
        best = m.result(m.best)
        lines.append(f"| {m.mode} | {m.scenario} | {setting_label(m.best)} | "
                     f"{_fmt(best.capacity_rps if best else None, ',.0f')} | `{m.production_command or '-'}` |")
    return [*lines, ""]


def bench_html(run: TuneRun) -> str:
    """A bench run's report.html section for ``--tuned``: the tune run whole, its headings under the bench's, led by
    what it is to this run."""
    section = html_section(run, shift=1)
    lead = (f'<p id="tuned-from">The modes named MODE+tuned in this run ran at the best settings of the tune run '
            f'<code>{html.escape(str(run.plan.get("out", "?")))}</code>, shown here whole (its '
            f'<code>{results.FILE}</code> is copied into this folder).</p>')
    end = section.find("</h2>") + len("</h2>")
    return section[:end] + lead + section[end:]


def render(run_dir: Path) -> Path:
    run = results.load(run_dir)
    (run_dir / SUMMARY).write_text(summary_text(run))
    style = ("body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
             "td,th{border:1px solid #ccc;padding:3px 8px}pre{background:#f6f6f6;padding:8px;white-space:pre-wrap}")
    (run_dir / REPORT).write_text(f"<!doctype html><html><head><meta charset='utf-8'><title>tune</title>"
                                  f"<style>{style}</style></head><body>{html_section(run)}</body></html>")
    return run_dir / SUMMARY


def console_text(run_dir: Path) -> str:
    run = results.load(run_dir)
    lines = []
    for scenario, win in winners(run).items():
        best = win.result(win.best)
        lines.append(f"{scenario}: winner {win.mode} at {setting_label(win.best)}, "
                     f"{best.capacity_rps if best else 0:,.0f}/s at p99 < {run.plan.get('slo_p99_ms')} ms:")
        lines.append(f"  {win.production_command}")
    for m in run.modes:
        if m.production_command and m is not winners(run).get(m.scenario):
            lines.append(f"{m.scenario}: {m.mode}: {m.production_command}")
    return "\n".join(lines)


