"""Repeats of one cell folded into one figure: median, 95% confidence interval, spread and flags.

A cell is measured ``repeats`` times (modes interleaved between repeats, so slow
drift of a shared machine falls on every mode alike). The figure shown is the
median of the repeats; the interval is the Student-t 95% confidence interval of
their mean (with 3 repeats, t = 4.30: wide on purpose, because 3 samples say
little); the spread is (max - min) / median. Flags say why a figure should not
be read as a server's capacity:

``generator-bound``  the load generator used more than 85% of its CPUs in some
                     repeat: the number measures the generator, not the server.
``spread``           repeats differ by more than 10% of the median.
``errors``           more than 0.1% of requests failed (non-2xx or socket errors).
``failed``           no repeat produced a measurement.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from typing import Any

GENERATOR_BOUND = 0.85
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


def _median_of(records: Sequence[Mapping[str, Any]], section: str, key: str) -> float | None:
    values = [r[section][key] for r in records if isinstance(r.get(section), Mapping) and
              isinstance(r[section].get(key), int | float) and not math.isnan(r[section][key])]
    return statistics.median(values) if values else None


def fold(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One figure from the repeats of a cell (all ``records`` share :data:`GROUP_KEYS`)."""
    ok = [r for r in records if r.get("status") == "ok"]
    first = dict(records[0])
    folded: dict[str, Any] = {k: v for k, v in first.items() if k not in ("repeat", "index", "log_tail", "error")}
    folded["index"] = min(int(r.get("index", 0)) for r in records)
    folded["repeats"] = len(records)
    folded["repeats_ok"] = len(ok)
    flags: list[str] = []
    if not ok:
        folded.update(status="failed", error=records[-1].get("error"), log_tail=records[-1].get("log_tail", ""))
        folded["flags"] = ["failed"]
        return folded
    rates = [float(r["throughput_rps"]) for r in ok]
    folded["status"] = "ok"
    folded["throughput_rps"] = statistics.median(rates)
    folded["throughput_samples"] = rates
    ci = interval(rates)
    folded["throughput_ci95"] = list(ci) if ci else None
    folded["spread"] = spread(rates)
    folded["requests"] = sum(int(r.get("requests", 0)) for r in ok)
    folded["failures"] = sum(int(r.get("failures", 0)) for r in ok)
    folded["latency_ms"] = {k: _median_of(ok, "latency_ms", k) for k in ok[0].get("latency_ms", {})}
    if isinstance(ok[0].get("resources"), Mapping):
        folded["resources"] = {k: _median_of(ok, "resources", k) for k in ok[0]["resources"]}
    util = [r["generator_cpu"] for r in ok if isinstance(r.get("generator_cpu"), int | float)]
    folded["generator_cpu"] = max(util) if util else None
    if util and max(util) > GENERATOR_BOUND:
        flags.append("generator-bound")
    if folded["spread"] is not None and folded["spread"] > SPREAD_LIMIT:
        flags.append("spread")
    if folded["requests"] and folded["failures"] / folded["requests"] > ERROR_LIMIT:
        flags.append("errors")
    if len(ok) < len(records):
        flags.append("failed-repeats")
    folded["flags"] = flags
    return folded


def fold_all(records: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Every group of repeats folded, in the order each group first appears."""
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for record in records:
        groups.setdefault(tuple(record.get(k) for k in GROUP_KEYS), []).append(record)
    return [fold(group) for group in groups.values()]
