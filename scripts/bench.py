"""``python -m scripts.bench``: run the comparison matrix and write results, charts and a summary.

The command line becomes one frozen :class:`Plan`; the plan becomes a list of
cells (mode x scenario x concurrency x keep-alive x repeat); each cell is
measured in isolation::

    start the mode on a free loopback port, pinned to the server CPUs -> poll
    /health -> verify every endpoint of the scenario (the primer) -> warm up
    with the cell's own generator (not measured) -> load, pinned to the client
    CPUs, while the server's and the generator's CPU use are sampled -> write
    the cell's JSON (atomically) -> stop the mode's whole process group

Repeats run the modes in alternating order (A B C, C B A, A B C), so slow drift
of a shared machine falls on every mode alike; :mod:`scripts.stats` folds them
into a median, a 95% interval and flags. A cell that fails (a server that does
not start or answers wrongly, a generator that breaks) is written as failed with
the reason and the server log's tail, and the run goes on. An interrupted run
keeps every finished cell and still writes the summary and charts from them.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import platform
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from apps import db
from loadtests.scenarios import SCENARIOS, Scenario
from scripts import loadgen, openloop, reference, report, wrk
from scripts.files import write_json_atomic
from scripts.procs import StartError, free_port, group_affinity, log_tail, pin_group, running, wait_ready
from scripts.resources import Sampler
from scripts.verify import VerifyError, verify
from servers import MODES, Mode

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "results"
SCHEMA = 1
HOST = "127.0.0.1"

DEFAULT_CONCURRENCY = (32,)
DEFAULT_SWEEP = ("plaintext",)
DEFAULT_SWEEP_LEVELS = (1, 8, 32, 128, 512)
DEFAULT_DURATION = 2
DEFAULT_WARMUP = 0.5
DEFAULT_REPEATS = 3
# Keep-alive on and off for these by default; the others run with persistent connections only (the
# default run must fit in 15 minutes on 2 cores, and the contrast shows best where the work is smallest).
DEFAULT_CLOSE_SCENARIOS = ("plaintext",)
QUICK_DURATION = 1
QUICK_WARMUP = 0.3
QUICK_CONCURRENCY = (16,)
# A rough cost per cell beyond its load and warm-up: server start and stop,
# verification, generator start-up and shut-down. Used for the time estimate only.
CELL_OVERHEAD = {"wrk": 0.9, "locust": 2.5}
GENERATORS = ("auto", "wrk", "locust")
# The fork references (scripts.reference), measured once a run when a fork-per-request mode takes part.
FORK_REF_S = 1.0
FORK_LOOP_S = 3
# The open-loop ladder: the same offered rates for every mode, doubling from light load, on the io scenario
# (a 20 ms upstream wait), where the process models part ways: sync workers saturate at workers / 20 ms, a
# fork per connection at its child cap, an event loop far later. A mode's ladder stops one step after it
# falls below half the offered rate: past its knee, more load only queues.
OPEN_LOOP_SCENARIO = "io"
OPEN_LOOP_RATES = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)
OPEN_LOOP_CONNECTIONS = 256
OPEN_LOOP_DRAIN_S = 2.0  # requests still unanswered this long after the schedule ends count as timeouts


def parse_cpus(text: str) -> frozenset[int]:
    """``"0"``, ``"0-3"`` or ``"0,2,4-5"`` as a set of CPU numbers."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise argparse.ArgumentTypeError(f"CPU list must look like 0,2-3; got {text!r}")
        cpus.update(range(int(low), int(high) + 1) if sep else (int(low),))
    if not cpus:
        raise argparse.ArgumentTypeError("empty CPU list")
    return frozenset(cpus)


