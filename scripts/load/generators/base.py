"""The one interface every load generator implements, and the one result type they all return.

A generator is an object with a name, a few declarative facts (what it can drive, what a cell costs,
how it reports) and two methods, :meth:`Generator.run` and :meth:`Generator.warm_up`. The bench never
asks which generator it holds; :mod:`scripts.load.generators` keeps the registry and picks one per scenario.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from loadtests.scenarios import Scenario
from scripts.load import LoadError

__all__ = ["Generator", "Load", "LoadError", "LoadResult", "ScheduleKept", "single_request"]


@dataclass(frozen=True, kw_only=True, slots=True)
class Load:
    """One load run: what to send where, how hard and for how long."""

    scenario: Scenario
    host: str
    port: int
    connections: int
    duration: float
    workdir: Path  # the generator's logs and files go here
    cpus: frozenset[int] | None = None  # pin the generator here
    keepalive: bool = True  # False: every request on a new connection (Connection: close)
    rate: float | None = None  # requests/s on a fixed schedule (open loop); None: closed loop
    timeout: float = 10.0  # a request unanswered this long counts as failed


@dataclass(frozen=True, kw_only=True, slots=True)
class ScheduleKept:
    """How an open-loop run kept its schedule (absent from closed-loop results)."""

    offered_rate: float
    sent: int
    completed: int
    ok: int
    errors: Mapping[str, int]
    latency_uncorrected_ms: Mapping[str, float]  # from when a connection took the request, not its due time
    kept_up: bool | None
    behind_s: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadResult:
    generator: str
    requests: int  # complete answers within the measured interval
    failures: int  # non-2xx answers and socket errors
    throughput_rps: float
    latency_ms: Mapping[str, float]  # p50, p75, p90, p99, p999, mean, max (whatever the generator resolves)
    generator_cpu: float | None = None  # share of the CPU it can use that the generator used while measuring
    # Why a generator is the limit where generator_cpu alone does not say so: it used and waited for more than
    # the bound (scripts.records.records.wanted_more), or a locust worker did, here or on another host; flags the figure
    # as generator-bound like generator_cpu does.
    generator_warning: str | None = None
    latency_histogram: Mapping[float, int] | None = None  # latency (ms) -> count, where the generator keeps one
    schedule: ScheduleKept | None = None  # open loop only


class Generator(Protocol):
    """Read-only facts (a frozen dataclass's fields satisfy them) and two methods."""

    @property
    def name(self) -> str: ...

    @property
    def summary(self) -> str:
        """One line for ``--list`` and the README."""

    @property
    def reports(self) -> str:
        """What its latency figures are, e.g. "percentiles in microseconds"."""

    @property
    def install_hint(self) -> str:
        """How to get it when :meth:`available` is False."""

    @property
    def cell_overhead_s(self) -> float:
        """Start-up and shut-down per cell, for the run's time estimate."""

    @property
    def rank(self) -> int:
        """Among the available closed-loop generators that can drive a scenario, "auto" picks the highest."""

    @property
    def closed_loop(self) -> bool:
        """False: it needs ``Load.rate`` (the open-loop ladder's generator)."""

    def available(self) -> bool: ...

    def can_drive(self, scenario: Scenario) -> bool: ...

    def run(self, load: Load) -> LoadResult: ...

    def warm_up(self, load: Load) -> None: ...


def single_request(scenario: Scenario) -> bool:
    """One request repeated without think time: what wrk and the native engine can express."""
    return len(scenario.probes) == 1 and scenario.think_s == (0.0, 0.0)
