"""The run's plan: the command line becomes one frozen :class:`Plan`, and the plan a list of :class:`Cell`.

A cell is mode x scenario x concurrency x keep-alive x database strategy x repeat. Repeats run the modes
in alternating order (A B C, C B A, A B C), so slow drift of a shared machine falls on every mode alike.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from apps import db
from loadtests.scenario_file import ScenarioFileError
from loadtests.scenarios import SCENARIOS, Scenario
from scripts.common.cpus import available, default_cpus, format_cpus, parse_cpus
from scripts.common.files import run_folder
from scripts.load import generators, wrk_process
from scripts.load.generators import GENERATORS, Generator
from scripts.load.generators import locust as locust_generator
from scripts.modes import MODES, Mode, mode_sets
from scripts.plan import target, tuned, userapp

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "results"
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
# The fork references (scripts.run.reference), measured once a run when a fork-per-request mode takes part.
FORK_REF_S = 1.0
FORK_LOOP_S = 3
# The open-loop ladder: the same offered rates for every mode, doubling from light load, on the io scenario
# (a 20 ms upstream wait), where the process models part ways: sync workers saturate at workers / 20 ms, a
# fork per connection at its child cap, an event loop far later.
OPEN_LOOP_SCENARIO = "io"
OPEN_LOOP_RATES = (50.0, 100.0, 200.0, 400.0, 800.0, 1600.0, 3200.0)
OPEN_LOOP_STEP_S = 2.0


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
    generator: str = generators.AUTO
    wrk: str | None = None  # the wrk binary, when found (the fork-loop reference needs it)
    server_cpus: frozenset[int] = frozenset()
    client_cpus: frozenset[int] = frozenset()
    db_strategies: tuple[str, ...] = (db.REUSE,)
    db_url: str | None = None
    # Without --db-strategies, the per-request contrast is measured under the modes of the process-model
    # comparison (the default set) and those held to a reuse ratio: for the production servers it shows the app's
    # choice, the same under each, and it cost a minute and a half of a --modes all run.
    per_request_everywhere: bool = False
    postgres: bool = False  # start a throwaway PostgreSQL for the run
    quick: bool = False
    open_loop: bool = False
    open_loop_rates: tuple[float, ...] = OPEN_LOOP_RATES
    open_loop_duration: float = OPEN_LOOP_STEP_S
    start_timeout: float = 30.0
    host: str = HOST
    target: str | None = None  # http://HOST:PORT of a server the bench does not start (scripts.plan.target)
    target_status: str | None = None  # its status endpoint or file (python -m scripts.serve)
    locust: locust_generator.Distribution | None = None  # locust as a master and workers (None: one process)
    registry: dict[str, Mode] = field(default_factory=lambda: dict(MODES), repr=False, compare=False)
    generators: dict[str, Generator] = field(default_factory=lambda: dict(GENERATORS), repr=False, compare=False)
    # The scenarios this run can name: the sample ones, or a user's (scripts.plan.userapp) for their own app.
    scenario_registry: dict[str, Scenario] = field(default_factory=lambda: dict(SCENARIOS), repr=False,
                                                   compare=False)
    app: userapp.UserApp | None = None  # None: every mode serves the sample app of its interface
    not_applicable: tuple[tuple[str, str], ...] = ()  # (mode, why) asked for but unable to serve the user's app
    # (option, why) given on the command line but not applied to this run: said on the console and in plan.json
    not_applied: tuple[tuple[str, str], ...] = ()
    open_loop_scenario: str = OPEN_LOOP_SCENARIO
    tuned_run: Path | None = None  # --tuned: the tune run whose best settings the MODE+tuned modes run at

    def levels(self, scenario: str) -> tuple[int, ...]:
        if scenario in self.sweep_scenarios:
            return tuple(sorted(set(self.concurrency) | set(self.sweep_levels)))
        return self.concurrency

    def generator_for(self, scenario: str) -> str:
        return generators.choose(self.scenario_registry[scenario], self.generator, self.generators)

    def app_for(self, mode: str) -> str | None:
        """What ``mode`` serves: the user's app of its interface, or None for the sample app."""
        return self.app.spec_for(self.registry[mode].interface) if self.app else None

    def _modes_at(self, scenario: str, users: int) -> tuple[str, ...]:
        modes = tuple(m for m in self.modes if self.registry[m].placement.in_sweeps or users in self.concurrency)
        return tuple(m for m in modes if scenario in (self._only(m) or (scenario,)))

    def _only(self, mode: str) -> tuple[str, ...]:
        """The scenarios ``mode`` is held to (empty: all). One held to sample scenarios (cgi: plaintext) runs the
        first of a user's instead."""
        only = self.registry[mode].placement.only_scenarios
        return self.scenarios[:1] if only and self.app else only

    def _variants(self, scenario: str) -> list[tuple[str | None, bool, int]]:
        """(strategy, keep-alive, users) of one scenario, in plan order."""
        strategies: tuple[str | None, ...] = (self.db_strategies if self.scenario_registry[scenario].db_strategies
                                              else (None,))
        keepalives = (True, False) if scenario in self.close_scenarios else (True,)
        variants = []
        for strategy in strategies:
            for keepalive in keepalives:
                if strategy == db.PER_REQUEST and not keepalive:
                    continue  # the connection-reuse contrast is drawn with keep-alive on only
                # The concurrency sweep draws the keep-alive curve; new-connection cells stay at the main level.
                variants += [(strategy, keepalive, users)
                             for users in (self.levels(scenario) if keepalive else self.concurrency)]
        return variants

    def cells(self) -> list[Cell]:
        cells: list[Cell] = []
        for scenario in self.scenarios:
            generator = self.generator_for(scenario)
            for strategy, keepalive, users in self._variants(scenario):
                # Sweep points beyond the main level are measured once: they draw a curve, not a figure.
                repeats = self.repeats if users in self.concurrency else 1
                modes = self._modes_at(scenario, users)
                if strategy == db.PER_REQUEST and not self.per_request_everywhere:
                    modes = tuple(m for m in modes
                                  if self.registry[m].placement.in_default_set or self.registry[m].checks.reuse)
                for repeat in range(repeats):
                    for mode in modes if repeat % 2 == 0 else tuple(reversed(modes)):
                        cells.append(Cell(index=len(cells), mode=mode, scenario=scenario, concurrency=users,
                                          generator=generator, keepalive=keepalive, repeat=repeat,
                                          db_strategy=strategy, label_strategy=len(self.db_strategies) > 1))
        return cells

    def duration_for(self, mode: str) -> float:
        return max(float(self.duration), self.registry[mode].placement.min_duration_s)

    def open_loop_modes(self) -> tuple[str, ...]:
        if not self.open_loop or self.open_loop_scenario not in (
                self.scenario_registry if self.app else self.scenarios):
            return ()
        return tuple(m for m in self.modes if self.registry[m].placement.in_sweeps)

    def measures_fork_references(self) -> bool:
        # The references are rates of the sample plaintext: a user's app has nothing to hold against them.
        return self.app is None and any(self.registry[m].process.fork_per_request for m in self.modes)

    def estimate_s(self) -> float:
        cells = sum(self.duration_for(c.mode) + self.warmup + self.generators[c.generator].cell_overhead_s
                    + self.registry[c.mode].process.start_s for c in self.cells())
        # Sync modes leave the ladder early; count five steps a mode, with some draining.
        ladder = len(self.open_loop_modes()) * (1.5 + 5 * (self.open_loop_duration + 1.2))
        refs = 0.0
        if self.measures_fork_references():
            refs = 3 * (FORK_REF_S + 0.2) + (2 * (FORK_LOOP_S + 1.5) if self.wrk else 0.0)  # fork-loop, stdlib-fork
        return cells + ladder + refs

    def describe(self) -> dict[str, Any]:
        data = asdict(self)
        for private in ("registry", "generators", "db_url", "scenario_registry"):  # db_url may hold a password
            data.pop(private)
        for key in ("app", "not_applicable", "open_loop_scenario", "tuned_run"):
            data.pop(key)
        if self.tuned_run is not None:  # only a --tuned run names it, so other runs' plan.json read as before
            data["tuned_run"] = str(self.tuned_run)
        if self.app:  # only a user's run names these, so a sample run's plan.json reads as before
            requests = {p.name or p.path: f"{p.method} {p.path}" for sc in self.scenario_registry.values()
                        for p in sc.probes if p.expect is not None}  # what the reports show beside each name
            data.update(app={**self.app.describe(), "requests": requests}, not_applicable=dict(self.not_applicable),
                        open_loop_scenario=self.open_loop_scenario if self.open_loop_modes() else None)
        data["not_applied"] = dict(self.not_applied)
        data["out"] = str(self.out)
        data["db_backend"] = "postgresql" if (self.db_url or self.postgres) else "sqlite"
        data["server_cpus"] = format_cpus(self.server_cpus)
        data["client_cpus"] = format_cpus(self.client_cpus)
        data["generators"] = {name: self.generator_for(name) for name in self.scenarios}
        # Threads per worker of the threaded modes (--threads or their own): Little's law's ceilings need them.
        data["threads"] = {name: t for name in self.modes if name in self.registry
                           for t in [self.registry[name].process.threads] if t}
        data["cells"] = len(self.cells())
        return data


