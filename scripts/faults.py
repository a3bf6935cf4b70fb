"""What each server model costs when things go wrong: the same faults injected into every mode.

    python -m scripts.faults [--quick] [--modes a,b] [--faults crash,hang] [--out DIR]

For every (fault, mode): start the mode as the bench does (its own process group, ``/health``
polled), with ``WORKERBENCH_FAULTS=1`` so the app serves its fault endpoints (:mod:`apps.faults`);
run steady open-loop load on ``/plaintext`` at a fixed, moderate rate (the project's engine, so a
stall shows as failures and latency, not as a generator that politely waits); inject the fault a
moment in; keep loading; read the engine's per-0.1 s outcome timeline and the process count
sampled beside it. Every fault becomes a :class:`scripts.records.FaultRecord`; :mod:`scripts.fault_report`
turns the records into ``faults.md``, ``report.html`` and charts.

Everything is driven by :data:`servers.MODES`. The facts a fault needs beyond starting a mode are
declared on each :class:`servers.Mode` (``worker_timeout_flag``, ``max_requests_flag``,
``reload_signal``); a mode without one lacks that capability, so a mode added later runs every
fault that needs nothing more, and shows "not offered" for the others ("not applicable" is kept for a
fault the process model makes meaningless, as recycling a process that serves one request anyway).

A user's own app (``--app``/``--asgi-app`` and the bench's other options for it, :mod:`scripts.userapp`) runs
the faults that send nothing but the load and signals (recycle, reload, shutdown, the slowloris half of slow)
under every mode of its interface, loading one request of the user's (:func:`scripts.userapp.load_request`,
verified before each fault); the faults that are requests to the sample app's fault endpoints are listed as
needing the sample app (:data:`NEEDS_SAMPLE_APP`), the modes of the other interface as not applicable.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.client
import json
import math
import os
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import psycopg

import servers
from apps import faults as app_faults
from loadtests.scenario_file import ScenarioFileError
from loadtests.scenarios import Probe, Scenario
from scripts import cpus as cpu_sets
from scripts import environment, fault_report, faulthtml, plan, userapp
from scripts.files import write_text_atomic
from scripts.loadgen import LoadError
from scripts.openloop import OpenLoopResult, openloop_command, parse_result, run_openloop
from scripts.procs import StartError, free_port, group_members, live_members, log_tail, running, wait_ready
from scripts.records import FaultRecord, faults_to_json
from scripts.verify import VerifyError, verify

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

# --- settings ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    quick: bool
    out: Path
    workers: int = 2
    host: str = HOST
    pg_url: str | None = None  # a PostgreSQL server with the world table, for the cleanup fault

    lead_s: float | None = None  # seconds of load before the fault; None: by quick
    app: userapp.UserApp | None = None  # a user's app (--app/--asgi-app), served instead of the sample app
    request: Scenario | None = None  # its one request the steady load sends (userapp.load_request)

    @property
    def duration(self) -> float:  # seconds of load per fault
        return 2.5 if self.quick else 6.0

    @property
    def lead(self) -> float:
        if self.lead_s is not None:
            return self.lead_s
        return 0.8 if self.quick else 2.0

    @property
    def slow_levels(self) -> tuple[int, ...]:  # how many slow clients at once
        return (8, 64) if self.quick else (8, 64, 256)

    def slow_levels_for(self, mode: servers.Mode) -> tuple[int, ...]:
        # A quick run spares a mode that needs a good part of a second per request (cgi) the 64 slow
        # clients: each one costs it an interpreter start before any measurement.
        if self.quick and mode.min_duration_s >= 1.0:
            return self.slow_levels[:1]
        return self.slow_levels

    @property
    def slow_duration(self) -> float:  # seconds of normal load beside each level
        return 1.0 if self.quick else 3.0

    @property
    def recycle_duration(self) -> float:  # seconds of full-speed load per server, with or without recycling
        return 2.0 if self.quick else 4.0

    @property
    def recycle_rounds(self) -> int:  # each round: one server without recycling, one with
        return 1 if self.quick else 2

    @property
    def hang_timeout(self) -> int:  # the worker timeout given to modes that have one
        return 2 if self.quick else 5

    @property
    def leak_requests(self) -> int:
        return 1_500 if self.quick else 10_000

    @property
    def leak_max_s(self) -> float:  # a slow mode gets this long, and serves fewer requests
        return 3.5 if self.quick else 12.5

    def leak_rate(self, mode: servers.Mode) -> float:
        # Pools take 2x (quick) or 4x the usual rate, to reach 10,000 requests in 12.5 s in the default
        # run; a process per request is near its limit already.
        return self.rate(mode) * (1 if mode.fork_per_request else 2 if self.quick else 4)

    @property
    def max_requests(self) -> int:
        return 300 if self.quick else 1_000

    @property
    def rss_growth_mb(self) -> int:
        """Memory-triggered recycling's limit, above a fresh worker's RSS: the leak's 16 KiB per request reaches it
        after about 500 requests a worker (quick) or 1,000, as often as request-count recycling recycles."""
        return 8 if self.quick else 16

    @property
    def blocking_ms(self) -> int:  # how long each of the blocking fault's slow requests takes
        return 300

    def rate(self, mode: servers.Mode) -> float:
        """A moderate offered rate the mode serves comfortably (so a fault, not overload, makes failures)."""
        if mode.min_duration_s >= 1.0:
            return 2.0  # a fresh interpreter per request (cgi): ~0.2 s of CPU each
        if mode.fork_per_request:
            return 100.0
        return 200.0

    def request_timeout(self, mode: servers.Mode) -> float:
        # Short, so a request stuck behind a hung or dead process counts as failed within the run.
        return 4.0 if mode.min_duration_s >= 1.0 else 1.0


def server_env(db_path: Path) -> dict[str, str]:
    from apps import db

    env = {**os.environ, app_faults.ENV: "1", db.ENV_PATH: str(db_path), "PYTHONPATH": str(ROOT),
           "PYTHONUNBUFFERED": "1"}
    env.pop(db.ENV_URL, None)
    return env


# --- observing a server under load ------------------------------------------------------------------------------------


class GroupWatch:
    """Samples the server's process group every ``interval`` s: members, and optionally their total PSS."""

    def __init__(self, pgid: int, interval: float = 0.1, pss: bool = False) -> None:
        self.pgid, self.interval, self.pss = pgid, interval, pss
        self.samples: list[tuple[float, frozenset[int], int]] = []  # (monotonic, pids, PSS bytes or 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        pids = frozenset(live_members(self.pgid))
        total = 0
        if self.pss:
            for pid in pids:
                try:
                    total += psutil.Process(pid).memory_full_info().pss
                except psutil.Error:
                    continue
        self.samples.append((time.monotonic(), pids, total))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> GroupWatch:
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def poke(host: str, port: int, path: str, timeout: float) -> str:
    """One request on a new connection; what the client saw: a status, or how it failed."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        resp.read()
        return str(resp.status)
    except TimeoutError:
        return "timeout"
    except (http.client.RemoteDisconnected, ConnectionResetError, http.client.IncompleteRead):
        return "closed without an answer"
    except OSError as exc:
        return f"error: {exc.strerror or exc}"
    finally:
        conn.close()


def poke_later(host: str, port: int, path: str, timeout: float, into: dict[str, Any]) -> threading.Thread:
    """``poke`` in a thread (a hang blocks it); the outcome lands in ``into[path]``."""
    thread = threading.Thread(target=lambda: into.__setitem__(path, poke(host, port, path, timeout)), daemon=True)
    thread.start()
    return thread


@dataclass(kw_only=True)
class Target:
    """What an injection may touch: the server's address, its leader process, and a place for notes."""

    host: str
    port: int
    proc: subprocess.Popen[bytes]
    notes: dict[str, Any] = field(default_factory=dict)
    threads: list[threading.Thread] = field(default_factory=list)


