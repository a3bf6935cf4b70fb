"""What a fault record reduces to, in words and numbers: shared by faults.md (:mod:`scripts.faults.faults_report`),
the faults run's report.html (:mod:`scripts.faults.faults_html`) and the results index
(:mod:`scripts.render.runs_index`).

Each fault's description, the cautions of the worker model and the faults that measure them, a few words of
outcome per record, the failures split by how they ended, and a record's timeline smoothed for drawing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from statistics import median
from typing import Any

from scripts.common.formatting import MISSING
from scripts.modes import MODES
from scripts.plan.userapp import ADAPTED_SUFFIX
from scripts.records.records import FaultRecord

SMOOTH_S = 0.5
# How a failed request ended (scripts.load.engine.FAILURE_KINDS), in words, and each one's line style.
FAILURE_WORDS = {"refused": "refused: could not connect", "reset": "reset: connection closed without an answer",
                 "timeout": "timeout: no answer within the request timeout", "5xx": "5xx: the server's error answer",
                 "wrong": "wrong answer: neither 2xx nor 5xx, or not HTTP"}

WHAT = {
    "crash": "a request calls os._exit under steady load",
    "segv": "a request dies of a real SIGSEGV (ctypes NULL read) under steady load",
    "hang": "a request blocks for an hour under steady load (worker timeout set where the mode has one)",
    "spin": "a request computes in Python for the rest of the run, never yielding (worker timeout set where the mode "
            "has one)",
    "blocking": "one client sends 300 ms requests one after another beside steady load: first waits (a sleep, which "
                "green threads and await make a yield), then SQLite queries (C code, which nothing can)",
    "error": "5 requests raise inside the app under steady load",
    "state": "20 requests in a row each store a token in a module-level variable and read the previous one",
    "leak": "every request keeps 16 KiB, no recycling",
    "leak+recycle": "every request keeps 16 KiB, workers recycled after N requests",
    "leak+rss": "every request keeps 16 KiB, workers recycled when their RSS passes a fresh worker's by N MB",
    "reload": "the mode's reload signal under steady load",
    "shutdown": "SIGTERM under steady load of 150 ms requests at 10/s",
    "cleanup": "PostgreSQL connections (pg_stat_activity) while /db is loaded with recycling and a reload where the "
               "mode has them, then after SIGTERM",
    "slow": "K clients that send half a request and wait (slowloris), or ask for 2 MiB and never read it, beside "
            "steady normal load",
    "recycle": "requests/s at full speed (closed loop, 32 connections, /plaintext) with workers recycled every 1,000 "
               "requests against without",
}


# A user's app (scripts.faults --app) gets its own request as the load, so the faults that run on it read so.
WHAT_YOUR_APP = {
    "reload": "the mode's reload signal under steady load of your request",
    "shutdown": "SIGTERM under steady load of your request",
    "slow": "K clients that send half a request and wait (slowloris) beside steady load of your request",
    "recycle": "requests/s at full speed (closed loop, 32 connections, your request) with workers recycled every "
               "1,000 requests against without",
}


def what(fault: str, meta: Mapping[str, Any]) -> str:
    """What the fault did in this run, in words."""
    if meta.get("app") and fault in WHAT_YOUR_APP:
        return f"{WHAT_YOUR_APP[fault]} ({meta.get('request', '')})"
    return WHAT.get(fault, "")


@dataclass(frozen=True, kw_only=True, slots=True)
class YourApp:
    """A faults run on a user's app, as faults.md and the page show it (from faults.json's meta)."""

    served: str  # WSGI `examples.flaskapp:app`
    request: str  # the load's request: GET /
    needs_sample_app: Mapping[str, str]  # fault -> the sample app's endpoint it needs
    not_applicable: Mapping[str, str]  # mode -> why it cannot serve the app


def your_app(meta: Mapping[str, Any]) -> YourApp | None:
    app = meta.get("app")
    if not isinstance(app, Mapping):
        return None
    served = ", ".join(f"{kind.upper()} {app[kind]}" for kind in ("wsgi", "asgi") if app.get(kind))
    return YourApp(served=served + (" (--adapt: the other interface's modes through a2wsgi)" if app.get("adapt")
                                    else ""),
                   request=str(meta.get("request", MISSING)), needs_sample_app=meta.get("needs_sample_app") or {},
                   not_applicable=meta.get("not_applicable") or {})


def _smoothed(values: Sequence[int], width: int) -> list[float]:
    """A trailing mean over ``width`` steps, from the first full window on (a partial one would draw a ramp that
    is only the window filling up)."""
    return [sum(values[i - width + 1: i + 1]) / width for i in range(width - 1, len(values))]


def timelines(r: FaultRecord) -> tuple[list[float], list[float], dict[str, list[float]]]:
    """A record's timeline, smoothed: seconds from the fault, % of the offered load answered 2xx, and failures/s
    by kind (only the kinds that occurred; a schema-1 record, which did not split them, as "failed")."""
    assert r.offered_rate is not None and r.fault_at_s is not None
    step = float(r.timeline["step_s"])
    # At least 4 expected requests per window: cgi's 2/s would otherwise jump between 0 and 200%.
    width = max(1, round(max(SMOOTH_S, 4.0 / r.offered_rate) / step))
    # A point stands for its window's end: the counts of step i are in by (i + 1) * step.
    xs = [round((i + 1) * step - r.fault_at_s, 3) for i in range(width - 1, len(r.timeline["ok"]))]
    served = [100.0 * v / (r.offered_rate * step) for v in _smoothed(r.timeline["ok"], width)]
    by_kind = r.timeline.get("failed_by") or {"failed": r.timeline["failed"]}
    failed = {kind: [v / step for v in _smoothed(counts, width)] for kind, counts in by_kind.items() if any(counts)}
    return xs, served, failed


def has_timeline(r: FaultRecord) -> bool:
    return bool(r.timeline.get("ok")) and bool(r.offered_rate) and r.fault_at_s is not None


CAUTIONS = (("state", ("state",)), ("errors", ("error", "crash", "segv")),
            ("leaks", ("leak", "leak+recycle", "leak+rss", "recycle")),
            ("lifecycle", ("hang", "spin", "reload", "shutdown")), ("blocking calls", ("blocking",)),
            ("cleanup", ("cleanup",)), ("slow clients", ("slow",)))


def unmeasured_cautions(records: Sequence[FaultRecord]) -> list[str]:
    """The cautions no recorded fault measures (on a user's app: those whose faults need the sample app)."""
    ran = {r.fault for r in records}
    return [caution for caution, faults in CAUTIONS if not ran & set(faults)]


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
    if r.fault in ("leak", "leak+recycle", "leak+rss") and d.get("pss"):
        return f"PSS {d['pss'][0][1]:.0f}->{d['pss'][-1][1]:.0f} MB, p99 {d['latency_ms'].get('p99', 0):.0f} ms"
    if r.fault == "blocking":
        return (f"wait: p99 {d['p99_ms']['wait']:.0f} ms, {d['lost']['wait']} lost; "
                f"sqlite: p99 {d['p99_ms']['sqlite']:.0f} ms, {d['lost']['sqlite']} lost")
    if r.fault in ("hang", "spin"):
        gone = d.get("hung_process_gone_s")
        # A process per request has no worker to time out: the hung one simply stays.
        never = ("stays to the end" if per_request(r.mode)
                 else "never killed" if d.get("timeout_offered", True) else "no timeout offered")
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


def per_request(mode: str) -> bool:
    """A registered mode that forks a process per request: its processes come and go with the load, so new pids
    say nothing about respawns, and a hung one is no worker to time out."""
    entry = MODES.get(mode.removesuffix(ADAPTED_SUFFIX))
    return bool(entry and entry.process.fork_per_request)


def tone(r: FaultRecord) -> str:
    """good, bad or "" (neither, or not a judgement to make): how the caution x mode table tints a case, so a
    reader sees at a glance where a model hurts. Bad: state seen by another request, requests lost for good,
    processes left behind or connections left open, most ordinary requests refused beside slow clients,
    recycling that halves throughput."""
    d = r.details
    if not r.ok:
        return ""
    if r.fault == "state":
        return "bad" if d["saw_earlier_state"] else "good"
    if (r.fault in ("hang", "spin") and not r.requests_lost and d.get("hung_process_gone_s") is None
            and not per_request(r.mode)):
        return ""  # nothing lost, but a worker is stuck for good
    if r.fault == "blocking":
        return "bad" if d["lost"]["sqlite"] else "good"
    if r.fault in ("crash", "segv", "hang", "spin", "reload", "error"):
        return "bad" if r.requests_lost and r.recovery_s is None else "" if r.requests_lost else "good"
    if r.fault == "shutdown":
        return "bad" if d.get("left_behind") or d.get("exit_s") is None else "" if d.get("cut") else "good"
    if r.fault == "cleanup":
        return "good" if d.get("zero_after_exit_s") is not None else "bad"
    if r.fault == "slow":
        worst = min(d["worst_success_pct"].values(), default=100.0)
        return "bad" if worst < 50 else "good" if worst >= 90 else ""
    if r.fault == "recycle":
        return "bad" if d.get("ratio") is not None and d["ratio"] < 0.5 else ""
    return ""


def failure_split(r: FaultRecord) -> dict[str, int]:
    """The failed requests by how they ended (empty for a schema-1 record, which did not split them)."""
    return {k: int(n) for k, n in (r.details.get("failures") or {}).items() if n}


# Failures that are not losses for a fault: after SIGTERM the listener closes, so refused and unsent requests are
# the point of a shutdown (cases.shutdown counts only the cut ones as lost).
NOT_LOST = {"shutdown": ("refused", "unsent")}


def failure_text(r: FaultRecord) -> str:
    """How the failed requests ended, the lost ones first and apart from those that are no loss for this fault:
    ``1 reset; not lost: 14 refused after the listener closed``."""
    split, apart = failure_split(r), NOT_LOST.get(r.fault, ())
    lost = ", ".join(f"{n} {k}" for k, n in split.items() if k not in apart)
    after = ", ".join(f"{n} {k}" for k, n in split.items() if k in apart)
    return "; ".join(filter(None, (lost, f"not lost: {after} after the listener closed" if after else "")))


def lost_short(r: FaultRecord) -> str:
    """``3 lost (2 reset, 1 timeout)``."""
    split = failure_split(r)
    return f"{r.requests_lost} lost" + (f" ({', '.join(f'{n} {k}' for k, n in split.items())})" if split else "")
