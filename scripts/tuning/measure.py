"""One setting of one mode against a real server: start it on the server CPUs (as the bench does), then find its
capacity with the open-loop engine the ladder uses (latency timed from each request's intended send), sampling the
server's CPU and memory (PSS) during every interval."""

from __future__ import annotations

import dataclasses
import statistics
import subprocess
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from loadtests.scenarios import Scenario
from scripts.common.procs import StartError, free_port, log_tail
from scripts.load.generators import OPEN_LOOP_NAME, Load
from scripts.load.resources import Sampler, snapshot
from scripts.plan import userapp
from scripts.plan.plan import Plan
from scripts.run.cell import CELL_ERRORS, server_env, serving
from scripts.run.ladder import CONNECTIONS, DRAIN_S
from scripts.tuning.results import SettingResult, Trial
from scripts.tuning.search import MIN_RATE, find_capacity, passes_majority

ACHIEVED = 0.99  # of the offered rate
WARMUP_S = 0.5


@dataclass(frozen=True, kw_only=True, slots=True)
class Target:
    """What a rate must meet, and how hard the search looks."""

    slo_p99_ms: float = 100.0
    repeats: int = 1
    duration_s: float = 2.0
    precision: float = 0.05  # bisect until the bracket is this narrow


def judge(rate: float, achieved: float, p99_ms: float | None, errors: int, slo_p99_ms: float) -> bool:
    return achieved >= ACHIEVED * rate and p99_ms is not None and p99_ms < slo_p99_ms and errors == 0


def _trial(plan: Plan, scenario: Scenario, port: int, pgid: int, rate: float, target: Target,
           workdir: Path) -> Trial:
    sampler = Sampler(pgid, cpus=len(plan.server_cpus))
    sampler.start()
    try:
        result = plan.generators[OPEN_LOOP_NAME].run(Load(
            scenario=scenario, host=plan.host, port=port, connections=CONNECTIONS, duration=target.duration_s,
            workdir=workdir, cpus=plan.client_cpus, rate=rate, timeout=DRAIN_S))
    finally:
        usage = sampler.stop()
    s = result.schedule
    errors = sum(s.errors.values()) if s else result.failures
    p99 = result.latency_ms.get("p99")
    completed = s.completed if s else result.requests
    # Every good answer to a request of the interval, the last ones' included (the ladder's achieved rate counts only
    # those answered before the schedule ends, which reads a latency's worth of requests short at any rate).
    achieved = (s.ok if s else result.requests) / target.duration_s
    return Trial(rate=rate, achieved=round(achieved, 1), p99_ms=None if p99 is None else round(p99, 2),
                 passed=judge(rate, achieved, p99, errors, target.slo_p99_ms), errors=errors,
                 cpu_ms_per_request=round(1000 * usage.cpu_seconds / completed, 4) if completed else None,
                 memory_mb=round(usage.memory_peak_mb, 1), generator_kept_up=s.kept_up if s else None)


