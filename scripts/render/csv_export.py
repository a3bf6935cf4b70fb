"""``--export csv``: every cell record of a run as one flat table, the columns a spreadsheet user expects.

One row per measured cell (each repeat), so a reader can redo any fold; open-loop points are not cells and
stay in their JSON. ``python -m scripts.report RUN --export csv`` and ``python -m scripts.export RUN`` write
``RUN/cells.csv``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from scripts.analysis.stats import GROUP_KEYS, fold
from scripts.common.files import write_text_atomic
from scripts.records import records
from scripts.records.records import CellRecord

LATENCY_COLUMNS = ("p50", "p75", "p90", "p99", "p999", "mean", "max")
RESOURCE_COLUMNS = ("cpu_seconds", "cpu_ms_per_request", "requests_per_cpu_second", "cpu_utilization",
                    "memory_mean_mb", "memory_peak_mb", "memory_per_process_mb", "memory_kind", "processes_peak")
COLUMNS = ("run", "index", "mode", "scenario", "base_scenario", "concurrency", "keepalive", "db_strategy",
           "db_backend", "repeat", "status", "generator", "requests", "failures", "throughput_rps",
           *(f"latency_{k}_ms" for k in LATENCY_COLUMNS), "generator_cpu", *RESOURCE_COLUMNS, "workers",
           "server_cpus", "client_cpus", "duration_s", "started_at", "finished_at", "error", "flags")
FORMATS = ("csv",)


def row(run_name: str, cell: CellRecord, flags: str = "") -> dict[str, Any]:
    """One repeat; ``flags``: those of the figure its cell's repeats fold into (the same on every repeat's row)."""
    res = cell.resources
    values: dict[str, Any] = {"run": run_name, "flags": flags}
    for name in COLUMNS:
        if name.startswith("latency_") and name.endswith("_ms"):
            values[name] = cell.latency_ms.get(name[len("latency_"):-len("_ms")])
        elif name in RESOURCE_COLUMNS:
            values[name] = getattr(res, name) if res else None
        elif name not in ("run", "flags"):
            values[name] = getattr(cell, name)
    values["keepalive"] = "yes" if cell.keepalive else "no"
    return {k: "" if v is None else v for k, v in values.items()}


def to_csv(run: records.Run) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    flags = figure_flags(run.cells)
    for cell in run.cells:
        writer.writerow(row(run.path.name, cell, flags[_key(cell)]))
    return out.getvalue()


def _key(cell: CellRecord) -> tuple[Any, ...]:
    return tuple(getattr(cell, k) for k in GROUP_KEYS)


def figure_flags(cells: Sequence[CellRecord]) -> dict[tuple[Any, ...], str]:
    """Per cell (its repeats grouped as the report folds them), the figure's flags: "generator-bound; spread"."""
    groups: dict[tuple[Any, ...], list[CellRecord]] = {}
    for cell in cells:
        groups.setdefault(_key(cell), []).append(cell)
    return {key: "; ".join(str(f) for f in fold(group).flags) for key, group in groups.items()}


def export(run_dir: Path, fmt: str = "csv") -> Path:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    target = run_dir / "cells.csv"
    write_text_atomic(target, to_csv(records.load(run_dir)))
    return target

