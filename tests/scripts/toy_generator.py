"""A toy load generator, written as docs/how-to/add-generator.md says: one module, one registry entry.

Threads with one keep-alive ``http.client`` connection each, a closed loop: slow, but enough to show that
the harness runs any object with the fields and methods of ``scripts.load.generators.base.Generator``.
"""

from __future__ import annotations

import http.client
import statistics
import threading
import time
from dataclasses import dataclass

from loadtests.scenarios import Scenario
from scripts.load.generators.base import Load, LoadResult, single_request


def _client(load: Load, deadline: float, latencies: list[float], failures: list[int]) -> None:
    (probe,) = load.scenario.probes
    conn = http.client.HTTPConnection(load.host, load.port, timeout=load.timeout)
    try:
        while time.monotonic() < deadline:
            start = time.perf_counter()
            conn.request(probe.method, probe.path, body=probe.body or None)
            response = conn.getresponse()
            response.read()
            latencies.append(1000 * (time.perf_counter() - start))
            if response.status >= 400:
                failures.append(response.status)
    finally:
        conn.close()


@dataclass(frozen=True, slots=True)
class Toy:
    name: str = "toy"
    summary: str = "threads on http.client, for the tests"
    reports: str = "latency percentiles from Python's clock"
    install_hint: str = "nothing to install"
    cell_overhead_s: float = 0.1
    rank: int = 1
    closed_loop: bool = True

    def available(self) -> bool:
        return True

    def can_drive(self, scenario: Scenario) -> bool:
        return single_request(scenario)

    def run(self, load: Load) -> LoadResult:
        latencies: list[float] = []
        failures: list[int] = []
        started = time.monotonic()
        threads = [threading.Thread(target=_client, args=(load, started + load.duration, latencies, failures))
                   for _ in range(load.connections)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(load.duration + load.timeout)
        elapsed = time.monotonic() - started
        cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else latencies * 99
        return LoadResult(generator=self.name, requests=len(latencies), failures=len(failures),
                          throughput_rps=len(latencies) / elapsed, latency_ms={"p50": cuts[49], "p99": cuts[98]})

    def warm_up(self, load: Load) -> None:
        self.run(load)


TOY = Toy()
