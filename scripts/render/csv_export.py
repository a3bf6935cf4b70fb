"""``--export csv``: every cell record of a run as one flat table, the columns a spreadsheet user expects.

One row per measured cell (each repeat), so a reader can redo any fold; open-loop points are not cells and
stay in their JSON. ``python -m scripts.report RUN --export csv`` and ``python -m scripts.export RUN`` write
``RUN/cells.csv``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from scripts.common.files import write_text_atomic
from scripts.records import records
from scripts.records.records import CellRecord

LATENCY_COLUMNS = ("p50", "p75", "p90", "p99", "p999", "mean", "max")
RESOURCE_COLUMNS = ("cpu_seconds", "cpu_ms_per_request", "requests_per_cpu_second", "cpu_utilization",
                    "memory_mean_mb", "memory_peak_mb", "memory_per_process_mb", "memory_kind", "processes_peak")
COLUMNS = ("run", "index", "mode", "scenario", "base_scenario", "concurrency", "keepalive", "db_strategy",
           "db_backend", "repeat", "status", "generator", "requests", "failures", "throughput_rps",
           *(f"latency_{k}_ms" for k in LATENCY_COLUMNS), "generator_cpu", *RESOURCE_COLUMNS, "workers",
           "server_cpus", "client_cpus", "duration_s", "started_at", "finished_at", "error")
FORMATS = ("csv",)


def row(run_name: str, cell: CellRecord) -> dict[str, Any]:
    res = cell.resources
    values: dict[str, Any] = {"run": run_name}
    for name in COLUMNS:
        if name.startswith("latency_") and name.endswith("_ms"):
            values[name] = cell.latency_ms.get(name[len("latency_"):-len("_ms")])
        elif name in RESOURCE_COLUMNS:
            values[name] = getattr(res, name) if res else None
        elif name != "run":
            values[name] = getattr(cell, name)
    values["keepalive"] = "yes" if cell.keepalive else "no"
    return {k: "" if v is None else v for k, v in values.items()}


def to_csv(run: records.Run) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for cell in run.cells:
        writer.writerow(row(run.path.name, cell))
    return out.getvalue()


def export(run_dir: Path, fmt: str = "csv") -> Path:
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; known: {', '.join(FORMATS)}")
    target = run_dir / "cells.csv"
    write_text_atomic(target, to_csv(records.load(run_dir)))
    return target

