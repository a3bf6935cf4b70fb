"""CPU and memory of a server's whole process group while load runs.

CPU seconds are read as a difference of two totals, each summed over the
group's live processes including what they collected from reaped children
(``children_user``/``children_system``). A fork-per-request child that lives a
millisecond is never seen alive, but its parent's child rusage counts it.
Memory is summed over the group every ``interval`` seconds as PSS (proportional
set size: a page shared by N processes counts 1/N in each, so forked workers'
shared pages are not counted N times) where the kernel offers it, else RSS.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from scripts.common.procs import group_members, log_tail, running, schedstat_wait_s
from scripts.records.records import Resources


def _processes(pgid: int) -> list[psutil.Process]:
    procs = []
    for pid in group_members(pgid):
        try:
            procs.append(psutil.Process(pid))
        except psutil.Error:
            continue
    return procs


def cpu_total(pgid: int) -> float:
    total = 0.0
    for proc in _processes(pgid):
        try:
            t = proc.cpu_times()
        except psutil.Error:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


def wait_total(pgid: int) -> float:
    """Seconds the group's live threads have spent ready to run but waiting for a CPU (Linux schedstat; 0 where
    the kernel does not say). CPU use alone under-reads a process that shares its CPU with other work."""
    total = 0.0
    for pid in group_members(pgid):
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        total += sum(schedstat_wait_s(f"/proc/{pid}/task/{tid}/schedstat") or 0.0 for tid in tids)
    return total


def _memory(proc: psutil.Process) -> tuple[int, str]:
    try:
        return proc.memory_full_info().pss, "pss"
    except (psutil.AccessDenied, AttributeError):
        return proc.memory_info().rss, "rss"


@dataclass(frozen=True, kw_only=True, slots=True)
class Snapshot:
    """A process group's totals at one moment: what ``python -m scripts.serve``'s status endpoint reports."""

    cpu_seconds: float
    memory_mb: float
    memory_kind: str
    processes: int


def _group_memory(procs: list[psutil.Process], kind: str = "rss") -> tuple[int, str]:
    """Bytes summed over ``procs`` and the kind of figure ("pss" or "rss"); processes gone meanwhile count 0."""
    total = 0
    for proc in procs:
        try:
            amount, kind = _memory(proc)
        except psutil.Error:
            continue
        total += amount
    return total, kind


def snapshot(pgid: int) -> Snapshot:
    procs = _processes(pgid)
    memory, kind = _group_memory(procs)
    return Snapshot(cpu_seconds=cpu_total(pgid), memory_mb=memory / 2**20, memory_kind=kind, processes=len(procs))


@dataclass(frozen=True, kw_only=True, slots=True)
class Usage:
    cpu_seconds: float
    elapsed_s: float
    memory_peak_mb: float  # PSS where available (see memory_kind), else RSS
    memory_mean_mb: float
    processes_peak: int
    processes_mean: float
    memory_kind: str
    cpus: int = 1

    def resources(self, requests: int) -> Resources:
        """The record's view of this usage, with the per-request figures derived from ``requests``."""
        return Resources(
            cpu_seconds=round(self.cpu_seconds, 3),
            cpu_ms_per_request=round(1000 * self.cpu_seconds / requests, 4) if requests else None,
            requests_per_cpu_second=round(requests / self.cpu_seconds, 1) if self.cpu_seconds > 0 else None,
            cpu_utilization=round(self.cpu_seconds / (self.elapsed_s * self.cpus), 3) if self.elapsed_s else None,
            memory_peak_mb=round(self.memory_peak_mb, 1),
            memory_mean_mb=round(self.memory_mean_mb, 1),
            memory_kind=self.memory_kind,
            memory_per_process_mb=round(self.memory_mean_mb / self.processes_mean, 1) if self.processes_mean else None,
            processes_peak=self.processes_peak,
            processes_mean=round(self.processes_mean, 1),
        )


class Sampler:
    """Samples a process group from ``start()`` to ``stop()`` on a background thread."""

    def __init__(self, pgid: int, interval: float = 0.25, cpus: int = 1) -> None:
        self.pgid = pgid
        self.interval = interval
        self.cpus = cpus
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resource-sampler", daemon=True)
        self._memory: list[float] = []
        self._procs: list[int] = []
        self._kind = "rss"
        self._cpu_start = 0.0
        self._t_start = 0.0

    def start(self) -> None:
        self._cpu_start = cpu_total(self.pgid)
        self._t_start = time.monotonic()
        self._thread.start()

    def _sample(self) -> None:
        procs = _processes(self.pgid)
        total, self._kind = _group_memory(procs, self._kind)
        self._memory.append(total / 2**20)
        self._procs.append(len(procs))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def stop(self) -> Usage:
        self._stop.set()
        self._thread.join()
        cpu = cpu_total(self.pgid) - self._cpu_start
        if not self._memory:
            self._sample()
        return Usage(
            cpu_seconds=max(0.0, cpu),
            elapsed_s=time.monotonic() - self._t_start,
            memory_peak_mb=max(self._memory),
            memory_mean_mb=sum(self._memory) / len(self._memory),
            processes_peak=max(self._procs),
            processes_mean=sum(self._procs) / len(self._procs),
            memory_kind=self._kind,
            cpus=self.cpus,
        )