# command line ---------------------------------------------------------------


def _names(kind: str, valid: Sequence[str]) -> Callable[[str], tuple[str, ...]]:
    def parse(value: str) -> tuple[str, ...]:
        names = tuple(n.strip() for n in value.split(",") if n.strip())
        unknown = [n for n in names if n not in valid]
        if unknown or not names:
            raise argparse.ArgumentTypeError(
                f"unknown {kind} {', '.join(map(repr, unknown)) or '(none given)'}; valid: {', '.join(valid)}"
            )
        return names

    return parse


def modes_argument(registry: dict[str, Mode]) -> Callable[[str], tuple[str, ...]]:
    """Mode names and named sets (all, wsgi, asgi, default), mixed freely; each mode once, in family order."""
    sets = mode_sets(registry)
    names = _names("mode or mode set", [*sets, *registry])

    def parse(value: str) -> tuple[str, ...]:
        chosen = {mode for name in names(value) for mode in sets.get(name, (name,))}
        return tuple(m for m in sets["all"] if m in chosen)

    return parse


def _seconds(least: float, inclusive: bool) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            seconds = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number of seconds, got {value!r}") from None
        if not (seconds >= least if inclusive else seconds > least) or seconds != seconds or seconds == float("inf"):
            raise argparse.ArgumentTypeError(f"{value} is not {'at least' if inclusive else 'more than'} {least:g}")
        return seconds
    return parse


