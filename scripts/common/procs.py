"""Processes the harness starts, and the guarantee that none outlives it.

Every server runs as the leader of a new session (so a process group of its
own); :func:`running` stops the whole group on any exit path: SIGTERM, a
grace period, SIGKILL, and a final check that no member of the group is left.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import psutil

STOP_GRACE_S = 10.0


class StartError(Exception):
    """A server did not become ready; the message carries its log's tail."""


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def tail(text: str, lines: int = 30) -> str:
    """The last ``lines`` lines of ``text``: what a failure report shows of a log."""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def schedstat_wait_s(path: str = "/proc/self/schedstat") -> float | None:
    """Seconds a task has spent ready to run but waiting for a CPU, from a Linux schedstat file (the process's
    main thread by default; ``/proc/PID/task/TID/schedstat`` for any thread), or None where there is none."""
    try:
        with open(path) as f:
            return int(f.read().split()[1]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return ""
    return tail(text, lines)


def group_members(pgid: int) -> list[int]:
    members = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) == pgid:
                members.append(pid)
        except (ProcessLookupError, PermissionError):
            continue
    return members


def live_members(pgid: int) -> list[int]:
    """The group's members that still run: a zombie has exited and holds nothing but its pid.

    An orphaned zombie (a child that exited after its parent) waits to be reaped by PID 1, which in
    some containers does that only every second or two: waiting for it cost 1.7 s a cell with
    uvicorn and hypercorn, whose workers outlive the master by a moment.
    """
    alive = []
    for pid in group_members(pgid):
        try:
            if psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                alive.append(pid)
        except psutil.Error:  # gone while we looked, or not ours to read
            continue
    return alive


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def stop_group(proc: subprocess.Popen[bytes], grace: float = STOP_GRACE_S) -> list[int]:
    """Stop ``proc`` and its whole process group; returns pids still alive (should be none)."""
    pgid = proc.pid
    if proc.poll() is None or live_members(pgid):
        _signal_group(pgid, signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
    deadline = time.monotonic() + grace
    while live_members(pgid) and time.monotonic() < deadline:
        # The leader may be gone while its children still drain; give them the same grace.
        time.sleep(0.02)
    if live_members(pgid) or proc.poll() is None:
        _signal_group(pgid, signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 5.0
    left = live_members(pgid)
    while left and time.monotonic() < deadline:
        _signal_group(pgid, signal.SIGKILL)
        time.sleep(0.05)
        left = live_members(pgid)
    return left


class HeldSigint:
    """SIGINT held back from creation to :meth:`release` (in the main thread; no other thread sees signals).

    A Ctrl-C inside ``subprocess.Popen`` (it waits for the child's exec) raises before Popen returns the process,
    which then, in a session of its own, outlives the harness: seen once in about eight runs of the faults suite's
    Ctrl-C test under load (a uvicorn left running). :func:`running` holds SIGINT while it starts a process and
    releases it once its clean-up is armed."""

    def __init__(self) -> None:
        self.pending: tuple[int, FrameType | None] | None = None
        self.previous: Callable[[int, FrameType | None], Any] | int | None = None
        self.holding = threading.current_thread() is threading.main_thread()
        if self.holding:
            self.previous = signal.signal(signal.SIGINT, self._hold)

    def _hold(self, signum: int, frame: FrameType | None) -> None:
        self.pending = (signum, frame)

    def release(self) -> None:
        """Put the previous handler back, and hand it a SIGINT that came meanwhile."""
        if not self.holding:
            return
        self.holding = False
        signal.signal(signal.SIGINT, self.previous)
        if self.pending is not None and callable(self.previous):
            self.previous(*self.pending)


@contextmanager
def running(
    argv: Sequence[str],
    *,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    cpus: set[int] | None = None,
    grace: float = STOP_GRACE_S,
) -> Iterator[subprocess.Popen[bytes]]:
    """Start ``argv`` in a new process group, logging to ``log_path``; stop the group on exit (SIGTERM, then
    SIGKILL for what still runs ``grace`` seconds later)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    held = HeldSigint()
    try:
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                list(argv),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=dict(env) if env is not None else None,
                cwd=cwd,
            )
    except BaseException:
        held.release()
        raise
    try:
        held.release()  # a Ctrl-C that came while it started is raised here, where the group is stopped below
        if cpus:
            try:
                os.sched_setaffinity(proc.pid, cpus)
            except OSError:
                pass
        yield proc
    finally:
        left = stop_group(proc, grace)
        if left:
            raise RuntimeError(f"processes {left} of group {proc.pid} survived SIGKILL")


def get(host: str, port: int, path: str, *, method: str = "GET", body: bytes | None = None,
        timeout: float = 5.0, headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection: (status, lower-cased headers, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        conn.close()


def wait_ready(proc: subprocess.Popen[bytes], host: str, port: int, *, log_path: Path,
               deadline_s: float = 30.0, path: str = "/health", any_answer: bool = False) -> float:
    """Poll ``path`` until it answers 200 (any status with ``any_answer``); returns seconds waited. Raises
    :class:`StartError`."""
    start = time.monotonic()
    delay = 0.01
    last = "nothing answered"
    while True:
        code = proc.poll()
        if code is not None:
            raise StartError(f"server exited with code {code} before it was ready\n{log_tail(log_path)}")
        try:
            status, _, _ = get(host, port, path, timeout=1.0)
            if status == 200 or any_answer:
                return time.monotonic() - start
            last = f"it answered {status}"
        except (OSError, http.client.HTTPException) as exc:
            last = last if last.startswith("it answered") else f"nothing answered ({type(exc).__name__}: {exc})"
        if time.monotonic() - start > deadline_s:
            wanted = "any answer" if any_answer else "200"
            raise StartError(f"server not ready after {deadline_s:.0f}s: GET {path} on {host}:{port} wants {wanted}, "
                             f"and {last}\n{log_tail(log_path)}")
        time.sleep(delay)
        delay = min(0.1, delay * 1.5)


def pin_group(pgid: int, cpus: set[int] | frozenset[int]) -> int:
    """Pin every process of the group to ``cpus``; returns how many were pinned.

    The leader is pinned as it starts, so the workers it forks inherit its CPUs; this
    second pass catches any process created in the instant before that.
    """
    pinned = 0
    for pid in group_members(pgid):
        try:
            os.sched_setaffinity(pid, cpus)
            pinned += 1
        except OSError:
            continue
    return pinned


def group_affinity(pgid: int) -> frozenset[int]:
    """The union of the CPUs every process of the group may run on."""
    cpus: set[int] = set()
    for pid in group_members(pgid):
        try:
            cpus |= os.sched_getaffinity(pid)
        except OSError:
            continue
    return frozenset(cpus)