@contextmanager
def _process(serving: AbstractContextManager[tuple[subprocess.Popen[bytes], float]],
             confine: Callable[[int], None] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """The serving server's process; ``confine(pgid)`` puts its group under a CPU quota (scripts.tuning.quota)."""
    with serving as (proc, _):
        if confine is not None:
            confine(proc.pid)
        yield proc


def _summarised(base: SettingResult, capacity: float, trials: list[Trial]) -> SettingResult:
    at = [t for t in trials if t.passed and t.rate == capacity]
    memory = [t.memory_mb for t in trials if t.memory_mb is not None]
    return dataclasses.replace(
        base, status="ok", capacity_rps=capacity, trials=tuple(trials),
        p99_ms=max((t.p99_ms for t in at if t.p99_ms is not None), default=None),
        cpu_ms_per_request=min((t.cpu_ms_per_request for t in at if t.cpu_ms_per_request is not None), default=None),
        memory_mb=max(memory, default=base.memory_idle_mb))


class Server:
    """A server the search can restart: ``start(port)`` enters a context that yields the running process on that
    port. A rate the server fell behind at leaves it worse off for the rates after it: requests left unanswered, a
    queue, and (measured on prefork with one worker, cpu scenario) p99 climbing from 470 ms to 820 and 1,160 ms over
    three falling rates that a fresh server passes. The search restarts it after every failed interval, so every
    rate is measured against a server that has not just been overrun."""

    def __init__(self, host: str, start: Callable[[int], AbstractContextManager[subprocess.Popen[bytes]]]) -> None:
        self.host, self._start = host, start
        self._stack = ExitStack()
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0

    def __enter__(self) -> Server:
        self.restart()
        self.restarts = 0
        return self

    def restart(self) -> None:
        self._stack.close()
        self.port = free_port(self.host)
        self.proc = self._stack.enter_context(self._start(self.port))
        self.restarts += 1

    def __exit__(self, *exc: object) -> None:
        self._stack.close()


def gross(t: Trial, slo_p99_ms: float) -> bool:
    """A failure no repeat would turn: most of the rate unserved, or p99 far past the target."""
    return t.achieved < 0.8 * t.rate or (t.p99_ms is not None and t.p99_ms > 5 * slo_p99_ms)


def capacity_of(plan: Plan, scenario: Scenario, server: Server, *, target: Target, start_rate: float, logs: Path,
                report: Callable[[Trial], None] = lambda t: None) -> list[Trial]:
    """Every trial of the search for the capacity of ``server`` (running, serving ``scenario``), after a short
    warm-up that is not judged: a fresh server's first requests are not its steady state."""
    assert server.proc is not None
    plan.generators[OPEN_LOOP_NAME].run(Load(
        scenario=scenario, host=plan.host, port=server.port, connections=CONNECTIONS, duration=WARMUP_S,
        workdir=logs / "warmup", cpus=plan.client_cpus, rate=max(MIN_RATE, min(50.0, start_rate / 2)),
        timeout=DRAIN_S))
    trials: list[Trial] = []
    decided: dict[float, bool] = {}

    def trial(rate: float) -> bool:
        if rate in decided:  # a gross failure decides its rate: no repeat
            return decided[rate]
        assert server.proc is not None
        t = _trial(plan, scenario, server.port, server.proc.pid, rate, target, logs / f"rate-{rate:g}-{len(trials)}")
        trials.append(t)
        report(t)
        if server.proc.poll() is not None:
            raise StartError(f"server exited with code {server.proc.returncode} during the load")
        if t.errors or not t.passed:
            server.restart()
        if not t.passed and gross(t, target.slo_p99_ms) and not any(x.passed for x in trials if x.rate == rate):
            decided[rate] = False  # a first interval failing grossly: a stall after a pass is left to the majority
        return t.passed

    find_capacity(passes_majority(trial, target.repeats), start_rate, precision=target.precision)
    return trials


def capacity(trials: Sequence[Trial]) -> float:
    """The highest rate that passed, as the search decided it: the rates it bisected are passed by a majority."""
    by_rate: dict[float, list[bool]] = {}
    for t in trials:
        by_rate.setdefault(t.rate, []).append(t.passed)
    return max((r for r, v in by_rate.items() if sum(v) > len(v) / 2), default=0.0)


def merged(rounds: Sequence[SettingResult]) -> SettingResult:
    """One setting measured in several rounds (``--rounds``): its capacity, p99, CPU and memory are those of the
    median round (the lower middle one, for an even count) of the rounds that measured one; every round's capacity
    and trials are kept. The setting fails only when every round failed (the first failure's reason)."""
    if len(rounds) == 1:
        return rounds[0]
    ok = [r for r in rounds if r.ok]
    elapsed = round(sum(r.elapsed_s for r in rounds), 1)
    trials = tuple(t for r in rounds for t in r.trials)
    if not ok:
        return dataclasses.replace(rounds[0], trials=trials, elapsed_s=elapsed)
    middle = statistics.median_low(r.capacity_rps for r in ok)
    chosen = next(r for r in ok if r.capacity_rps == middle)
    return dataclasses.replace(chosen, capacities=tuple(r.capacity_rps for r in ok), trials=trials,
                               elapsed_s=elapsed)


def measure_setting(plan: Plan, mode_name: str, scenario_name: str, setting: dict[str, int], *, target: Target,
                    start_rate: float, db_path: Path, logs: Path,
                    report: Callable[[Trial], None] = lambda t: None,
                    confine: Callable[[int], None] | None = None) -> SettingResult:
    """The setting's capacity and what it costs; a server that does not start or refuses the setting gives a failed
    result with the reason and the log's tail."""
    mode, scenario = plan.registry[mode_name], plan.scenario_registry[scenario_name]
    argv = mode.argv(host=plan.host, port=0, workers=plan.workers, app=plan.app_for(mode_name), setting=setting)
    base = SettingResult(mode=mode_name, scenario=scenario_name, setting=dict(setting), status="failed",
                         command=tuple(argv))
    started = time.monotonic()
    env = server_env(plan, db_path, None)

    def start(port: int) -> AbstractContextManager[subprocess.Popen[bytes]]:
        argv = mode.argv(host=plan.host, port=port, workers=plan.workers, app=plan.app_for(mode_name),
                         setting=setting)
        return _process(serving(plan, argv, port, scenario, logs / "server.log", env), confine)

    try:
        with Server(plan.host, start) as server:
            assert server.proc is not None
            idle = snapshot(server.proc.pid)
            base = dataclasses.replace(base, memory_idle_mb=round(idle.memory_mb, 1), processes=idle.processes)
            trials = capacity_of(plan, scenario, server, target=target, start_rate=start_rate, logs=logs,
                                 report=report)
        result = _summarised(base, capacity(trials), trials)
    except (*CELL_ERRORS, ValueError) as exc:
        tail = log_tail(logs / "server.log")
        if plan.app and (note := userapp.failure_note(plan.app, logs / "server.log")):
            tail += "\n" + note
        result = dataclasses.replace(base, error=f"{type(exc).__name__}: {exc}".splitlines()[0], log_tail=tail)
    return dataclasses.replace(result, elapsed_s=round(time.monotonic() - started, 1))