_positive_float = _seconds(0.0, inclusive=False)
_non_negative_float = _seconds(0.0, inclusive=True)


def _ints(value: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError("levels must be positive integers")
    return levels


def _join(values: Sequence[object]) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _add_matrix_options(p: argparse.ArgumentParser, registry: dict[str, Mode],
                        catalog: dict[str, Scenario] | None = None) -> None:
    scenarios = list(SCENARIOS if catalog is None else catalog)
    sets = mode_sets(registry)
    p.add_argument("--modes", type=modes_argument(registry),
                   help="comma-separated modes and sets of modes: " + "; ".join(
                       f"{name} = {','.join(modes)}" for name, modes in sets.items()) + " (default: default)")
    p.add_argument("--scenarios", type=_names("scenario", scenarios),
                   help=f"comma-separated; default all: {','.join(scenarios)}")
    p.add_argument("--concurrency", type=_ints,
                   help=f"concurrent users for every scenario (default {_join(DEFAULT_CONCURRENCY)}; "
                   f"--quick: {_join(QUICK_CONCURRENCY)})")
    p.add_argument("--sweep", type=_names("scenario", scenarios),
                   help=f"scenarios also measured at the sweep levels (default {_join(DEFAULT_SWEEP)})")
    p.add_argument("--sweep-levels", type=_ints,
                   help=f"concurrency levels of the sweep (default {_join(DEFAULT_SWEEP_LEVELS)})")
    p.add_argument("--no-sweep", action="store_true", help="measure every scenario at --concurrency only")
    p.add_argument("--repeats", type=int,
                   help=f"measurements of every cell, modes interleaved (default {DEFAULT_REPEATS}; --quick: 1)")
    p.add_argument("--close", type=_names("scenario", scenarios), dest="close_scenarios",
                   help=f"scenarios also measured with a new connection per request "
                   f"(default {_join(DEFAULT_CLOSE_SCENARIOS)})")
    p.add_argument("--no-close", action="store_true", help="persistent connections only")
    p.add_argument("--duration", type=int, help=f"seconds of measured load per cell (default {DEFAULT_DURATION})")
    p.add_argument("--warmup", type=_non_negative_float, help=f"seconds of warm-up per cell (default {DEFAULT_WARMUP})")
    p.add_argument("--workers", type=int, default=2, help="workers for every pool-based mode (default %(default)s)")
    p.add_argument("--threads", type=int, help="threads per worker for every threaded mode "
                   "(default: each mode's own, 8 for gunicorn-gthread and waitress)")
    p.add_argument("--quick", action="store_true",
                   help=f"a short run: the modes asked for (the default set without --modes) in every scenario, "
                   f"once, {QUICK_DURATION} s per cell at {_join(QUICK_CONCURRENCY)} users; no sweep, no "
                   "new-connection cells, no open-loop ladder, db with connection reuse only")


def _add_load_options(p: argparse.ArgumentParser, gens: dict[str, Generator]) -> None:
    closed = [name for name, g in gens.items() if g.closed_loop]
    p.add_argument("--generator", choices=[generators.AUTO, *closed], default=generators.AUTO,
                   help="load generator for every scenario it can drive: auto (wrk where installed, else native, "
                   "for single-request scenarios; locust for user scenarios), or one of " + ", ".join(closed))
    p.add_argument("--no-open-loop", action="store_true",
                   help="skip the open-loop ladder (latency against offered load); --quick skips it too")
    p.add_argument("--open-loop-rates", type=_ints, help=f"offered rates of the open-loop ladder on "
                   f"{OPEN_LOOP_SCENARIO} (default {_join(OPEN_LOOP_RATES)})")
    p.add_argument("--open-loop-duration", type=_positive_float, help="seconds of each step of the open-loop "
                   f"ladder (default {OPEN_LOOP_STEP_S:g}; --duration sets the closed-loop cells only)")
    p.add_argument("--server-cpus", type=parse_cpus, help="CPUs for the server (default: the first half)")
    p.add_argument("--client-cpus", type=parse_cpus, help="CPUs for the load generator (default: the rest)")


def _add_other_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", type=run_folder, help="run folder (default: a new timestamped folder under results/)")
    p.add_argument("--db-strategies", type=_names("database strategy", list(db.STRATEGIES)),
                   help="connection strategies for the database scenarios: reuse (one connection per worker) "
                   "and/or per-request (connect, query, close); default both (per-request under the default "
                   "set's modes only; naming it measures it under every mode), --quick: reuse")
    p.add_argument("--db-url", default=os.environ.get(db.ENV_URL),
                   help=f"a postgresql:// URL to query instead of SQLite (default: ${db.ENV_URL}); "
                   "the bench seeds its world table")
    p.add_argument("--postgres", action="store_true",
                   help="start a throwaway PostgreSQL server (Debian package postgresql) for this run and use it "
                   "instead of SQLite")
    p.add_argument("--start-timeout", type=_positive_float, default=30.0, help="seconds a server gets to become ready")
    p.add_argument("--list", action="store_true", help="list modes, scenarios and generators and exit")


def build_parser(registry: dict[str, Mode] | None = None, gens: dict[str, Generator] | None = None,
                 catalog: dict[str, Scenario] | None = None) -> argparse.ArgumentParser:
    """The bench's command line; by default over the registry's modes and generators and the built-in scenarios."""
    registry = dict(MODES) if registry is None else registry
    p = argparse.ArgumentParser(
        prog="python -m scripts.bench",
        description="Serve identical apps under each server mode and compare them under the same load.",
    )
    _add_matrix_options(p, registry, catalog)
    _add_load_options(p, GENERATORS if gens is None else gens)
    _add_other_options(p)
    userapp.add_arguments(p)
    tuned.add_arguments(p)
    target.add_arguments(p)
    locust_generator.add_arguments(p)
    return p


def print_list(registry: dict[str, Mode], gens: dict[str, Generator],
               catalog: dict[str, Scenario] | None = None) -> None:
    for name, mode in registry.items():
        print(f"mode      {name:<16} {mode.family:<12} {mode.summary}")
        if mode.process.defaults:
            print(f"{'':<30} settings: {mode.process.defaults}")
    for name, scenario in (SCENARIOS if catalog is None else catalog).items():
        print(f"scenario  {name:<16} {scenario.summary}")
    for name, gen in gens.items():
        state = "" if gen.available() else f"  [not available: {gen.install_hint}]"
        print(f"generator {name:<16} {gen.summary}{state}")
    for name, modes in mode_sets(registry).items():
        print(f"mode set  {name:<16} {','.join(modes)}")


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace, gens: dict[str, Generator]) -> None:
    """Refuse what cannot run, before anything starts."""
    if args.postgres and args.db_url:
        parser.error("--postgres starts its own server; leave out --db-url")
    if args.db_url and not args.db_url.startswith(("postgresql://", "postgres://")):
        parser.error(f"--db-url must be a postgresql:// URL, got {args.db_url.split('@')[-1]!r}")
    for option, value, least in (("--workers", args.workers, 1), ("--duration", args.duration, 1),
                                 ("--repeats", args.repeats, 1), ("--threads", args.threads, 1)):
        if value is not None and value < least:
            parser.error(f"{option} must be at least {least}")
    chosen = gens.get(args.generator)
    if chosen is not None and not chosen.available():
        parser.error(f"--generator {args.generator}: {chosen.install_hint}")


