"""``python -m scripts.bench``: run the comparison matrix and write results, charts and a summary.

The command line becomes one frozen :class:`Plan`; the plan becomes a list of
cells (mode x scenario x concurrency); each cell is measured in isolation::

    start the mode on a free loopback port -> poll /health -> verify every
    endpoint of the scenario -> warm up -> load + resource sampling ->
    write the cell's JSON (atomically) -> stop the mode's whole process group

Cells are ordered scenario by scenario with the modes side by side, so slow
drift of the machine spreads over every mode instead of favouring one. A cell
that fails (a server that does not start, answers wrongly, or a generator that
breaks) is written as failed with the reason and the server log's tail, and the
run goes on. An interrupted run keeps every finished cell and still writes the
summary and charts from them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from apps import db
from loadtests.scenarios import SCENARIOS
from scripts import loadgen, plot, report
from scripts.procs import StartError, free_port, log_tail, running, wait_ready
from scripts.resources import Sampler
from scripts.verify import VerifyError, verify
from servers import MODES, Mode

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
SCHEMA = 1
HOST = "127.0.0.1"

DEFAULT_CONCURRENCY = (32,)
DEFAULT_SWEEP = ("plaintext", "io")
DEFAULT_SWEEP_LEVELS = (1, 8, 32, 128)
DEFAULT_DURATION = 8
DEFAULT_WARMUP = 2.0
QUICK_DURATION = 2
QUICK_WARMUP = 0.5
QUICK_CONCURRENCY = (16,)
# A rough cost per cell beyond its load and warm-up: server start and stop,
# verification, locust start-up and shut-down. Used for the time estimate only.
CELL_OVERHEAD_S = 2.5


@dataclass(frozen=True, kw_only=True, slots=True)
class Cell:
    index: int
    mode: str
    scenario: str
    concurrency: int
    db_strategy: str | None = None  # for scenarios that query the database
    label_strategy: bool = False  # several strategies in the run: name the strategy in the label

    @property
    def label(self) -> str:
        """The scenario as reports show it: ``db/per-request`` when strategies are compared."""
        return f"{self.scenario}/{self.db_strategy}" if self.label_strategy and self.db_strategy else self.scenario

    @property
    def slug(self) -> str:
        return f"{self.index:03d}-{self.mode}-{self.label.replace('/', '-')}-c{self.concurrency}"


@dataclass(frozen=True, kw_only=True)
class Plan:
    """Everything a run does, decided once from the command line."""

    modes: tuple[str, ...]
    scenarios: tuple[str, ...]
    concurrency: tuple[int, ...]
    sweep_scenarios: tuple[str, ...]
    sweep_levels: tuple[int, ...]
    duration: int
    warmup: float
    workers: int
    out: Path
    db_strategies: tuple[str, ...] = (db.REUSE,)
    db_url: str | None = None
    postgres: bool = False  # start a throwaway PostgreSQL for the run
    quick: bool = False
    start_timeout: float = 30.0
    host: str = HOST
    registry: dict[str, Mode] = field(default_factory=lambda: dict(MODES), repr=False, compare=False)

    def levels(self, scenario: str) -> tuple[int, ...]:
        if scenario in self.sweep_scenarios:
            return tuple(sorted(set(self.concurrency) | set(self.sweep_levels)))
        return self.concurrency

    def cells(self) -> list[Cell]:
        cells: list[Cell] = []
        several = len(self.db_strategies) > 1
        for scenario in self.scenarios:
            strategies: tuple[str | None, ...] = self.db_strategies if SCENARIOS[scenario].uses_db else (None,)
            for strategy in strategies:
                for users in self.levels(scenario):
                    for mode in self.modes:
                        cells.append(Cell(index=len(cells), mode=mode, scenario=scenario, concurrency=users,
                                          db_strategy=strategy, label_strategy=several))
        return cells

    def estimate_s(self) -> float:
        return len(self.cells()) * (self.duration + self.warmup + CELL_OVERHEAD_S)

    def describe(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("registry")
        data["out"] = str(self.out)
        data["db_backend"] = "postgresql" if (self.db_url or self.postgres) else "sqlite"
        data.pop("db_url")  # may hold a password
        data["cells"] = len(self.cells())
        return data


# command line ---------------------------------------------------------------

def _names(kind: str, valid: Sequence[str]) -> Any:
    def parse(value: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in value.split(",") if n.strip())
        unknown = [n for n in names if n not in valid]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {', '.join(map(repr, unknown)) or '(none given)'}; valid: {', '.join(valid)}"
            )
        return names

    return parse


def _ints(value: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("levels must be positive integers")
    return levels


def build_parser(registry: dict[str, Mode]) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m scripts.bench",
        description="Serve identical apps under each server mode and compare them under the same load.",
    )
    p.add_argument("--modes", type=_names("mode", list(registry)), help=f"comma-separated; default all: "
                   f"{','.join(registry)}")
    p.add_argument("--scenarios", type=_names("scenario", list(SCENARIOS)),
                   help=f"comma-separated; default all: {','.join(SCENARIOS)}")
    p.add_argument("--concurrency", type=_ints, help="concurrent users for every scenario "
                   f"(default {','.join(map(str, DEFAULT_CONCURRENCY))})")
    p.add_argument("--sweep", type=_names("scenario", list(SCENARIOS)),
                   help=f"scenarios also measured at the sweep levels (default {','.join(DEFAULT_SWEEP)})")
    p.add_argument("--sweep-levels", type=_ints,
                   help=f"concurrency levels of the sweep (default {','.join(map(str, DEFAULT_SWEEP_LEVELS))})")
    p.add_argument("--no-sweep", action="store_true", help="measure every scenario at --concurrency only")
    p.add_argument("--duration", type=int, help=f"seconds of measured load per cell (default {DEFAULT_DURATION})")
    p.add_argument("--warmup", type=float, help=f"seconds of warm-up per cell (default {DEFAULT_WARMUP})")
    p.add_argument("--workers", type=int, default=2, help="workers for every pool-based mode (default %(default)s)")
    p.add_argument("--out", type=Path, help="run folder (default: a new timestamped folder under results/)")
    p.add_argument("--quick", action="store_true",
                   help=f"a short run of every mode and scenario: {QUICK_DURATION}s per cell, no sweep")
    p.add_argument("--db-strategies", type=_names("database strategy", list(db.STRATEGIES)),
                   help="connection strategies for the database scenarios: reuse (one connection per worker) "
                   "and/or per-request (connect, query, close); default both, --quick: reuse")
    p.add_argument("--db-url", default=os.environ.get(db.ENV_URL),
                   help=f"a postgresql:// URL to query instead of SQLite (default: ${db.ENV_URL}); "
                   "the bench seeds its world table")
    p.add_argument("--postgres", action="store_true",
                   help="start a throwaway PostgreSQL server (Debian package postgresql) for this run and use it "
                   "instead of SQLite")
    p.add_argument("--start-timeout", type=float, default=30.0, help="seconds a server gets to become ready")
    p.add_argument("--list", action="store_true", help="list modes and scenarios and exit")
    return p


def plan_from_args(argv: Sequence[str] | None = None, registry: dict[str, Mode] | None = None) -> Plan | None:
    registry = dict(MODES) if registry is None else registry
    parser = build_parser(registry)
    args = parser.parse_args(argv)
    if args.list:
        for name, mode in registry.items():
            print(f"mode      {name:<14} {mode.interface}  {mode.summary}")
        for name, scenario in SCENARIOS.items():
            print(f"scenario  {name:<14} {scenario.summary}")
        return None
    if args.postgres and args.db_url:
        parser.error("--postgres starts its own server; leave out --db-url")
    if args.db_url and not args.db_url.startswith(("postgresql://", "postgres://")):
        parser.error(f"--db-url must be a postgresql:// URL, got {args.db_url.split('@')[-1]!r}")
    if args.workers < 1:
        parser.error("--workers must be at least 1")
    if args.duration is not None and args.duration < 1:
        parser.error("--duration must be at least 1 second")
    quick = args.quick
    sweep: tuple[str, ...] = () if (args.no_sweep or (quick and args.sweep is None)) else (args.sweep or DEFAULT_SWEEP)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Plan(
        modes=args.modes or tuple(registry),
        scenarios=args.scenarios or tuple(SCENARIOS),
        concurrency=args.concurrency or (QUICK_CONCURRENCY if quick else DEFAULT_CONCURRENCY),
        sweep_scenarios=sweep,
        sweep_levels=args.sweep_levels or DEFAULT_SWEEP_LEVELS,
        duration=args.duration or (QUICK_DURATION if quick else DEFAULT_DURATION),
        warmup=args.warmup if args.warmup is not None else (QUICK_WARMUP if quick else DEFAULT_WARMUP),
        workers=args.workers,
        out=(args.out or RESULTS / stamp).resolve(),
        db_strategies=args.db_strategies or ((db.REUSE,) if quick else db.STRATEGIES),
        db_url=args.db_url or None,
        postgres=args.postgres,
        quick=quick,
        start_timeout=args.start_timeout,
        registry=registry,
    )


# results on disk -----------------------------------------------------------

def write_json_atomic(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2, sort_keys=False)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def environment() -> dict[str, Any]:
    from importlib import metadata

    versions = {}
    for pkg in ("locust", "gunicorn", "uvicorn", "starlette", "httptools", "uvloop", "psutil", "matplotlib"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip() or None
    except OSError:
        commit = None
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average": os.getloadavg(),
        "packages": versions,
        "git_commit": commit,
    }


def point_latest(run_dir: Path) -> None:
    """Make ``results/latest`` point at ``run_dir`` when the run lives under ``results/``."""
    if run_dir.parent != RESULTS:
        return
    link = RESULTS / "latest"
    tmp = RESULTS / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)


# one cell ------------------------------------------------------------------

def run_cell(plan: Plan, cell: Cell, run_dir: Path, db_path: Path) -> dict[str, Any]:
    mode = plan.registry[cell.mode]
    scenario = SCENARIOS[cell.scenario]
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "index": cell.index,
        "mode": cell.mode,
        "scenario": cell.label,
        "base_scenario": cell.scenario,
        "db_strategy": cell.db_strategy,
        "db_backend": ("postgresql" if plan.db_url else "sqlite") if cell.db_strategy else None,
        "concurrency": cell.concurrency,
        "workers": plan.workers if mode.uses_workers else None,
        "interface": mode.interface,
        "generator": "locust",
        "duration_s": plan.duration,
        "warmup_s": plan.warmup,
        "status": "failed",
        "error": None,
        "log_tail": "",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    cell_dir = run_dir / "logs" / cell.slug
    server_log = cell_dir / "server.log"
    port = free_port(plan.host)
    env = {**os.environ, db.ENV_PATH: str(db_path), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop(db.ENV_URL, None)
    if plan.db_url:
        env[db.ENV_URL] = plan.db_url
    env[db.ENV_STRATEGY] = cell.db_strategy or db.REUSE
    argv = mode.argv(host=plan.host, port=port, workers=plan.workers)
    record["command"] = argv
    try:
        with running(argv, log_path=server_log, env=env, cwd=ROOT) as proc:
            record["ready_s"] = round(wait_ready(proc, plan.host, port, log_path=server_log,
                                                 deadline_s=plan.start_timeout), 3)
            verify(plan.host, port, scenario)
            if plan.warmup > 0:
                loadgen.warm_up(scenario, plan.host, port, plan.warmup, threads=min(cell.concurrency, 4))
            sampler = Sampler(proc.pid)
            sampler.start()
            try:
                load = loadgen.run_locust(scenario, plan.host, port, cell.concurrency, plan.duration, cell_dir)
            finally:
                usage = sampler.stop()
            if proc.poll() is not None:
                raise StartError(f"server exited with code {proc.returncode} during the load")
        record.update(
            status="ok",
            generator=load.generator,
            requests=load.requests,
            failures=load.failures,
            throughput_rps=round(load.throughput_rps, 2),
            latency_ms=load.latency_ms,
            resources=usage.as_dict(load.requests),
        )
        if load.requests == 0:
            record.update(status="failed", error="no request completed during the measured interval")
    except (StartError, VerifyError, loadgen.LoadError, RuntimeError, OSError) as exc:
        record["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        record["log_tail"] = log_tail(server_log)
        if isinstance(exc, loadgen.LoadError):
            record["log_tail"] += "\n--- locust ---\n" + log_tail(cell_dir / "locust.log")
    record["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return record


def _line(record: dict[str, Any]) -> str:
    head = f"{record['mode']:<14} {record['scenario']:<18} c={record['concurrency']:<4}"
    if record["status"] != "ok":
        return f"{head} [red]FAILED[/red] {record['error']}"
    lat = record["latency_ms"]
    return (f"{head} {record['throughput_rps']:>10,.0f} req/s  p50 {lat.get('p50', float('nan')):.0f} ms  "
            f"p99 {lat.get('p99', float('nan')):.0f} ms  errors {record['failures']}")


# the run -------------------------------------------------------------------

def finish(run_dir: Path, plan: Plan, console: Console) -> None:
    records = report.load_records(run_dir)
    charts = plot.write_charts(records, run_dir)
    summary = report.write_summary(records, run_dir, plan=plan.describe(), charts=[c.name for c in charts])
    console.print(f"summary: {summary}")


def run(plan: Plan, console: Console | None = None) -> int:
    console = console or Console(stderr=True)
    run_dir = plan.out
    run_dir.mkdir(parents=True, exist_ok=True)
    point_latest(run_dir)
    write_json_atomic(run_dir / "plan.json", {"plan": plan.describe(), "environment": environment()})
    db_path = db.create(run_dir / "world.sqlite")
    if plan.db_url:
        db.seed_postgres(plan.db_url)
    cells = plan.cells()
    console.print(f"workerbench: {len(cells)} cells, about {plan.estimate_s() / 60:.1f} min -> {run_dir}")
    failed = 0
    interrupted = False
    columns = (
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
    )
    try:
        with Progress(*columns, console=console, transient=True) as progress:
            task = progress.add_task("starting", total=len(cells))
            for cell in cells:
                progress.update(task, description=f"{cell.mode} {cell.label} c={cell.concurrency}")
                record = run_cell(plan, cell, run_dir, db_path)
                write_json_atomic(run_dir / "cells" / f"{cell.slug}.json", record)
                failed += record["status"] != "ok"
                progress.console.print(
                    f"[{cell.index + 1}/{len(cells)}] {_line(record)}", highlight=False, soft_wrap=True
                )
                progress.advance(task)
    except KeyboardInterrupt:
        interrupted = True
        console.print("[yellow]interrupted: writing the summary of the finished cells[/yellow]")
    finally:
        db_path.unlink(missing_ok=True)
        finish(run_dir, plan, console)
    if interrupted:
        return 130
    if failed:
        console.print(f"[yellow]{failed} of {len(cells)} cells failed; see summary.md[/yellow]")
        return 1
    return 0


def _terminate(signum: int, frame: object) -> None:
    # Turn SIGTERM into the Ctrl-C path, so every server and generator still running
    # is stopped by its context manager and the finished cells are summarised.
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    plan = plan_from_args(argv)
    if plan is None:
        return 0
    signal.signal(signal.SIGTERM, _terminate)
    started = time.monotonic()
    if plan.postgres:
        from scripts import pg

        try:
            with pg.postgres() as url:
                code = run(dataclasses.replace(plan, db_url=url))
        except pg.PostgresUnavailable as exc:
            print(f"error: --postgres: {exc} (apt-get install postgresql)", file=sys.stderr)
            return 2
    else:
        code = run(plan)
    print(f"finished in {time.monotonic() - started:.0f}s: {plan.out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
