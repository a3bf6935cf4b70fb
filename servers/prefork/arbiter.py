"""The master (arbiter): keeps the pool's workers alive and healthy, and acts on signals."""

from __future__ import annotations

import contextlib
import gc
import json
import logging
import os
import select
import signal
import socket
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field

from servers._signals import SignalQueue
from servers._startup import EXIT_APP_LOAD_FAILED, EXIT_BOOT_FAILED, EXIT_OK
from servers.parse import Limits
from servers.prefork.options import MAX_SLOTS, Options, log
from servers.prefork.scoreboard import STATE_BOOTING, STATE_NAMES, STATE_READY, Scoreboard
from servers.prefork.worker import Worker
from servers.wsgi import ServerInfo, WSGIApp

MASTER_SIGNALS = (
    signal.SIGCHLD,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGUSR1,
)
BOOT_BACKOFF_FIRST = 0.1
BOOT_BACKOFF_MAX = 5.0
# A fork() that fails (EAGAIN at RLIMIT_NPROC or the pid limit, ENOMEM) is retried after this, doubling per
# failure in a row: a limit that lifts is noticed within SPAWN_BACKOFF_MAX, and one log line per try.
SPAWN_BACKOFF_FIRST = 0.1
SPAWN_BACKOFF_MAX = 5.0


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}"



@dataclass
class WorkerRecord:
    pid: int
    generation: int
    slot: int
    started: float = field(default_factory=time.monotonic)
    kill_deadline: float | None = None  # set once the master has sent SIGTERM for a timeout