def _cpu_sets(parser: argparse.ArgumentParser, args: argparse.Namespace) -> tuple[frozenset[int], frozenset[int]]:
    server_default, client_default = default_cpus()
    server, client = args.server_cpus or server_default, args.client_cpus or client_default
    if server & client and len(available()) > 1:
        parser.error(f"--server-cpus {format_cpus(server)} and --client-cpus {format_cpus(client)} "
                     "overlap; the server and the generator must not compete for a CPU")
    unknown = (server | client) - available()
    if unknown:
        parser.error(f"CPUs {format_cpus(frozenset(unknown))} are not available here "
                     f"(available: {format_cpus(available())})")
    return server, client


def _plan(args: argparse.Namespace, registry: dict[str, Mode], gens: dict[str, Generator],
          cpus: tuple[frozenset[int], frozenset[int]]) -> Plan:
    quick = args.quick
    scenarios = args.scenarios or tuple(SCENARIOS)
    close = () if args.no_close else (args.close_scenarios or (() if quick else DEFAULT_CLOSE_SCENARIOS))
    sweep = () if (args.no_sweep or (quick and args.sweep is None)) else (args.sweep or DEFAULT_SWEEP)
    rates = tuple(float(r) for r in args.open_loop_rates) if args.open_loop_rates else OPEN_LOOP_RATES
    if args.threads:
        registry = {name: replace(m, process=replace(m.process, threads=args.threads)) if m.process.threads else m
                    for name, m in registry.items()}
    return Plan(
        modes=args.modes or mode_sets(registry)["default"], scenarios=scenarios,
        concurrency=args.concurrency or (QUICK_CONCURRENCY if quick else DEFAULT_CONCURRENCY),
        sweep_scenarios=sweep, sweep_levels=args.sweep_levels or DEFAULT_SWEEP_LEVELS,
        duration=args.duration or (QUICK_DURATION if quick else DEFAULT_DURATION),
        warmup=args.warmup if args.warmup is not None else (QUICK_WARMUP if quick else DEFAULT_WARMUP),
        workers=args.workers, out=(args.out or RESULTS / dt.datetime.now().strftime("%Y%m%d-%H%M%S")).resolve(),
        db_strategies=args.db_strategies or ((db.REUSE,) if quick else db.STRATEGIES),
        per_request_everywhere=args.db_strategies is not None,
        db_url=args.db_url or None, postgres=args.postgres, quick=quick,
        repeats=args.repeats or (1 if quick else DEFAULT_REPEATS),
        close_scenarios=tuple(c for c in close if c in scenarios), generator=args.generator, wrk=wrk_process.find_wrk(),
        open_loop=not (quick or args.no_open_loop), open_loop_rates=rates,
        open_loop_duration=args.open_loop_duration or OPEN_LOOP_STEP_S, server_cpus=cpus[0],
        client_cpus=cpus[1], start_timeout=args.start_timeout, registry=registry, generators=gens,
    )


