"""``report.html``: an analysed run as one self-contained page a reader can open offline or send on.

In the order a reader asks: the verdict (which mode leads each scenario, by how much, with the interval), the
interactive charts (:mod:`scripts.render.web.charts`), a sortable table per scenario, the flags explained, the speed
checks and open-loop ladder, the plan, environment and versions, and failed cells with their log tails. A
pure renderer like :mod:`scripts.render.summary`: the figures come analysed, this module lays them out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from scripts.analysis.analysis import AnalysedRun, SpeedCheck
from scripts.analysis.significance import welch_log
from scripts.analysis.stats import FoldedCell
from scripts.common.formatting import MISSING, format_mb, format_rps, format_sig
from scripts.records.records import FLAG_MEANINGS, Flag
from scripts.render import ceilings, completeness
from scripts.render.summary import NO_LOG, format_errors, format_flags, format_interval
from scripts.render.web import charts
from scripts.render.web import html as h

REPORT_NAME = "report.html"
# Flags and the generator come early: a wide table scrolls, and they decide how to read the number beside them.
SCENARIO_COLUMNS = ("mode", "users", "req/s", "95% CI", "flags", "p50 ms", "p90 ms", "p99 ms", "errors", "generator",
                    "generator CPU", "CPU ms/req", "req/CPU-s", "memory MB", "MB/process")
_NUMERIC = (False, True, True, False, False, True, True, True, False, False, True, True, True, True, True)


# the verdict ------------------------------------------------------------------------------------------------------


def _ranked(run: AnalysedRun, scenario: str) -> list[FoldedCell]:
    level = run.main_concurrency.get(scenario)
    found = [f for f in run.figures if f.scenario == scenario and f.concurrency == level and f.ok
             and f.throughput_rps]
    return sorted(found, key=lambda f: -(f.throughput_rps or 0.0))


def lead(leader: FoldedCell, second: FoldedCell) -> str:
    """How far ``leader`` is ahead of ``second``: the ratio, its 95% interval, and whether it clears the noise."""
    ratio = (leader.throughput_rps or 0.0) / (second.throughput_rps or 1.0)
    a = [v for v in second.throughput_samples if v > 0]
    b = [v for v in leader.throughput_samples if v > 0]
    change = welch_log(a, b) if a and b else None
    if change is None or change.interval is None or change.p is None:
        return f"{ratio:.2f}x {h.esc(second.mode)}"  # the leader's figure already said "one repeat"
    low, high = (1 + change.interval[0], 1 + change.interval[1])
    noise = "" if change.significant() else "; <b>within noise</b>: the interval includes 1x"
    return f"{ratio:.2f}x {h.esc(second.mode)} (95% CI {low:.2f}x to {high:.2f}x, Welch p {change.p:.2g}{noise})"


def _verdict_line(run: AnalysedRun, scenario: str) -> str:
    ranked = _ranked(run, scenario)
    if not ranked:
        return f"<li><b>{h.esc(scenario)}</b>: no mode produced a figure</li>"
    top = ranked[0]
    interval = format_interval(top) if top.throughput_ci95 else "one repeat: no interval"
    text = (f"<li><b>{h.esc(scenario)}</b> @ {top.concurrency}: <b>{h.esc(top.mode)}</b> leads with "
            f"{format_rps(top.throughput_rps)} req/s ({h.esc(interval)})")
    text += ", " + lead(top, ranked[1]) if len(ranked) > 1 else ", the only mode measured"
    if Flag.GENERATOR_BOUND in top.flags:
        text += ' <span class="flag">generator-bound: a floor, not its capacity</span>'
    return text + "</li>"


def verdict(run: AnalysedRun) -> str:
    failed = sum(not f.ok for f in run.figures)
    lines = "".join(_verdict_line(run, s) for s in run.scenarios)
    tail = f"<p class=\"bad\">{failed} figure(s) failed: see Failed cells.</p>" if failed else ""
    return f'<section class="verdict" id="verdict"><h2>Verdict</h2><ul>{lines}</ul>{tail}</section>'


# tables -----------------------------------------------------------------------------------------------------------


def _row(f: FoldedCell) -> list[h.Cell | str]:
    res, lat = f.resources, f.latency_ms
    cpu = f.generator_cpu
    row: list[h.Cell | str] = [
        f.mode, h.num(MISSING if f.concurrency is None else str(f.concurrency), f.concurrency),
        h.num(format_rps(f.throughput_rps), f.throughput_rps), h.Cell(format_interval(f), css="nowrap"),
        h.Cell(format_flags(f), css="bad nowrap" if not f.ok else "nowrap"),
        *(h.num(format_sig(lat.get(p)), lat.get(p)) for p in ("p50", "p90", "p99")),
        format_errors(f), f.generator or MISSING, h.num(MISSING if cpu is None else f"{cpu:.0%}", cpu),
        h.num(format_sig(res.cpu_ms_per_request if res else None), res and res.cpu_ms_per_request),
        h.num(format_rps(res.requests_per_cpu_second if res else None), res and res.requests_per_cpu_second),
        h.num(format_mb(res.memory_mean_mb if res else None), res and res.memory_mean_mb),
        h.num(format_mb(res.memory_per_process_mb if res else None), res and res.memory_per_process_mb),
    ]
    if f.ok and res is None:  # a server the bench did not start, without a status source (scripts.plan.target)
        row[-4:] = [h.Cell("not measured", css="muted")] * 4
    return row


def scenario_tables(run: AnalysedRun) -> str:
    parts = ['<section id="tables"><h2>Every figure, per scenario</h2><p class="muted">Click a column to sort. Figures '
             "are medians of the repeats; the interval is the Student-t 95% interval of their mean.</p>"]
    for i, scenario in enumerate(run.scenarios):
        rows = [_row(f) for f in run.figures if f.scenario == scenario]
        attrs = f' id="table-{i}" data-scenario="{h.esc(scenario)}"'
        parts.append(f"<h3>{h.esc(scenario)}</h3>" + h.table(SCENARIO_COLUMNS, rows, numeric=_NUMERIC, attrs=attrs))
    return "".join(parts) + "</section>"


def flags_section(run: AnalysedRun) -> str:
    seen: dict[Flag, list[str]] = {}
    for f in run.figures:
        for flag in f.flags:
            seen.setdefault(flag, []).append(f"{f.mode} {f.scenario} @ {f.concurrency}")
    rows: list[list[h.Cell | str]] = [
        [h.Cell(str(flag), css="flag"), FLAG_MEANINGS[flag], "; ".join(seen.get(flag, [])) or "none in this run"]
        for flag in Flag]
    wanted = "".join(f"<li>{h.esc(f'{f.mode} {f.scenario} @ {f.concurrency}')}: {h.esc(f.generator_warning)}</li>"
                     for f in run.figures if f.ok and f.generator_warning)
    return ('<section id="flags"><h2>Flags explained</h2>'
            + h.table(("flag", "meaning", "figures flagged"), rows, sortable=False)
            + (f'<p>Generators that wanted more CPU than they got:</p><ul id="wanted-more">'
               f"{wanted}</ul>" if wanted else "") + "</section>")


def _check_row(c: SpeedCheck) -> list[h.Cell | str]:
    met = {True: h.Cell("met", css="good"), False: h.Cell("not met", css="bad"), None: h.Cell("cannot tell")}[c.met]
    if not c.target:
        met = h.Cell("reported", css="muted")
    bound = f" (generator-bound: the ratio is a {c.bound})" if c.generator_bound and c.bound else ""
    return [c.check + bound, h.num(str(c.users), c.users), h.num(format_rps(c.a), c.a), h.num(format_rps(c.b), c.b),
            h.num(f"{c.ratio:.2f}x", c.ratio), h.num(f">= {c.target:g}x" if c.target else MISSING, c.target), met]


def checks_section(run: AnalysedRun) -> str:
    if not run.checks:
        return ""
    return ('<section id="checks"><h2>Speed checks</h2><p>Ratios measured within this run.</p>'
            + h.table(("check", "users", "req/s", "against", "ratio", "target", "verdict"),
                      [_check_row(c) for c in run.checks], numeric=(False, True, True, True, True, True, False))
            + "</section>")


def openloop_table(run: AnalysedRun) -> str:
    rows: list[list[h.Cell | str]] = [[
        p.mode, h.num(format_rps(p.offered_rate), p.offered_rate), h.num(format_rps(p.achieved_rate), p.achieved_rate),
        h.num(format_sig(p.latency_ms.get("p50")), p.latency_ms.get("p50")),
        h.num(format_sig(p.latency_ms.get("p99")), p.latency_ms.get("p99")),
        h.num(format_sig(p.latency_uncorrected_ms.get("p99")), p.latency_uncorrected_ms.get("p99")),
        h.num(str(sum(p.errors.values())), sum(p.errors.values())),
        {True: "yes", False: "no", None: MISSING}[p.generator_kept_up] if p.ok else f"failed: {p.error}"]
        for p in run.openloop]
    knees = "".join(f"<li>{h.esc(m)}: {h.esc(run.knee_text(m))}</li>" for m in run.knees)
    return h.table(("mode", "offered req/s", "achieved req/s", "p50 ms", "p99 ms", "p99 uncorrected ms", "errors",
                    "generator kept up"), rows, numeric=(False, True, True, True, True, True, True, False)) + \
        f"<ul>{knees}</ul>"


# plan, environment, failures ------------------------------------------------------------------------------------


def _value(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, list | tuple):
        return ", ".join(_value(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _pairs(title: str, data: Mapping[str, Any], anchor: str) -> str:
    flat = [[k, _value(v)] for k, v in data.items() if not isinstance(v, Mapping)]
    nested = "".join(f"<h3>{h.esc(title)}: {h.esc(k)}</h3>" + h.table(("", ""), [[kk, _value(vv)] for kk, vv in
                                                                                 v.items()], sortable=False)
                     for k, v in data.items() if isinstance(v, Mapping))
    return f'<section id="{anchor}"><h2>{h.esc(title)}</h2>' + h.table(("", ""), flat, sortable=False) + nested \
        + "</section>"


def plan_section(run: AnalysedRun) -> str:
    if run.info is None:
        return ('<section id="plan"><h2>Plan and environment</h2>'
                "<p>No readable plan.json in this run folder.</p></section>")
    return _pairs("Plan", run.info.plan, "plan") + _pairs("Environment and versions", run.info.environment,
                                                          "environment")


def failures_section(figures: Sequence[FoldedCell]) -> str:
    failed = [f for f in figures if not f.ok]
    if not failed:
        return ""
    parts = ['<section id="failed"><h2>Failed cells</h2>']
    for f in failed:
        log = h.pre(f.log_tail) if f.log_tail.strip() else f"<p>{NO_LOG}</p>"
        parts.append(f"<h3>{h.esc(f.mode)} / {h.esc(f.scenario)} / {f.concurrency} users</h3>"
                     f"<p>Error:</p>{h.pre(f.error or 'no error message')}"
                     f'<details class="log" open><summary>Log tail</summary>{log}</details>')
    return "".join(parts) + "</section>"


# charts and the page ------------------------------------------------------------------------------------------


def charts_section(run: AnalysedRun) -> str:
    parts = ['<section id="charts"><h2>Charts</h2><p class="muted">Hover a bar or point for its figure, interval, '
             "flags and the generator's CPU; drag to zoom, double-click to reset. Under each chart: the numbers it "
             "draws.</p>",
             h.chart(charts.throughput(run), "chart-throughput",
                     "Median requests/s with the 95% interval of the mean; cross-hatched: generator-bound."),
             h.chart(charts.latency(run), "chart-latency", "p50, p90 and p99 latency per scenario and mode.")]
    spectra = charts.spectra(run)
    if spectra:
        parts.append('<h3 id="distributions">Latency distributions</h3><p class="muted">Latency at every percentile '
                     "(the repeats' histograms merged): a flat line is a steady server, a late climb a tail.</p>")
    for i, (scenario, fig) in enumerate(spectra):
        parts.append(h.chart(fig, f"chart-spectrum-{i}", f"{scenario}: latency by percentile, log scales."))
    for i, (scenario, fig) in enumerate(charts.concurrency(run)):
        parts.append(h.chart(fig, f"chart-concurrency-{i}", f"{scenario}: throughput and p99 against connections."))
    for name, fig, caption in (
            ("openloop", charts.openloop(run), "Latency from each request's intended send time against the "
                                                   "offered rate (coordinated omission corrected)."),
            ("resources", charts.resources(run),
             "Server CPU per request and memory (PSS where the kernel has it)."),
            ("strategies", charts.strategies(run), "reuse keeps one connection per worker; per-request connects "
                                                       "for every request.")):
        if fig is not None:
            parts.append(h.chart(fig, f"chart-{name}", caption))
    openloop_spectra = charts.openloop_spectra(run)
    if openloop_spectra:
        parts.append(f'<h3 id="openloop-distributions">Open-loop latency distributions</h3>'
                     f'<p class="muted">{h.esc(charts.OPENLOOP_SPECTRA_INTRO)}</p>')
    parts += [h.chart(fig, f"chart-openloop-spectrum-{i}", f"{mode}: open-loop latency by percentile per offered rate; "
                      + (f"knee at {format_rps(run.knees[mode])} req/s." if run.knees.get(mode) else "no knee."))
              for i, (mode, fig) in enumerate(openloop_spectra)]
    if run.openloop:
        parts.append('<h3 id="openloop">Open-loop ladder</h3>' + openloop_table(run))
    return "".join(parts) + "</section>"


def _subtitle(run: AnalysedRun, run_dir: Path, started: str | None) -> str:
    env = run.info.environment if run.info else {}
    plan = run.info.plan if run.info else {}
    commit = str(env.get("git_commit") or MISSING)[:10] + (" (dirty)" if env.get("git_dirty") else "")
    when = started.replace("T", " ")[:16] + " UTC" if started else MISSING
    server = (f"server {h.esc(plan['target'])} (not started by the bench)" if plan.get("target")
              else f"server CPUs {h.esc(plan.get('server_cpus'))}")
    modes = f"{len(run.modes)} mode{'' if len(run.modes) == 1 else 's'}"
    scenarios = f"{len(run.scenarios)} scenario{'' if len(run.scenarios) == 1 else 's'}"
    bits = [f"run {h.esc(run_dir.name)}", f"started {h.esc(when)}", f"commit {h.esc(commit)}",
            f"{h.esc(env.get('cpu_model') or 'CPU model not recorded')}, {server},"
            f" generator CPUs {h.esc(plan.get('client_cpus'))}",
            f"{modes} x {scenarios}, {plan.get('repeats', MISSING)} "
            f"repeat{'' if plan.get('repeats') == 1 else 's'} of {plan.get('duration', MISSING)} s"]
    links = " · ".join(f'<a href="{name}">{name}</a>' for name in ("summary.md", "throughput.png", "latency.png")
                       if (run_dir / name).exists())
    interrupted = completeness.banner(run.completeness)
    head = f'<b class="bad" id="interrupted">{h.esc(interrupted)}</b><br>' if interrupted else ""
    return head + " · ".join(bits) + (f"<br>{links}" if links else "")


_TOC = (("verdict", "Verdict"), ("your-app", "Your app"), ("charts", "Charts"), ("tables", "Tables"),
        ("littles-law", "Little's law"), ("flags", "Flags"), ("checks", "Speed checks"), ("tune", "Tune"),
        ("plan", "Plan"), ("environment", "Environment"), ("failed", "Failed cells"))


def render(run: AnalysedRun, run_dir: Path, *, started: str | None = None, extra: Sequence[str] = (),
           later: Sequence[str] = ()) -> h.Page:
    """The page; ``extra``: sections rendered elsewhere, after the verdict (a user's app:
    scripts.render.userapp_report); ``later``: such sections after the speed checks (a --tuned run's tune)."""
    page = h.Page(title="workerbench report", subtitle=_subtitle(run, run_dir, started), charts=bool(run.figures))
    if not run.figures:
        page.add("<p>No cells were recorded in this run.</p>", *extra, *later, plan_section(run))
        return page
    body = [verdict(run), *extra, charts_section(run), scenario_tables(run), ceilings.html_section(run),
            flags_section(run), checks_section(run), *later,
            plan_section(run), failures_section(run.figures)]
    toc = " ".join(f'<a href="#{anchor}">{label}</a>' for anchor, label in _TOC
                   if any(f'id="{anchor}"' in part for part in body))
    page.add(f'<nav class="toc">{toc}</nav>', *body)
    return page


def write_report(run: AnalysedRun, run_dir: Path, *, started: str | None = None, extra: Sequence[str] = (),
                 later: Sequence[str] = ()) -> Path:
    """Write ``run_dir/report.html`` atomically; returns its path."""
    return render(run, run_dir, started=started, extra=extra, later=later).write(run_dir / REPORT_NAME)
