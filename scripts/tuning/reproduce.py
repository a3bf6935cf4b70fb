"""The check of a printed command: start a mode's production command line as printed (bound to a free loopback
port, pinned to the server CPUs as the tune was), find its capacity with the same target, and compare with the
capacity the tune found."""

from __future__ import annotations

import statistics
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from loadtests.scenarios import SCENARIOS, Scenario
from scripts.common.cpus import parse_cpus
from scripts.common.procs import pin_group, running, wait_ready
from scripts.plan.plan import ROOT, Plan
from scripts.run.verify import verify
from scripts.tuning import results
from scripts.tuning.command import to_local
from scripts.tuning.measure import Server, Target, capacity, capacity_of
from scripts.tuning.results import ModeResult


@dataclass(frozen=True, kw_only=True, slots=True)
class Reproduced:
    mode: str
    scenario: str
    command: str
    tuned_rps: float
    measured_rps: float  # the median of the rounds
    rounds: tuple[float, ...] = ()  # each round's capacity

    @property
    def ratio(self) -> float:
        return self.measured_rps / self.tuned_rps if self.tuned_rps else 0.0


def reproduce(run_dir: Path, entry: ModeResult, *, target: Target | None = None,
              scenarios: dict[str, Scenario] | None = None, env: dict[str, str] | None = None,
              rounds: int = 1) -> Reproduced:
    """The printed command's capacity: the median of ``rounds`` measurements, each against a fresh server."""
    run = results.load(run_dir)
    assert entry.production_command, f"{entry.mode} has no best setting"
    plan_data = run.plan
    target = target or Target(slo_p99_ms=float(plan_data["slo_p99_ms"]), repeats=int(plan_data["repeats"]),
                              duration_s=float(plan_data["interval_s"]), precision=float(plan_data["precision"]))
    scenario = (scenarios or SCENARIOS)[entry.scenario]
    server, client = parse_cpus(plan_data["server_cpus"]), parse_cpus(plan_data["client_cpus"])
    plan = Plan(modes=(entry.mode,), scenarios=(entry.scenario,), concurrency=(1,), sweep_scenarios=(), sweep_levels=(),
                duration=1, warmup=0.0, workers=1, out=run_dir, server_cpus=server, client_cpus=client)
    logs = run_dir / "logs" / "reproduce" / entry.mode
    best = entry.result(entry.best)
    line = entry.production_command

    @contextmanager
    def start(port: int) -> Iterator[subprocess.Popen[bytes]]:
        with running(to_local(line, plan.host, port), log_path=logs / "server.log", env=env, cwd=ROOT,
                     cpus=set(server)) as proc:
            wait_ready(proc, plan.host, port, log_path=logs / "server.log", deadline_s=30.0,
                       path=scenario.probes[0].path)
            pin_group(proc.pid, server)
            verify(plan.host, port, scenario)
            yield proc

    found: list[float] = []
    for _ in range(max(1, rounds)):
        with Server(plan.host, start) as started:
            found.append(capacity(capacity_of(plan, scenario, started, target=target,
                                              start_rate=best.capacity_rps if best else 100.0, logs=logs)))
    return Reproduced(mode=entry.mode, scenario=entry.scenario, command=line,
                      tuned_rps=best.capacity_rps if best else 0.0, measured_rps=statistics.median_low(found),
                      rounds=tuple(found))