Inject = Callable[[Target], None]


@dataclass(frozen=True, kw_only=True, slots=True)
class Observed:
    result: OpenLoopResult
    fault_at_s: float
    samples: list[tuple[float, frozenset[int], int]]  # (s on the timeline, pids, PSS bytes)
    notes: dict[str, Any]


@contextmanager
def serve(settings: Settings, mode: servers.Mode, extra: Sequence[str], log: Path,
          env: dict[str, str], cpus: frozenset[int] | None = None) -> Iterator[tuple[Target, tuple[str, ...]]]:
    """The mode running with ``extra`` options, ready; on ``cpus`` if given (its whole group, once ready)."""
    port = free_port(settings.host)
    app = settings.app.spec_for(mode.interface) if settings.app else None
    argv = [*mode.argv(host=settings.host, port=port, workers=settings.workers, app=app), *extra]
    path, must_be_200 = ("/health", True)
    if settings.app and settings.request:
        path, must_be_200 = userapp.ready_probe(settings.app, {settings.request.name: settings.request})
    with running(argv, log_path=log, env=env, cwd=ROOT, cpus=set(cpus) if cpus else None) as proc:
        wait_ready(proc, settings.host, port, log_path=log, deadline_s=30, path=path, any_answer=not must_be_200)
        if settings.request:  # a user's request that answers wrong would make every fault look like lost requests
            verify(settings.host, port, settings.request)
        if cpus:
            for pid in group_members(proc.pid):
                with suppress(OSError):  # a worker may exit meanwhile
                    os.sched_setaffinity(pid, cpus)
        yield Target(host=settings.host, port=port, proc=proc), tuple(argv)


def load_probe(settings: Settings, path: str | None = None) -> Probe:
    """What the steady load sends: GET ``path``, else the user's request, else the sample /plaintext."""
    if path is None and settings.request is not None:
        return settings.request.probes[0]
    return Probe(method="GET", path=path or "/plaintext")


def under_load(settings: Settings, mode: servers.Mode, target: Target, inject: Inject, workdir: Path, *,
               path: str | None = None, rate: float | None = None, duration: float | None = None,
               pss: bool = False) -> Observed:
    """Steady open-loop load on ``path`` (None: :func:`load_probe`'s request); ``inject`` runs ``settings.lead`` s
    in. Bounded by the generator's own schedule plus its timeout, and a margin."""
    rate = rate or settings.rate(mode)
    duration = duration or settings.duration
    timeout = settings.request_timeout(mode)
    out = workdir / "openloop.json"
    probe = load_probe(settings, path)
    body_file = None
    if probe.body:
        workdir.mkdir(parents=True, exist_ok=True)
        body_file = workdir / "body"
        body_file.write_bytes(probe.body)
    argv = openloop_command(f"http://{target.host}:{target.port}{probe.path}", duration=duration, out=out, rate=rate,
                            connections=32, timeout=timeout, method=probe.method, headers=probe.headers,
                            body_file=body_file)
    with GroupWatch(target.proc.pid, interval=0.25 if pss else 0.1, pss=pss) as watch, \
            running(argv, log_path=workdir / "openloop.log", cwd=ROOT) as gen:
        time.sleep(settings.lead + 0.3)  # the generator's own start-up (~0.3 s) comes first
        injected_at = time.monotonic()
        inject(target)
        try:
            gen.wait(timeout=duration + timeout + 30)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"the generator did not finish\n{log_tail(workdir / 'openloop.log')}") from None
    if gen.returncode != 0:
        raise RuntimeError(f"the generator failed ({gen.returncode})\n{log_tail(workdir / 'openloop.log')}")
    result = parse_result(out)
    origin = float(result.timeline["origin_monotonic"])
    samples = [(round(t - origin, 3), pids, mem) for t, pids, mem in watch.samples]
    return Observed(result=result, fault_at_s=round(injected_at - origin, 3), samples=samples, notes=target.notes)


# --- reading a timeline -----------------------------------------------------------------------------------------------


def lost(result: OpenLoopResult) -> int:
    """Requests of the load that did not get a 2xx answer (unsent ones at the cut-off included)."""
    return result.scheduled - result.ok


def recovery_s(observed: Observed, rate: float) -> float | None:
    """Seconds from the fault until the load is served in full again, and stays so to the schedule's end.

    "In full": over a window of at least 0.3 s (and 3 expected requests), no failure and at least 70%
    of the offered requests answered. None: not back by the end of the schedule.
    """
    tl = observed.result.timeline
    step = float(tl["step_s"])
    ok, failed = tl["ok"], tl["failed"]
    width = max(3, round(max(0.3, 3.0 / rate) / step))
    end = int(observed.result.duration_s / step)
    first = int(observed.fault_at_s / step)
    need = 0.7 * rate * step * width

    def good(i: int) -> bool:
        window = range(i, min(i + width, end))
        fails = sum(int(failed[j]) for j in window if j < len(failed))
        oks = sum(int(ok[j]) for j in window if j < len(ok))
        return fails == 0 and oks >= need * len(window) / width

    if end - width <= first:
        return None
    recovered: int | None = None
    for i in range(first, end - width + 1):
        # The latest start of an unbroken run of good windows that lasts to the end.
        recovered = (i if recovered is None else recovered) if good(i) else None
    if recovered is None:
        return None
    return round(max(0.0, recovered * step - observed.fault_at_s), 2)


