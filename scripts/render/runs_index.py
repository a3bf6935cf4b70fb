"""``results/index.html``: every run in a results folder, newest first, with date, commit, plan and headline.

Rebuilt after every run under ``results/`` (:func:`rebuild_for`, called by :func:`scripts.report.render_run` and
:func:`scripts.faults.faults_report.render_run`), or by hand: ``python -m scripts.index [FOLDER]``. Bench runs and
faults runs (``nox -s faults``) are listed together. Each row links the run's report.html (an older faults run's
faults.html, or the run's markdown when it has no page yet), and a run folder that cannot be read is listed
with the reason instead of hidden.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass
from pathlib import Path

from scripts.analysis import analysis
from scripts.common.formatting import MISSING, count, format_rps
from scripts.records import records
from scripts.render import completeness
from scripts.render import html as h

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
INDEX_NAME = "index.html"
MARKER = "<!-- workerbench results index -->"


@dataclass(frozen=True, kw_only=True, slots=True)
class RunEntry:
    path: Path
    kind: str  # bench or faults
    started: str
    commit: str
    plan: str
    cells: str
    headline: str
    report: str | None  # file name of the page to link, relative to the run folder


def run_folders(folder: Path) -> list[Path]:
    """Subfolders that hold a run (a cells/ folder, or a faults run's faults.json); ``latest`` and other links are
    not runs of their own."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()
                  and ((p / "cells").is_dir() or (p / records.FAULTS_NAME).is_file()))


def _headline(run: analysis.AnalysedRun) -> str:
    parts = []
    for scenario in run.scenarios:
        level = run.main_concurrency.get(scenario)
        ok = [f for f in run.figures if f.scenario == scenario and f.concurrency == level and f.ok and f.throughput_rps]
        if ok:
            top = max(ok, key=lambda f: f.throughput_rps or 0.0)
            parts.append(f"{scenario}: {top.mode} {format_rps(top.throughput_rps)}")
    return "; ".join(parts) or "no figures"


def _plan(info: records.RunInfo | None, run: analysis.AnalysedRun) -> str:
    plan = info.plan if info else {}
    text = f"{count(len(run.modes), 'mode')} x {count(len(run.scenarios), 'scenario')}"
    if plan:
        repeats = plan.get("repeats", MISSING)
        text += f", {repeats} repeat{'' if repeats == 1 else 's'} of {plan.get('duration', MISSING)} s"
        text += ", quick" if plan.get("quick") else ""
    return text + _app(plan.get("app"))


def _app(app: object) -> str:
    """``, your app examples.flaskapp:app`` for a run on a user's app (scripts.plan.userapp), else nothing."""
    if not isinstance(app, dict):
        return ""
    return ", your app " + " and ".join(str(app[k]) for k in ("wsgi", "asgi") if app.get(k))


def fault_entry(run: records.Run) -> RunEntry:
    meta, faults = run.faults_meta, run.faults
    env = meta.get("environment") or {}
    commit = str(env.get("git_commit") or MISSING)[:10] + (" (dirty)" if env.get("git_dirty") else "")
    modes = list(dict.fromkeys(r.mode for r in faults))
    kinds = list(dict.fromkeys(r.fault for r in faults))
    counts = {status: sum(r.status == status for r in faults) for status in records.FAULT_STATUSES}
    cases = f"{counts['ok']} ok" + (f", {counts['failed']} failed" if counts["failed"] else "")
    cases += f", {counts['n/a'] + counts['not offered']} n/a or not offered" if counts["n/a"] + counts["not offered"] \
        else ""
    losing = [(f, sum(1 for r in faults if r.fault == f and r.ok and r.requests_lost)) for f in kinds]
    headline = "; ".join(f"{f}: {n} of {len(modes)} modes lose requests" for f, n in losing if n)
    interrupted = completeness.faults_banner(meta, faults)
    cases += f"; {interrupted}" if interrupted else ""
    report = next((n for n in ("report.html", "faults.html", "faults.md") if (run.path / n).exists()), None)
    plan = (f"faults: {len(kinds)} faults x {len(modes)} modes" + (", quick" if meta.get("quick") else "")
            + _app(meta.get("app")))
    return RunEntry(path=run.path, kind="faults", started=_when(meta.get("started")), commit=commit, plan=plan,
                    cells=cases, headline=headline or "no mode lost a request", report=report)


