"""The record of one fault against one mode, and its loader (the lead folds this into scripts/records.py).

Written by :mod:`scripts.faults` as ``faults.json`` in the run folder; read by :mod:`scripts.fault_report`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class FaultRecord:
    """One fault against one mode. ``status``: ok, failed (the harness could not measure), n/a."""

    schema: int = SCHEMA
    fault: str
    mode: str
    status: str
    verdict: str = ""
    requests_lost: int | None = None
    recovery_s: float | None = None  # from the fault until full capacity is back; None: never, or n/a
    offered_rate: float | None = None
    fault_at_s: float | None = None  # on the timeline
    timeline: dict[str, Any] = field(default_factory=dict)  # the engine's: step_s, ok, failed
    processes: list[tuple[float, int]] = field(default_factory=list)  # (s on the timeline, processes in group)
    details: dict[str, Any] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    error: str | None = None
    log_tail: str = ""


def load_records(path: Path) -> list[FaultRecord]:
    """The records a run wrote to ``faults.json``."""
    doc = json.loads(path.read_text())
    out = []
    for item in doc["records"]:
        item["processes"] = [tuple(p) for p in item.get("processes", [])]
        item["command"] = tuple(item.get("command", ()))
        out.append(FaultRecord(**item))
    return out