def process_counts(observed: Observed) -> list[tuple[float, int]]:
    return [(t, len(pids)) for t, pids, _ in observed.samples]


def failures(result: OpenLoopResult) -> dict[str, int]:
    """How the load's failed requests ended (engine.FAILURE_KINDS), and ``unsent``: scheduled, never sent by the
    schedule's end (a server that stops accepting leaves the generator's connections busy)."""
    by_kind = {kind: sum(counts) for kind, counts in result.timeline.get("failed_by", {}).items()}
    unsent = lost(result) - sum(by_kind.values())
    return {**by_kind, **({"unsent": unsent} if unsent > 0 else {})}


def new_processes(observed: Observed) -> int:
    """Processes first seen after the fault: respawns a process count sampled every 0.1 s can miss (a worker
    replaced between two samples leaves the count unchanged, but not its pid)."""
    before = frozenset().union(*(p for t, p, _ in observed.samples if t < observed.fault_at_s))
    after = frozenset().union(*(p for t, p, _ in observed.samples if t >= observed.fault_at_s))
    return len(after - before)


def load_record(fault: str, mode: servers.Mode, observed: Observed, rate: float, **extra: Any) -> FaultRecord:
    result = observed.result
    return FaultRecord(
        fault=fault, mode=mode.name, status="ok", requests_lost=lost(result),
        recovery_s=recovery_s(observed, rate), offered_rate=rate, fault_at_s=observed.fault_at_s,
        timeline={k: result.timeline[k] for k in ("step_s", "ok", "failed", "failed_by") if k in result.timeline},
        processes=tuple(process_counts(observed)),
        details={"scheduled": result.scheduled, "errors": result.errors, "latency_ms": result.latency_ms,
                 "failures": failures(result), "new_processes": new_processes(observed),
                 **observed.notes, **extra.pop("details", {})},
        **extra)


def baseline(observed: Observed) -> int:
    """Processes in the group before the fault (the median of the samples then)."""
    before = [len(p) for t, p, _ in observed.samples if t < observed.fault_at_s] or [0]
    return int(statistics.median(before))


def lost_text(record: FaultRecord) -> str:
    """``3 lost (2 reset, 1 timeout)``: the failed requests and how they ended."""
    kinds = {k: n for k, n in record.details.get("failures", {}).items() if n}
    split = f" ({', '.join(f'{n} {k}' for k, n in kinds.items())})" if kinds else ""
    return f"{record.requests_lost} lost{split}"


def describe_recovery(record: FaultRecord, never: str) -> str:
    # Nothing lost says more than a recovery time: a slow mode's (cgi's 2/s) window to judge recovery may not
    # fit in a short run after the fault.
    if not record.requests_lost:
        return "no request lost"
    if record.recovery_s is None:
        return never
    return f"recovers in {record.recovery_s:.1f} s"


def first_gone_s(observed: Observed, leader: int) -> float | None:
    """Seconds from the fault until the first process that ran before it is gone (None: none goes)."""
    before = pids_before(observed) - {leader}
    for t, pids, _ in observed.samples:
        if t >= observed.fault_at_s and before - pids:
            return round(t - observed.fault_at_s, 2)
    return None


def pids_after(observed: Observed) -> frozenset[int]:
    return observed.samples[-1][1] if observed.samples else frozenset()


def pids_before(observed: Observed) -> frozenset[int]:
    before = [p for t, p, _ in observed.samples if t < observed.fault_at_s]
    return before[-1] if before else frozenset()


def send_signal(target: Target, sig: signal.Signals) -> None:
    try:
        os.kill(target.proc.pid, sig)
    except ProcessLookupError:
        target.notes["signal"] = "the server was already gone"


# --- the faults -------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Case:
    """Everything one fault against one mode needs: settings, mode, where its files go, the server's env."""

    settings: Settings
    mode: servers.Mode
    workdir: Path
    env: dict[str, str]

    @property
    def log(self) -> Path:
        return self.workdir / "server.log"


Fault = Callable[[Case], FaultRecord]


def not_applicable(case: Case, fault: str, why: str) -> FaultRecord:
    return FaultRecord(fault=fault, mode=case.mode.name, status="n/a", verdict=f"not applicable: {why}")


def not_offered(case: Case, fault: str, what: str) -> FaultRecord:
    """The server lacks what the fault exercises (as registered in servers.MODES): a fact about it, not a failure."""
    return FaultRecord(fault=fault, mode=case.mode.name, status="not offered",
                       verdict=f"not offered: {case.mode.name} has no {what} (as registered in servers.MODES)")


def _crash(how: str, fault: str) -> Fault:
    def run(case: Case) -> FaultRecord:
        with serve(case.settings, case.mode, (), case.log, case.env) as (target, argv):
            def inject(t: Target) -> None:
                t.threads.append(poke_later(t.host, t.port, f"/fault/crash?how={how}", 5.0, t.notes))

            observed = under_load(case.settings, case.mode, target, inject, case.workdir)
        rate = case.settings.rate(case.mode)
        before = baseline(observed)
        after_min = min((n for t, n in process_counts(observed) if t >= observed.fault_at_s), default=before)
        record = load_record(fault, case.mode, observed, rate, command=argv,
                             details={"processes_before": before, "processes_min_after": after_min})
        never = "never recovers: capacity stays down until the end"
        own = observed.notes.get(f"/fault/crash?how={how}", "no outcome")
        respawned = "" if case.mode.fork_per_request else f", {record.details['new_processes']} new"
        return dataclasses.replace(record, verdict=f"{describe_recovery(record, never)} (the crashing request: {own}); "
                                   f"{lost_text(record)} of the load; processes {before} -> {after_min} "
                                   f"-> {process_counts(observed)[-1][1]}{respawned}")

    return run


def _hang(fault: str, path: str) -> Fault:
    """A request that never returns: ``path`` formatted with the seconds it must last (an hour for ``hang``; for
    ``spin``, busy in Python, the load's length, so it ends with the run)."""

    def run(case: Case) -> FaultRecord:
        return _hung(case, fault, path)

    return run


