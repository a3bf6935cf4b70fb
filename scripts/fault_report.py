"""Fault records -> ``faults.md``, ``faults.html`` and charts (pure functions of the records; nothing here measures).

Charts, where a person would rather look than read:

* ``availability-<fault>.png``: per mode, the share of the offered load answered with a 2xx over
  time (a 0.5 s moving window, so modes at 2 and 200 requests/s share an axis), and failures per
  second below it, one line per way of failing (refused, reset, timeout, 5xx, wrong answer: the
  line's style); time is relative to the fault, which is marked at 0.
* ``memory.png``: PSS of each mode's process tree against requests served, solid without
  recycling, dashed with it.

The same figures, interactive, are in ``faults.html`` (:mod:`scripts.faulthtml`).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from statistics import median

import matplotlib

matplotlib.use("Agg")  # files only; no display on a server
import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from scripts.plot import mode_colors
from scripts.records import FaultRecord, load_faults

SMOOTH_S = 0.5
# How a failed request ended (scripts.engine.FAILURE_KINDS), in words, and each one's line style.
FAILURE_WORDS = {"refused": "refused: could not connect", "reset": "reset: connection closed without an answer",
                 "timeout": "timeout: no answer within the request timeout", "5xx": "5xx: the server's error answer",
                 "wrong": "wrong answer: neither 2xx nor 5xx, or not HTTP"}
FAILURE_DASHES = {"refused": ":", "reset": "-", "timeout": "--", "5xx": "-.", "wrong": (0, (1, 3))}
WHAT = {
    "crash": "a request calls os._exit under steady load",
    "segv": "a request dies of a real SIGSEGV (ctypes NULL read) under steady load",
    "hang": "a request blocks for an hour under steady load (worker timeout set where the mode has one)",
    "error": "5 requests raise inside the app under steady load",
    "state": "20 requests in a row each store a token in a module-level variable and read the previous one",
    "leak": "every request keeps 16 KiB, no recycling",
    "leak+recycle": "every request keeps 16 KiB, workers recycled after N requests",
    "reload": "the mode's reload signal under steady load",
    "shutdown": "SIGTERM under steady load of 150 ms requests at 10/s",
    "cleanup": "PostgreSQL connections (pg_stat_activity) while /db is loaded with recycling and a reload where the "
               "mode has them, then after SIGTERM",
    "slow": "K clients that send half a request and wait (slowloris), or ask for 2 MiB and never read it, beside "
            "steady normal load",
    "recycle": "requests/s at full speed (closed loop, 32 connections, /plaintext) with workers recycled every 1,000 "
               "requests against without",
}


def _smoothed(values: Sequence[int], width: int) -> list[float]:
    """A trailing mean over ``width`` steps (the first steps divide by the full width: no spike at the start)."""
    return [sum(values[max(0, i - width + 1): i + 1]) / width for i in range(len(values))]


def timelines(r: FaultRecord) -> tuple[list[float], list[float], dict[str, list[float]]]:
    """A record's timeline, smoothed: seconds from the fault, % of the offered load answered 2xx, and failures/s
    by kind (only the kinds that occurred; a schema-1 record, which did not split them, as "failed")."""
    assert r.offered_rate is not None and r.fault_at_s is not None
    step = float(r.timeline["step_s"])
    # At least 4 expected requests per window: cgi's 2/s would otherwise jump between 0 and 200%.
    width = max(1, round(max(SMOOTH_S, 4.0 / r.offered_rate) / step))
    xs = [round(i * step - r.fault_at_s, 3) for i in range(len(r.timeline["ok"]))]
    served = [100.0 * v / (r.offered_rate * step) for v in _smoothed(r.timeline["ok"], width)]
    by_kind = r.timeline.get("failed_by") or {"failed": r.timeline["failed"]}
    failed = {kind: [v / step for v in _smoothed(counts, width)] for kind, counts in by_kind.items() if any(counts)}
    return xs, served, failed


def has_timeline(r: FaultRecord) -> bool:
    return bool(r.timeline.get("ok")) and bool(r.offered_rate) and r.fault_at_s is not None


def availability_figure(fault: str, records: Sequence[FaultRecord]) -> Figure | None:
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
    top.set_title(f"{fault}: {WHAT.get(fault, '')}", fontsize=10)
    top.legend(fontsize=8, loc="best")
    fig.tight_layout()
    return fig


def memory_figure(records: Sequence[FaultRecord]) -> Figure | None:
    usable = [r for r in records if r.fault in ("leak", "leak+recycle") and r.details.get("pss")]
    if not usable:
        return None
    fig, ax = plt.subplots(figsize=(9, 5))
    colors = mode_colors(list(dict.fromkeys(r.mode for r in usable)))
    for r in usable:
        xs = [p[0] for p in r.details["pss"]]
        ys = [p[1] for p in r.details["pss"]]
        style = "--" if r.fault == "leak+recycle" else "-"
        label = f"{r.mode}{' recycled' if r.fault == 'leak+recycle' else ''}"
        ax.plot(xs, ys, style, label=label, color=colors[r.mode])
    ax.set_xlabel("requests served (each keeps 16 KiB)")
    ax.set_ylabel("PSS of the process tree (MB)")
    ax.set_title("memory leak: with and without recycling (--max-requests)", fontsize=10)
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


CAUTIONS = (("state", ("state",)), ("errors", ("error", "crash", "segv")),
            ("leaks", ("leak", "leak+recycle", "recycle")),
            ("lifecycle", ("hang", "reload", "shutdown")), ("cleanup", ("cleanup",)), ("slow clients", ("slow",)))


SLOW_SHORT = {"slowloris": "loris", "nonreader": "no-read"}


def short(r: FaultRecord) -> str:
    """A few words of outcome for the matrix: the verdict's numbers without its sentences."""
    d = r.details
    if r.status in ("n/a", "not offered"):
        return r.status
    if r.status == "failed":
        return "harness failed"
    if r.fault == "recycle":
        ratio = d.get("ratio")
        return f"{median(d['rps_with']):,.0f} vs {median(d['rps_without']):,.0f} req/s" + (
            f" ({100 * (ratio - 1):+.0f}%)" if ratio else "")
    if r.fault == "state":
        return f"leaks ({d['saw_earlier_state']}/{d['requests']})" if d["saw_earlier_state"] else "isolated"
    if r.fault == "error":
        fate = "new process each" if d.get("process_per_request") else "survives" if d["survived"] else "replaced"
        return f"{'/'.join(sorted(set(d['statuses'])))}, {fate}"
    if r.fault in ("leak", "leak+recycle") and d.get("pss"):
        return f"PSS {d['pss'][0][1]:.0f}->{d['pss'][-1][1]:.0f} MB, p99 {d['latency_ms'].get('p99', 0):.0f} ms"
    if r.fault == "hang":
        gone = d.get("hung_process_gone_s")
        never = "never killed" if d.get("timeout_offered", True) else "no timeout offered"
        return f"{lost_short(r)}; " + (f"killed {gone:.1f} s" if gone is not None else never)
    if r.fault == "reload":
        return f"{d['workers_replaced']} new, {lost_short(r)}"
    if r.fault == "shutdown":
        exit_s = d.get("exit_s")
        took = "no exit" if exit_s is None else f"exit {exit_s:.1f} s"
        cut = {k: n for k, n in failure_split(r).items() if k not in ("refused", "unsent")}
        how = f" ({', '.join(f'{n} {k}' for k, n in cut.items())})" if cut and d["cut"] else ""
        return f"{took}, {d['cut']} cut{how}, {d.get('left_behind')} left"
    if r.fault == "cleanup":
        return f"{d['opened']} conns/{d['scheduled']} req, closed {d.get('zero_after_exit_s')} s"
    if r.fault == "slow":
        return "; ".join(f"{SLOW_SHORT.get(kind, kind)} " + " ".join(f"{lv['k']}:{lv['success_pct']:g}%"
                                                                    for lv in levels)
                         for kind, levels in d["levels"].items())
    if r.requests_lost == 0:
        return "0 lost"
    recovery = "never back" if r.recovery_s is None else f"back in {r.recovery_s:.1f} s"
    return f"{lost_short(r)}, {recovery}"


