"""One cell, measured in isolation, and the server every measurement runs against.

    start the mode on a free loopback port, pinned to the server CPUs -> poll /health -> verify every
    endpoint of the scenario (the primer) -> warm up with the cell's own generator (not measured) ->
    load, pinned to the client CPUs, while the server's CPU and memory are sampled -> a CellRecord ->
    stop the mode's whole process group

A cell that fails (a server that does not start or answers wrongly, a generator that breaks) becomes a
failed record with the reason and the server log's tail; the run goes on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import http.client
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from apps import db
from apps import faults as app_faults
from loadtests.scenarios import Scenario
from scripts.common.cpus import format_cpus
from scripts.common.procs import (
    StartError,
    free_port,
    get,
    group_affinity,
    log_tail,
    pin_group,
    running,
    wait_ready,
)
from scripts.load.generators import Load, LoadError, LoadResult
from scripts.load.resources import Sampler, Usage
from scripts.plan import userapp
from scripts.plan.plan import ROOT, Cell, Plan
from scripts.records import distribution
from scripts.records.records import CellRecord
from scripts.run.verify import VerifyError, verify

# How long a server gets to stop after its cell: nothing is left to answer but what the generator abandoned when it
# stopped. (cgi drained 64 such children for its whole 10 s graceful timeout under load, every cell.)
CELL_STOP_GRACE_S = 3.0

# What a failed cell may raise; anything else is a bug in the harness and stops the run.
CELL_ERRORS = (StartError, VerifyError, LoadError, RuntimeError, OSError)


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def server_env(plan: Plan, db_path: Path, strategy: str | None) -> dict[str, str]:
    """The environment every server of a run gets: where the database is and how to reach it.

    Never the fault endpoints: a ``WORKERBENCH_FAULTS=1`` left in the caller's shell would open ``/fault/...``
    (crash, hang, leak) on a server meant for measuring; only ``python -m scripts.faults`` turns them on.
    """
    env = {**os.environ, db.ENV_PATH: str(db_path), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop(db.ENV_URL, None)
    env.pop(app_faults.ENV, None)
    if plan.db_url:
        env[db.ENV_URL] = plan.db_url
    env[db.ENV_STRATEGY] = strategy or db.REUSE
    return userapp.server_env(plan.app, env, ROOT) if plan.app else env


@contextmanager
def serving(plan: Plan, argv: list[str], port: int, scenario: Scenario, log: Path,
            env: dict[str, str], answers: dict[str, str] | None = None
            ) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """A server started on the server CPUs, ready, its whole group pinned, and verified on ``scenario``
    (the primer; a user's requests' answers go into ``answers``); yields the process and how long it took to
    become ready. Stopped on any exit."""
    path, must_be_200 = ("/health", True) if plan.app is None else userapp.ready_probe(plan.app,
                                                                                        plan.scenario_registry)
    with running(argv, log_path=log, env=env, cwd=ROOT, cpus=set(plan.server_cpus),
                 grace=CELL_STOP_GRACE_S) as proc:
        ready = wait_ready(proc, plan.host, port, log_path=log, deadline_s=plan.start_timeout, path=path,
                           any_answer=not must_be_200)
        pin_group(proc.pid, plan.server_cpus)
        verify(plan.host, port, scenario, answers)  # every endpoint answers right before any load
        yield proc, ready


DRAIN_TIMEOUT_S = 30.0


def drain(host: str, port: int, scenario: Scenario) -> None:
    """Wait out the warm-up's leftovers before the measured window opens. A closed-loop warm-up ends with a request
    in flight on every connection; a pool server still serves them, queued in its backlog, after their client is
    gone, and they ate the first 150-350 ms of a 1 s window (io at 32 users: 66 req/s at --duration 1 against 89 at
    4 s). One request of the scenario on a fresh connection queues behind them and answers when they are done."""
    probe = scenario.probes[0]
    try:
        get(host, port, probe.path, method=probe.method, body=probe.body or None, headers=dict(probe.headers),
            timeout=DRAIN_TIMEOUT_S)
    except (OSError, http.client.HTTPException):
        pass  # the load that follows meets whatever is wrong, and records it


def _blank(plan: Plan, cell: Cell) -> CellRecord:
    """The cell's record before it runs: failed until proven otherwise."""
    mode = plan.registry[cell.mode]
    return CellRecord(
        index=cell.index, mode=cell.mode, scenario=cell.label, base_scenario=cell.scenario, keepalive=cell.keepalive,
        repeat=cell.repeat, db_strategy=cell.db_strategy,
        db_backend=("postgresql" if plan.db_url else "sqlite") if cell.db_strategy else None,
        concurrency=cell.concurrency, workers=plan.workers if mode.process.uses_workers else None,
        interface=mode.interface,
        generator=cell.generator, server_cpus=format_cpus(plan.server_cpus),
        client_cpus=format_cpus(plan.client_cpus), duration_s=plan.duration_for(cell.mode), warmup_s=plan.warmup,
        status="failed", started_at=now(),
    )


