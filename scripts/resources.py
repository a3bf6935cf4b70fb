"""CPU and memory of a server's whole process group while load runs.

CPU seconds are read as a difference of two totals, each summed over the
group's live processes including what they collected from reaped children
(``children_user``/``children_system``). A fork-per-request child that lives a
millisecond is never seen alive, but its parent's child rusage counts it.
Memory is the RSS summed over the group, sampled every ``interval`` seconds.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import psutil

from scripts.procs import group_members


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


@dataclass(frozen=True, kw_only=True, slots=True)
class Usage:
    cpu_seconds: float
    rss_peak_mb: float
    rss_mean_mb: float
    processes_peak: int

    def as_dict(self, requests: int) -> dict[str, float | int | None]:
        return {
            "cpu_seconds": round(self.cpu_seconds, 3),
            "cpu_ms_per_request": round(1000 * self.cpu_seconds / requests, 4) if requests else None,
            "rss_peak_mb": round(self.rss_peak_mb, 1),
            "rss_mean_mb": round(self.rss_mean_mb, 1),
            "processes_peak": self.processes_peak,
        }


class Sampler:
    """Samples a process group from ``start()`` to ``stop()`` on a background thread."""

    def __init__(self, pgid: int, interval: float = 0.25) -> None:
        self.pgid = pgid
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="resource-sampler", daemon=True)
        self._rss: list[float] = []
        self._procs_peak = 0
        self._cpu_start = 0.0

    def start(self) -> None:
        self._cpu_start = cpu_total(self.pgid)
        self._thread.start()

    def _sample(self) -> None:
        rss = 0
        procs = _processes(self.pgid)
        for proc in procs:
            try:
                rss += proc.memory_info().rss
            except psutil.Error:
                continue
        self._rss.append(rss / 2**20)
        self._procs_peak = max(self._procs_peak, len(procs))

    def _run(self) -> None:
        while not self._stop.is_set():
            self._sample()
            self._stop.wait(self.interval)

    def stop(self) -> Usage:
        self._stop.set()
        self._thread.join()
        cpu = cpu_total(self.pgid) - self._cpu_start
        if not self._rss:
            self._sample()
        return Usage(
            cpu_seconds=max(0.0, cpu),
            rss_peak_mb=max(self._rss),
            rss_mean_mb=sum(self._rss) / len(self._rss),
            processes_peak=self._procs_peak,
        )