def _hung(case: Case, fault: str, path: str) -> FaultRecord:
    s = case.settings
    flag = case.mode.worker_timeout_flag
    extra = (flag, str(s.hang_timeout)) if flag else ()
    # Beyond the timeout: the server's grace before SIGKILL (prefork's --kill-grace is 2 s), and time
    # to see the load come back.
    duration = max(s.duration, s.lead + s.hang_timeout + 4.0)
    with serve(s, case.mode, extra, case.log, case.env) as (target, argv):
        def inject(t: Target) -> None:
            t.threads.append(poke_later(t.host, t.port, path.format(s=round(duration + 5)), duration + 5, t.notes))

        observed = under_load(s, case.mode, target, inject, case.workdir, duration=duration)
        # The hung process would otherwise hold a graceful stop for its whole grace period.
        os.killpg(target.proc.pid, signal.SIGKILL)
    rate = s.rate(case.mode)
    record = load_record(fault, case.mode, observed, rate, command=argv,
                         details={"worker_timeout_s": s.hang_timeout if flag else None})
    gone = first_gone_s(observed, target.proc.pid)
    # Clients whose requests sit on the hung process time out (after 1 s here) and reconnect, so the
    # load can come back before, or without, the server replacing the process.
    killed = (f"the hung process is killed after {gone:.1f} s" if gone is not None
              else "the hung process is never killed" + ("" if flag else " (the mode offers no worker timeout)"))
    if case.mode.fork_per_request:
        # Processes come and go with every request, so a pid that vanished says nothing: the hung
        # one is the extra process at the end.
        gone = None
        still = process_counts(observed)[-1][1] > baseline(observed)
        killed = "the hung process is still there at the end" if still else "the hung process is gone by the end"
    if record.recovery_s is not None and not record.requests_lost:
        verdict = f"no request lost: the other processes or threads serve beside the hung request; {killed}"
    elif record.recovery_s is not None:
        verdict = f"load back in {record.recovery_s:.1f} s; {killed}"
    else:
        verdict = f"never recovers; {killed}"
    return dataclasses.replace(record, verdict=f"{verdict}; {lost_text(record)}",
                               details={**record.details, "hung_process_gone_s": gone,
                                        "timeout_offered": flag is not None})


def app_error(case: Case) -> FaultRecord:
    with serve(case.settings, case.mode, (), case.log, case.env) as (target, argv):
        def inject(t: Target) -> None:
            t.notes["statuses"] = [poke(t.host, t.port, "/fault/error", 5.0) for _ in range(5)]

        observed = under_load(case.settings, case.mode, target, inject, case.workdir)
    record = load_record("error", case.mode, observed, case.settings.rate(case.mode), command=argv)
    statuses = sorted(set(observed.notes["statuses"]))
    # A process per request is new anyway; for the others, the same pids before and after is survival.
    survived = pids_before(observed) <= pids_after(observed)
    fate = ("a new process per request anyway" if case.mode.fork_per_request
            else "the process survives" if survived else "the process is replaced")
    verdict = (f"answers {', '.join(statuses)}; {fate}; "
               f"{record.requests_lost} of the load lost")
    return dataclasses.replace(record, verdict=verdict, details={
        **record.details, "survived": survived, "process_per_request": case.mode.fork_per_request})


def state_leak(case: Case) -> FaultRecord:
    n = 20
    with serve(case.settings, case.mode, (), case.log, case.env) as (target, argv):
        answers = []
        for i in range(n):
            status, _, body = _get(target, f"/fault/state?set=request-{i}")
            answers.append(json.loads(body) if status == "200" else {"status": status})
    saw = sum(1 for a in answers if a.get("previous"))
    pids = len({a.get("pid") for a in answers})
    verdict = (f"leaks state: {saw} of {n} requests saw an earlier request's value ({pids} processes answered)"
               if saw else f"isolated: no request saw another's value ({pids} processes answered)")
    return FaultRecord(fault="state", mode=case.mode.name, status="ok", verdict=verdict, command=argv,
                       details={"requests": n, "saw_earlier_state": saw, "processes": pids})


