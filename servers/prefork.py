"""A pre-fork WSGI server: ``python -m servers.prefork APP --bind HOST:PORT --workers N``.

Theory of operation
-------------------
The **master** binds the listening socket once, forks ``--workers`` worker
processes that inherit it, and from then on only supervises. Its loop sleeps on
a self-pipe that signal handlers write to (``signal.set_wakeup_fd``); handlers
only queue the signal, and the loop dispatches it to ``handle_<name>()``:

=========  ==================================================================
SIGCHLD    reap with ``waitpid(-1, WNOHANG)``, log the cause, respawn
SIGTERM    graceful: workers stop accepting, finish the request in progress,
           and are SIGKILLed if still alive after ``--graceful-timeout``
SIGINT     fast: workers are told to exit now (SIGQUIT does the same)
SIGHUP     rolling restart: a new generation is forked, then the old one is
           sent SIGTERM; all share one socket, so no connection is dropped
SIGTTIN    one worker more
SIGTTOU    one worker fewer (never below one)
SIGUSR1    log the status document (see below)
=========  ==================================================================

A **worker** loads the app (unless the master preloaded it with
``--preload``), then loops: wait for the listener to be readable, accept one
connection, serve it with :mod:`servers.http`, repeat. It exits after
``--max-requests`` requests (plus up to ``--max-requests-jitter``) so that a
leaking app's memory stays bounded, and the master replaces it.

Accept without a thundering herd: every worker waits in its own epoll set on
the shared socket registered with ``EPOLLEXCLUSIVE`` (Linux 4.5+, what nginx
uses), so the kernel wakes one waiting worker per new connection instead of
all of them; the listener is non-blocking, so a worker that loses a race gets
``EAGAIN`` and simply waits again. Unlike ``SO_REUSEPORT`` with a socket per
worker, a busy or stuck worker never owns a queue of its own: whoever is free
takes the next connection.

A worker whose app fails to import exits with ``EXIT_APP_LOAD_FAILED``; the
master then retries with a growing delay and gives up with
``EXIT_BOOT_FAILED`` after ``--max-boot-failures`` failures in a row, instead of
forking in a tight loop.

Health: master and workers share one anonymous ``mmap`` (a :class:`Scoreboard`),
one slot per worker: state (booting, ready), the ``time.monotonic()`` of its last
heartbeat, when its current request started, and requests served. A worker
beats each time its loop turns (at least once a second while idle) and again
as it starts every request, so a beat older than ``--timeout`` means the
worker is stuck: hung while idle, stopped (SIGSTOP), or inside one request for
longer than the timeout. The master checks every second, sends SIGTERM, and
SIGKILL after ``--kill-grace`` seconds if the worker is still there; the reaper
then replaces it. Writing a slot is a store to shared memory: no system call on
the request path.

State for the harness: with ``--status-file PATH`` the master rewrites a JSON
document atomically (write, then rename) once a second: its pid, the target
worker count, restarts, and per worker its pid, age, generation, state,
requests served and how long its current request has run. SIGUSR1 logs the
same document.

A rolling restart (SIGHUP) forks the new generation first and sends SIGTERM to
the old one only when every new worker reports ready (the app imported), so the
shared socket is never without a worker able to answer.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import logging
import mmap
import os
import random
import select
import signal
import socket
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass, field

from servers import _cli
from servers.http import Limits, ServerInfo, Session, WSGIApp, load_app, wait_for

log = logging.getLogger("workerbench.prefork")

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
IDLE_BEAT_S = 1.0  # a worker's idle loop turns at least this often, and beats each time
MAX_SLOTS = 1024
ACCEPT_BATCH = 16  # connections a worker accepts per wake-up before it looks at its parked ones again
MAX_PARKED = 1000  # idle keep-alive connections one worker holds; past it, a response closes its connection

STATE_FREE, STATE_BOOTING, STATE_READY = 0.0, 1.0, 2.0
STATE_NAMES = {STATE_FREE: "free", STATE_BOOTING: "booting", STATE_READY: "ready"}


class Scoreboard:
    """Per-worker health slots in memory shared across fork: four doubles a slot.

    Written by one worker each (its own slot) and read by the master; a torn read of
    one double cannot happen on the platforms we run on (aligned 8-byte stores).
    """

    FIELDS = 4  # state, last beat, current request start (0 when idle), requests served

    def __init__(self, slots: int = MAX_SLOTS) -> None:
        self._map = mmap.mmap(-1, slots * self.FIELDS * 8)
        self.cells = memoryview(self._map).cast("d")
        self.slots = slots

    def _base(self, slot: int) -> int:
        return slot * self.FIELDS

    def reset(self, slot: int, now: float) -> None:
        b = self._base(slot)
        self.cells[b : b + 4] = memoryview(bytes(32)).cast("d")
        self.cells[b] = STATE_BOOTING
        self.cells[b + 1] = now  # booting counts as alive until the timeout runs out

    def ready(self, slot: int) -> None:
        self.cells[self._base(slot)] = STATE_READY

    def beat(self, slot: int, now: float) -> None:
        self.cells[self._base(slot) + 1] = now

    def request_started(self, slot: int, now: float) -> None:
        b = self._base(slot)
        self.cells[b + 1] = now
        self.cells[b + 2] = now

    def request_done(self, slot: int, served: int) -> None:
        b = self._base(slot)
        self.cells[b + 2] = 0.0
        self.cells[b + 3] = float(served)

    def read(self, slot: int) -> tuple[float, float, float, int]:
        b = self._base(slot)
        return self.cells[b], self.cells[b + 1], self.cells[b + 2], int(self.cells[b + 3])


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit code {os.WEXITSTATUS(status)}"


@dataclass(kw_only=True)
class Options:
    app: str
    workers: int = 1
    preload: bool = False
    max_requests: int = 0
    max_requests_jitter: int = 0
    graceful_timeout: float = 30.0
    max_boot_failures: int = 5
    timeout: float = 30.0
    kill_grace: float = 2.0
    status_file: str | None = None


@dataclass
class WorkerRecord:
    pid: int
    generation: int
    slot: int
    started: float = field(default_factory=time.monotonic)
    kill_deadline: float | None = None  # set once the master has sent SIGTERM for a timeout


# How long a fresh connection may keep the worker waiting for its first bytes before it is
# parked beside the others. A client on a working network sends at once; parking costs a
# dead worker its parked clients too, so only the silent ones are parked.
FIRST_BYTES_WAIT_S = 0.01


def _has_data(session: Session) -> bool:
    """The client has spoken (or hung up): at once, or within FIRST_BYTES_WAIT_S."""
    conn = session.conn
    if conn.prefetch():  # the usual case: the request arrived before the accept
        return True
    return wait_for(session.sock, select.POLLIN, FIRST_BYTES_WAIT_S)


class Worker:
    """The code that runs in a worker process; never returns (``os._exit``)."""

    def __init__(
        self,
        listener: socket.socket,
        app: WSGIApp | None,
        opts: Options,
        info: ServerInfo,
        limits: Limits,
        board: Scoreboard,
        slot: int,
    ) -> None:
        self.board = board
        self.slot = slot
        self.listener = listener
        self.app = app
        self.opts = opts
        self.info = info
        self.limits = limits
        self.alive = True
        self.master = os.getppid()

    def _stop(self, signum: int, frame: object) -> None:
        self.alive = False

    def _fast_exit(self, signum: int, frame: object) -> None:
        os._exit(_cli.EXIT_OK)

    def run(self) -> None:
        code = _cli.EXIT_OK
        try:
            code = self._run()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stderr.flush()
            os._exit(code)

    def _run(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._fast_exit)
        signal.signal(signal.SIGQUIT, self._fast_exit)
        for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
            signal.signal(sig, signal.SIG_IGN)  # the master's business; TTIN/TTOU would stop us
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        if self.app is None:
            try:
                self.app = load_app(self.opts.app)
            except Exception:
                log.error("worker %d cannot load %s\n%s", os.getpid(), self.opts.app, traceback.format_exc())
                return _cli.EXIT_APP_LOAD_FAILED
        board, slot = self.board, self.slot
        board.ready(slot)
        quota = 0
        if self.opts.max_requests > 0:
            quota = self.opts.max_requests + random.randint(0, max(0, self.opts.max_requests_jitter))
        self.quota = quota
        poller = select.epoll()
        listen_fd = self.listener.fileno()
        poller.register(listen_fd, select.EPOLLIN | select.EPOLLEXCLUSIVE)
        poller.register(wake_r, select.EPOLLIN)
        self.poller = poller
        self.parked: dict[int, tuple[Session, float]] = {}  # idle keep-alive sessions by fd, with their deadline
        self.served = 0
        try:
            while self.alive:
                now = time.monotonic()
                board.beat(slot, now)
                events = poller.poll(self._poll_timeout(now))
                if os.getppid() != self.master:
                    log.error("worker %d: master is gone, exiting", os.getpid())
                    return _cli.EXIT_OK
                for fd, _ in events:
                    if fd == wake_r:
                        _cli.drain(wake_r)
                    elif fd == listen_fd:
                        self._accept_some()
                    elif fd in self.parked:
                        session, _ = self.parked.pop(fd)
                        poller.unregister(fd)
                        self._serve(session)
                if self.parked:
                    self._expire_idle(time.monotonic())
                if quota and self.served >= quota:
                    log.info("worker %d served %d requests, recycling", os.getpid(), self.served)
                    self.alive = False
        finally:
            for session, _ in self.parked.values():
                if session.served == 0:
                    # Accepted but not yet answered: its client is owed a response, not a reset.
                    self._answer_once(session)
                session.close()
            self.parked.clear()
        return _cli.EXIT_OK


    def _accept_some(self) -> None:
        """Accept and serve connections waiting in the backlog, up to ACCEPT_BATCH, then poll again.

        Taking several per wake-up saves a poll per connection when connections are short
        (a new connection per request: +15-25% req/s here). A connection that stays open
        ends the batch, so persistent clients spread over the workers one per wake-up as
        before (a worker that took 16 of them at once made keep-alive runs swing between
        20k and 30k req/s). The bound keeps parked clients whose next request has arrived
        from waiting behind a long backlog. The first is accepted even when SIGTERM just
        arrived: with EPOLLEXCLUSIVE this worker may be the only one woken for it, and it
        would otherwise wait for another worker's idle timeout.
        """
        for _ in range(ACCEPT_BATCH):
            try:
                conn, peer = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return  # the backlog is empty, or another worker took it
            except OSError as exc:
                log.error("accept failed: %s", exc)
                return
            session = Session(conn, peer, self.app, self.info, self.limits)
            if not _has_data(session):
                # Connected but silent: wait for its request beside the others instead of
                # blocking the worker on it.
                self._park(session, time.monotonic() + self.limits.header_timeout)
                return
            if self._serve(session) or not self.alive or (self.quota and self.served >= self.quota):
                return

    def _poll_timeout(self, now: float) -> float:
        if not self.parked:
            return IDLE_BEAT_S
        first = min(deadline for _, deadline in self.parked.values())
        return max(0.0, min(IDLE_BEAT_S, first - now))

    def _serve(self, session: Session) -> bool:
        """Answer the session's next request and any already pipelined behind it, then park or close it.

        Returns True if the session was parked (kept alive).

        The worker serves one request at a time, but it never waits on an idle client:
        a kept-alive connection goes back into the epoll set, beside the listener, and
        is served again only when its next request arrives. So a worker holding many
        idle connections still accepts new ones, and no client waits behind another's
        silence.
        """
        board, slot = self.board, self.slot
        keep = True
        before = session.served
        try:
            while keep:
                board.request_started(slot, time.monotonic())
                keep = session.serve_next()
                if not session.pipelined:
                    break
        finally:
            self.served += session.served - before
            board.request_done(slot, self.served)
        if keep and self.alive and len(self.parked) < MAX_PARKED:
            self._park(session, time.monotonic() + self.limits.keepalive)
            return True
        session.close()
        return False

    def _answer_once(self, session: Session) -> None:
        self.board.request_started(self.slot, time.monotonic())
        try:
            session.limits = dataclasses.replace(session.limits, keepalive=0.0)  # and then close
            session.serve_next()
        finally:
            self.served += session.served
            self.board.request_done(self.slot, self.served)

    def _park(self, session: Session, deadline: float) -> None:
        fd = session.sock.fileno()
        self.parked[fd] = (session, deadline)
        self.poller.register(fd, select.EPOLLIN)

    def _expire_idle(self, now: float) -> None:
        for fd, (session, deadline) in list(self.parked.items()):
            if deadline <= now:
                del self.parked[fd]
                self.poller.unregister(fd)
                session.close()


class Arbiter:
    """The master: keeps ``target`` workers alive and healthy, and acts on signals."""

    def __init__(self, listener: socket.socket, opts: Options, info: ServerInfo, limits: Limits) -> None:
        self.listener = listener
        self.opts = opts
        self.info = info
        self.limits = limits
        self.app: WSGIApp | None = None
        self.target = max(1, opts.workers)
        self.workers: dict[int, WorkerRecord] = {}
        self.board = Scoreboard()
        self.free_slots = list(range(MAX_SLOTS - 1, -1, -1))
        self.generation = 0
        self.retiring: set[int] = set()  # old generation, waiting for the new one to be ready
        self.signals: deque[int] = deque()
        self.stopping: str | None = None  # None, "graceful" or "fast"
        self.stop_deadline = 0.0
        self.boot_failures = 0
        self.next_spawn = 0.0
        self.restarts = 0
        self.started = time.monotonic()
        self.status_written = 0.0
        self.exit_code = _cli.EXIT_OK

    # signals ---------------------------------------------------------------
    def _record(self, signum: int, frame: object) -> None:
        self.signals.append(signum)

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

    def spawn(self) -> None:
        slot = self.free_slots.pop()
        self.board.reset(slot, time.monotonic())
        pid = os.fork()
        if pid:
            self.workers[pid] = WorkerRecord(pid, self.generation, slot)
            return
        signal.set_wakeup_fd(-1)
        Worker(self.listener, self.app, self.opts, self.info, self.limits, self.board, slot).run()

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
            self.free_slots.append(record.slot)
            self.retiring.discard(pid)
            cause = _describe(status)
            clean = os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
            load_failed = os.WIFEXITED(status) and os.WEXITSTATUS(status) == _cli.EXIT_APP_LOAD_FAILED
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
            self.exit_code = _cli.EXIT_BOOT_FAILED
            self._begin_stop("fast", 2.0, signal.SIGINT)
            return
        current = [pid for pid, w in self.workers.items() if w.generation == self.generation]
        if len(current) > self.target:
            for pid in sorted(current, key=lambda p: self.workers[p].started)[: len(current) - self.target]:
                self.workers[pid].generation = -1  # retiring: not counted, not signalled twice
                self._kill(pid, signal.SIGTERM)
        elif len(current) < self.target and time.monotonic() >= self.next_spawn:
            for _ in range(self.target - len(current)):
                self.spawn()
                if self.boot_failures:
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
            workers.append({
                "pid": pid,
                "generation": record.generation,
                "state": STATE_NAMES.get(state, "?"),
                "age_s": round(now - record.started, 3),
                "requests": served,
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
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(self.status(), f)
            os.replace(tmp, path)
        except OSError as exc:
            log.error("cannot write status file %s: %s", path, exc)
        self.status_written = time.monotonic()

    # main loop -------------------------------------------------------------
    def run(self) -> int:
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        for sig in MASTER_SIGNALS:
            signal.signal(sig, self._record)
        self.listener.setblocking(False)
        if self.opts.preload:
            self.app = load_app(self.opts.app)
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
                select.select([wake_r], [], [], timeout)
                _cli.drain(wake_r)
                _cli.dispatch(self, self.signals)
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
            signal.set_wakeup_fd(-1)
            self.listener.close()
            os.close(wake_r)
            os.close(wake_w)

    def _wait_all(self) -> None:
        deadline = time.monotonic() + 5.0
        while self.workers and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser("python -m servers.prefork", "Pre-fork WSGI server: a master and a pool of workers.")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default %(default)s)")
    p.add_argument("--preload", action="store_true", help="import the app in the master before forking")
    p.add_argument("--max-requests", type=int, default=0, help="recycle a worker after this many requests")
    p.add_argument("--max-requests-jitter", type=int, default=0, help="random extra requests per worker quota")
    p.add_argument("--graceful-timeout", type=float, default=30.0,
                   help="seconds workers get to finish after SIGTERM")
    p.add_argument("--max-boot-failures", type=int, default=5,
                   help="give up after this many workers in a row failed to load the app")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="kill a worker whose heartbeat is older than this, idle or inside a request")
    p.add_argument("--kill-grace", type=float, default=2.0,
                   help="seconds between the SIGTERM and the SIGKILL for a timed-out worker")
    p.add_argument("--status-file", help="path of a JSON status document the master rewrites every second")
    args = p.parse_args(argv)
    _cli.setup_logging(args.log_level, "prefork")
    host, port = _cli.bind(args, p)
    opts = Options(
        app=args.app,
        workers=args.workers,
        preload=args.preload,
        max_requests=args.max_requests,
        max_requests_jitter=args.max_requests_jitter,
        graceful_timeout=args.graceful_timeout,
        max_boot_failures=args.max_boot_failures,
        timeout=args.timeout,
        kill_grace=args.kill_grace,
        status_file=args.status_file,
    )
    if opts.preload:
        try:
            load_app(opts.app)
        except Exception:
            traceback.print_exc()
            print(f"error: cannot load app {opts.app!r}", file=sys.stderr)
            return _cli.EXIT_APP_LOAD_FAILED
    listener = _cli.open_listener(host, port, args.backlog)
    if listener is None:
        return _cli.EXIT_BIND_FAILED
    info = ServerInfo(software="workerbench-prefork", host=host, port=listener.getsockname()[1])
    return Arbiter(listener, opts, info, _cli.limits(args)).run()


if __name__ == "__main__":
    sys.exit(main())
