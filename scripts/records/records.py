"""The records a run leaves on disk, typed and versioned, and the one loader that reads them back.

``cells/*.json`` hold one :class:`CellRecord` per measured cell (each repeat), ``openloop/*.json`` one
:class:`OpenLoopRecord` per rate of the open-loop ladder, ``plan.json`` the :class:`RunInfo` and
``reference.json`` the machine's :class:`References`, ``progress.json`` the :class:`RunProgress` (what the plan set
out to measure and how far the run got); a faults run (:mod:`scripts.faults`) writes
``faults.json``, one :class:`FaultRecord` per fault and mode. Every record carries ``schema``; :func:`load`
checks it, upgrades older versions in :func:`_migrate` and refuses anything it cannot read with a
message that says what and why, as pyperf's ``_bench.py`` does, instead of letting a renderer trip
over a missing key three modules later.

Schema history: 1 (before this module) stored PSS under ``resources.rss_*``; 2 names it ``memory_*``.
Fault records of schema 1 read as 2: their timelines only lack the failures by kind (``failed_by``).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from scripts.records import distribution

SCHEMA_VERSION = 2
Status = Literal["ok", "failed"]
JSON = dict[str, Any]


class Flag(StrEnum):
    """Why a figure should not be read as a server's capacity (see :mod:`scripts.analysis.stats`)."""

    GENERATOR_BOUND = "generator-bound"
    SPREAD = "spread"
    ERRORS = "errors"
    FAILED_REPEATS = "failed-repeats"
    FAILED = "failed"


FLAG_MEANINGS: dict[Flag, str] = {
    Flag.GENERATOR_BOUND: "the load generator used more than 85% of its CPUs (or used and waited for more, here or "
    "on a locust worker): the figure is the generator's limit, not the server's capacity",
    Flag.SPREAD: "the repeats differ by more than 10% of the median",
    Flag.ERRORS: "more than 0.1% of the requests failed (non-2xx answers or socket errors)",
    Flag.FAILED_REPEATS: "some repeats failed; the figure comes from the others",
    Flag.FAILED: "no repeat produced a measurement",
}


# A generator past this share of its CPUs is its own limit (Flag.GENERATOR_BOUND): the generators report it
# (scripts.load.generators), the analysis flags the figures (scripts.analysis.stats).
GENERATOR_BOUND = 0.85


def wanted_more(generator: str, used: float | None, waited: float | None,
                bound: float = GENERATOR_BOUND) -> str | None:
    """Why a generator that used no more than ``bound`` of its CPUs was still their limit: it used and waited for
    more than ``bound`` (a generator sharing its CPU with other work gets less of it); None when it did not."""
    if used is None or not waited or used > bound or used + waited <= bound:
        return None
    return (f"{generator} wanted {used + waited:.0%} of its CPUs while measuring ({used:.0%} used, {waited:.0%} "
            "waiting for a CPU)")


class RecordError(ValueError):
    """A record this version cannot read; the message names the file and the reason."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Resources:
    """The server's CPU and memory over the measured interval (memory is PSS where the kernel has it)."""

    cpu_seconds: float | None = None
    cpu_ms_per_request: float | None = None
    requests_per_cpu_second: float | None = None
    cpu_utilization: float | None = None
    memory_peak_mb: float | None = None
    memory_mean_mb: float | None = None
    memory_kind: str | None = None  # "pss" or "rss"
    memory_per_process_mb: float | None = None
    processes_peak: int | None = None
    processes_mean: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class CellRecord:
    """One measurement of one cell (mode x scenario x concurrency x keep-alive x repeat)."""

    mode: str
    scenario: str  # the label: plaintext, plaintext/close, db/per-request
    status: Status
    schema: int = SCHEMA_VERSION
    index: int | None = None
    base_scenario: str | None = None
    concurrency: int | None = None
    keepalive: bool = True
    repeat: int = 0
    db_strategy: str | None = None
    db_backend: str | None = None
    workers: int | None = None
    interface: str | None = None
    generator: str | None = None
    server_cpus: str | None = None
    client_cpus: str | None = None
    duration_s: float | None = None
    warmup_s: float | None = None
    error: str | None = None
    log_tail: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    command: tuple[str, ...] = ()
    ready_s: float | None = None
    server_affinity: str | None = None
    requests: int | None = None
    failures: int | None = None
    throughput_rps: float | None = None
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    resources: Resources | None = None
    generator_cpu: float | None = None
    generator_warning: str | None = None  # see scripts.load.generators.base.LoadResult
    # latency (ms) -> count where the generator gives a distribution (scripts.records.distribution); on disk a list of
    # [latency, count] pairs. Optional: records without it (every schema 1 record) read as {}.
    latency_histogram: Mapping[float, int] = field(default_factory=dict)
    # A user's app (scripts.plan.userapp): what this mode answered each request of the scenario during verification,
    # request name -> "STATUS CONTENT-TYPE", so the modes can be compared. Empty for the sample apps.
    answers: Mapping[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, kw_only=True, slots=True)
