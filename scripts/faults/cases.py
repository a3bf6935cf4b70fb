"""The faults, one function each, and their registry :data:`FAULTS`: each starts the mode, injects its fault
under load and turns what it saw into a :class:`scripts.records.records.FaultRecord`."""

from __future__ import annotations

import dataclasses
import http.client
import json
import math
import os
import signal
import statistics
import subprocess
import threading
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path

import psutil
import psycopg

from scripts.common import cpus as cpu_sets
from scripts.common.procs import group_members, live_members
from scripts.faults.observe import GroupWatch, Observed, Server, load_probe, poke, poke_later, serve, under_load
from scripts.faults.settings import Case, Fault
from scripts.faults.slowclients import slow_clients
from scripts.faults.timeline import (
    baseline,
    describe_recovery,
    failures,
    first_gone_s,
    load_record,
    lost,
    lost_text,
    pids_after,
    pids_before,
    process_counts,
    send_signal,
)
from scripts.load.engine_process import run_openloop
from scripts.records.records import FaultRecord

CLEANUP_MAX_REQUESTS = 100
# gunicorn's documentation suggests a max-requests in the thousands; 1,000 at the thousands of requests/s a
# pool serves here recycles a worker several times a second, which is where a respawn's cost shows.
RECYCLE_EVERY = 1_000
# A process per request also opens a PostgreSQL connection per request (~5-10 ms here): 50/s keeps
# fork inside its capacity, so the counts compare modes rather than overload.
CLEANUP_RATE = 50.0
SHUTDOWN_IO_MS = 150
SHUTDOWN_RATE = 10.0


def not_applicable(case: Case, fault: str, why: str) -> FaultRecord:
    return FaultRecord(fault=fault, mode=case.mode.name, status="n/a", verdict=f"not applicable: {why}")


def not_offered(case: Case, fault: str, what: str) -> FaultRecord:
    """The server lacks what the fault exercises (as registered in scripts.modes): a fact about it, not a failure."""
    return FaultRecord(fault=fault, mode=case.mode.name, status="not offered",
                       verdict=f"not offered: {case.mode.name} has no {what} (as registered in scripts.modes)")


def _crash(how: str, fault: str) -> Fault:
    def run(case: Case) -> FaultRecord:
        with serve(case.settings, case.mode, (), case.log, case.env) as (target, argv):
            def inject(t: Server) -> None:
                t.threads.append(poke_later(t.host, t.port, f"/fault/crash?how={how}", 5.0, t.notes))

            observed = under_load(case.settings, case.mode, target, inject, case.workdir)
        rate = case.settings.rate(case.mode)
        before = baseline(observed)
        after_min = min((n for t, n in process_counts(observed) if t >= observed.fault_at_s), default=before)
        record = load_record(fault, case.mode, observed, rate, command=argv,
                             details={"processes_before": before, "processes_min_after": after_min})
        never = "never recovers: capacity stays down until the end"
        own = observed.notes.get(f"/fault/crash?how={how}", "no outcome")
        respawned = "" if case.mode.process.fork_per_request else f", {record.details['new_processes']} new"
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
    flag = case.mode.faults.worker_timeout_flag
    extra = (flag, str(s.hang_timeout)) if flag else ()
    # Beyond the timeout: the server's grace before SIGKILL (prefork's --kill-grace is 2 s), and time
    # to see the load come back.
    duration = max(s.duration, s.lead + s.hang_timeout + 4.0)
    with serve(s, case.mode, extra, case.log, case.env) as (target, argv):
        def inject(t: Server) -> None:
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
    if case.mode.process.fork_per_request:
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
        def inject(t: Server) -> None:
            t.notes["statuses"] = [poke(t.host, t.port, "/fault/error", 5.0) for _ in range(5)]

        observed = under_load(case.settings, case.mode, target, inject, case.workdir)
    record = load_record("error", case.mode, observed, case.settings.rate(case.mode), command=argv)
    statuses = sorted(set(observed.notes["statuses"]))
    # A process per request is new anyway; for the others, the same pids before and after is survival.
    survived = pids_before(observed) <= pids_after(observed)
    fate = ("a new process per request anyway" if case.mode.process.fork_per_request
            else "the process survives" if survived else "the process is replaced")
    verdict = (f"answers {', '.join(statuses)}; {fate}; "
               f"{record.requests_lost} of the load lost")
    return dataclasses.replace(record, verdict=verdict, details={
        **record.details, "survived": survived, "process_per_request": case.mode.process.fork_per_request})


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


def _get(target: Server, path: str) -> tuple[str, dict[str, str], bytes]:
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
        flag = mode.faults.max_rss_flag if by_memory else mode.faults.max_requests_flag
        if recycle and mode.process.fork_per_request:
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

            def inject(t: Server, path: str = path, stop: threading.Event = stop) -> None:
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
    sig = case.mode.faults.reload_signal
    if sig is None and case.mode.process.fork_per_request:
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

    def inject(t: Server) -> None:
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
    flag = mode.faults.max_requests_flag
    extra = (flag, str(CLEANUP_MAX_REQUESTS)) if flag else ()
    sig = mode.faults.reload_signal
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
    if mode.process.fork_per_request:
        return not_applicable(case, "recycle", "a process serves one request and exits; nothing to recycle")
    flag = mode.faults.max_requests_flag
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
