"""What a tune run writes: one :class:`SettingResult` per setting measured (with every rate tried), one
:class:`ModeResult` per mode and scenario (its best against its default), in ``tune.json``; read back by
:func:`load`."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERSION = 1
FILE = "tune.json"


@dataclass(frozen=True, kw_only=True, slots=True)
class Trial:
    """One rate offered for one measured interval."""

    rate: float
    achieved: float
    p99_ms: float | None
    passed: bool
    errors: int = 0
    cpu_ms_per_request: float | None = None
    memory_mb: float | None = None  # PSS of the whole server (RSS where the kernel gives no PSS)
    generator_kept_up: bool | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SettingResult:
    mode: str
    scenario: str
    setting: dict[str, int]
    status: str = "ok"  # or "failed"
    error: str | None = None
    log_tail: str = ""
    capacity_rps: float = 0.0  # the highest rate that passed (0: none did)
    p99_ms: float | None = None  # at that rate
    cpu_ms_per_request: float | None = None  # at that rate
    memory_mb: float | None = None  # the most the server held while measured
    memory_idle_mb: float | None = None  # after start, before load
    processes: int | None = None
    command: tuple[str, ...] = ()
    trials: tuple[Trial, ...] = ()  # every rate tried, in order (every round's, where there were several)
    elapsed_s: float = 0.0
    capacities: tuple[float, ...] = ()  # each round's capacity, where the setting was measured more than once

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, kw_only=True, slots=True)
class ModeResult:
    mode: str
    scenario: str
    axes: dict[str, list[int]]  # the values each axis could take
    default: dict[str, int]
    best: dict[str, int] | None
    production_command: str | None = None
    settings: list[SettingResult] = field(default_factory=list)

    def result(self, setting: dict[str, int] | None) -> SettingResult | None:
        return next((s for s in self.settings if s.setting == setting), None) if setting is not None else None


@dataclass(frozen=True, kw_only=True, slots=True)
class TuneRun:
    plan: dict[str, Any]
    environment: dict[str, Any]
    modes: list[ModeResult] = field(default_factory=list)
    interrupted: bool = False
    version: int = VERSION


def to_json(run: TuneRun) -> dict[str, Any]:
    return dataclasses.asdict(run)


def _setting(data: dict[str, Any]) -> SettingResult:
    return SettingResult(**{**data, "command": tuple(data.get("command", ())),
                            "trials": tuple(Trial(**t) for t in data.get("trials", ())),
                            "capacities": tuple(data.get("capacities", ()))})


def from_json(data: dict[str, Any]) -> TuneRun:
    modes = [ModeResult(**{**m, "settings": [_setting(s) for s in m["settings"]]}) for m in data.get("modes", [])]
    return TuneRun(plan=data["plan"], environment=data["environment"], modes=modes,
                   interrupted=data.get("interrupted", False), version=data.get("version", VERSION))


def load(run_dir: Path) -> TuneRun:
    return from_json(json.loads((run_dir / FILE).read_text()))


def setting_label(setting: dict[str, int] | None) -> str:
    if setting is None:
        return "-"
    return " ".join(f"{k}={v}" for k, v in setting.items()) or "(its only setting)"