class OpenLoopRecord:
    """One rate of the open-loop ladder against one mode."""

    mode: str
    status: Status
    schema: int = SCHEMA_VERSION
    kind: Literal["openloop"] = "openloop"
    scenario: str = "io"
    path: str | None = None
    connections: int | None = None
    duration_s: float | None = None
    workers: int | None = None
    server_cpus: str | None = None
    client_cpus: str | None = None
    offered_rate: float | None = None
    achieved_rate: float | None = None
    sent: int | None = None
    completed: int | None = None
    ok_count: int | None = None  # "ok" on disk: 2xx answers
    errors: Mapping[str, int] = field(default_factory=dict)
    latency_ms: Mapping[str, float] = field(default_factory=dict)
    latency_uncorrected_ms: Mapping[str, float] = field(default_factory=dict)
    generator_kept_up: bool | None = None
    generator_cpu: float | None = None
    generator_behind_s: float | None = None
    error: str | None = None
    log_tail: str = ""
    # The step's latency (ms) -> count, from each request's intended send time as latency_ms (the same shape as
    # CellRecord.latency_histogram; on disk [latency, count] pairs). Records written before it read as {}.
    latency_histogram: Mapping[float, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True, kw_only=True, slots=True)
class RunInfo:
    """``plan.json``: the plan as the bench described it and the environment it measured in."""

    schema: int = SCHEMA_VERSION
    plan: Mapping[str, Any] = field(default_factory=dict)
    environment: Mapping[str, Any] = field(default_factory=dict)


ProgressState = Literal["running", "finished", "interrupted"]
PROGRESS_STATES: tuple[ProgressState, ...] = ("running", "finished", "interrupted")
PROGRESS_NAME = "progress.json"


@dataclass(frozen=True, kw_only=True, slots=True)
class RunProgress:
    """``progress.json``: what the plan set out to measure and how far the run got, rewritten by the bench as it
    goes. ``running`` left on disk means the run was killed outright (or still runs)."""

    schema: int = SCHEMA_VERSION
    kind: Literal["progress"] = "progress"
    state: ProgressState = "running"
    cells: tuple[str, ...] = ()  # every planned cell in plan order, as people read it (its position is its index)
    ladder_modes: tuple[str, ...] = ()  # the modes the open-loop ladder set out to climb
    ladder_done: tuple[str, ...] = ()  # those whose ladder ended (every rate, left past the knee, or failed)


@dataclass(frozen=True, kw_only=True, slots=True)
class References:
    """``reference.json``: the machine's own fork rates, measured in the run (None where not measured)."""

    schema: int = SCHEMA_VERSION
    fork_rate: float | None = None
    fork_loop_rate: float | None = None
    fork_loop_connections: int | None = None
    stdlib_fork_rate: float | None = None  # socketserver.ForkingMixIn + wsgiref, the same app and load
    raw: Mapping[str, Any] = field(default_factory=dict)


FaultStatus = Literal["ok", "failed", "n/a", "not offered"]
FAULT_STATUSES: tuple[FaultStatus, ...] = ("ok", "failed", "n/a", "not offered")