def _measured(record: CellRecord, load: LoadResult, usage: Usage) -> CellRecord:
    record = dataclasses.replace(
        record, status="ok", generator=load.generator, requests=load.requests, failures=load.failures,
        throughput_rps=round(load.throughput_rps, 2), latency_ms=dict(load.latency_ms),
        latency_histogram=distribution.of_generator(load.latency_histogram),
        resources=usage.resources(load.requests),
        generator_cpu=None if load.generator_cpu is None else round(load.generator_cpu, 3),
        generator_warning=load.generator_warning)
    if load.requests == 0:
        record = dataclasses.replace(record, status="failed", error="no request completed during the measured interval")
    return record


def _load(plan: Plan, cell: Cell, port: int, workdir: Path, duration: float) -> Load:
    return Load(scenario=plan.scenario_registry[cell.scenario], host=plan.host, port=port, connections=cell.concurrency,
                duration=duration, workdir=workdir, cpus=plan.client_cpus, keepalive=cell.keepalive)


def run_cell(plan: Plan, cell: Cell, run_dir: Path, db_path: Path) -> CellRecord:
    """Measure one cell; the record says how it went, failed cells included."""
    record = _blank(plan, cell)
    generator = plan.generators[cell.generator]
    cell_dir = run_dir / "logs" / cell.slug
    server_log = cell_dir / "server.log"
    port = free_port(plan.host)
    argv = plan.registry[cell.mode].argv(host=plan.host, port=port, workers=plan.workers,
                                         app=plan.app_for(cell.mode))
    record = dataclasses.replace(record, command=tuple(argv))
    answers: dict[str, str] = {}
    try:
        with serving(plan, argv, port, plan.scenario_registry[cell.scenario], server_log,
                     server_env(plan, db_path, cell.db_strategy), answers) as (proc, ready):
            record = dataclasses.replace(record, ready_s=round(ready, 3),
                                         server_affinity=format_cpus(group_affinity(proc.pid)))
            if plan.warmup > 0:
                generator.warm_up(_load(plan, cell, port, cell_dir / "warmup", plan.warmup))
                drain(plan.host, port, plan.scenario_registry[cell.scenario])
            sampler = Sampler(proc.pid, cpus=len(plan.server_cpus))
            sampler.start()
            try:
                load = generator.run(_load(plan, cell, port, cell_dir, plan.duration_for(cell.mode)))
            finally:
                usage = sampler.stop()
            if proc.poll() is not None:
                raise StartError(f"server exited with code {proc.returncode} during the load")
        record = _measured(record, load, usage)
    except CELL_ERRORS as exc:
        tail = log_tail(server_log)
        if isinstance(exc, LoadError):
            tail += f"\n--- {cell.generator} ---\n" + str(exc)
        if plan.app and (note := userapp.failure_note(plan.app, server_log)):
            tail += "\n" + note
        record = dataclasses.replace(record, error=f"{type(exc).__name__}: {exc}".splitlines()[0], log_tail=tail)
    return dataclasses.replace(record, finished_at=now(), answers=answers)
