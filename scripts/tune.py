"""``python -m scripts.tune``: which server, with which settings, to run an app with on this machine.

For each mode, its default setting and then a climb along what its registry entry says it can tune (threads,
workers, a mode's own axes; :mod:`scripts.modes.tuning`); each setting's capacity at a latency target (the highest
open-loop rate at which at least 99% of the offered rate is served with p99 under ``--slo-p99``), found by
bracketing and bisection. Writes ``tune.json``, ``summary.md`` and ``report.html`` in the run folder and prints the
winner's production command line. Ctrl-C keeps (and reports) what was measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console

from apps import db
from loadtests.scenario_file import ScenarioFileError
from loadtests.scenarios import SCENARIOS, Scenario
from scripts.common.cpus import available, default_cpus, format_cpus, parse_cpus
from scripts.common.files import write_json_atomic
from scripts.modes import MODES, Mode, mode_sets
from scripts.plan import userapp
from scripts.plan.environment import environment
from scripts.plan.plan import RESULTS, Plan, modes_argument
from scripts.tuning import results, tune_report
from scripts.tuning.measure import Target
from scripts.tuning.quota import QuotaError
from scripts.tuning.results import TuneRun
from scripts.tuning.tune_run import TunePlan, tune

SCENARIOS_DEFAULT = ("io", "cpu")
SCENARIOS_QUICK = ("io",)
REPEATS, QUICK_REPEATS = 3, 1  # as the bench
DURATION, QUICK_DURATION = 2.0, 1.0  # the open-loop interval, as the ladder (--quick: as a quick cell)
PRECISION, QUICK_PRECISION = 0.05, 0.15


def _range(value: str) -> tuple[int, int]:
    lo, sep, hi = value.partition("-")
    try:
        bounds = (int(lo), int(hi if sep else lo))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW-HIGH (for example 1-8), got {value!r}") from None
    if bounds[0] < 1 or bounds[1] < bounds[0]:
        raise argparse.ArgumentTypeError(f"expected 1 <= LOW <= HIGH, got {value!r}")
    return bounds


def _positive(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value!r}")
    return number


def build_parser(registry: dict[str, Mode] | None = None) -> argparse.ArgumentParser:
    registry = dict(MODES) if registry is None else registry
    p = argparse.ArgumentParser(prog="python -m scripts.tune", description="Find each mode's best setting on this "
                                "machine: capacity at a p99 latency target, open loop.")
    sets = mode_sets(registry)
    p.add_argument("--modes", type=modes_argument(registry), help="modes and sets of modes, as the bench's "
                   f"(default: default = {','.join(sets['default'])})")
    p.add_argument("--scenarios", help=f"comma-separated sample scenarios (default {','.join(SCENARIOS_DEFAULT)}; "
                   f"--quick: {','.join(SCENARIOS_QUICK)}); with your app, see --request")
    p.add_argument("--request", help="with your app: the scenario (a single request) of --scenario-file/--paths to "
                   "tune for (default: the first)")
    p.add_argument("--slo-p99", type=_positive, default=100.0, metavar="MS",
                   help="the p99 latency a rate must stay under, in ms (default %(default)g)")
    p.add_argument("--memory-budget", type=_positive, metavar="MB", help="stop rising along an axis once the server "
                   "holds more than this (PSS of the whole server)")
    p.add_argument("--workers-range", type=_range, metavar="LOW-HIGH",
                   help="workers to try (default 1 to 2n+1 for n server CPUs)")
    p.add_argument("--threads-range", type=_range, metavar="LOW-HIGH",
                   help="threads per worker to try, in powers of two (default 1-256)")
    p.add_argument("--workers", type=int, default=2, help="the workers of each mode's default setting, the one the "
                   "best is compared with (default %(default)s, as the bench)")
    p.add_argument("--repeats", type=int, help=f"intervals a rate gets, most must pass (default {REPEATS}; "
                   f"--quick: {QUICK_REPEATS})")
    p.add_argument("--duration", type=_positive, help=f"seconds of each interval (default {DURATION:g}; --quick: "
                   f"{QUICK_DURATION:g})")
    p.add_argument("--precision", type=_positive, help=f"bisect until the bracket is this narrow, as a fraction "
                   f"(default {PRECISION:g}; --quick: {QUICK_PRECISION:g})")
    p.add_argument("--grid", action="store_true", help="measure every setting of the ranges instead of climbing "
                   "(slow: the exhaustive grid the climb is checked against)")
    p.add_argument("--rounds", type=int, help="measure each setting this many times and take the median capacity "
                   "(the grid measures round by round, every setting once a round; --check-command measures the "
                   "printed command as often, by default as often as the run did): near the knee one measurement "
                   "varies by 10-20%% (default 1)")
    p.add_argument("--quick", action="store_true", help="one scenario (io), one interval a rate, a coarser bisection")
    p.add_argument("--for-cores", type=int, metavar="N", help="also estimate the best setting on a machine of N cores")
    p.add_argument("--for-memory", type=_positive, metavar="GIB", help="... and M GiB of memory (with --for-cores)")
    p.add_argument("--cpu-quota", type=_positive, metavar="FRACTION", help="give the server this share of one CPU's "
                   "time (a cgroup quota; needs root): 0.5 measures it on half a CPU, to check --for-cores against")
    p.add_argument("--server-cpus", type=parse_cpus, help="CPUs for the server (default: the first half)")
    p.add_argument("--client-cpus", type=parse_cpus, help="CPUs for the load generator (default: the rest)")
    p.add_argument("--start-timeout", type=float, default=30.0, help="seconds a server gets to become ready")
    p.add_argument("--out", type=Path, help="run folder (default: results/tune-TIMESTAMP)")
    p.add_argument("--check-command", type=Path, metavar="RUN", help="do not tune: start the winner's printed "
                   "command of each scenario of the tune run RUN by itself, measure its capacity the same way and "
                   "compare")
    userapp.add_arguments(p, open_loop_help="with your app: GET PATH is the request tuned for (as --request)")
    return p


def _user_scenario(args: argparse.Namespace, catalog: dict[str, Scenario]) -> dict[str, Scenario]:
    if args.request is not None and args.request not in catalog:
        raise ValueError(f"--request {args.request!r}: not a scenario of your app (its scenarios: "
                         f"{', '.join(catalog)})")
    chosen = catalog[args.request] if args.request else None
    if chosen is None:
        return {(s := userapp.load_request(catalog)).name: s}
    if len(chosen.probes) != 1:
        raise ValueError(f"--request {args.request!r}: a mix of requests; the tune measures one request")
    return {chosen.name: chosen}


def _plan(args: argparse.Namespace, parser: argparse.ArgumentParser) -> Plan:
    registry = dict(MODES)
    server, client = args.server_cpus or default_cpus()[0], args.client_cpus or default_cpus()[1]
    if server & client and len(available()) > 1:
        parser.error(f"--server-cpus {format_cpus(server)} and --client-cpus {format_cpus(client)} overlap")
    modes = args.modes or mode_sets(registry)["default"]
    out = (args.out or RESULTS / f"tune-{dt.datetime.now().strftime('%Y%m%d-%H%M%S')}").resolve()
    try:
        user = userapp.from_args(args)
    except (ScenarioFileError, ValueError) as exc:
        parser.error(str(exc))
    catalog: dict[str, Scenario] = dict(SCENARIOS)
    if user is None:
        scenarios = tuple(s.strip() for s in (args.scenarios or "").split(",") if s.strip()) or (
            SCENARIOS_QUICK if args.quick else SCENARIOS_DEFAULT)
        unknown = [s for s in scenarios if s not in catalog or len(catalog[s].probes) != 1]
        if unknown:
            parser.error(f"--scenarios: {', '.join(unknown)} not a single-request sample scenario")
    base = Plan(modes=modes, scenarios=(), concurrency=(1,), sweep_scenarios=(), sweep_levels=(), duration=1,
                warmup=0.0, workers=args.workers, out=out, server_cpus=server, client_cpus=client,
                start_timeout=args.start_timeout, registry=registry)
    if user is None:
        return dataclasses.replace(base, scenarios=scenarios)
    app, all_scenarios = user
    try:
        chosen = _user_scenario(args, all_scenarios)
    except ValueError as exc:
        parser.error(str(exc))
    serving = userapp.adapted_modes(app, registry, tuple(m for m in modes if app.not_applicable(registry[m]) is None))
    if not serving:
        parser.error("no mode asked for can serve your app")
    return dataclasses.replace(base, app=app, scenarios=tuple(chosen), scenario_registry=chosen,
                               modes=tuple(serving), registry={**registry, **serving}, db_strategies=(db.REUSE,))


def plan_from_args(argv: Sequence[str] | None = None) -> tuple[TunePlan, argparse.Namespace]:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.for_memory is not None and args.for_cores is None:
        parser.error("--for-memory goes with --for-cores")
    for option, value in (("--workers", args.workers), ("--repeats", args.repeats), ("--for-cores", args.for_cores),
                          ("--rounds", args.rounds)):
        if value is not None and value < 1:
            parser.error(f"{option} must be at least 1")
    plan = _plan(args, parser)
    quick = args.quick
    target = Target(slo_p99_ms=args.slo_p99, repeats=args.repeats or (QUICK_REPEATS if quick else REPEATS),
                    duration_s=args.duration or (QUICK_DURATION if quick else DURATION),
                    precision=args.precision or (QUICK_PRECISION if quick else PRECISION))
    ranges = {name: r for name, r in (("workers", args.workers_range), ("threads", args.threads_range)) if r}
    return TunePlan(plan=plan, target=target, memory_budget_mb=args.memory_budget, ranges=ranges,
                    quick=quick, grid=args.grid, cpu_quota=args.cpu_quota, rounds=args.rounds or 1), args


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def check_commands(run_dir: Path, rounds: int | None = None) -> int:
    """Start each scenario's winning command as printed, measure it (as many rounds as the run measured each
    setting, or ``rounds``), and say how far the median is from the tune's figure."""
    from scripts.tuning.reproduce import reproduce

    run = results.load(run_dir)
    for scenario, win in tune_report.winners(run).items():
        again = reproduce(run_dir, win, rounds=rounds or int(run.plan.get("rounds") or 1))
        load = os.getloadavg()
        each = (f" (median of {len(again.rounds)}: {' / '.join(f'{r:,.1f}' for r in again.rounds)})"
                if len(again.rounds) > 1 else "")
        print(f"{scenario}: {win.mode}: tuned {again.tuned_rps:,.1f}/s, the printed command alone "
              f"{again.measured_rps:,.1f}/s{each} ({(again.ratio - 1) * 100:+.1f}%; load average {load[0]:.2f})\n"
              f"  {again.command}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    tp, args = plan_from_args(argv)
    if args.check_command:
        return check_commands(args.check_command, args.rounds)
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    console = Console(stderr=True)
    plan = tp.plan
    plan.out.mkdir(parents=True, exist_ok=True)
    described = {**plan.describe(), "slo_p99_ms": tp.target.slo_p99_ms, "repeats": tp.target.repeats,
                 "interval_s": tp.target.duration_s, "precision": tp.target.precision,
                 "memory_budget_mb": tp.memory_budget_mb, "ranges": tp.ranges, "quick": tp.quick, "grid": tp.grid,
                 "rounds": tp.rounds,
                 "for_cores": args.for_cores, "for_memory_gib": args.for_memory, "cpu_quota": tp.cpu_quota}
    run = TuneRun(plan=described, environment=environment(plan))
    write_json_atomic(plan.out / results.FILE, results.to_json(run))  # a report even if nothing gets measured
    db_path = db.create(plan.out / "world.sqlite")
    started = time.monotonic()
    code = 0
    try:
        run = tune(tp, run, db_path, console)
    except QuotaError as exc:
        console.print(f"[red]error: --cpu-quota: {exc}[/red]")
        code = 2
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: reporting what was measured[/yellow]")
        code = 130
    finally:
        db_path.unlink(missing_ok=True)
    if (plan.out / results.FILE).exists():  # the load average at the end, beside the one at the start
        done = results.load(plan.out)
        ended = dataclasses.replace(done, plan={**done.plan, "load_average_end": ", ".join(
            f"{x:.2f}" for x in os.getloadavg())})
        write_json_atomic(plan.out / results.FILE, results.to_json(ended))
    summary = tune_report.render(plan.out)
    console.print(tune_report.console_text(plan.out), highlight=False, soft_wrap=True)
    console.print(f"summary: {summary}\nfinished in {time.monotonic() - started:.0f}s: {plan.out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
