"""Fault records -> ``faults.md``, ``report.html`` and charts (pure functions of the records; nothing here measures).

Charts, where a person would rather look than read:

* ``availability-<fault>.png``: per mode, the share of the offered load answered with a 2xx over
  time (a 0.5 s moving window, so modes at 2 and 200 requests/s share an axis), and failures per
  second below it, one line per way of failing (refused, reset, timeout, 5xx, wrong answer: the
  line's style); time is relative to the fault, which is marked at 0.
* ``memory.png``: PSS of each mode's process tree against requests served, solid without
  recycling, dashed with it.

The same figures, interactive, are in the run's ``report.html`` (:mod:`scripts.faults.faults_html`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from scripts.faults import faults_html
from scripts.faults.faults_summary import (
    CAUTIONS,
    SMOOTH_S,
    WHAT,
    failure_text,
    has_timeline,
    short,
    timelines,
    unmeasured_cautions,
    what,
    your_app,
)
from scripts.records import records
from scripts.records.records import FaultRecord
from scripts.render import completeness, runs_index
from scripts.render.plot_style import mode_colors

FAILURE_DASHES = {"refused": ":", "reset": "-", "timeout": "--", "5xx": "-.", "wrong": (0, (1, 3))}


def availability_figure(fault: str, records: Sequence[FaultRecord], what: str | None = None) -> Figure | None:
    """Served share of the offered load and failures per second over time, one colour per mode."""
    usable = [r for r in records if has_timeline(r)]
    if not usable:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 5.5), sharex=True, height_ratios=(3, 1.4))
    colors = mode_colors([r.mode for r in usable])
    for r in usable:
        xs, served, failed = timelines(r)
        top.plot(xs, served, label=f"{r.mode} ({r.offered_rate:g}/s)", linewidth=1.4, color=colors[r.mode])
        for kind, values in failed.items():
            bottom.plot(xs, values, color=colors[r.mode], linewidth=1.2, linestyle=FAILURE_DASHES.get(kind, "-"),
                        label=f"{r.mode} {kind}")
    for ax in (top, bottom):
        ax.axvline(0.0, color="black", linestyle=":", linewidth=1)
        ax.grid(alpha=0.3)
    top.set_ylabel("offered load answered 2xx (%)")
    top.set_ylim(bottom=0)
    bottom.set_ylabel("failures/s")
    if bottom.get_legend_handles_labels()[0]:
        bottom.legend(fontsize=7, loc="upper right", ncol=2)
    bottom.set_xlabel(f"seconds from the fault (trailing mean over {SMOOTH_S} s, or 4 requests' worth if longer)")
    top.set_title(f"{fault}: {WHAT.get(fault, '') if what is None else what}", fontsize=10)
    top.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def memory_figure(records: Sequence[FaultRecord]) -> Figure | None:
    usable = [r for r in records if r.fault in ("leak", "leak+recycle", "leak+rss") and r.details.get("pss")]
    if not usable:
        return None
    fig, ax = plt.subplots(figsize=(9, 5))
    colors = mode_colors(list(dict.fromkeys(r.mode for r in usable)))
    for r in usable:
        xs = [p[0] for p in r.details["pss"]]
        ys = [p[1] for p in r.details["pss"]]
        style = {"leak+recycle": "--", "leak+rss": ":"}.get(r.fault, "-")
        label = r.mode + {"leak+recycle": " recycled", "leak+rss": " recycled by RSS"}.get(r.fault, "")
        ax.plot(xs, ys, style, label=label, color=colors[r.mode])
    ax.set_xlabel("requests served (each keeps 16 KiB)")
    ax.set_ylabel("PSS of the process tree (MB)")
    ax.set_title("memory leak: without recycling, recycled by request count (--max-requests) and by RSS", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def slow_figure(records: Sequence[FaultRecord]) -> Figure | None:
    """Normal requests answered (%) against the number of slow clients, one line per mode, one panel per kind."""
    usable = [r for r in records if r.fault == "slow" and r.details.get("levels")]
    if not usable:
        return None
    kinds = list(dict.fromkeys(k for r in usable for k in r.details["levels"]))
    colors = mode_colors([r.mode for r in usable])
    fig, axes = plt.subplots(1, len(kinds), figsize=(5 * len(kinds), 4.2), sharey=True, squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for i, r in enumerate(usable):
            levels = r.details["levels"].get(kind, [])
            # Modes often land on the same value (0% or 100%): a small shift in K keeps every line visible.
            shift = 1.0 + 0.03 * (i - len(usable) / 2)
            ax.plot([lv["k"] * shift for lv in levels], [lv["success_pct"] for lv in levels],
                    marker="osD^v<>"[i % 7], label=r.mode, alpha=0.85, color=colors[r.mode])
        ax.set_xscale("log", base=2)
        ax.set_xlabel(f"{kind} clients (K)")
        ax.set_title(kind, fontsize=10)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("normal requests answered 2xx (%)")
    axes[0][0].set_ylim(-5, 105)
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    return fig


def matrix(records: Sequence[FaultRecord]) -> list[str]:
    """Each caution of the worker model, the faults that measure it, and each mode's outcome in a few words."""
    modes = list(dict.fromkeys(r.mode for r in records))
    by = {(r.fault, r.mode): r for r in records}
    lines = ["| caution | fault | " + " | ".join(modes) + " |", "| --- | --- |" + " --- |" * len(modes)]
    for caution, faults in CAUTIONS:
        for fault in faults:
            if any((fault, m) in by for m in modes):
                cells = [_cell(short(by[(fault, m)])) if (fault, m) in by else "" for m in modes]
                lines.append(f"| {caution} | {fault} | " + " | ".join(cells) + " |")
    return lines


