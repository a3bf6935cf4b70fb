"""The project's own closed-loop generator: the uvloop engine of :mod:`scripts.load.engine_process`, on a closed
schedule.

Each connection sends its next request when the previous answer is complete, as wrk does, with
keep-alive on or off, and measures each request from its send. One engine for both schedules: the
open-loop ladder (:mod:`scripts.load.generators.open_loop`) runs the same code with a fixed rate. It needs
nothing beyond the project's Python dependencies, so it drives the single-request scenarios where wrk
is not installed.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

from loadtests.scenarios import Scenario
from scripts.load import engine_process, wrk_process
from scripts.load.generators.base import Load, LoadResult, single_request
from scripts.load.histogram import Histogram
from scripts.records.records import wanted_more


@dataclass(frozen=True, slots=True)
class Native:
    name: str = "native"
    summary: str = "the project's asyncio + uvloop engine (scripts/load/engine_process.py), closed loop"
    reports: str = "latency percentiles from each request's send, in microseconds"
    install_hint: str = "needs uvloop and httptools (pip install -e .)"
    cell_overhead_s: float = 1.0
    rank: int = 20
    closed_loop: bool = True

    def available(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in ("uvloop", "httptools"))

    def can_drive(self, scenario: Scenario) -> bool:
        return single_request(scenario)

    def run(self, load: Load) -> LoadResult:
        (probe,) = load.scenario.probes
        result = engine_process.run_openloop(
            wrk_process.url_for(load.host, load.port, probe.path), duration=load.duration, workdir=load.workdir,
            connections=load.connections, method=probe.method, body=probe.body, headers=probe.headers,
            close=not load.keepalive,
            timeout=load.timeout, closed_loop=True, cpus=set(load.cpus) if load.cpus else None)
        return LoadResult(
            generator=self.name, requests=result.requests, failures=result.non_2xx + result.socket_errors,
            throughput_rps=result.throughput_rps, latency_ms=dict(result.latency_ms),
            # One process on one event loop: the share of one CPU is what tells it ran out.
            generator_cpu=result.generator_cpu_util, latency_histogram=histogram_ms(result.histogram()),
            generator_warning=wanted_more("native", result.generator_cpu_util, result.generator_runqueue_frac))

    def warm_up(self, load: Load) -> None:
        self.run(load)


def histogram_ms(hist: Histogram | None) -> dict[float, int] | None:
    """The engine's microsecond buckets as {upper bound in ms: count}, the shape LoadResult carries."""
    if hist is None:
        return None
    return {hist.highest_equivalent(i) / 1000.0: n for i, n in enumerate(hist.counts) if n}


NATIVE = Native()