@dataclass(frozen=True, kw_only=True, slots=True)
class FaultRecord:
    """One fault against one mode (:mod:`scripts.faults`).

    ``status``: ok; failed (the harness could not measure); n/a (the process model makes the fault meaningless,
    as a reload of a server with no long-lived workers); not offered (the server lacks the feature the fault
    exercises, as a worker timeout or request-count recycling). ``details`` differ per fault.
    """

    fault: str
    mode: str
    status: FaultStatus
    schema: int = SCHEMA_VERSION
    kind: Literal["fault"] = "fault"
    verdict: str = ""
    requests_lost: int | None = None
    recovery_s: float | None = None  # from the fault until full capacity is back; None: never, or n/a
    offered_rate: float | None = None
    fault_at_s: float | None = None  # on the timeline
    # The engine's outcome timeline: step_s, ok, failed, and failed_by (kind -> counts) from schema 2 on.
    timeline: Mapping[str, Any] = field(default_factory=dict)
    processes: tuple[tuple[float, int], ...] = ()  # (s on the timeline, processes in the group)
    details: Mapping[str, Any] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    error: str | None = None
    log_tail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


# writing --------------------------------------------------------------------


def to_json(record: CellRecord | OpenLoopRecord | RunInfo | RunProgress) -> JSON:
    """The record as the JSON object stored on disk (the inverse of the ``*_from_json`` readers)."""
    data = asdict(record)
    if isinstance(record, OpenLoopRecord):
        data["ok"] = data.pop("ok_count")
    if isinstance(record, CellRecord):
        data["command"] = list(record.command)
    if isinstance(record, CellRecord | OpenLoopRecord):
        data["latency_histogram"] = distribution.to_json(record.latency_histogram)
    return data


def faults_to_json(faults: Sequence[FaultRecord], meta: Mapping[str, Any]) -> JSON:
    """``faults.json``: the run's ``meta`` (quick, started, environment) and every fault record."""
    return {"schema": SCHEMA_VERSION, "kind": "faults", **meta,
            "records": [{**asdict(r), "command": list(r.command), "processes": [list(p) for p in r.processes]}
                        for r in faults]}


def references_to_json(refs: Mapping[str, Any]) -> JSON:
    return {"schema": SCHEMA_VERSION, **refs}


# reading --------------------------------------------------------------------


def _migrate(data: JSON, where: str) -> JSON:
    """``data`` upgraded to :data:`SCHEMA_VERSION`, or :class:`RecordError` if it is from the future or unversioned."""
    version = data.get("schema")
    if not isinstance(version, int) or isinstance(version, bool):
        raise RecordError(f"{where}: no schema version (got {version!r}); not a workerbench record")
    if version > SCHEMA_VERSION:
        raise RecordError(f"{where}: schema {version} is newer than this workerbench reads ({SCHEMA_VERSION}); "
                          "update workerbench to render it")
    if version < 1:
        raise RecordError(f"{where}: schema {version} is unknown")
    data = dict(data)
    if version == 1 and isinstance(data.get("resources"), Mapping):
        resources = dict(data["resources"])
        for old, new in (("rss_peak_mb", "memory_peak_mb"), ("rss_mean_mb", "memory_mean_mb")):
            if old in resources:
                resources[new] = resources.pop(old)
        data["resources"] = resources
    data["schema"] = SCHEMA_VERSION
    return data


T = TypeVar("T")


