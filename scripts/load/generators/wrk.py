"""wrk (C, one event loop per thread, ~100,000 requests/s from one core): the default where it is installed."""

from __future__ import annotations

from dataclasses import dataclass

from loadtests.scenarios import Scenario
from scripts.load import wrk_process
from scripts.load.generators.base import Load, LoadError, LoadResult, single_request
from scripts.records import distribution
from scripts.records.records import wanted_more


@dataclass(frozen=True, slots=True)
class Wrk:
    name: str = "wrk"
    summary: str = "wrk, the C load generator (system package), closed loop"
    reports: str = "latency percentiles in microseconds (wrk's own histogram)"
    install_hint: str = wrk_process.MISSING
    cell_overhead_s: float = 0.25  # verification, wrk's start, the sampler: measured 0.15-0.35 s a cell
    rank: int = 30
    closed_loop: bool = True

    def available(self) -> bool:
        return wrk_process.find_wrk() is not None

    def can_drive(self, scenario: Scenario) -> bool:
        return single_request(scenario)

    def run(self, load: Load) -> LoadResult:
        (probe,) = load.scenario.probes
        try:
            result = wrk_process.run_wrk(host=load.host, port=load.port, path=probe.path, method=probe.method,
                                 body=probe.body, headers=probe.headers, close=not load.keepalive,
                                 connections=load.connections,
                                 duration=max(1, round(load.duration)), workdir=load.workdir,
                                 cpus=set(load.cpus) if load.cpus else None)
        except wrk_process.WrkError as exc:
            raise LoadError(str(exc)) from None
        return LoadResult(generator=self.name, requests=result.requests,
                          failures=result.non_2xx + result.socket_errors, throughput_rps=result.throughput_rps,
                          latency_ms=dict(result.latency_ms), generator_cpu=result.cpu_utilization,
                          generator_warning=wanted_more("wrk", result.cpu_utilization, result.cpu_waiting),
                          latency_histogram=distribution.histogram_from_spectrum(result.spectrum_ms, result.requests))

    def warm_up(self, load: Load) -> None:
        (probe,) = load.scenario.probes
        try:
            wrk_process.warm_up(host=load.host, port=load.port, path=probe.path, method=probe.method, body=probe.body,
                        headers=probe.headers, close=not load.keepalive, connections=load.connections,
                        seconds=load.duration, workdir=load.workdir, cpus=set(load.cpus) if load.cpus else None)
        except wrk_process.WrkError as exc:
            raise LoadError(str(exc)) from None


WRK = Wrk()
