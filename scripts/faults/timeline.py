"""Reading a timeline: what the load lost, when it recovered, and which processes came and went around the
fault."""

from __future__ import annotations

import os
import signal
import statistics
from typing import Any

from scripts.faults.observe import Observed, Server
from scripts.load.engine_process import OpenLoopResult
from scripts.modes import Mode
from scripts.records.records import FaultRecord


def lost(result: OpenLoopResult) -> int:
    """Requests of the load that did not get a 2xx answer (unsent ones at the cut-off included)."""
    return result.scheduled - result.ok


def recovery_s(observed: Observed, rate: float) -> float | None:
    """Seconds from the fault until the load is served in full again, and stays so to the schedule's end.

    "In full": over a window of at least 0.3 s (and 3 expected requests), no failure and at least 70%
    of the offered requests answered. None: not back by the end of the schedule.
    """
    tl = observed.result.timeline
    step = float(tl["step_s"])
    ok, failed = tl["ok"], tl["failed"]
    width = max(3, round(max(0.3, 3.0 / rate) / step))
    end = int(observed.result.duration_s / step)
    first = int(observed.fault_at_s / step)
    need = 0.7 * rate * step * width

    def good(i: int) -> bool:
        window = range(i, min(i + width, end))
        fails = sum(int(failed[j]) for j in window if j < len(failed))
        oks = sum(int(ok[j]) for j in window if j < len(ok))
        return fails == 0 and oks >= need * len(window) / width

    if end - width <= first:
        return None
    recovered: int | None = None
    for i in range(first, end - width + 1):
        # The latest start of an unbroken run of good windows that lasts to the end.
        recovered = (i if recovered is None else recovered) if good(i) else None
    if recovered is None:
        return None
    return round(max(0.0, recovered * step - observed.fault_at_s), 2)


def process_counts(observed: Observed) -> list[tuple[float, int]]:
    return [(t, len(pids)) for t, pids, _ in observed.samples]


def failures(result: OpenLoopResult) -> dict[str, int]:
    """How the load's failed requests ended (engine.FAILURE_KINDS), and ``unsent``: scheduled, never sent by the
    schedule's end (a server that stops accepting leaves the generator's connections busy)."""
    by_kind = {kind: sum(counts) for kind, counts in result.timeline.get("failed_by", {}).items()}
    unsent = lost(result) - sum(by_kind.values())
    return {**by_kind, **({"unsent": unsent} if unsent > 0 else {})}


def new_processes(observed: Observed) -> int:
    """Processes first seen after the fault: respawns a process count sampled every 0.1 s can miss (a worker
    replaced between two samples leaves the count unchanged, but not its pid)."""
    before = frozenset().union(*(p for t, p, _ in observed.samples if t < observed.fault_at_s))
    after = frozenset().union(*(p for t, p, _ in observed.samples if t >= observed.fault_at_s))
    return len(after - before)


def load_record(fault: str, mode: Mode, observed: Observed, rate: float, **extra: Any) -> FaultRecord:
    result = observed.result
    return FaultRecord(
        fault=fault, mode=mode.name, status="ok", requests_lost=lost(result),
        recovery_s=recovery_s(observed, rate), offered_rate=rate, fault_at_s=observed.fault_at_s,
        timeline={k: result.timeline[k] for k in ("step_s", "ok", "failed", "failed_by") if k in result.timeline},
        processes=tuple(process_counts(observed)),
        details={"scheduled": result.scheduled, "errors": result.errors, "latency_ms": result.latency_ms,
                 "failures": failures(result), "new_processes": new_processes(observed),
                 **observed.notes, **extra.pop("details", {})},
        **extra)


def baseline(observed: Observed) -> int:
    """Processes in the group before the fault (the median of the samples then)."""
    before = [len(p) for t, p, _ in observed.samples if t < observed.fault_at_s] or [0]
    return int(statistics.median(before))


def lost_text(record: FaultRecord) -> str:
    """``3 lost (2 reset, 1 timeout)``: the failed requests and how they ended."""
    kinds = {k: n for k, n in record.details.get("failures", {}).items() if n}
    split = f" ({', '.join(f'{n} {k}' for k, n in kinds.items())})" if kinds else ""
    return f"{record.requests_lost} lost{split}"


def describe_recovery(record: FaultRecord, never: str) -> str:
    # Nothing lost says more than a recovery time: a slow mode's (cgi's 2/s) window to judge recovery may not
    # fit in a short run after the fault.
    if not record.requests_lost:
        return "no request lost"
    if record.recovery_s is None:
        return never
    return f"recovers in {record.recovery_s:.1f} s"


def first_gone_s(observed: Observed, leader: int) -> float | None:
    """Seconds from the fault until the first process that ran before it is gone (None: none goes)."""
    before = pids_before(observed) - {leader}
    for t, pids, _ in observed.samples:
        if t >= observed.fault_at_s and before - pids:
            return round(t - observed.fault_at_s, 2)
    return None


def pids_after(observed: Observed) -> frozenset[int]:
    return observed.samples[-1][1] if observed.samples else frozenset()


def pids_before(observed: Observed) -> frozenset[int]:
    before = [p for t, p, _ in observed.samples if t < observed.fault_at_s]
    return before[-1] if before else frozenset()


def send_signal(target: Server, sig: signal.Signals) -> None:
    try:
        os.kill(target.proc.pid, sig)
    except ProcessLookupError:
        target.notes["signal"] = "the server was already gone"