def plan_from_args(argv: Sequence[str] | None = None, registry: dict[str, Mode] | None = None,
                   gens: dict[str, Generator] | None = None) -> Plan | None:
    """The plan the command line asks for, or None when it only asked for ``--list``."""
    registry = dict(MODES) if registry is None else registry
    gens = dict(GENERATORS) if gens is None else gens
    try:  # the user's app first: its scenarios are the names --scenarios, --sweep and --close may use
        user = userapp.from_args(userapp.early(None if argv is None else list(argv)))
    except (ScenarioFileError, ValueError) as exc:
        build_parser(registry, gens).error(str(exc))
    parser = build_parser(registry, gens, user[1] if user else None)
    args = parser.parse_args(argv)
    if args.list:
        print_list(registry, gens, user[1] if user else None)
        return None
    _check(parser, args, gens)
    target.check(parser, args)
    if user is not None and args.target:
        parser.error("--target measures a server already running elsewhere; --app/--asgi-app start your app "
                     "under each mode here: use one or the other")
    dist = locust_generator.distribution_from_args(parser, args)
    gens = locust_generator.distributed(gens, dist)
    if args.target:  # the server's CPUs are on its own host: this one is the generator's
        return _settled(replace(target.remote_plan(
            _plan(args, registry, gens, (frozenset(), args.client_cpus or available())), args), locust=dist), args)
    plan = replace(_plan(args, registry, gens, _cpu_sets(parser, args)), locust=dist)
    if args.tuned:  # each mode at a tune run's best setting (scripts.plan.tuned)
        try:
            tuned_registry, tuned_modes = tuned.apply(plan.registry, plan.modes, args.tuned, args.tuned_scenario)
        except ValueError as exc:
            parser.error(str(exc))
        plan = replace(plan, registry=tuned_registry, modes=tuned_modes, tuned_run=args.tuned.resolve())
    if user is None:
        return _settled(plan, args)
    plan = _for_user_app(plan, args, *user)
    if not plan.modes:
        parser.error("no mode asked for can serve your app: " + "; ".join(f"{m} {why}" for m, why in
                                                                          plan.not_applicable))
    return _settled(plan, args)