class Arbiter:
    """The master: keeps ``target`` workers alive and healthy, and acts on signals."""

    def __init__(self, listener: socket.socket, opts: Options, info: ServerInfo, limits: Limits,
                 app: WSGIApp | None = None) -> None:
        self.listener = listener
        self.opts = opts
        self.info = info
        self.limits = limits
        self.app = app  # preloaded (--preload), or None: each worker imports it
        self.target = max(1, opts.workers)
        self.workers: dict[int, WorkerRecord] = {}
        self.board = Scoreboard()
        # Rung by a worker that leaves connections in the accept queue for the others (see docs/explanation/prefork.md).
        self.doorbell = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.free_slots = list(range(MAX_SLOTS - 1, -1, -1))
        self.generation = 0
        self.retiring: set[int] = set()  # old generation, waiting for the new one to be ready
        self.signals: SignalQueue | None = None  # made in run(): handlers belong to the loop that dispatches
        self.stopping: str | None = None  # None, "graceful" or "fast"
        self.stop_deadline = 0.0
        self.boot_failures = 0
        self.spawn_failures = 0  # forks that failed in a row
        self.next_spawn = 0.0
        self.restarts = 0
        self.started = time.monotonic()
        self.status_written = 0.0
        self.exit_code = EXIT_OK

    # signals ---------------------------------------------------------------
    def handle_sigchld(self) -> None:
        self.reap()

    def handle_sigterm(self) -> None:
        self._begin_stop("graceful", self.opts.graceful_timeout, signal.SIGTERM)

    def handle_sigint(self) -> None:
        self._begin_stop("fast", 2.0, signal.SIGINT)

    handle_sigquit = handle_sigint

    def handle_sighup(self) -> None:
        old = {pid for pid, w in self.workers.items() if w.generation == self.generation}
        self.generation += 1
        self.retiring |= old
        log.info("SIGHUP: rolling restart; %d old workers retire once %d new ones are ready", len(old), self.target)

    def handle_sigttin(self) -> None:
        self.target += 1
        log.info("SIGTTIN: %d workers", self.target)

    def handle_sigttou(self) -> None:
        if self.target > 1:
            self.target -= 1
            log.info("SIGTTOU: %d workers", self.target)

    def handle_sigusr1(self) -> None:
        log.info("status %s", json.dumps(self.status()))

    # workers ---------------------------------------------------------------
    def _begin_stop(self, how: str, grace: float, sig: int) -> None:
        if self.stopping == "fast" or self.stopping == how:
            return
        log.info("%s shutdown of %d workers", how, len(self.workers))
        self.stopping = how
        self.stop_deadline = time.monotonic() + grace
        for pid in list(self.workers):
            self._kill(pid, sig)

    def _kill(self, pid: int, sig: int) -> None:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass

    def spawn(self) -> bool:
        """Fork one worker; False when fork() fails: the workers there are keep serving, the next try backs off."""
        slot = self.free_slots.pop()
        self.board.reset(slot, time.monotonic())
        try:
            pid = os.fork()
        except OSError as exc:
            self.board.free(slot)
            self.free_slots.append(slot)
            self.spawn_failures += 1
            delay = min(SPAWN_BACKOFF_MAX, SPAWN_BACKOFF_FIRST * 2 ** (self.spawn_failures - 1))
            self.next_spawn = time.monotonic() + delay
            log.error("cannot fork a worker (failure %d in a row): %s; keeping the %d workers there are, "
                      "retrying in %.2fs", self.spawn_failures, exc, len(self.workers), delay)
            return False
        if pid:
            self.workers[pid] = WorkerRecord(pid, self.generation, slot)
            if self.spawn_failures:
                log.warning("spawned a worker again after %d failed forks", self.spawn_failures)
                self.spawn_failures = 0
            return True
        try:
            if self.signals is not None:
                self.signals.close()  # the master's self-pipe and wakeup fd; the worker makes its own
            worker = Worker(self.listener, self.app, self.opts, self.info, self.limits, self.board, slot,
                            self.doorbell)
        except BaseException:
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)  # never return into the master's loop from a child
        worker.run()
        os._exit(1)  # not reached: run() ends the process

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            record = self.workers.pop(pid, None)
            if record is None:
                continue
            self.board.free(record.slot)
            self.free_slots.append(record.slot)
            self.retiring.discard(pid)
            cause = _describe(status)
            clean = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
            load_failed = os.WIFEXITED(status) and os.WEXITSTATUS(status) == EXIT_APP_LOAD_FAILED
            if self.stopping:
                log.info("worker %d exited (%s)", pid, cause)
                continue
            if record.generation == self.generation:
                self.restarts += 1
            if load_failed:
                self.boot_failures += 1
                delay = min(BOOT_BACKOFF_MAX, BOOT_BACKOFF_FIRST * 2 ** (self.boot_failures - 1))
                self.next_spawn = time.monotonic() + delay
                log.error(
                    "worker %d failed to load the app (%s); failure %d of %d, retrying in %.1fs",
                    pid, cause, self.boot_failures, self.opts.max_boot_failures, delay,
                )
            else:
                self.boot_failures = 0
                log.log(
                    logging.INFO if clean else logging.WARNING,
                    "worker %d exited (%s) after %.1fs", pid, cause, time.monotonic() - record.started,
                )

    def check_timeouts(self) -> None:
        """SIGTERM workers whose last beat is older than the timeout; SIGKILL them after the grace."""
        now = time.monotonic()
        for pid, record in self.workers.items():
            if record.kill_deadline is not None:
                if now >= record.kill_deadline:
                    log.error("worker %d ignored SIGTERM for %.1fs: SIGKILL", pid, self.opts.kill_grace)
                    self._kill(pid, signal.SIGKILL)
                    record.kill_deadline = float("inf")  # signalled for good; the reaper takes it from here
                continue
            state, beat, busy_since, _ = self.board.read(record.slot)
            silent = now - beat
            if silent <= self.opts.timeout:
                continue
            if state == STATE_BOOTING:
                what = "still loading the app"
            elif busy_since:
                what = f"in one request for {now - busy_since:.1f}s"
            else:
                what = "idle but not responding"
            log.error("worker %d timed out: silent for %.1fs, %s; SIGTERM", pid, silent, what)
            self._kill(pid, signal.SIGTERM)
            record.kill_deadline = now + self.opts.kill_grace

    def manage(self) -> None:
        if self.stopping:
            return
        if self.boot_failures >= self.opts.max_boot_failures:
            log.error("the app failed to load %d times in a row; giving up", self.boot_failures)
            self.exit_code = EXIT_BOOT_FAILED
            self._begin_stop("fast", 2.0, signal.SIGINT)
            return
        current = [pid for pid, w in self.workers.items() if w.generation == self.generation]
        if len(current) > self.target:
            for pid in sorted(current, key=lambda p: self.workers[p].started)[: len(current) - self.target]:
                self.workers[pid].generation = -1  # retiring: not counted, not signalled twice
                self._kill(pid, signal.SIGTERM)
        elif len(current) < self.target and time.monotonic() >= self.next_spawn:
            for _ in range(self.target - len(current)):
                if not self.spawn() or self.boot_failures:
                    break  # while failing, probe with one worker at a time
        if self.retiring:
            ready = sum(self.board.read(self.workers[pid].slot)[0] == STATE_READY for pid in current)
            if ready >= self.target:
                log.info("new workers ready: retiring %d old ones", len(self.retiring))
                for pid in self.retiring:
                    self._kill(pid, signal.SIGTERM)
                self.retiring.clear()

    # state -----------------------------------------------------------------
    def status(self) -> dict[str, object]:
        now = time.monotonic()
        workers = []
        for pid, record in sorted(self.workers.items()):
            state, beat, busy_since, served = self.board.read(record.slot)
            held, slow = self.board.connections(record.slot)
            workers.append({
                "pid": pid,
                "generation": record.generation,
                "state": STATE_NAMES.get(state, "?"),
                "age_s": round(now - record.started, 3),
                "requests": served,
                "connections": held,
                "slow_clients": slow,
                "busy_s": round(now - busy_since, 3) if busy_since else 0.0,
                "last_beat_s": round(now - beat, 3),
            })
        return {
            "master": os.getpid(),
            "uptime_s": round(now - self.started, 3),
            "target_workers": self.target,
            "restarts": self.restarts,
            "boot_failures": self.boot_failures,
            "stopping": self.stopping,
            "workers": workers,
        }

    def write_status(self, force: bool = False) -> None:
        path = self.opts.status_file
        if not path or (not force and time.monotonic() - self.status_written < 1.0):
            return
        # A temporary file created exclusively (O_EXCL, a random name) in the target's folder, renamed over
        # the target: a fixed name such as PATH.<pid>.tmp could be a symlink planted there, and open() would
        # write through it to wherever it points.
        folder, name = os.path.split(os.path.abspath(path))
        tmp = None
        try:
            fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
            with os.fdopen(fd, "w") as f:
                os.fchmod(f.fileno(), 0o644)  # as open() made it: the status is for whoever watches the server
                json.dump(self.status(), f)
            os.replace(tmp, path)
        except OSError as exc:
            log.error("cannot write status file %s: %s", path, exc)
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
        self.status_written = time.monotonic()

    # main loop -------------------------------------------------------------
    def run(self) -> int:
        signals = self.signals = SignalQueue(MASTER_SIGNALS)
        self.listener.setblocking(False)
        if self.app is not None and self.opts.gc_freeze:
            gc.collect()
            gc.freeze()  # copy-on-write friendly: workers never touch the preloaded objects' GC headers
        log.info("prefork master %d on %s:%d, %d workers", os.getpid(), self.info.host, self.info.port, self.target)
        try:
            while True:
                self.manage()
                self.write_status()
                timeout = 1.0
                if self.stopping:
                    timeout = max(0.0, min(0.1, self.stop_deadline - time.monotonic()))
                elif self.next_spawn > time.monotonic():
                    timeout = min(timeout, self.next_spawn - time.monotonic())
                elif self.retiring:
                    timeout = 0.05  # watch the new generation come up
                select.select([signals.fileno()], [], [], timeout)
                signals.drain()
                signals.dispatch(self)
                self.reap()
                if not self.stopping:
                    self.check_timeouts()
                if self.stopping:
                    if not self.workers:
                        self.write_status(force=True)
                        return self.exit_code
                    if time.monotonic() >= self.stop_deadline:
                        log.warning("grace over: killing %d workers", len(self.workers))
                        for pid in list(self.workers):
                            self._kill(pid, signal.SIGKILL)
                        self._wait_all()
                        return self.exit_code
        finally:
            signals.close()
            self.listener.close()
            os.close(self.doorbell)

    def _wait_all(self) -> None:
        deadline = time.monotonic() + 5.0
        while self.workers and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.01)