def default_cpus() -> tuple[frozenset[int], frozenset[int]]:
    """Server on the first half of the CPUs we may use, generator on the rest (CPU 0 and CPU 1 on 2 cores)."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return frozenset(allowed), frozenset(allowed)
    half = len(allowed) // 2
    return frozenset(allowed[:half]), frozenset(allowed[half:])


def _format_cpus(cpus: frozenset[int]) -> str:
    return ",".join(map(str, sorted(cpus)))


@dataclass(frozen=True, kw_only=True, slots=True)
class Cell:
    index: int
    mode: str
    scenario: str
    concurrency: int
    generator: str = "locust"
    keepalive: bool = True  # False: every request on a new connection (Connection: close)
    repeat: int = 0
    db_strategy: str | None = None  # for scenarios that query the database
    label_strategy: bool = False  # several strategies in the run: name the strategy in the label

    @property
    def label(self) -> str:
        """The scenario as reports show it: ``plaintext``, ``plaintext/close``, ``db/per-request``."""
        parts = [self.scenario]
        if self.label_strategy and self.db_strategy:
            parts.append(self.db_strategy)
        if not self.keepalive:
            parts.append("close")
        return "/".join(parts)

    @property
    def slug(self) -> str:
        return f"{self.index:03d}-{self.mode}-{self.label.replace('/', '-')}-c{self.concurrency}-r{self.repeat}"


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
    repeats: int = 1
    close_scenarios: tuple[str, ...] = ()  # also measured with a new connection per request
    generator: str = "auto"
    wrk: str | None = None  # the wrk binary, when found
    server_cpus: frozenset[int] = frozenset()
    client_cpus: frozenset[int] = frozenset()
    db_strategies: tuple[str, ...] = (db.REUSE,)
    db_url: str | None = None
    postgres: bool = False  # start a throwaway PostgreSQL for the run
    quick: bool = False
    open_loop: bool = False
    open_loop_rates: tuple[float, ...] = OPEN_LOOP_RATES
    open_loop_duration: float = 2.0
    start_timeout: float = 30.0
    host: str = HOST
    registry: dict[str, Mode] = field(default_factory=lambda: dict(MODES), repr=False, compare=False)

    def levels(self, scenario: str) -> tuple[int, ...]:
        if scenario in self.sweep_scenarios:
            return tuple(sorted(set(self.concurrency) | set(self.sweep_levels)))
        return self.concurrency

    def generator_for(self, scenario: str) -> str:
        wanted = SCENARIOS[scenario].generator if self.generator == "auto" else self.generator
        return "wrk" if wanted == "wrk" and self.wrk else "locust"

    def cells(self) -> list[Cell]:
        cells: list[Cell] = []
        several = len(self.db_strategies) > 1
        for scenario in self.scenarios:
            strategies: tuple[str | None, ...] = self.db_strategies if SCENARIOS[scenario].db_strategies else (None,)
            keepalives = (True, False) if scenario in self.close_scenarios else (True,)
            for strategy in strategies:
                for keepalive in keepalives:
                    if strategy == db.PER_REQUEST and not keepalive:
                        continue  # the connection-reuse contrast is drawn with keep-alive on only
                    # The concurrency sweep draws the keep-alive curve; new-connection cells stay at the main level.
                    for users in self.levels(scenario) if keepalive else self.concurrency:
                        # Sweep points beyond the main level are measured once: they draw a curve, not a figure.
                        repeats = self.repeats if users in self.concurrency else 1
                        modes = tuple(m for m in self.modes if self.registry[m].in_sweeps or users in self.concurrency)
                        modes = tuple(m for m in modes if scenario in (self.registry[m].only_scenarios or (scenario,)))
                        for repeat in range(repeats):
                            order = modes if repeat % 2 == 0 else tuple(reversed(modes))
                            for mode in order:
                                cells.append(Cell(
                                    index=len(cells), mode=mode, scenario=scenario, concurrency=users,
                                    generator=self.generator_for(scenario), keepalive=keepalive, repeat=repeat,
                                    db_strategy=strategy, label_strategy=several,
                                ))
        return cells

    def duration_for(self, mode: str) -> float:
        return max(float(self.duration), self.registry[mode].min_duration_s)

    def open_loop_modes(self) -> tuple[str, ...]:
        if not self.open_loop or OPEN_LOOP_SCENARIO not in self.scenarios:
            return ()
        return tuple(m for m in self.modes if self.registry[m].in_sweeps)

    def estimate_s(self) -> float:
        cells = sum(self.duration_for(c.mode) + self.warmup + CELL_OVERHEAD[c.generator] + self.registry[c.mode].start_s
                    for c in self.cells())
        # Sync modes leave the ladder early; count five steps a mode, with some draining.
        ladder = len(self.open_loop_modes()) * (1.5 + 5 * (self.open_loop_duration + 1.2))
        refs = 0.0
        if any(self.registry[m].uses_workers is False for m in self.modes):
            refs = 3 * (FORK_REF_S + 0.2) + ((FORK_LOOP_S + 1.5) if self.wrk else 0.0)
        return cells + ladder + refs

    def describe(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("registry")
        data["out"] = str(self.out)
        data["db_backend"] = "postgresql" if (self.db_url or self.postgres) else "sqlite"
        data["server_cpus"] = _format_cpus(self.server_cpus)
        data["client_cpus"] = _format_cpus(self.client_cpus)
        data["generators"] = {name: self.generator_for(name) for name in self.scenarios}
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
    p.add_argument("--repeats", type=int, help=f"measurements of every cell, modes interleaved (default "
                   f"{DEFAULT_REPEATS}; --quick: 1)")
    p.add_argument("--close", type=_names("scenario", list(SCENARIOS)), dest="close_scenarios",
                   help="scenarios also measured with a new connection per request "
                   f"(default {','.join(DEFAULT_CLOSE_SCENARIOS)})")
    p.add_argument("--no-close", action="store_true", help="persistent connections only")
    p.add_argument("--generator", choices=GENERATORS, default="auto",
                   help="load generator: auto (each scenario's own: wrk for throughput, locust for user "
                   "scenarios), wrk or locust for all")
    p.add_argument("--no-open-loop", action="store_true",
                   help="skip the open-loop ladder (latency against offered load); --quick skips it too")
    p.add_argument("--open-loop-rates", type=_ints,
                   help=f"offered rates of the open-loop ladder on {OPEN_LOOP_SCENARIO} (default "
                   f"{','.join(f'{r:g}' for r in OPEN_LOOP_RATES)})")
    p.add_argument("--server-cpus", type=parse_cpus, help="CPUs for the server (default: the first half)")
    p.add_argument("--client-cpus", type=parse_cpus, help="CPUs for the load generator (default: the rest)")
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
    server_default, client_default = default_cpus()
    server_cpus = args.server_cpus or server_default
    client_cpus = args.client_cpus or client_default
    if server_cpus & client_cpus and len(os.sched_getaffinity(0)) > 1:
        parser.error(f"--server-cpus {_format_cpus(server_cpus)} and --client-cpus {_format_cpus(client_cpus)} "
                     "overlap; the server and the generator must not compete for a CPU")
    unknown_cpus = (server_cpus | client_cpus) - os.sched_getaffinity(0)
    if unknown_cpus:
        parser.error(f"CPUs {_format_cpus(frozenset(unknown_cpus))} are not available here "
                     f"(available: {_format_cpus(frozenset(os.sched_getaffinity(0)))})")
    if args.repeats is not None and args.repeats < 1:
        parser.error("--repeats must be at least 1")
    wrk_path = wrk.find_wrk()
    if args.generator == "wrk" and not wrk_path:
        parser.error(wrk.INSTALL_HINT)
    close: tuple[str, ...] = ()
    if not args.no_close:
        close = args.close_scenarios or (() if quick else DEFAULT_CLOSE_SCENARIOS)
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
        repeats=args.repeats or (1 if quick else DEFAULT_REPEATS),
        close_scenarios=tuple(c for c in close if c in (args.scenarios or tuple(SCENARIOS))),
        generator=args.generator,
        wrk=wrk_path,
        open_loop=not (quick or args.no_open_loop),
        open_loop_rates=tuple(float(r) for r in args.open_loop_rates) if args.open_loop_rates else OPEN_LOOP_RATES,
        server_cpus=server_cpus,
        client_cpus=client_cpus,
        start_timeout=args.start_timeout,
        registry=registry,
    )


# results on disk -----------------------------------------------------------

def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment(plan: Plan | None = None) -> dict[str, Any]:
    """What a reader needs to judge the numbers: the machine, the software, the commit, how busy it was."""
    from importlib import metadata

    versions = {}
    for pkg in ("locust", "gunicorn", "uvicorn", "starlette", "httptools", "uvloop", "psutil", "psycopg",
                "matplotlib"):
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5, check=False
        ).stdout.strip() or None
        dirty = bool(subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True,
            timeout=5, check=False,
        ).stdout.strip())
    except OSError:
        commit, dirty = None, None
    wrk_version = None
    if plan is not None and plan.wrk:
        out = subprocess.run([plan.wrk, "-v"], capture_output=True, text=True, timeout=5, check=False)
        wrk_version = (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) else None
    load = os.getloadavg()
    cpus = os.cpu_count() or 1
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kernel": platform.release(),
        "cpu_model": _cpu_model(),
        "cpu_count": cpus,
        "server_cpus": _format_cpus(plan.server_cpus) if plan else None,
        "client_cpus": _format_cpus(plan.client_cpus) if plan else None,
        "load_average": load,
        "busy": load[0] > 0.25 * cpus,
        "packages": versions,
        "wrk": wrk_version,
        "git_commit": commit,
        "git_dirty": dirty,
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

def server_env(plan: Plan, db_path: Path, strategy: str | None) -> dict[str, str]:
    """The environment every server of a run gets: where the database is and how to reach it."""
    env = {**os.environ, db.ENV_PATH: str(db_path), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    env.pop(db.ENV_URL, None)
    if plan.db_url:
        env[db.ENV_URL] = plan.db_url
    env[db.ENV_STRATEGY] = strategy or db.REUSE
    return env


@contextmanager
def serving(plan: Plan, argv: list[str], port: int, scenario: Scenario, log: Path,
            env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """A server started on the server CPUs, ready, its whole group pinned, and verified on ``scenario``
    (the primer); yields the process and how long it took to become ready. Stopped on any exit."""
    with running(argv, log_path=log, env=env, cwd=ROOT, cpus=set(plan.server_cpus)) as proc:
        ready = wait_ready(proc, plan.host, port, log_path=log, deadline_s=plan.start_timeout)
        pin_group(proc.pid, plan.server_cpus)
        verify(plan.host, port, scenario)  # every endpoint answers right before any load
        yield proc, ready


def run_cell(plan: Plan, cell: Cell, run_dir: Path, db_path: Path) -> dict[str, Any]:
    mode = plan.registry[cell.mode]
    scenario = SCENARIOS[cell.scenario]
    record: dict[str, Any] = {
        "schema": SCHEMA,
        "index": cell.index,
        "mode": cell.mode,
        "scenario": cell.label,
        "base_scenario": cell.scenario,
        "keepalive": cell.keepalive,
        "repeat": cell.repeat,
        "db_strategy": cell.db_strategy,
        "db_backend": ("postgresql" if plan.db_url else "sqlite") if cell.db_strategy else None,
        "concurrency": cell.concurrency,
        "workers": plan.workers if mode.uses_workers else None,
        "interface": mode.interface,
        "generator": cell.generator,
        "server_cpus": _format_cpus(plan.server_cpus),
        "client_cpus": _format_cpus(plan.client_cpus),
        "duration_s": plan.duration_for(cell.mode),
        "warmup_s": plan.warmup,
        "status": "failed",
        "error": None,
        "log_tail": "",
        "started_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    cell_dir = run_dir / "logs" / cell.slug
    server_log = cell_dir / "server.log"
    port = free_port(plan.host)
    env = server_env(plan, db_path, cell.db_strategy)
    argv = mode.argv(host=plan.host, port=port, workers=plan.workers)
    record["command"] = argv
    client = set(plan.client_cpus)
    try:
        with serving(plan, argv, port, scenario, server_log, env) as (proc, ready):
            record["ready_s"] = round(ready, 3)
            record["server_affinity"] = _format_cpus(group_affinity(proc.pid))
            if plan.warmup > 0:
                if cell.generator == "wrk":
                    loadgen.measure("wrk", scenario, plan.host, port, cell.concurrency, max(1.0, plan.warmup),
                                    cell_dir / "warmup", cpus=client, keepalive=cell.keepalive)
                else:
                    loadgen.warm_up(scenario, plan.host, port, plan.warmup, threads=min(cell.concurrency, 4))
            sampler = Sampler(proc.pid, cpus=len(plan.server_cpus))
            sampler.start()
            try:
                load = loadgen.measure(cell.generator, scenario, plan.host, port, cell.concurrency,
                                       plan.duration_for(cell.mode), cell_dir, cpus=client, keepalive=cell.keepalive)
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
            generator_cpu=None if load.generator_cpu is None else round(load.generator_cpu, 3),
        )
        if load.requests == 0:
            record.update(status="failed", error="no request completed during the measured interval")
    except (StartError, VerifyError, loadgen.LoadError, RuntimeError, OSError) as exc:
        record["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
        record["log_tail"] = log_tail(server_log)
        if isinstance(exc, loadgen.LoadError):
            record["log_tail"] += f"\n--- {cell.generator} ---\n" + str(exc)
    record["finished_at"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return record


def open_loop_ladder(plan: Plan, mode_name: str, run_dir: Path, db_path: Path,
                     console: Console) -> list[dict[str, Any]]:
    """Constant-rate arrivals at a ladder of offered rates against one mode; one record per rate.

    Latency counts from each request's intended send time (see :mod:`scripts.openloop`), so a
    server that falls behind shows its queue in p99 instead of hiding it as a closed loop does.
    """
    mode = plan.registry[mode_name]
    scenario = SCENARIOS[OPEN_LOOP_SCENARIO]
    (probe,) = scenario.probes
    port = free_port(plan.host)
    logs = run_dir / "logs" / f"openloop-{mode_name}"
    server_log = logs / "server.log"
    env = server_env(plan, db_path, None)
    records: list[dict[str, Any]] = []
    base = {"schema": SCHEMA, "kind": "openloop", "mode": mode_name, "scenario": OPEN_LOOP_SCENARIO,
            "path": probe.path, "connections": OPEN_LOOP_CONNECTIONS, "duration_s": plan.open_loop_duration,
            "workers": plan.workers if mode.uses_workers else None,
            "server_cpus": _format_cpus(plan.server_cpus), "client_cpus": _format_cpus(plan.client_cpus)}
    try:
        with serving(plan, mode.argv(host=plan.host, port=port, workers=plan.workers), port, scenario, server_log,
                     env):
            for rate in plan.open_loop_rates:
                result = openloop.run_openloop(
                    wrk.url_for(plan.host, port, probe.path), rate=rate, duration=plan.open_loop_duration,
                    connections=OPEN_LOOP_CONNECTIONS, timeout=OPEN_LOOP_DRAIN_S, workdir=logs / f"rate-{rate:g}",
                    cpus=set(plan.client_cpus))
                records.append({**base, "status": "ok", "offered_rate": rate,
                                "achieved_rate": round(result.achieved_rate, 1), "sent": result.sent,
                                "completed": result.completed, "ok": result.ok, "errors": result.errors,
                                "latency_ms": result.latency_ms,
                                "latency_uncorrected_ms": result.latency_uncorrected_ms,
                                "generator_kept_up": result.generator_kept_up,
                                "generator_cpu": round(result.generator_cpu_util, 3),
                                "generator_behind_s": result.generator_behind_s})
                console.print(f"open loop {mode_name:<14} offered {rate:>8,.0f}/s  achieved "
                              f"{result.achieved_rate:>8,.0f}/s  p50 {result.latency_ms.get('p50', 0):.2f} ms  "
                              f"p99 {result.latency_ms.get('p99', 0):.2f} ms", highlight=False, soft_wrap=True)
                if result.achieved_rate < 0.5 * rate:
                    break  # past the knee: higher rates would only queue, and cost the run their drain time
    except (StartError, VerifyError, loadgen.LoadError, RuntimeError, OSError, ValueError) as exc:
        records.append({**base, "status": "failed", "error": f"{type(exc).__name__}: {exc}".splitlines()[0],
                        "log_tail": log_tail(server_log)})
    return records


def run_open_loop(plan: Plan, run_dir: Path, db_path: Path, console: Console) -> None:
    for index, mode in enumerate(plan.open_loop_modes()):
        for i, record in enumerate(open_loop_ladder(plan, mode, run_dir, db_path, console)):
            write_json_atomic(run_dir / "openloop" / f"{index:02d}-{mode}-{i:02d}.json", record)


def _line(record: dict[str, Any]) -> str:
    head = f"{record['mode']:<14} {record['scenario']:<22} c={record['concurrency']:<4} r{record.get('repeat', 0)}"
    if record["status"] != "ok":
        return f"{head} [red]FAILED[/red] {record['error']}"
    lat = record["latency_ms"]
    gen = record.get("generator_cpu")
    return (f"{head} {record['throughput_rps']:>10,.0f} req/s  p50 {lat.get('p50', float('nan')):.2f} ms  "
            f"p99 {lat.get('p99', float('nan')):.2f} ms  errors {record['failures']}  "
            f"{record['generator']} cpu {'?' if gen is None else f'{gen:.0%}'}")


# the run -------------------------------------------------------------------

def finish(run_dir: Path, plan: Plan, console: Console) -> None:
    console.print(f"summary: {report.render_run(run_dir)}")


def run(plan: Plan, console: Console | None = None) -> int:
    console = console or Console(stderr=True)
    run_dir = plan.out
    run_dir.mkdir(parents=True, exist_ok=True)
    point_latest(run_dir)
    env = environment(plan)
    write_json_atomic(run_dir / "plan.json", {"plan": plan.describe(), "environment": env})
    if env["busy"]:
        console.print(f"[yellow]warning: the machine is busy before the run (load average {env['load_average'][0]:.2f}"
                      f" on {env['cpu_count']} CPUs); figures will be noisier[/yellow]")
    if not plan.wrk and any(SCENARIOS[s].generator == "wrk" for s in plan.scenarios):
        wrk.warn_missing_once()
    db_path = db.create(run_dir / "world.sqlite")
    if plan.db_url:
        db.seed_postgres(plan.db_url)
    if any(plan.registry[m].uses_workers is False for m in plan.modes):
        # The ceiling of every fork-per-request model on these CPUs, measured now, in this run.
        refs: dict[str, Any] = {}
        try:
            refs["fork"] = reference.measure_fork_rate(FORK_REF_S, plan.server_cpus)
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            console.print(f"[yellow]warning: fork reference not measured: {exc}[/yellow]")
        if plan.wrk:
            try:  # the least a Python fork server can do, driven like the modes
                refs["fork_loop"] = reference.measure_fork_loop_rate(
                    FORK_LOOP_S, plan.server_cpus, plan.client_cpus, run_dir / "reference")
            except (OSError, RuntimeError, StartError, wrk.WrkError) as exc:
                console.print(f"[yellow]warning: fork-loop reference not measured: {exc}[/yellow]")
        if refs:
            write_json_atomic(run_dir / "reference.json", refs)
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
        if plan.open_loop_modes():
            console.print("open loop: latency against offered load")
            run_open_loop(plan, run_dir, db_path, console)
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