def _get(target: Target, path: str) -> tuple[str, dict[str, str], bytes]:
    conn = http.client.HTTPConnection(target.host, target.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return str(resp.status), dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def _leak(recycle: bool, by_memory: bool = False) -> Fault:
    fault = "leak+rss" if by_memory else "leak+recycle" if recycle else "leak"

    def run(case: Case) -> FaultRecord:
        s, mode = case.settings, case.mode
        flag = mode.max_rss_flag if by_memory else mode.max_requests_flag
        if recycle and mode.fork_per_request:
            return not_applicable(case, fault, "a process serves one request and exits; nothing to recycle")
        if recycle and not flag:
            return not_offered(case, fault, "memory-triggered recycling (reload-on-rss)" if by_memory
                               else "request-count recycling (max-requests)")
        extra: tuple[str, ...] = ()
        if recycle and flag:
            extra = (flag, str(worker_rss_mb(case) + s.rss_growth_mb if by_memory else s.max_requests))
        rate = s.leak_rate(mode)
        duration = min(s.leak_requests / rate, s.leak_max_s)
        with serve(s, mode, extra, case.log, case.env) as (target, argv):
            observed = under_load(s, mode, target, lambda t: None, case.workdir, path="/fault/leak?kb=16",
                                  rate=rate, duration=duration, pss=True)
        return _leak_record(fault, case, observed, rate, argv, recycle)

    return run


def _leak_record(fault: str, case: Case, observed: Observed, rate: float, argv: tuple[str, ...],
                 recycle: bool) -> FaultRecord:
    tl = observed.result.timeline
    step, ok = float(tl["step_s"]), tl["ok"]
    pss = []  # (requests answered so far, PSS MB of the group)
    for t, _, mem in observed.samples:
        done = sum(ok[: max(0, int(t / step))])
        if mem:
            pss.append((done, round(mem / 2**20, 2)))
    record = load_record(fault, case.mode, observed, rate, command=argv, details={
        "pss": pss, "kb_per_request": 16,
        "max_requests": case.settings.max_requests if fault == "leak+recycle" else None,
        "recycle_option": list(argv[-2:]) if recycle else None})
    first, last = (pss[0][1], pss[-1][1]) if pss else (0.0, 0.0)
    peak = max((m for _, m in pss), default=0.0)
    served = observed.result.ok
    verdict = (f"PSS {first:.0f} -> {last:.0f} MB (peak {peak:.0f}) over {served} requests; "
               f"p99 {observed.result.latency_ms.get('p99')} ms; {record.requests_lost} lost")
    return dataclasses.replace(record, recovery_s=None, verdict=verdict)


def worker_rss_mb(case: Case) -> int:
    """The largest RSS of a fresh server's workers (its processes but the leader), in MB: started once, without load,
    for a limit above it."""
    with serve(case.settings, case.mode, (), case.workdir / "rss-probe.log", case.env) as (target, _):
        time.sleep(0.3)
        sizes = []
        for pid in set(group_members(target.proc.pid)) - {target.proc.pid}:
            with suppress(psutil.Error):
                sizes.append(psutil.Process(pid).memory_info().rss)
    return math.ceil(max(sizes, default=0) / 2**20)


def blocking(case: Case) -> FaultRecord:
    """The same steady load twice on one server, while one client sends slow requests one after another: first
    requests that wait ``blocking_ms`` as a slow upstream does (``/io``: a sleep, which gevent's monkey-patching and
    an ASGI app's ``await`` make a yield), then requests that spend as long in SQLite's C code (``/fault/sqlite``),
    which nothing can turn into a yield. Threads and processes serve beside both; a green thread or an event loop
    serves beside the first and stalls for the second."""
    s, mode = case.settings, case.mode
    ms = s.blocking_ms
    rounds: dict[str, Observed] = {}
    with serve(s, mode, (), case.log, case.env) as (target, argv):
        for kind, path in (("wait", f"/io?ms={ms}"), ("sqlite", f"/fault/sqlite?ms={ms}")):
            stop = threading.Event()

            def inject(t: Target, path: str = path, stop: threading.Event = stop) -> None:
                def one_after_another() -> None:
                    answers: list[str] = []
                    while not stop.is_set():
                        answers.append(poke(t.host, t.port, path, 5.0))
                    t.notes[f"slow requests {path}"] = answers

                thread = threading.Thread(target=one_after_another, daemon=True)
                thread.start()
                t.threads.append(thread)

            workdir = case.workdir / kind
            workdir.mkdir(parents=True, exist_ok=True)
            try:
                rounds[kind] = under_load(s, mode, target, inject, workdir)
            finally:
                stop.set()
                for thread in target.threads:
                    thread.join(timeout=10)
                target.threads.clear()
    wait, sqlite = rounds["wait"], rounds["sqlite"]
    rate = s.rate(mode)
    record = load_record("blocking", mode, sqlite, rate, command=argv)
    p99 = {kind: o.result.latency_ms.get("p99") for kind, o in rounds.items()}
    lost_n = {kind: lost(o.result) for kind, o in rounds.items()}
    slow = {kind: len(o.notes.get(f"slow requests {path}", [])) for kind, o, path in (
        ("wait", wait, f"/io?ms={ms}"), ("sqlite", sqlite, f"/fault/sqlite?ms={ms}"))}
    verdict = (f"while one client's {ms} ms waits ran ({slow['wait']}): p99 {p99['wait']} ms, {lost_n['wait']} lost; "
               f"while its {ms} ms SQLite queries ran ({slow['sqlite']}): p99 {p99['sqlite']} ms, "
               f"{lost_n['sqlite']} lost")
    return dataclasses.replace(record, recovery_s=None, verdict=verdict, details={
        **record.details, "slow_ms": ms, "p99_ms": p99, "lost": lost_n, "slow_requests": slow,
        "wait_failures": failures(wait.result)})


def reload(case: Case) -> FaultRecord:
    sig = case.mode.reload_signal
    if sig is None and case.mode.fork_per_request:
        return not_applicable(case, "reload", "no long-lived workers to replace")
    if sig is None:
        return not_offered(case, "reload", "reload signal that replaces every worker")
    with serve(case.settings, case.mode, (), case.log, case.env) as (target, argv):
        observed = under_load(case.settings, case.mode, target, lambda t: send_signal(t, sig), case.workdir)
    old = pids_before(observed) - {target.proc.pid}
    replaced = old - pids_after(observed)
    renewed = next((t for t, pids, _ in observed.samples if t >= observed.fault_at_s and not replaced & pids), None)
    record = load_record("reload", case.mode, observed, case.settings.rate(case.mode), command=argv)
    # "Every worker": as many replaced as the pool has (uvicorn's group also holds a helper process
    # the reload keeps).
    all_new = renewed is not None and len(replaced) >= case.settings.workers
    took = f"every worker new after {renewed - observed.fault_at_s:.1f} s" if all_new and renewed is not None else (
        f"{len(replaced)} of {len(old)} processes replaced")
    return dataclasses.replace(record, verdict=f"{took}; {lost_text(record)} ({sig.name})", details={
        **record.details, "signal": sig.name, "workers_replaced": len(replaced), "workers_before": len(old)})


LEFT_GRACE_S = 2.0  # how long a process may take to follow its exited master before it counts as left behind


def shutdown(case: Case) -> FaultRecord:
    s = case.settings

    def inject(t: Target) -> None:
        sent = time.monotonic()
        send_signal(t, signal.SIGTERM)
        try:
            t.proc.wait(timeout=30)
            t.notes["exit_s"] = round(time.monotonic() - sent, 3)
            t.notes["exit_code"] = t.proc.returncode
        except subprocess.TimeoutExpired:
            t.notes["exit_s"] = None
        # A worker may still be on its way out when its master has gone (uvicorn's, seen here): count
        # what outlives the master, and what is still there LEFT_GRACE_S later, which is left behind.
        t.notes["left_at_exit"] = len(live_members(t.proc.pid))
        until = time.monotonic() + LEFT_GRACE_S
        while live_members(t.proc.pid) and time.monotonic() < until:
            time.sleep(0.05)
        t.notes["left_behind"] = len(live_members(t.proc.pid))

    # 150 ms requests at 10/s keep a sync pool of 2 about 75% busy, so SIGTERM finds requests in flight and queued
    # without overload; cgi gets its own slow rate. A user's request takes what it takes: the usual moderate rate.
    path, rate = (None, s.rate(case.mode)) if s.request else (f"/io?ms={SHUTDOWN_IO_MS}",
                                                              min(SHUTDOWN_RATE, s.rate(case.mode)))
    with serve(s, case.mode, (), case.log, case.env) as (target, argv):
        observed = under_load(s, case.mode, target, inject, case.workdir, path=path, rate=rate)
    record = load_record("shutdown", case.mode, observed, rate, command=argv)
    # Cut: requests the server had taken on (connected) and never answered. Refused and unsent ones came after
    # the listener closed, which is the point of a shutdown, not a loss.
    split = record.details["failures"]
    cut = sum(split.get(k, 0) for k in ("reset", "timeout", "5xx", "wrong"))
    tl = observed.result.timeline
    first = int(observed.fault_at_s / float(tl["step_s"]))
    completed_after = sum(tl["ok"][first:])
    notes = observed.notes
    exit_s = notes.get("exit_s")
    exited = f"exits in {exit_s:.1f} s" if exit_s is not None else "does not exit in 30 s"
    outlived = notes.get("left_at_exit") or 0
    how = ", ".join(f"{split[k]} {k}" for k in ("reset", "timeout", "5xx", "wrong") if split.get(k))
    verdict = (f"{exited}; {completed_after} answered after SIGTERM, {cut} cut{f' ({how})' if how else ''}; "
               f"{notes.get('left_behind')} processes left"
               + (f" ({outlived} still exiting as the master exited)" if outlived else ""))
    return dataclasses.replace(record, requests_lost=cut, recovery_s=None, verdict=verdict, details={
        **record.details, "completed_after_sigterm": completed_after, "cut": cut,
        "refused_after": observed.result.errors["connect"]})


class PgWatch:
    """Counts the PostgreSQL server's connections whose application_name is ``app`` every 0.2 s."""

    def __init__(self, url: str, app: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)
        self.app = app
        self.samples: list[tuple[float, int]] = []  # (monotonic, connections)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def count(self) -> int:
        row = self.conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                                (self.app,)).fetchone()
        n = int(row[0]) if row else 0
        self.samples.append((time.monotonic(), n))
        return n

    def sessions(self) -> int:
        """Sessions ever opened to the database (pg_stat_database.sessions, PostgreSQL 14+), this one included."""
        self.conn.execute("SELECT pg_stat_clear_snapshot()")
        row = self.conn.execute("SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
                                ).fetchone()
        return int(row[0]) if row and row[0] is not None else 0

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.count()

    def __enter__(self) -> PgWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.conn.close()


