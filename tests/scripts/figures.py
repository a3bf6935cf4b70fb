"""Folded figures for renderer tests, built from the JSON a run would hold and read through the loader."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from scripts.analysis.analysis import AnalysedRun, analyse_figures
from scripts.analysis.stats import FoldedCell
from scripts.records.records import Flag, OpenLoopRecord, References, RunInfo, cell_from_json


def figure_from(data: Mapping[str, Any]) -> FoldedCell:
    """A figure as ``stats.fold`` makes it, from a cell's JSON plus the folded keys (flags, interval, repeats)."""
    record = cell_from_json({"schema": 1, **data})  # schema 1: the loader's migration is exercised too
    ci = data.get("throughput_ci95")
    return FoldedCell(
        mode=record.mode, scenario=record.scenario, status=record.status, index=record.index or 0,
        repeats=int(data.get("repeats", 1)), repeats_ok=int(record.ok), base_scenario=record.base_scenario,
        concurrency=record.concurrency, db_strategy=record.db_strategy, db_backend=record.db_backend,
        generator=record.generator, generator_cpu=record.generator_cpu, throughput_rps=record.throughput_rps,
        throughput_ci95=(float(ci[0]), float(ci[1])) if ci else None, requests=record.requests,
        failures=record.failures, latency_ms=record.latency_ms, resources=record.resources,
        flags=tuple(Flag(f) for f in data.get("flags") or ()), error=record.error, log_tail=record.log_tail,
    )


def run_of(cells: Iterable[Mapping[str, Any]], *, plan: Mapping[str, Any] | None = None,
           references: References | None = None, openloop: Iterable[OpenLoopRecord] = ()) -> AnalysedRun:
    return analyse_figures([figure_from(c) for c in cells], info=RunInfo(plan=plan) if plan else None,
                           references=references, openloop=tuple(openloop))