def _cell(value: object) -> str:
    return "—" if value is None else str(value).replace("|", "\\|")


def your_app_lines(meta: Mapping[str, Any], records: Sequence[FaultRecord]) -> list[str]:
    """A user's app (``--app``): what was served and loaded, the faults that need the sample app, the modes of the
    other interface; none for the sample app."""
    app = your_app(meta)
    if app is None:
        return []
    lines = ["## Your app", "", f"Served: {app.served}. Every fault's steady load sends your request: "
             f"`{app.request}`, checked against its expectations before each fault.", ""]
    if app.needs_sample_app:
        unmeasured = unmeasured_cautions(records)
        rowless = f" The cautions they measure ({', '.join(unmeasured)}) have no row below." if unmeasured else ""
        lines += ["Needs the sample app (not run: these faults are requests to the sample app's fault endpoints)."
                  f"{rowless}", "", *(f"- {fault}: {needs}" for fault, needs in app.needs_sample_app.items()), ""]
    if app.not_applicable:
        lines += ["Not applicable (modes asked for that cannot serve your app):", "",
                  *(f"- {mode}: {why}" for mode, why in app.not_applicable.items()), ""]
    return lines


def markdown(records: Sequence[FaultRecord], charts: dict[str, str], meta: Mapping[str, Any] | None = None) -> str:
    meta = meta or {}
    faults = list(dict.fromkeys(r.fault for r in records))
    interrupted = completeness.faults_banner(meta, records)
    lines = ["# Faults: what each server model costs when things go wrong", "",
             *([f"**{interrupted}**", ""] if interrupted else []),
             "Lost: requests of the steady load without a 2xx answer; how they failed: refused (could not "
             "connect), reset (closed without an answer), timeout, 5xx, wrong (neither 2xx nor 5xx), unsent (never "
             "sent by the end); after a shutdown's SIGTERM, refused and unsent requests are no loss (the listener "
             "closed, which is the point) and are shown apart. Recovery: seconds from the fault until the offered "
             "load is answered in full again and stays so (— : not measured, or never). n/a: meaningless for the "
             "process model; not offered: the server has no such feature. The same, interactive: report.html.", "",
             *your_app_lines(meta, records), *matrix(records), ""]
    for fault in faults:
        lines += [f"## {fault}", "", what(fault, meta), ""]
        if fault in charts:
            lines += [f"![{fault}]({charts[fault]})", ""]
        lines += ["| mode | lost | how they failed | recovery (s) | verdict |", "| --- | --- | --- | --- | --- |"]
        for r in (r for r in records if r.fault == fault):
            verdict = r.verdict if r.status != "failed" else f"harness failed: {r.error}"
            split = failure_text(r) or ("none" if r.requests_lost == 0 else None)
            lines.append(f"| {r.mode} | {_cell(r.requests_lost)} | {_cell(split)} | {_cell(r.recovery_s)} "
                         f"| {_cell(verdict)} |")
        lines.append("")
    for name, title in (("memory", "memory over requests"), ("slow-clients", "slow clients against K")):
        if name in charts:
            lines += [f"## {title}", "", f"![{name}]({charts[name]})", ""]
    return "\n".join(lines)


def check_run(out: Path) -> None:
    """RecordError unless ``out`` is a faults run folder: a bench run's report.html is not a faults page to
    overwrite, and a mistyped path is not a folder to create."""
    if not out.is_dir():
        raise records.RecordError(f"no such folder: {out}")
    if not (out / records.FAULTS_NAME).is_file():
        raise records.RecordError(f"no {records.FAULTS_NAME} in {out}: not a faults run (a bench run is redrawn by "
                                  "python -m scripts.report)")


def render_run(out: Path) -> Path:
    """Redraw a faults run folder from its ``faults.json``: charts, ``faults.md``, ``report.html``, and the results
    index when the run lives under results/; returns the markdown's path. RecordError, with nothing written, for a
    folder that is not a faults run."""
    check_run(out)
    run = records.load(out)
    path = render(out, run.faults, run.faults_meta)
    faults_html.write_page(run.faults, out, run.faults_meta)
    runs_index.rebuild_for(out)
    return path


def render(out: Path, records: Sequence[FaultRecord], meta: Mapping[str, Any] | None = None) -> Path:
    """Write the charts and ``faults.md`` into the run folder ``out`` (``meta``: faults.json's, for a user's app);
    returns the markdown's path."""
    meta = meta or {}
    charts: dict[str, str] = {}
    (out / "charts").mkdir(parents=True, exist_ok=True)
    for fault in dict.fromkeys(r.fault for r in records):
        fig = availability_figure(fault, [r for r in records if r.fault == fault], what(fault, meta))
        if fig is not None and not fault.startswith("leak"):
            name = f"charts/availability-{fault.replace('+', '-')}.png"
            fig.savefig(out / name, dpi=110)
            charts[fault] = name
        if fig is not None:
            plt.close(fig)
    for name, figure in (("memory", memory_figure(records)), ("slow-clients", slow_figure(records))):
        if figure is not None:
            figure.savefig(out / f"charts/{name}.png", dpi=110)
            plt.close(figure)
            charts[name] = f"charts/{name}.png"
    path = out / "faults.md"
    path.write_text(markdown(records, charts, meta))
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.faults.faults_report",
                                     description="Redraw faults.md, report.html and the charts of a faults run folder "
                                     "from its faults.json.")
    parser.add_argument("run_dir", type=Path, help="a faults run folder, e.g. results/faults-20261206T120000Z")
    args = parser.parse_args(argv)
    try:
        print(render_run(args.run_dir))
    except records.RecordError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