class CpuTrace:
    """CPU use of a process group over time, to tell whether a load generator ran out of CPU.

    The start of a generator's life (imports, spawning users) is busy in a way its
    measured interval is not, so :meth:`utilization` looks at the middle of the run.
    """

    def __init__(self, pgid: int, cpus: int, interval: float = 0.25) -> None:
        self.pgid = pgid
        self.cpus = max(1, cpus)
        self.interval = interval
        self.samples: list[tuple[float, float]] = []
        self.waits: list[tuple[float, float]] = []  # (monotonic time, wait_total) beside each sample
        # Wall-clock time minus monotonic time: generators that log wall-clock times (locust) can name their
        # measured interval, and utilization_between() finds it among the samples.
        self.wall_offset = time.time() - time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-trace", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.monotonic()
            self.samples.append((now, cpu_total(self.pgid)))
            self.waits.append((now, wait_total(self.pgid)))
            self._stop.wait(self.interval)

    def __enter__(self) -> CpuTrace:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _middle(self, skip_head: float, skip_tail: float) -> tuple[float, float] | None:
        """The monotonic times of the run's middle: without its first and last moments, and without the samples
        taken after the group exited (its CPU total is gone then, not negative)."""
        samples = list(self.samples)
        while len(samples) > 1 and samples[-1][1] < samples[-2][1]:
            samples.pop()
        if len(samples) < 2:
            return None
        self.samples = samples
        start, end = samples[0][0] + skip_head, samples[-1][0] - skip_tail
        window = [t for t, _ in samples if start <= t <= end]
        if len(window) < 2 or window[-1] - window[0] < 0.5:
            window = [t for t, _ in samples]
        return (window[0], window[-1]) if window[-1] > window[0] else None

    def utilization(self, skip_head: float = 1.0, skip_tail: float = 0.5) -> float | None:
        """CPU seconds per second per CPU over the run, without its first and last moments."""
        middle = self._middle(skip_head, skip_tail)
        return None if middle is None else _rate(self.samples, *middle, self.cpus)

    def waiting(self, skip_head: float = 1.0, skip_tail: float = 0.5) -> float | None:
        """As :meth:`utilization`, for the seconds spent waiting for a CPU."""
        middle = self._middle(skip_head, skip_tail)
        return None if middle is None else _rate(self.waits, *middle, self.cpus)

    def utilization_between(self, start_wall: float, end_wall: float) -> float | None:
        """CPU seconds per second per CPU between two wall-clock times (None when fewer than two samples fall
        in that window, e.g. a window shorter than the sampling interval)."""
        start, end = start_wall - self.wall_offset, end_wall - self.wall_offset
        return _rate(self.samples, start, end, self.cpus)

    def waiting_between(self, start_wall: float, end_wall: float) -> float | None:
        """As :meth:`utilization_between`, for the seconds spent waiting for a CPU (threads that exited in the
        window take theirs with them: a lower bound)."""
        return _rate(self.waits, start_wall - self.wall_offset, end_wall - self.wall_offset, self.cpus)


def _rate(samples: list[tuple[float, float]], start: float, end: float, cpus: int) -> float | None:
    """Growth of a running total per second per CPU between two monotonic times (None with under two samples)."""
    window = [(t, c) for t, c in samples if start <= t <= end]
    if len(window) < 2 or window[-1][0] <= window[0][0]:
        return None
    (t0, c0), (t1, c1) = window[0], window[-1]
    return max(0.0, (c1 - c0) / (t1 - t0) / cpus)


def run_tracing(argv: list[str], *, log: Path, timeout: float, cpus: set[int] | None, cwd: Path,
                env: dict[str, str] | None = None) -> tuple[int, CpuTrace]:
    """Run a load generator to completion within ``timeout``; its exit code and its CPU trace.

    It runs in a process group of its own, pinned to ``cpus``, and its CPU use (and time spent waiting for a
    CPU) is sampled while it runs, to tell a server's limit from the generator's own. Raises TimeoutError (with
    the log's tail) if it does not finish in time; the group is stopped either way.
    """
    full_env = {**os.environ, **(env or {})}
    with running(argv, log_path=log, cwd=cwd, cpus=cpus, env=full_env) as proc, \
            CpuTrace(proc.pid, len(cpus) if cpus else (os.cpu_count() or 1)) as trace:
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError(f"{Path(argv[0]).name} did not finish within {timeout:.0f}s\n{log_tail(log)}") from None
    return code, trace