def until_zero(watch: PgWatch, deadline_s: float) -> float | None:
    """Seconds until no connection of the app is left (None: some still open after ``deadline_s``)."""
    start = time.monotonic()
    while time.monotonic() - start < deadline_s:
        if watch.count() == 0:
            return round(time.monotonic() - start, 2)
        time.sleep(0.05)
    return None


def cleanup(case: Case) -> FaultRecord:
    """Server-side PostgreSQL connections (pg_stat_activity) before, during (with recycling and a reload where the
    mode has them) and after a SIGTERM: does every exiting process close its connection?"""
    s, mode = case.settings, case.mode
    if not s.pg_url:
        return not_applicable(case, "cleanup", "no PostgreSQL server (install postgresql's server binaries)")
    from apps import db

    app = f"workerbench-{mode.name}"
    env = {**case.env, db.ENV_URL: f"{s.pg_url}?application_name={app}", db.ENV_STRATEGY: db.REUSE}
    flag = mode.max_requests_flag
    extra = (flag, str(CLEANUP_MAX_REQUESTS)) if flag else ()
    sig = mode.reload_signal
    rate = min(CLEANUP_RATE, s.rate(mode))
    with PgWatch(s.pg_url, app) as watch:
        before, opened0 = watch.count(), watch.sessions()
        with serve(s, mode, extra, case.log, env) as (target, argv):
            observed = under_load(s, mode, target, (lambda t: send_signal(t, sig)) if sig else (lambda t: None),
                                  case.workdir, path="/db", rate=rate)
            at_end = watch.count()
            send_signal(target, signal.SIGTERM)
            target.proc.wait(timeout=30)
            gone_s = until_zero(watch, 10.0)
        # The statistics are flushed at most once a second per backend (PGSTAT_MIN_INTERVAL).
        time.sleep(1.1)
        opened = watch.sessions() - opened0
    origin = float(observed.result.timeline["origin_monotonic"])
    series = [(round(t - origin, 2), n) for t, n in watch.samples]
    peak = max((n for _, n in series), default=0)
    record = load_record("cleanup", mode, observed, rate, command=argv, details={
        "connections": series, "before": before, "peak": peak, "at_end_of_load": at_end, "opened": opened,
        "zero_after_exit_s": gone_s, "max_requests": CLEANUP_MAX_REQUESTS if flag else None,
        "reload": sig.name if sig else None})
    closed = (f"all closed {gone_s:.1f} s after exit" if gone_s is not None
              else "connections still open 10 s after exit: leaked")
    during = [f"recycling every {CLEANUP_MAX_REQUESTS} requests"] if flag else []
    during += [sig.name] if sig else []
    return dataclasses.replace(record, recovery_s=None, verdict=(
        f"{before} -> peak {peak} -> {at_end} at the end of load ({', '.join(during) or 'no recycling or reload'}); "
        f"{closed}; {opened} connections opened for {observed.result.ok} requests"))


def _closed_loop_rps(case: Case, extra: Sequence[str], workdir: Path) -> tuple[float, int, tuple[str, ...]]:
    """2xx answers per second at full speed (closed loop, 32 connections), server and generator on their own CPUs;
    and how many processes the server started meanwhile (recycled workers)."""
    s = case.settings
    server_cpus, client_cpus = cpu_sets.default_cpus()
    with serve(s, case.mode, extra, case.log, case.env, cpus=server_cpus) as (target, argv), \
            GroupWatch(target.proc.pid, interval=0.1) as watch:
        probe = load_probe(s)
        result = run_openloop(f"http://{target.host}:{target.port}{probe.path}", duration=s.recycle_duration,
                              workdir=workdir, closed_loop=True, connections=32, cpus=set(client_cpus),
                              method=probe.method, body=probe.body, headers=probe.headers)
    started = frozenset().union(*(pids for _, pids, _ in watch.samples)) - watch.samples[0][1]
    return result.ok / result.duration_s, len(started), argv


def recycle_cost(case: Case) -> FaultRecord:
    """Throughput at full speed with and without recycling every RECYCLE_EVERY requests, alternating."""
    s, mode = case.settings, case.mode
    if mode.fork_per_request:
        return not_applicable(case, "recycle", "a process serves one request and exits; nothing to recycle")
    flag = mode.max_requests_flag
    if not flag:
        return not_offered(case, "recycle", "request-count recycling (max-requests)")
    rates: dict[str, list[float]] = {"without": [], "with": []}
    restarts: list[int] = []
    argv: tuple[str, ...] = ()
    for i in range(s.recycle_rounds):
        for label, extra in (("without", ()), ("with", (flag, str(RECYCLE_EVERY)))):
            rps, started, argv = _closed_loop_rps(case, extra, case.workdir / f"{label}-{i}")
            rates[label].append(round(rps, 1))
            if label == "with":
                restarts.append(started)
    without, with_ = statistics.median(rates["without"]), statistics.median(rates["with"])
    ratio = with_ / without if without else None
    cost = f"{100 * (1 - ratio):.0f}% fewer" if ratio is not None else "no figure"
    verdict = (f"{with_:,.0f} req/s recycling every {RECYCLE_EVERY:,} requests against {without:,.0f} without: "
               f"{cost} ({statistics.median(restarts):.0f} processes started per {s.recycle_duration:g} s)")
    return FaultRecord(fault="recycle", mode=mode.name, status="ok", verdict=verdict, command=argv, details={
        "rps_without": rates["without"], "rps_with": rates["with"], "ratio": ratio, "every": RECYCLE_EVERY,
        "processes_started": restarts, "duration_s": s.recycle_duration, "path": load_probe(s).path,
        "connections": 32})