def _typed(data: Mapping[str, Any], key: str, kind: type[T] | tuple[type, ...], where: str) -> Any:
    """``data[key]`` if it is of ``kind`` (None when absent, null or not finite); RecordError otherwise."""
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise RecordError(f"{where}: {key} must be {_kind_name(kind)}, got {value!r}")
    if not isinstance(value, kind):
        raise RecordError(f"{where}: {key} must be {_kind_name(kind)}, got {value!r}")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _number_map(data: Mapping[str, Any], key: str, where: str) -> dict[str, float]:
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise RecordError(f"{where}: {key} must be an object, got {value!r}")
    return {str(k): float(v) for k, v in value.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def _status(data: Mapping[str, Any]) -> Status:
    # Anything but an explicit "ok" counts as failed, so an unexpected status is never reported as a success.
    return "ok" if data.get("status") == "ok" else "failed"


NUMBER = (int, float)


def _resources(data: Mapping[str, Any], where: str) -> Resources | None:
    raw = data.get("resources")
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise RecordError(f"{where}: resources must be an object, got {raw!r}")
    numbers = {k: _typed(raw, k, NUMBER, where) for k in ("cpu_seconds", "cpu_ms_per_request",
                                                             "requests_per_cpu_second", "cpu_utilization",
                                                             "memory_peak_mb", "memory_mean_mb",
                                                             "memory_per_process_mb", "processes_mean")}
    return Resources(**numbers, memory_kind=_typed(raw, "memory_kind", str, where),
                     processes_peak=_typed(raw, "processes_peak", int, where))


def _histogram(data: Mapping[str, Any], where: str) -> dict[float, int]:
    try:
        return distribution.from_json(data.get("latency_histogram"))
    except ValueError as exc:
        raise RecordError(f"{where}: latency_histogram: {exc}") from None


def cell_from_json(raw: Mapping[str, Any], where: str = "cell record") -> CellRecord:
    """A :class:`CellRecord` from its JSON object, migrated to the current schema."""
    data = _migrate(dict(raw), where)
    for key in ("mode", "scenario"):
        if not isinstance(data.get(key), str):
            raise RecordError(f"{where}: {key} must be a string, got {data.get(key)!r}")
    text = {k: _typed(data, k, str, where) for k in (
        "base_scenario", "db_strategy", "db_backend", "interface", "generator", "server_cpus", "client_cpus",
        "error", "started_at", "finished_at", "server_affinity", "generator_warning")}
    ints = {k: _typed(data, k, int, where) for k in ("index", "concurrency", "workers", "requests", "failures")}
    floats = {k: _typed(data, k, NUMBER, where) for k in ("duration_s", "warmup_s", "ready_s", "throughput_rps",
                                                           "generator_cpu")}
    command = data.get("command") or ()
    return CellRecord(
        mode=data["mode"], scenario=data["scenario"], status=_status(data), **text, **ints, **floats,
        keepalive=bool(data.get("keepalive", True)), repeat=_typed(data, "repeat", int, where) or 0,
        log_tail=str(data.get("log_tail") or ""), command=tuple(str(a) for a in command),
        latency_ms=_number_map(data, "latency_ms", where), resources=_resources(data, where),
        latency_histogram=_histogram(data, where),
        answers={str(k): str(v) for k, v in (data.get("answers") or {}).items()},
    )


def openloop_from_json(raw: Mapping[str, Any], where: str = "open-loop record") -> OpenLoopRecord:
    data = _migrate(dict(raw), where)
    if data.get("kind", "openloop") != "openloop" or not isinstance(data.get("mode"), str):
        raise RecordError(f"{where}: not an open-loop record (kind {data.get('kind')!r}, mode {data.get('mode')!r})")
    errors = data.get("errors") or {}
    if not isinstance(errors, Mapping):
        raise RecordError(f"{where}: errors must be an object, got {errors!r}")
    return OpenLoopRecord(
        mode=data["mode"], status=_status(data), scenario=str(data.get("scenario", "io")),
        **{k: _typed(data, k, str, where) for k in ("path", "server_cpus", "client_cpus", "error")},
        **{k: _typed(data, k, int, where) for k in ("connections", "workers", "sent", "completed")},
        **{k: _typed(data, k, NUMBER, where) for k in ("duration_s", "offered_rate", "achieved_rate",
                                                        "generator_cpu", "generator_behind_s")},
        ok_count=_typed(data, "ok", int, where), errors={str(k): int(v) for k, v in errors.items()},
        latency_ms=_number_map(data, "latency_ms", where),
        latency_uncorrected_ms=_number_map(data, "latency_uncorrected_ms", where),
        generator_kept_up=_typed(data, "generator_kept_up", bool, where), log_tail=str(data.get("log_tail") or ""),
        latency_histogram=_histogram(data, where),
    )


def run_info_from_json(raw: Mapping[str, Any], where: str = "plan.json") -> RunInfo:
    # plan.json had no version of its own before schema 2; its shape is the same.
    data = _migrate({"schema": 1, **raw}, where)
    plan, env = data.get("plan") or {}, data.get("environment") or {}
    if not isinstance(plan, Mapping) or not isinstance(env, Mapping):
        raise RecordError(f"{where}: plan and environment must be objects")
    return RunInfo(plan=plan, environment=env)


def progress_from_json(raw: Mapping[str, Any], where: str = PROGRESS_NAME) -> RunProgress:
    data = _migrate(dict(raw), where)
    state = data.get("state")
    if state not in PROGRESS_STATES:
        raise RecordError(f"{where}: state must be one of {', '.join(PROGRESS_STATES)}, got {state!r}")
    lists = {key: data.get(key) or [] for key in ("cells", "ladder_modes", "ladder_done")}
    if not all(isinstance(v, list) and all(isinstance(i, str) for i in v) for v in lists.values()):
        raise RecordError(f"{where}: cells, ladder_modes and ladder_done must be lists of strings")
    return RunProgress(state=cast(ProgressState, state), cells=tuple(lists["cells"]),
                       ladder_modes=tuple(lists["ladder_modes"]), ladder_done=tuple(lists["ladder_done"]))


def references_from_json(raw: Mapping[str, Any], where: str = "reference.json") -> References:
    data = _migrate({"schema": 1, **raw}, where)
    fork, loop, stdlib = data.get("fork") or {}, data.get("fork_loop") or {}, data.get("stdlib_fork") or {}
    if not all(isinstance(ref, Mapping) for ref in (fork, loop, stdlib)):
        raise RecordError(f"{where}: fork, fork_loop and stdlib_fork must be objects")
    return References(fork_rate=_typed(fork, "rate", NUMBER, where), fork_loop_rate=_typed(loop, "rate", NUMBER, where),
                      fork_loop_connections=_typed(loop, "connections", int, where),
                      stdlib_fork_rate=_typed(stdlib, "rate", NUMBER, where),
                      raw={k: v for k, v in data.items() if k != "schema"})


def fault_from_json(raw: Mapping[str, Any], where: str = "fault record") -> FaultRecord:
    data = _migrate(dict(raw), where)
    if data.get("kind", "fault") != "fault":
        raise RecordError(f"{where}: not a fault record (kind {data.get('kind')!r})")
    for key in ("fault", "mode"):
        if not isinstance(data.get(key), str):
            raise RecordError(f"{where}: {key} must be a string, got {data.get(key)!r}")
    status = data.get("status")
    if status not in FAULT_STATUSES:
        raise RecordError(f"{where}: status must be one of {', '.join(FAULT_STATUSES)}, got {status!r}")
    timeline, details = data.get("timeline") or {}, data.get("details") or {}
    if not isinstance(timeline, Mapping) or not isinstance(details, Mapping):
        raise RecordError(f"{where}: timeline and details must be objects")
    try:
        processes = tuple((float(t), int(n)) for t, n in data.get("processes") or ())
    except (TypeError, ValueError):
        raise RecordError(f"{where}: processes must be [seconds, count] pairs") from None
    return FaultRecord(
        fault=data["fault"], mode=data["mode"], status=cast(FaultStatus, status),
        verdict=str(data.get("verdict") or ""), requests_lost=_typed(data, "requests_lost", int, where),
        **{k: _typed(data, k, NUMBER, where) for k in ("recovery_s", "offered_rate", "fault_at_s")},
        timeline=timeline, processes=processes, details=details,
        command=tuple(str(a) for a in data.get("command") or ()), error=_typed(data, "error", str, where),
        log_tail=str(data.get("log_tail") or ""))


def read_json(path: Path) -> JSON:
    """The JSON object in ``path``; :class:`RecordError` for an unreadable file or anything but an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordError(f"{path}: unreadable: {exc}") from None
    if not isinstance(data, dict):
        raise RecordError(f"{path}: not a JSON object")
    return cast(JSON, data)


# a run folder -----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Run:
    """Everything a run folder holds, read and checked."""

    path: Path
    cells: tuple[CellRecord, ...]
    openloop: tuple[OpenLoopRecord, ...] = ()
    info: RunInfo | None = None
    references: References = field(default_factory=References)
    faults: tuple[FaultRecord, ...] = ()
    faults_meta: Mapping[str, Any] = field(default_factory=dict)  # faults.json's own fields: quick, started, ...
    progress: RunProgress | None = None  # None: a run from before progress.json, or a faults run


def _load_folder(folder: Path, parse: Any) -> list[Any]:
    """Every record in ``folder`` in plan order (``index``, then file name); unreadable ones are skipped with a
    warning on stderr, so one bad file does not cost the whole summary."""
    loaded: list[tuple[tuple[int, int, str], Any]] = []
    for path in sorted(folder.glob("*.json")):
        try:
            data = read_json(path)
            record = parse(data, str(path))
        except RecordError as exc:
            print(f"warning: skipping record: {exc}", file=sys.stderr)
            continue
        index = getattr(record, "index", None)
        loaded.append(((0, index, path.name) if isinstance(index, int) else (1, 0, path.name), record))
    loaded.sort(key=lambda item: item[0])
    return [record for _, record in loaded]


def load_cells(run_dir: Path) -> list[CellRecord]:
    return cast(list[CellRecord], _load_folder(run_dir / "cells", cell_from_json))


def load_openloop(run_dir: Path) -> list[OpenLoopRecord]:
    return cast(list[OpenLoopRecord], _load_folder(run_dir / "openloop", openloop_from_json))


def _optional(path: Path, parse: Any) -> Any:
    if not path.exists():
        return None
    try:
        return parse(read_json(path), str(path))
    except RecordError as exc:
        print(f"warning: ignoring {exc}", file=sys.stderr)
        return None


FAULTS_NAME = "faults.json"


def load_faults(run_dir: Path) -> tuple[list[FaultRecord], JSON]:
    """``run_dir/faults.json``: its records (an unreadable one skipped with a warning) and its other fields.
    RecordError when the file itself cannot be read or is from a newer workerbench."""
    path = run_dir / FAULTS_NAME
    doc = _migrate(read_json(path), str(path))
    items = doc.pop("records", None)
    if not isinstance(items, list):
        raise RecordError(f"{path}: records must be a list")
    loaded = []
    for i, item in enumerate(items):
        try:
            if not isinstance(item, Mapping):
                raise RecordError(f"{path} record {i}: not an object")
            loaded.append(fault_from_json(item, f"{path} record {i}"))
        except RecordError as exc:
            print(f"warning: skipping record: {exc}", file=sys.stderr)
    return loaded, doc


def load(run_dir: Path) -> Run:
    """The run in ``run_dir``: the one entry point renderers and tools read results through."""
    faults, meta = load_faults(run_dir) if (run_dir / FAULTS_NAME).exists() else ([], {})
    return Run(path=run_dir, cells=tuple(load_cells(run_dir)), openloop=tuple(load_openloop(run_dir)),
               info=_optional(run_dir / "plan.json", run_info_from_json),
               references=_optional(run_dir / "reference.json", references_from_json) or References(),
               faults=tuple(faults), faults_meta=meta,
               progress=_optional(run_dir / PROGRESS_NAME, progress_from_json))


def flags_of(values: Sequence[str]) -> tuple[Flag, ...]:
    return tuple(Flag(v) for v in values)


def stored_versions(run_dir: Path) -> dict[int, int]:
    """How many cell and open-loop records of each schema version ``run_dir`` holds, as written (before
    :func:`load` migrates them): a tool can say that a run is older than this workerbench."""
    versions: dict[int, int] = {}
    for path in [*sorted((run_dir / "cells").glob("*.json")), *sorted((run_dir / "openloop").glob("*.json"))]:
        try:
            version = read_json(path).get("schema")
        except RecordError:
            continue
        if isinstance(version, int) and not isinstance(version, bool):
            versions[version] = versions.get(version, 0) + 1
    return versions
