"""The open-loop ladder: constant-rate arrivals at a doubling ladder of offered rates against each mode.

Latency counts from each request's intended send time (see :mod:`scripts.load.engine_process`), so a server that
falls behind shows its queue in p99 instead of hiding it as a closed loop does. A mode leaves the ladder
one step after it completes less than half the offered rate: past its knee, more load only queues, and
costs the run its drain time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from loadtests.scenarios import Scenario
from scripts.common.cpus import format_cpus
from scripts.common.files import write_json_atomic
from scripts.common.procs import free_port, log_tail
from scripts.load import hosts
from scripts.load.generators import OPEN_LOOP_NAME, Load, LoadResult
from scripts.plan import target
from scripts.plan.plan import Plan
from scripts.records import distribution
from scripts.records.records import OpenLoopRecord, to_json
from scripts.run.cell import CELL_ERRORS, server_env, serving
from scripts.run.remote import REACH_S, reach
from scripts.run.verify import verify

CONNECTIONS = 256
DRAIN_S = 2.0  # requests still unanswered this long after the schedule ends count as timeouts
LEAVE_BELOW = 0.5  # of the offered rate


def _point(base: OpenLoopRecord, rate: float, result: LoadResult) -> OpenLoopRecord:
    s = result.schedule
    assert s is not None, "the open-loop generator reports its schedule"
    return dataclasses.replace(
        base, status="ok", offered_rate=rate, achieved_rate=round(result.throughput_rps, 1),
        sent=s.sent, completed=s.completed, ok_count=s.ok, errors=dict(s.errors), latency_ms=dict(result.latency_ms),
        latency_uncorrected_ms=dict(s.latency_uncorrected_ms), generator_kept_up=s.kept_up,
        generator_cpu=None if result.generator_cpu is None else round(result.generator_cpu, 3),
        generator_behind_s=s.behind_s,
        # Its spectrum is all a step's distribution is read for: kept as that, it is a few KB, not one per bucket.
        latency_histogram=distribution.compact(distribution.of_generator(result.latency_histogram)))


@contextmanager
def _server(plan: Plan, mode_name: str, port: int, scenario: Scenario, log: Path, db_path: Path) -> Iterator[None]:
    """The mode's server, started on the server CPUs and verified; or, with ``--target``, the target reached and
    verified (and the generators allowed to load its host) for as long as the ladder climbs."""
    if plan.target:
        with hosts.loading(plan.host):
            reach(plan.host, port, min(REACH_S, plan.start_timeout))
            verify(plan.host, port, scenario)
            yield
        return
    mode = plan.registry[mode_name]
    with serving(plan, mode.argv(host=plan.host, port=port, workers=plan.workers, app=plan.app_for(mode_name)),
                 port, scenario, log, server_env(plan, db_path, None)):
        yield


def ladder(plan: Plan, mode_name: str, run_dir: Path, db_path: Path,
           report: Callable[[OpenLoopRecord], None]) -> list[OpenLoopRecord]:
    """One record per rate climbed against ``mode_name`` (or one failed record); ``report`` sees each as it comes."""
    mode, scenario = plan.registry[mode_name], plan.scenario_registry[plan.open_loop_scenario]
    port = target.parse_target(plan.target)[1] if plan.target else free_port(plan.host)
    logs = run_dir / "logs" / f"openloop-{mode_name}"
    base = OpenLoopRecord(mode=mode_name, status="failed", scenario=plan.open_loop_scenario,
                          path=scenario.probes[0].path, connections=CONNECTIONS, duration_s=plan.open_loop_duration,
                          workers=plan.workers if mode.process.uses_workers and not plan.target else None,
                          server_cpus=None if plan.target else format_cpus(plan.server_cpus),
                          client_cpus=format_cpus(plan.client_cpus))
    generator = plan.generators[OPEN_LOOP_NAME]
    points: list[OpenLoopRecord] = []
    try:
        with _server(plan, mode_name, port, scenario, logs / "server.log", db_path):
            for rate in plan.open_loop_rates:
                result = generator.run(Load(scenario=scenario, host=plan.host, port=port, connections=CONNECTIONS,
                                            duration=plan.open_loop_duration, workdir=logs / f"rate-{rate:g}",
                                            cpus=plan.client_cpus, rate=rate, timeout=DRAIN_S))
                points.append(_point(base, rate, result))
                report(points[-1])
                if result.throughput_rps < LEAVE_BELOW * rate:
                    break
    except (*CELL_ERRORS, ValueError) as exc:
        where = f" [{plan.target}]" if plan.target else ""
        points.append(dataclasses.replace(base, error=f"{type(exc).__name__}: {exc}".splitlines()[0] + where,
                                          log_tail="" if plan.target else log_tail(logs / "server.log")))
        report(points[-1])
    return points


def run_ladders(plan: Plan, run_dir: Path, db_path: Path, report: Callable[[OpenLoopRecord], None],
                done: Callable[[str], None] = lambda mode: None) -> None:
    """Every mode's ladder; each step is written as soon as it is measured (an interruption keeps every finished
    step), and ``done`` hears of each mode whose ladder ended."""
    for index, mode in enumerate(plan.open_loop_modes()):
        steps = 0

        def keep(record: OpenLoopRecord, index: int = index, mode: str = mode) -> None:
            nonlocal steps
            write_json_atomic(run_dir / "openloop" / f"{index:02d}-{mode}-{steps:02d}.json", to_json(record))
            steps += 1
            report(record)

        ladder(plan, mode, run_dir, db_path, keep)
        done(mode)