def failure_split(r: FaultRecord) -> dict[str, int]:
    """The failed requests by how they ended (empty for a schema-1 record, which did not split them)."""
    return {k: int(n) for k, n in (r.details.get("failures") or {}).items() if n}


def lost_short(r: FaultRecord) -> str:
    """``3 lost (2 reset, 1 timeout)``."""
    split = failure_split(r)
    return f"{r.requests_lost} lost" + (f" ({', '.join(f'{n} {k}' for k, n in split.items())})" if split else "")



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


def markdown(records: Sequence[FaultRecord], charts: dict[str, str]) -> str:
    faults = list(dict.fromkeys(r.fault for r in records))
    lines = ["# Faults: what each server model costs when things go wrong", "",
             "Lost: requests of the steady load without a 2xx answer. Recovery: seconds from the fault until "
             "the offered load is answered in full again and stays so (— : not measured, or never).", "",
             *matrix(records), ""]
    for fault in faults:
        lines += [f"## {fault}", "", WHAT.get(fault, ""), ""]
        if fault in charts:
            lines += [f"![{fault}]({charts[fault]})", ""]
        lines += ["| mode | lost | recovery (s) | verdict |", "| --- | --- | --- | --- |"]
        for r in (r for r in records if r.fault == fault):
            verdict = r.verdict if r.status != "failed" else f"harness failed: {r.error}"
            lines.append(f"| {r.mode} | {_cell(r.requests_lost)} | {_cell(r.recovery_s)} | {_cell(verdict)} |")
        lines.append("")
    for name, title in (("memory", "memory over requests"), ("slow-clients", "slow clients against K")):
        if name in charts:
            lines += [f"## {title}", "", f"![{name}]({charts[name]})", ""]
    return "\n".join(lines)


def render(out: Path, records: Sequence[FaultRecord]) -> Path:
    """Write the charts and ``faults.md`` into the run folder ``out``; returns the markdown's path."""
    charts: dict[str, str] = {}
    (out / "charts").mkdir(parents=True, exist_ok=True)
    for fault in dict.fromkeys(r.fault for r in records):
        fig = availability_figure(fault, [r for r in records if r.fault == fault])
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
    path.write_text(markdown(records, charts))
    return path


if __name__ == "__main__":  # re-render a run folder: python -m scripts.fault_report RUN
    import sys

    run = Path(sys.argv[1])
    print(render(run, load_faults(run)[0]))
