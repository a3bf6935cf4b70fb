"""Repeats of one cell folded into one figure: median, 95% confidence interval, spread and flags.

A cell is measured ``repeats`` times (modes interleaved between repeats, so slow
drift of a shared machine falls on every mode alike). The figure shown is the
median of the repeats; the interval is the Student-t 95% confidence interval of
their mean (with 3 repeats, t = 4.30: wide on purpose, because 3 samples say
little); the spread is (max - min) / median. Flags say why a figure should not
be read as a server's capacity:

``generator-bound``  the load generator used more than 85% of its CPUs in some
                     repeat, or used and waited for more (on this host or on a
                     locust worker): the number measures the generator, not the server.
``spread``           repeats differ by more than 10% of the median.
``errors``           more than 0.1% of requests failed (non-2xx or socket errors).
``failed``           no repeat produced a measurement.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from scripts.records import distribution
from scripts.records.records import GENERATOR_BOUND, CellRecord, Flag, Resources, Status

SPREAD_LIMIT = 0.10
ERROR_LIMIT = 0.001

# Two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)

# Keys that identify a figure; records equal in all of them are repeats of one another.
GROUP_KEYS = ("mode", "scenario", "concurrency")


def t975(dof: int) -> float:
    if dof < 1:
        return math.nan
    return _T975[dof - 1] if dof <= len(_T975) else 1.96


def interval(values: Sequence[float]) -> tuple[float, float] | None:
    """The 95% confidence interval of the mean of ``values`` (None with fewer than two)."""
    if len(values) < 2:
        return None
    mean = statistics.fmean(values)
    half = t975(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return mean - half, mean + half


def spread(values: Sequence[float]) -> float | None:
    median = statistics.median(values) if values else 0.0
    if len(values) < 2 or median <= 0:
        return None
    return (max(values) - min(values)) / median


@dataclass(frozen=True, kw_only=True, slots=True)
class FoldedCell:
    """One figure: the repeats of a cell folded (what tables and charts show)."""

    mode: str
    scenario: str
    status: Status
    index: int
    repeats: int
    repeats_ok: int
    base_scenario: str | None = None
    concurrency: int | None = None
    keepalive: bool = True
    db_strategy: str | None = None
    db_backend: str | None = None
    workers: int | None = None
    generator: str | None = None
    generator_cpu: float | None = None
    generator_warning: str | None = None  # the first repeat's word that the generator wanted more CPU
    throughput_rps: float | None = None
    throughput_samples: tuple[float, ...] = ()
    throughput_ci95: tuple[float, float] | None = None
    spread: float | None = None
    requests: int | None = None
    failures: int | None = None
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    latency_histogram: Mapping[float, int] = field(default_factory=dict)  # the repeats' histograms merged
    resources: Resources | None = None
    flags: tuple[Flag, ...] = ()
    error: str | None = None
    log_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def _median_map(maps: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Per key of the first map, the median over the maps that have it."""
    keys = maps[0] if maps else {}
    return {k: statistics.median(m[k] for m in maps if k in m) for k in keys}


def _median_resources(ok: Sequence[CellRecord]) -> Resources | None:
    present = [r.resources for r in ok if r.resources is not None]
    if not present:
        return None
    values: dict[str, Any] = {}
    for f in fields(Resources):
        numbers = [getattr(r, f.name) for r in present if isinstance(getattr(r, f.name), int | float)]
        values[f.name] = statistics.median(numbers) if numbers else None
    values["memory_kind"] = present[0].memory_kind
    if values["processes_peak"] is not None:
        values["processes_peak"] = round(values["processes_peak"])
    return Resources(**values)


def _flags(ok: Sequence[CellRecord], total: int, spread_: float | None, requests: int, failures: int) -> list[Flag]:
    util = [r.generator_cpu for r in ok if r.generator_cpu is not None]
    flags: list[Flag] = []
    if (util and max(util) > GENERATOR_BOUND) or any(r.generator_warning for r in ok):
        flags.append(Flag.GENERATOR_BOUND)
    if spread_ is not None and spread_ > SPREAD_LIMIT:
        flags.append(Flag.SPREAD)
    if requests and failures / requests > ERROR_LIMIT:
        flags.append(Flag.ERRORS)
    if len(ok) < total:
        flags.append(Flag.FAILED_REPEATS)
    return flags


def fold(records: Sequence[CellRecord]) -> FoldedCell:
    """One figure from the repeats of a cell (all ``records`` share :data:`GROUP_KEYS`)."""
    first = records[0]
    ok = [r for r in records if r.ok and r.throughput_rps is not None]
    failed = FoldedCell(mode=first.mode, scenario=first.scenario, base_scenario=first.base_scenario,
                        concurrency=first.concurrency, keepalive=first.keepalive, db_strategy=first.db_strategy,
                        db_backend=first.db_backend, workers=first.workers, generator=first.generator,
                        index=min(r.index or 0 for r in records), repeats=len(records), repeats_ok=len(ok),
                        status="failed", error=records[-1].error, log_tail=records[-1].log_tail, flags=(Flag.FAILED,))
    if not ok:
        return failed
    rates = [float(r.throughput_rps or 0.0) for r in ok]
    spread_ = spread(rates)
    requests = sum(r.requests or 0 for r in ok)
    failures = sum(r.failures or 0 for r in ok)
    util = [r.generator_cpu for r in ok if r.generator_cpu is not None]
    return dataclasses.replace(
        failed, status="ok", error=None, log_tail="", throughput_rps=statistics.median(rates),
        throughput_samples=tuple(rates),
        throughput_ci95=interval(rates), spread=spread_, requests=requests, failures=failures,
        latency_ms=_median_map([r.latency_ms for r in ok if r.latency_ms]), resources=_median_resources(ok),
        latency_histogram=distribution.merge(r.latency_histogram for r in ok),
        generator_cpu=max(util) if util else None, flags=tuple(_flags(ok, len(records), spread_, requests, failures)),
        generator_warning=next((r.generator_warning for r in ok if r.generator_warning), None),
    )


def fold_all(records: Sequence[CellRecord]) -> list[FoldedCell]:
    """Every group of repeats folded, in the order each group first appears."""
    groups: dict[tuple[Any, ...], list[CellRecord]] = {}
    for record in records:
        groups.setdefault(tuple(getattr(record, k) for k in GROUP_KEYS), []).append(record)
    return [fold(group) for group in groups.values()]
