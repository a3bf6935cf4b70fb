"""One cell against a server the bench does not start (``--target``; the plan side is :mod:`scripts.plan.target`).

    reach /health (retrying a few seconds) -> read the status once, if given -> verify every endpoint of the
    scenario -> warm up -> load, while the status is polled -> a CellRecord

The same steps as :func:`scripts.run.cell.run_cell` without the start and stop: an unreachable target or one that
answers wrongly fails its cell with the reason and what was tried, and the run goes on.
"""

from __future__ import annotations

import dataclasses
import http.client
import threading
import time
from pathlib import Path
from typing import Any

from loadtests.scenarios import SCENARIOS
from scripts.common.procs import StartError, get
from scripts.load import hosts
from scripts.load.generators import LoadError, LoadResult
from scripts.load.resources import Usage
from scripts.modes import MODES
from scripts.plan.plan import Cell, Plan
from scripts.plan.target import StatusError, parse_target, read_status
from scripts.records.records import CellRecord
from scripts.run.cell import CELL_ERRORS, _blank, _load, _measured, drain, now
from scripts.run.verify import verify

# A server that is already running answers at once or not at all; a short retry covers a restart in progress.
REACH_S = 5.0


def reach(host: str, port: int, deadline_s: float) -> float:
    """Poll ``GET /health`` until it answers 200; returns seconds waited, or :class:`StartError` with the last
    answer or error and how long it was tried."""
    start = time.monotonic()
    last = "no attempt"
    while True:
        try:
            status, _, body = get(host, port, "/health", timeout=2.0)
            if status == 200:
                return time.monotonic() - start
            last = f"status {status} {body[:60]!r}"
        except (OSError, http.client.HTTPException) as exc:
            last = f"{type(exc).__name__}: {exc}"
        waited = time.monotonic() - start
        if waited > deadline_s:
            raise StartError(f"target http://{host}:{port} did not answer GET /health with 200 "
                             f"(tried for {waited:.1f}s; last: {last})")
        time.sleep(0.2)


class RemoteSampler:
    """The server's CPU and memory from its status source, polled from ``start()`` to ``stop()``: CPU seconds as
    the difference of two readings, memory as the mean and peak of the polls, as :class:`scripts.load.resources.Sampler`
    does for a local server."""

    def __init__(self, source: str, interval: float = 0.25) -> None:
        self.source = source
        self.interval = interval
        self._first: dict[str, Any] = {}
        self._polls: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="remote-sampler", daemon=True)
        self._t0 = 0.0

    def start(self) -> None:
        self._first = read_status(self.source)
        self._t0 = time.monotonic()
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._polls.append(read_status(self.source))
            except StatusError:
                continue  # a missed poll costs one memory sample; the CPU difference needs only both ends

    def stop(self) -> Usage:
        self._stop.set()
        self._thread.join()
        last = read_status(self.source)
        elapsed = time.monotonic() - self._t0
        polls = [self._first, *self._polls, last]
        memory = [float(p["memory_mb"]) for p in polls]
        procs = [int(p["processes"]) for p in polls]
        return Usage(cpu_seconds=max(0.0, float(last["cpu_seconds"]) - float(self._first["cpu_seconds"])),
                     elapsed_s=elapsed, memory_peak_mb=max(memory), memory_mean_mb=sum(memory) / len(memory),
                     processes_peak=max(procs), processes_mean=sum(procs) / len(procs),
                     memory_kind=str(last["memory_kind"]), cpus=max(1, int(last.get("cpus") or 1)))


def _check_status(plan: Plan, cell: Cell) -> dict[str, Any]:
    """The status once before any load: it answers, and the server runs the strategy the cell is labelled with."""
    assert plan.target_status is not None
    status = read_status(plan.target_status)
    served = status.get("db_strategy")
    if cell.db_strategy and served and served != cell.db_strategy:
        raise StatusError(f"the target serves database strategy {served!r}, the cell measures {cell.db_strategy!r}; "
                          f"start it with --db-strategy {cell.db_strategy} or pass --db-strategies {served}")
    return status


def _measure(plan: Plan, cell: Cell, port: int,
             cell_dir: Path) -> tuple[float, LoadResult, Usage | None, dict[str, Any]]:
    """Seconds to reach the target, the load's result, the server's usage (None: no status source) and the
    status read before the load (empty without one)."""
    generator = plan.generators[cell.generator]
    ready = reach(plan.host, port, min(REACH_S, plan.start_timeout))
    status = _check_status(plan, cell) if plan.target_status else {}
    verify(plan.host, port, SCENARIOS[cell.scenario])  # every endpoint answers right before any load
    if plan.warmup > 0:
        generator.warm_up(_load(plan, cell, port, cell_dir / "warmup", plan.warmup))
        drain(plan.host, port, SCENARIOS[cell.scenario])  # the warm-up's leftovers, as a local cell waits them out
    sampler = RemoteSampler(plan.target_status) if plan.target_status else None
    if sampler:
        sampler.start()
    try:
        load = generator.run(_load(plan, cell, port, cell_dir, plan.duration_for(cell.mode)))
    finally:
        usage = sampler.stop() if sampler else None
    return ready, load, usage, status


def run_remote_cell(plan: Plan, cell: Cell, run_dir: Path, db_path: Path | None = None) -> CellRecord:
    """Measure one cell against ``plan.target``; the record says how it went, failed cells included.
    (``db_path`` is the local database, which a remote server does not use: the signature is run_cell's.)"""
    assert plan.target is not None
    _, port = parse_target(plan.target)
    record = dataclasses.replace(_blank(plan, cell), workers=None, interface=None, server_cpus=None,
                                 command=("target", plan.target))
    try:
        with hosts.loading(plan.host):
            ready, load, usage, status = _measure(plan, cell, port, run_dir / "logs" / cell.slug)
        mode, workers = MODES.get(str(status.get("mode"))), status.get("workers")
        record = dataclasses.replace(record, ready_s=round(ready, 3), interface=mode.interface if mode else None,
                                     workers=workers if isinstance(workers, int) else None)
        if usage is None:  # not measured: the summary says so, rather than showing zero
            record = dataclasses.replace(_measured(record, load, _NO_USAGE), resources=None)
        else:
            record = _measured(record, load, usage)
    except CELL_ERRORS as exc:  # StatusError is a RuntimeError
        tail = str(exc) if isinstance(exc, LoadError) else ""
        record = dataclasses.replace(record, error=f"{type(exc).__name__}: {exc}".splitlines()[0] + f" [{plan.target}]",
                                     log_tail=tail)
    return dataclasses.replace(record, finished_at=now())


_NO_USAGE = Usage(cpu_seconds=0.0, elapsed_s=0.0, memory_peak_mb=0.0, memory_mean_mb=0.0, processes_peak=0,
                  processes_mean=0.0, memory_kind="")
