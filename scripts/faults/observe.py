"""Observing a server under load: start a mode as the bench does, keep steady open-loop load on it, inject a
fault a moment in, and sample its process group beside the generator's timeline."""

from __future__ import annotations

import http.client
import os
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from loadtests.scenarios import Probe
from scripts.common.procs import free_port, group_members, live_members, log_tail, running, wait_ready
from scripts.faults.settings import ROOT, Settings
from scripts.load.engine_process import OpenLoopResult, openloop_command, parse_result
from scripts.modes import Mode
from scripts.plan import userapp
from scripts.run.verify import verify


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
class Server:
    """What an injection may touch: the server's address, its leader process, and a place for notes."""

    host: str
    port: int
    proc: subprocess.Popen[bytes]
    notes: dict[str, Any] = field(default_factory=dict)
    threads: list[threading.Thread] = field(default_factory=list)


Inject = Callable[[Server], None]


@dataclass(frozen=True, kw_only=True, slots=True)
class Observed:
    result: OpenLoopResult
    fault_at_s: float
    samples: list[tuple[float, frozenset[int], int]]  # (s on the timeline, pids, PSS bytes)
    notes: dict[str, Any]


@contextmanager
def serve(settings: Settings, mode: Mode, extra: Sequence[str], log: Path,
          env: dict[str, str], cpus: frozenset[int] | None = None) -> Iterator[tuple[Server, tuple[str, ...]]]:
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
        yield Server(host=settings.host, port=port, proc=proc), tuple(argv)


def load_probe(settings: Settings, path: str | None = None) -> Probe:
    """What the steady load sends: GET ``path``, else the user's request, else the sample /plaintext."""
    if path is None and settings.request is not None:
        return settings.request.probes[0]
    return Probe(method="GET", path=path or "/plaintext")


def under_load(settings: Settings, mode: Mode, target: Server, inject: Inject, workdir: Path, *,
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
