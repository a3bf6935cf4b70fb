"""The open-loop ladder's generator: the uvloop engine of :mod:`scripts.load.engine_process` on a fixed schedule.

Requests go out at ``Load.rate`` whatever the answers, and latency counts from each request's intended
send time, so a server that stalls shows its queue in p99 (the coordinated-omission correction).
"""

from __future__ import annotations

from dataclasses import dataclass

from loadtests.scenarios import Scenario
from scripts.load import engine_process, wrk_process
from scripts.load.generators.base import Load, LoadResult, ScheduleKept, single_request
from scripts.load.generators.native import histogram_ms


@dataclass(frozen=True, slots=True)
class OpenLoop:
    name: str = "openloop"
    summary: str = "the project's asyncio + uvloop engine on a fixed schedule (open loop)"
    reports: str = "latency from each request's intended send time, corrected for coordinated omission"
    install_hint: str = "needs uvloop and httptools (pip install -e .)"
    cell_overhead_s: float = 1.2
    rank: int = 0
    closed_loop: bool = False

    def available(self) -> bool:
        return True

    def can_drive(self, scenario: Scenario) -> bool:
        return single_request(scenario)

    def run(self, load: Load) -> LoadResult:
        if load.rate is None:
            raise ValueError("the open-loop generator needs a rate")
        (probe,) = load.scenario.probes
        r = engine_process.run_openloop(
            wrk_process.url_for(load.host, load.port, probe.path), rate=load.rate, duration=load.duration,
            connections=load.connections, method=probe.method, body=probe.body, headers=probe.headers,
            close=not load.keepalive,
            timeout=load.timeout, workdir=load.workdir, cpus=set(load.cpus) if load.cpus else None)
        schedule = ScheduleKept(offered_rate=load.rate, sent=r.sent, completed=r.completed, ok=r.ok, errors=r.errors,
                            latency_uncorrected_ms=r.latency_uncorrected_ms, kept_up=r.generator_kept_up,
                            behind_s=r.generator_behind_s)
        return LoadResult(generator=self.name, requests=r.completed, failures=sum(r.errors.values()),
                          throughput_rps=r.achieved_rate, latency_ms=r.latency_ms, generator_cpu=r.generator_cpu_util,
                          latency_histogram=histogram_ms(r.histogram()), schedule=schedule)

    def warm_up(self, load: Load) -> None:
        """Nothing: the ladder's lowest rate warms the server up."""


OPEN_LOOP = OpenLoop()