def entry(path: Path) -> RunEntry:
    # A run's unreadable records are its report's business; the index only counts what loads.
    with contextlib.redirect_stderr(io.StringIO()):
        run = records.load(path)
    if run.faults and not run.cells:
        return fault_entry(run)
    analysed = analysis.analyse(run)
    env = run.info.environment if run.info else {}
    started = min((c.started_at for c in run.cells if c.started_at), default=None)
    failed = sum(not c.ok for c in run.cells)
    commit = str(env.get("git_commit") or MISSING)[:10] + (" (dirty)" if env.get("git_dirty") else "")
    report = next((name for name in ("report.html", "summary.md") if (path / name).exists()), None)
    interrupted = completeness.banner(analysed.completeness)
    return RunEntry(path=path, kind="bench", started=_when(started), commit=commit, plan=_plan(run.info, analysed),
                    cells=f"{len(run.cells) - failed} ok" + (f", {failed} failed" if failed else "")
                    + (f"; {interrupted}" if interrupted else ""),
                    headline=_headline(analysed), report=report)


def _when(iso: object) -> str:
    """``2026-11-29 09:04`` from the record's ISO time in UTC: sorts as text and reads at a glance."""
    return iso.replace("T", " ")[:16] if isinstance(iso, str) and iso else MISSING


def _row(e: RunEntry, latest: Path | None) -> list[h.Cell | str]:
    name = h.esc(e.path.name) + (" <b>(latest)</b>" if latest is not None and e.path == latest else "")
    link = h.Cell(f'<a href="{h.esc(e.path.name)}/{e.report}">{name}</a>' if e.report else name, raw_html=True)
    return [link, e.kind, h.Cell(e.started, css="nowrap"), h.Cell(e.commit, css="nowrap"), e.plan, e.cells,
            e.headline]


def render(folder: Path) -> h.Page:
    entries = []
    for path in run_folders(folder):
        try:
            entries.append(entry(path))
        except (OSError, records.RecordError) as exc:
            entries.append(RunEntry(path=path, kind=MISSING, started=MISSING, commit=MISSING, plan=f"unreadable: {exc}",
                                    cells=MISSING, headline=MISSING, report=None))
    entries.sort(key=lambda e: (e.started, e.path.name), reverse=True)
    latest = (folder / "latest").resolve() if (folder / "latest").exists() else None
    count = f"{len(entries)} run{'s' if len(entries) != 1 else ''}"
    page = h.Page(title="workerbench runs", subtitle=f"{count} in {h.esc(folder)}; newest first. "
                  "Compare two with <code>nox -s compare -- RUN_A RUN_B</code>.")
    page.add(MARKER, h.table(("run", "kind", "started (UTC)", "commit", "plan", "cells or cases",
                              "leader per scenario (req/s), or what the faults cost"),
                             [_row(e, latest) for e in entries]))
    return page


def write_index(folder: Path) -> Path:
    return render(folder).write(folder / INDEX_NAME)


def rebuild_for(run_dir: Path) -> Path | None:
    """Rebuild the index beside ``run_dir`` when it lives in the results folder (or a folder that already has an
    index of ours); a run written elsewhere (``--out /tmp/x``) leaves its neighbours alone."""
    parent = run_dir.resolve().parent
    index = parent / INDEX_NAME
    ours = index.exists() and MARKER in index.read_text(encoding="utf-8", errors="replace")
    if parent != RESULTS.resolve() and not ours:
        return None
    return write_index(parent)