def _settled(plan: Plan, args: argparse.Namespace) -> Plan:
    """The plan as it will run: what it records is what it applies (no ladder, sweep or strategies for scenarios it
    does not run), and every option given but not applied is named with the reason."""
    ladder = bool(plan.open_loop_modes())
    db_run = any(plan.scenario_registry[s].db_strategies for s in plan.scenarios)
    swept = tuple(s for s in plan.sweep_scenarios if s in plan.scenarios)
    settled = replace(plan, open_loop=ladder, sweep_scenarios=swept, db_strategies=plan.db_strategies if db_run else ())
    return replace(settled, not_applied=tuple(_not_applied(settled, args)))


def _no_ladder(plan: Plan, args: argparse.Namespace) -> str:
    if args.quick:
        return "--quick skips the open-loop ladder"
    if args.no_open_loop:
        return "--no-open-loop skips the open-loop ladder"
    if plan.app:
        return "the ladder on your app needs --open-loop-path"
    return f"the ladder runs on {plan.open_loop_scenario}, which --scenarios leaves out"


def _not_applied(plan: Plan, args: argparse.Namespace) -> list[tuple[str, str]]:
    found = [(option, _no_ladder(plan, args)) for option, given in (
        ("--open-loop-rates", args.open_loop_rates), ("--open-loop-duration", args.open_loop_duration),
        ("--open-loop-path", getattr(args, "open_loop_path", None))) if given and not plan.open_loop]
    for option, given, kept, off in (("--close", args.close_scenarios, plan.close_scenarios, args.no_close),
                                     ("--sweep", args.sweep, plan.sweep_scenarios, args.no_sweep)):
        dropped = [s for s in given or () if s not in kept]
        if dropped:
            why = f"{option.replace('--', '--no-')} is given too" if off else "not in --scenarios"
            found.append((f"{option} {','.join(dropped)}", why))
    if args.db_strategies and not plan.db_strategies:
        found.append(("--db-strategies", "no database scenario (db) in --scenarios"))
    if (args.locust_workers or args.locust_expect_workers) and not any(
            plan.generator_for(s) == "locust" for s in plan.scenarios):
        found.append(("--locust-workers", "no scenario of this run is driven by locust (mixed and a scenario file's "
                      "user mixes are)"))
    return found


def _for_user_app(plan: Plan, args: argparse.Namespace, app: userapp.UserApp,
                  catalog: dict[str, Scenario]) -> Plan:
    """The plan for a user's app: the modes that can serve it, its scenarios, none of the sample-only parts."""
    asked = [(m, app.not_applicable(plan.registry[m])) for m in plan.modes]
    scenarios = args.scenarios or tuple(n for n in catalog if n != userapp.OPEN_LOOP_USER_SCENARIO)
    serving = userapp.adapted_modes(app, plan.registry, tuple(m for m, why in asked if why is None))
    return replace(
        plan, app=app, scenario_registry=catalog, scenarios=scenarios,
        modes=tuple(serving), registry={**plan.registry, **serving},
        not_applicable=tuple((m, why) for m, why in asked if why is not None),
        sweep_scenarios=tuple(s for s in args.sweep or () if not args.no_sweep),
        close_scenarios=tuple(s for s in args.close_scenarios or () if not args.no_close and s in scenarios),
        db_strategies=(db.REUSE,),
        open_loop=plan.open_loop and userapp.OPEN_LOOP_USER_SCENARIO in catalog,
        open_loop_scenario=userapp.OPEN_LOOP_USER_SCENARIO)