# --- slow clients (a minimal slowloris and non-readers of our own; scripts/slowclients.py is the full tool) ---


SLOW_KINDS = ("slowloris", "nonreader")
# Non-readers ask for this much and take none of it; their receive buffer is kept tiny, so the
# server's send blocks (or queues) once its own send buffer is full.
NONREADER_KB = 2048


def open_slow(kind: str, host: str, port: int, path: str = "/plaintext") -> socket.socket | None:
    """One slow client: half a request line and headers (slowloris), or a full request it never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if kind == "nonreader":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(1.0)
        sock.connect((host, port))
        if kind == "slowloris":
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode())
        else:
            sock.sendall(f"GET /fault/big?kb={NONREADER_KB} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        return sock
    except OSError:
        # A server that stops accepting (its backlog full) is the measurement, not a harness failure.
        sock.close()
        return None


def slow_level(case: Case, target: Target, kind: str, k: int, held: list[socket.socket]) -> dict[str, Any]:
    """Bring the slow clients up to ``k`` and measure normal requests beside them."""
    s = case.settings
    opened = 0
    while len(held) < k:
        sock = open_slow(kind, target.host, target.port, load_probe(s).path)
        if sock is None:
            break
        held.append(sock)
        opened += 1
    observed = under_load(s, case.mode, target, lambda t: None, case.workdir / f"{kind}-{k}",
                          duration=s.slow_duration)
    r = observed.result
    return {"k": k, "held": len(held), "success_pct": round(100.0 * r.ok / max(1, r.scheduled), 1),
            "p99_ms": r.latency_ms.get("p99"), "errors": r.errors}


def slow_clients(case: Case) -> FaultRecord:
    s = case.settings
    results: dict[str, list[dict[str, Any]]] = {}
    argv: tuple[str, ...] = ()
    # Non-readers ask for the sample app's 2 MiB answer: a user's page may fit in the socket buffers, and then a
    # client that never reads ties up nothing.
    skipped = {"nonreader": NEEDS_SAMPLE_APP["slow: nonreader"]} if s.request else {}
    for kind in (k for k in SLOW_KINDS if k not in skipped):
        held: list[socket.socket] = []
        try:
            with serve(s, case.mode, (), case.log, case.env) as (target, argv):
                target_lead = dataclasses.replace(s, lead_s=0.3)
                sub = dataclasses.replace(case, settings=target_lead)
                results[kind] = [slow_level(sub, target, kind, k, held) for k in s.slow_levels_for(case.mode)]
                # Workers stuck on slow clients would hold a graceful stop for its whole grace period.
                os.killpg(target.proc.pid, signal.SIGKILL)
        finally:
            for sock in held:
                sock.close()
    worst = {kind: min(r["success_pct"] for r in levels) for kind, levels in results.items()}
    verdict = "; ".join(f"{kind}: " + ", ".join(f"K={r['k']} {r['success_pct']:g}%" for r in levels)
                        for kind, levels in results.items())
    needs = "".join(f"; {kind} not run: needs the sample app ({why})" for kind, why in skipped.items())
    return FaultRecord(fault="slow", mode=case.mode.name, status="ok", verdict=f"served {verdict}{needs}",
                       offered_rate=s.rate(case.mode), command=argv,
                       details={"levels": results, "worst_success_pct": worst, "needs_sample_app": skipped})


CLEANUP_MAX_REQUESTS = 100
# gunicorn's documentation suggests a max-requests in the thousands; 1,000 at the thousands of requests/s a
# pool serves here recycles a worker several times a second, which is where a respawn's cost shows.
RECYCLE_EVERY = 1_000
# A process per request also opens a PostgreSQL connection per request (~5-10 ms here): 50/s keeps
# fork inside its capacity, so the counts compare modes rather than overload.
CLEANUP_RATE = 50.0
SHUTDOWN_IO_MS = 150
SHUTDOWN_RATE = 10.0

# What each fault that cannot run on a user's app needs of the sample app (apps.faults); the others send only the
# load's request and signals, so they run on any app: recycle, reload, shutdown, slow (its slowloris half).
NEEDS_SAMPLE_APP = {
    "crash": "/fault/crash, a request that calls os._exit",
    "segv": "/fault/crash?how=segv, a request that dies of SIGSEGV",
    "hang": "/fault/hang, a request that blocks for an hour",
    "error": "/fault/error, a request that raises",
    "state": "/fault/state, a request that stores and reads a module-level value",
    "leak": "/fault/leak, a request that keeps 16 KiB",
    "leak+recycle": "/fault/leak, a request that keeps 16 KiB",
    "leak+rss": "/fault/leak, a request that keeps 16 KiB",
    "spin": "/fault/spin, a request that computes for the rest of the run",
    "blocking": "/io and /fault/sqlite, requests that wait or query SQLite for 300 ms",
    "cleanup": "/db and the sample app's PostgreSQL connection settings",
    "slow: nonreader": "/fault/big, a 2 MiB answer",
}

FAULTS: dict[str, Fault] = {
    "crash": _crash("exit", "crash"),
    "segv": _crash("segv", "segv"),
    "hang": _hang("hang", "/fault/hang?s=3600"),
    "spin": _hang("spin", "/fault/spin?s={s}"),
    "error": app_error,
    "state": state_leak,
    "leak": _leak(recycle=False),
    "leak+recycle": _leak(recycle=True),
    "leak+rss": _leak(recycle=True, by_memory=True),
    "recycle": recycle_cost,
    "reload": reload,
    "shutdown": shutdown,
    "cleanup": cleanup,
    "blocking": blocking,
    "slow": slow_clients,
}


# --- the run ----------------------------------------------------------------------------------------------------------


def run_case(fault: str, case: Case) -> FaultRecord:
    """One fault against one mode; a harness failure becomes a failed record, never a stopped run."""
    case.workdir.mkdir(parents=True, exist_ok=True)
    try:
        return FAULTS[fault](case)
    except (RuntimeError, OSError, ValueError, KeyError, subprocess.TimeoutExpired, psycopg.Error, LoadError,
            StartError, VerifyError) as exc:
        tail = log_tail(case.log)
        app = case.settings.app
        if app and (note := userapp.failure_note(app, case.log)):
            tail += "\n" + note
        return FaultRecord(fault=fault, mode=case.mode.name, status="failed",
                           error=f"{type(exc).__name__}: {exc}".splitlines()[0], log_tail=tail)


def write_records(path: Path, records: Sequence[FaultRecord], meta: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(faults_to_json(records, meta)))


@contextmanager
def postgres_if(wanted: bool) -> Iterator[str | None]:
    """A throwaway, seeded PostgreSQL server when ``wanted`` and installed; else None (cleanup is then n/a)."""
    from apps import db
    from scripts import pg

    if not wanted:
        yield None
        return
    try:
        pg.find_binaries()
    except pg.PostgresUnavailable as exc:
        print(f"faults: no PostgreSQL, the cleanup fault is not applicable: {exc}", flush=True)
        yield None
        return
    with pg.postgres() as url:
        db.seed_postgres(url)
        yield url


def run(settings: Settings, modes: Sequence[str], faults: Sequence[str], *,
        registry: Mapping[str, servers.Mode] = servers.MODES, meta: Mapping[str, Any] | None = None
        ) -> list[FaultRecord]:
    """Every fault against every mode (``registry`` names them: a user's app may add MODE+a2wsgi entries);
    ``meta`` goes into faults.json beside what the run records itself."""
    with postgres_if("cleanup" in faults) as url:
        return _run(dataclasses.replace(settings, pg_url=url), modes, faults, registry, meta or {})


def _run(settings: Settings, modes: Sequence[str], faults: Sequence[str], registry: Mapping[str, servers.Mode],
         extra: Mapping[str, Any]) -> list[FaultRecord]:
    from apps import db

    settings.out.mkdir(parents=True, exist_ok=True)
    db_path = db.create(settings.out / "world.sqlite")
    env = server_env(db_path)
    if settings.app:
        env = userapp.server_env(settings.app, env, ROOT)
    records: list[FaultRecord] = []
    started = time.monotonic()
    meta = {"quick": settings.quick, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "modes": list(modes), "faults": list(faults), "workers": settings.workers,
            "environment": environment.environment(), **extra}
    try:
        for fault in faults:
            for name in modes:
                case = Case(settings=settings, mode=registry[name], env=env,
                            workdir=settings.out / "logs" / f"{fault}-{name}")
                t0 = time.monotonic()
                record = run_case(fault, case)
                records.append(record)
                print(f"faults: {fault:<13} {name:<14} {time.monotonic() - t0:5.1f} s  "
                      f"{record.verdict or record.error}", flush=True)
                write_records(settings.out / "faults.json", records, meta)
    finally:
        db_path.unlink(missing_ok=True)
    print(f"faults: {len(records)} cases in {time.monotonic() - started:.0f} s", flush=True)
    return records


def _names(text: str | None, valid: Sequence[str], what: str) -> list[str]:
    if not text:
        return list(valid)
    names = [n.strip() for n in text.split(",") if n.strip()]
    wrong = [n for n in names if n not in valid]
    if wrong:
        raise SystemExit(f"faults: unknown {what} {', '.join(wrong)}; valid: {', '.join(valid)}")
    return names


def for_user_app(app: userapp.UserApp, request: Scenario, modes: Sequence[str], faults: Sequence[str]
                 ) -> tuple[list[str], dict[str, servers.Mode], list[str], dict[str, Any]]:
    """The modes that can serve the user's app (as the bench names them), the registry that holds them, the faults
    that run on any app, and what faults.json records of the rest; raises ValueError when nothing would run."""
    asked = [(m, app.not_applicable(servers.MODES[m])) for m in modes]
    serving = userapp.adapted_modes(app, servers.MODES, tuple(m for m, why in asked if why is None))
    runnable = [f for f in faults if f not in NEEDS_SAMPLE_APP]
    if not serving:
        raise ValueError("no mode asked for can serve your app: " + "; ".join(f"{m} {why}" for m, why in asked))
    if not runnable:
        anywhere = ", ".join(f for f in FAULTS if f not in NEEDS_SAMPLE_APP)
        raise ValueError(f"{', '.join(faults)}: need the sample app's fault endpoints; the faults that run on your "
                         f"app: {anywhere}")
    needs = {f: NEEDS_SAMPLE_APP[f] for f in faults if f in NEEDS_SAMPLE_APP}
    if "slow" in faults:
        needs["slow: nonreader"] = NEEDS_SAMPLE_APP["slow: nonreader"]
    meta = {"app": app.describe(), "request": request.summary, "needs_sample_app": needs,
            "not_applicable": {m: why for m, why in asked if why is not None}}
    return list(serving), {**servers.MODES, **serving}, runnable, meta


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.faults", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short loads (about 4 minutes for everything)")
    p.add_argument("--modes", type=plan.modes_argument(servers.MODES), default=servers.MODE_SETS["default"],
                   help="modes and mode sets (default, all, wsgi, asgi), comma-separated; default: "
                        f"{', '.join(servers.MODE_SETS['default'])}")
    p.add_argument("--faults", help=f"comma-separated, default all: {', '.join(FAULTS)}")
    p.add_argument("--out", type=Path, help="run folder (default results/faults-<UTC time>)")
    userapp.add_arguments(p, open_loop_help="the faults' steady load sends GET PATH (default: the first request of "
                          "--scenario-file, else of --paths)")
    args = p.parse_args(argv)
    modes = list(args.modes)
    faults = _names(args.faults, list(FAULTS), "fault")
    out = args.out or ROOT / "results" / time.strftime("faults-%Y%m%dT%H%M%SZ", time.gmtime())
    settings = Settings(quick=args.quick, out=out)
    registry: Mapping[str, servers.Mode] = servers.MODES
    meta: dict[str, Any] = {}
    try:
        user = userapp.from_args(args)
        if user is not None:
            request = userapp.load_request(user[1])
            modes, registry, faults, meta = for_user_app(user[0], request, modes, faults)
            settings = dataclasses.replace(settings, app=user[0], request=request)
    except (ScenarioFileError, ValueError) as exc:
        p.error(str(exc))
    for mode, why in meta.get("not_applicable", {}).items():
        print(f"faults: {mode}: not applicable: {why}", flush=True)
    for fault, needs in meta.get("needs_sample_app", {}).items():
        print(f"faults: {fault}: needs the sample app ({needs})", flush=True)
    run(settings, modes, faults, registry=registry, meta=meta)
    fault_report.render_run(out)
    print(f"faults: wrote {out / 'faults.md'} and {out / faulthtml.PAGE_NAME}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
