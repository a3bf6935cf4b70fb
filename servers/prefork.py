"""A pre-fork WSGI server: ``python -m servers.prefork APP --bind HOST:PORT --workers N``.

Theory of operation
-------------------
The **master** binds the listening socket once, forks ``--workers`` worker
processes that inherit it, and from then on only supervises. Its loop sleeps on
a self-pipe that signal handlers write to (:class:`servers._signals.SignalQueue`);
handlers only queue the signal, and the loop dispatches it to ``handle_<name>()``:

=========  ==================================================================
SIGCHLD    reap with ``waitpid(-1, WNOHANG)``, log the cause, respawn
SIGTERM    graceful: workers close idle and silent connections at once, finish
           the requests in progress, and are SIGKILLed if still alive after
           ``--graceful-timeout``
SIGINT     fast: workers are told to exit now (SIGQUIT does the same)
SIGHUP     rolling restart: a new generation is forked, then the old one is
           sent SIGTERM; all share one socket, so no connection is dropped
SIGTTIN    one worker more
SIGTTOU    one worker fewer (never below one)
SIGUSR1    log the status document (see below)
=========  ==================================================================

A **worker** loads the app (unless the master preloaded it with
``--preload``), then loops: wait in its epoll set, accept, serve with
:mod:`servers.http`, repeat. It exits after ``--max-requests`` requests (plus up
to ``--max-requests-jitter``) so that a leaking app's memory stays bounded, and
the master replaces it (requests already read in that turn are still answered,
with ``Connection: close``).

A worker runs one request at a time, but it never waits on a client that has not
sent a whole header block: a connection lives in one of three places.

* **parked**: in the epoll set beside the listener, waiting for bytes. A new
  connection, one whose request is arriving byte by byte (slowloris), and an idle
  kept-alive one all wait here, so none of them holds the worker. Bytes are
  collected as they come (``Connection.feed_nowait``); a parked connection has a
  deadline: ``--header-timeout`` from its first byte (from its accept, for a new
  one), ``--keepalive`` while idle between requests. A client that misses a
  header deadline is dropped, logged and counted as a slow client.
* **runnable**: its header block is in; queued, in arrival order, for the
  current turn of the loop.
* **served**: the app runs. Reading a body and sending a response may wait on
  the client (bounded by ``--body-timeout`` and ``--send-timeout``); the worker
  beats its heartbeat through such waits (``netio.set_wait_hook``), because a slow
  client is the client's failure, not a hung worker.

Parked connections are capped (``MAX_PARKED``, lowered to fit the worker's
``RLIMIT_NOFILE``); past the cap the longest-parked one is dropped to make room.
When ``accept`` fails for want of descriptors (EMFILE, ENFILE) the worker takes
the listener out of its epoll set for ``ACCEPT_PAUSE_S``, logs once per
``LOG_EVERY_S``, and puts it back.

Accept without a thundering herd: every worker waits in its own epoll set on
the shared socket registered with ``EPOLLEXCLUSIVE`` (Linux 4.5+, what nginx
uses), so the kernel wakes one waiting worker per new connection instead of
all of them; the listener is non-blocking, so a worker that loses a race gets
``EAGAIN`` and simply waits again. Unlike ``SO_REUSEPORT`` with a socket per
worker, a busy or stuck worker never owns a queue of its own: whoever is free
takes the next connection.

Balance of kept-alive connections: a persistent connection stays with the
worker that accepted it, so an uneven first split lasts as long as the clients
do, and the clients of the fuller worker wait in a longer queue (at 2 workers,
32 connections and 20 ms requests, a 24/8 split means 480 ms against 160 ms
per turn). Every worker publishes in the scoreboard how many connections it
holds; its **fair share** is the ceiling of the ready workers' total divided by
their number. Three rules follow:

The rules apply to a worker that holds kept-alive connections; with a new
connection per request there is nothing to balance (a batch is served and
closed at once), and they would only cost system calls.

1. A worker accepts at most up to its share in one wake-up, the connections
   still waiting in the listen queue included (``TCP_INFO``'s ``tcpi_unacked``
   on a listening socket), and always at least one, so that a connection it was
   woken for is never left behind.
2. A worker more than one connection over its share takes the listener out of
   its epoll set until it is not, provided another worker under its share takes
   connections right now: its listener is in its epoll set (published in the
   scoreboard), its heartbeat is fresh, and it is not stuck inside one request
   for ``STUCK_S``. So the listener is never out of every epoll set at once, and
   a worker stuck on a slow client or a slow app is never the only one offered
   connections. Should the others still not take them (stopped between two
   heartbeats, say), connections queued for ``REBALANCE_POLL_S`` bring the
   worker back into the rotation. The
   kernel woke the worker that left for the connections queued before it left,
   and a worker that stops at its share leaves the rest queued, so either one
   rings a doorbell (an eventfd in every worker's epoll set, edge-triggered);
   every worker then looks at the queue, and one under its share takes its
   part. A worker more than one under its share also looks at the queue itself
   every turn, and at least every ``REBALANCE_POLL_S``.
3. A worker over its share by more than an eighth of it (and more than one),
   under the same proviso and for longer than ``REBALANCE_AFTER_S`` (a shorter
   imbalance is one that rules 1 and 2 undo by themselves), answers that excess
   with ``Connection: close`` responses, never a connection's first; the
   clients reconnect, and rule 2 sends them to a worker under its share. This
   is the repair for a large imbalance (a worker added, or replaced).

A small imbalance is tolerated: one connection for rule 2 (``REBALANCE_SLACK``),
an eighth of the share for rule 3. Its cost, a request time or a few per turn
for that worker's clients, is smaller than flapping in and out of the accept
rotation or disconnecting clients that open their connections one by one. The
ceiling and the slack are the hysteresis: a pool in balance closes nothing.

A worker whose app fails to import exits with ``EXIT_APP_LOAD_FAILED``; the
master then retries with a growing delay and gives up with
``EXIT_BOOT_FAILED`` after ``--max-boot-failures`` failures in a row, instead of
forking in a tight loop.

Health: master and workers share one anonymous ``mmap`` (a :class:`Scoreboard`),
one slot per worker: state (booting, ready), the ``time.monotonic()`` of its last
heartbeat, when its current request started, requests served, connections held
and slow clients dropped. A worker beats each time its loop turns (at least once
a second while idle), as it starts every request, and while it waits on a
client's I/O, so a beat older than ``--timeout`` means the worker is stuck: hung
while idle, stopped (SIGSTOP), or inside the app for longer than the timeout.
The master checks every second, sends SIGTERM, and SIGKILL after
``--kill-grace`` seconds if the worker is still there; the reaper then replaces
it. Writing a slot is a store to shared memory: no system call on the request
path.

State for the harness: with ``--status-file PATH`` the master rewrites a JSON
document atomically (write, then rename) once a second: its pid, the target
worker count, restarts, and per worker its pid, age, generation, state,
requests served, connections held, slow clients and how long its current
request has run. SIGUSR1 logs the same document.

A rolling restart (SIGHUP) forks the new generation first and sends SIGTERM to
the old one only when every new worker reports ready (the app imported), so the
shared socket is never without a worker able to answer.
"""

from __future__ import annotations

import dataclasses
import errno
import gc
import json
import logging
import math
import mmap
import os
import random
import resource
import select
import signal
import socket
import struct
import sys
import time
import traceback
from dataclasses import dataclass, field
from types import FrameType

from servers import _cli
from servers._signals import SignalQueue
from servers._startup import (
    EXIT_APP_LOAD_FAILED,
    EXIT_BIND_FAILED,
    EXIT_BOOT_FAILED,
    EXIT_OK,
    open_listener,
    preload_app,
    setup_logging,
)
from servers.http import Session
from servers.netio import set_wait_hook
from servers.parse import Limits
from servers.wsgi import ServerInfo, WSGIApp, load_app

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
ACCEPT_BATCH = 16  # connections a worker accepts per wake-up at most, before it serves what it has
MAX_PARKED = 1000  # connections one worker keeps in its epoll set; lowered to fit RLIMIT_NOFILE
# Descriptors a worker keeps free beside its parked connections: a batch of fresh accepts, the
# connection being served, and the app's own files (a database, a log).
FD_HEADROOM = ACCEPT_BATCH + 8
ACCEPT_PAUSE_S = 0.5  # no accept for this long after EMFILE/ENFILE: retrying at once only spins
LOG_EVERY_S = 10.0  # a repeated condition (accept failing, parked connections dropped) is logged this often
OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
FIRST_BYTES_WAIT_S = 0.002  # a just-accepted connection is parked only if silent this long
FRESH_GRACE_S = 0.2  # at shutdown, how long a just-accepted connection may take to send its request
STUCK_S = 0.25  # a worker this long inside one request is not offered more connections by the others
REBALANCE_SLACK = 1  # rule 2 leaves a worker this many connections over its share
REBALANCE_CLOSE_FRACTION = 8  # rule 3 leaves it this share of its share over, and at least REBALANCE_SLACK
REBALANCE_AFTER_S = 0.5  # rule 3 waits this long: an imbalance that rules 1 and 2 undo by themselves passes
REBALANCE_POLL_S = 0.05  # a worker out of the accept rotation looks again this often
TCP_INFO_LEN = 104
TCPI_UNACKED = 24  # offset of tcpi_unacked in struct tcp_info: the accept queue's length on a listener

STATE_FREE, STATE_BOOTING, STATE_READY = 0.0, 1.0, 2.0
STATE_NAMES = {STATE_FREE: "free", STATE_BOOTING: "booting", STATE_READY: "ready"}


class Scoreboard:
    """Per-worker slots in memory shared across fork, seven doubles a slot, and one cell for the slots in use.

    Written by one worker each (its own slot) and read by the master and the other
    workers; a torn read of one double cannot happen on the platforms we run on
    (aligned 8-byte stores).
    """

    # state, last beat, current request start (0 when idle), requests served, connections held, slow clients,
    # listener in its epoll set (1.0) or not
    FIELDS = 7
    STATE, BEAT, BUSY, SERVED, HELD, SLOW, LISTENING = range(FIELDS)

    def __init__(self, slots: int = MAX_SLOTS) -> None:
        self._map = mmap.mmap(-1, (slots * self.FIELDS + 1) * 8)
        self.cells = memoryview(self._map).cast("d")
        self.slots = slots
        self._span = slots * self.FIELDS  # the cell holding 1 + the highest slot ever used

    def _base(self, slot: int) -> int:
        return slot * self.FIELDS

    def reset(self, slot: int, now: float) -> None:
        b = self._base(slot)
        for i in range(self.FIELDS):
            self.cells[b + i] = 0.0
        self.cells[b + self.STATE] = STATE_BOOTING
        self.cells[b + self.BEAT] = now  # booting counts as alive until the timeout runs out
        self.cells[self._span] = max(self.cells[self._span], slot + 1)

    def free(self, slot: int) -> None:
        b = self._base(slot)
        self.cells[b + self.STATE] = STATE_FREE
        self.cells[b + self.HELD] = 0.0  # a dead worker's connections are gone with it

    def ready(self, slot: int) -> None:
        self.cells[self._base(slot)] = STATE_READY

    def beat(self, slot: int, now: float) -> None:
        self.cells[self._base(slot) + self.BEAT] = now

    def request_started(self, slot: int, now: float) -> None:
        b = self._base(slot)
        self.cells[b + self.BEAT] = now
        self.cells[b + self.BUSY] = now

    def request_done(self, slot: int, served: int) -> None:
        b = self._base(slot)
        self.cells[b + self.BUSY] = 0.0
        self.cells[b + self.SERVED] = float(served)

    def set_held(self, slot: int, held: int) -> None:
        self.cells[slot * self.FIELDS + self.HELD] = float(held)  # _base() inlined: twice a connection

    def set_listening(self, slot: int, on: bool) -> None:
        self.cells[self._base(slot) + self.LISTENING] = 1.0 if on else 0.0

    def set_slow(self, slot: int, slow: int) -> None:
        self.cells[self._base(slot) + self.SLOW] = float(slow)

    def read(self, slot: int) -> tuple[float, float, float, int]:
        b = self._base(slot)
        return self.cells[b], self.cells[b + 1], self.cells[b + 2], int(self.cells[b + 3])

    def connections(self, slot: int) -> tuple[int, int]:
        """(connections held, slow clients dropped) by the worker in ``slot``."""
        b = self._base(slot)
        return int(self.cells[b + self.HELD]), int(self.cells[b + self.SLOW])

    def load(self, me: int = -1, now: float = 0.0) -> tuple[int, int, float]:
        """(connections held by the ready workers, how many are ready, fewest held by another that takes more now).

        Another worker takes connections now if its listener is in its epoll set and it has
        not been inside one request for STUCK_S (a slow body, a slow app): the pool must
        never steer connections towards a worker that cannot accept them.
        """
        cells, fields = self.cells, self.FIELDS
        total = ready = 0
        fewest = math.inf
        for slot in range(int(cells[self._span])):
            b = slot * fields
            if cells[b] != STATE_READY:
                continue
            held = int(cells[b + self.HELD])
            ready += 1
            total += held
            busy = cells[b + self.BUSY]
            alive = now - cells[b + self.BEAT] < 2 * IDLE_BEAT_S  # not stopped, say
            if slot != me and held < fewest and cells[b + self.LISTENING] and alive and (
                    not busy or now - busy < STUCK_S):
                fewest = held
        return total, ready, fewest


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


@dataclass(slots=True)
class Parked:
    """A connection in the worker's epoll set, and until when it may stay there."""

    session: Session
    deadline: float
    idle: bool  # between requests (deadline --keepalive); False: a request's headers are due


class RateLog:
    """One log line per ``every`` seconds for a condition that may repeat thousands of times a second."""

    def __init__(self, level: int, every: float = LOG_EVERY_S) -> None:
        self.level = level
        self.every = every
        self.last = -math.inf
        self.count = 0

    def __call__(self, message: str, *args: object) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.last >= self.every:
            log.log(self.level, message + " (%d times since the last such line)", *args, self.count)
            self.last, self.count = now, 0


def park_cap() -> int:
    """MAX_PARKED, or fewer so that parked connections cannot exhaust the descriptors this process may open."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return MAX_PARKED
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 16
    return max(1, min(MAX_PARKED, soft - in_use - FD_HEADROOM))


def first_bytes(conn: socket.socket) -> bool:
    """Wait up to FIRST_BYTES_WAIT_S for a just-accepted client's first bytes.

    A client on a working network sends its request right after the handshake, often a
    few microseconds after the accept; waiting that long here costs less than parking it
    (two epoll_ctl calls and a turn of the loop: +11% CPU per request with a new
    connection per request). A silent client costs the worker at most this wait once.
    """
    poller = select.poll()
    poller.register(conn, select.POLLIN)
    return bool(poller.poll(FIRST_BYTES_WAIT_S * 1000))


def accept_queue_length(listener: socket.socket) -> int:
    """Connections waiting in ``listener``'s accept queue (0 if the kernel will not say)."""
    try:
        info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LEN)
    except OSError:
        return 0
    return int(struct.unpack_from("I", info, TCPI_UNACKED)[0]) if len(info) >= TCPI_UNACKED + 4 else 0


def request_quota(opts: Options) -> int:
    """Requests a worker serves before it is recycled (0: never); the jitter keeps workers from recycling together."""
    if opts.max_requests <= 0:
        return 0
    return opts.max_requests + random.randint(0, max(0, opts.max_requests_jitter))


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
        doorbell: int,
    ) -> None:
        self.board = board
        self.doorbell = doorbell
        self.slot = slot
        self.listener = listener
        self.listen_fd = listener.fileno()
        self.app = app
        self.opts = opts
        self.info = info
        self.limits = limits
        self.closing_limits = dataclasses.replace(limits, keepalive=0.0)  # answer, then close
        self.alive = True
        self.master = os.getppid()
        self.quota = request_quota(opts)
        self.signals = self._take_signals()
        self.poller = self._make_poller()
        self.listening = False  # the listener is in the epoll set
        self.parked: dict[int, Parked] = {}  # by descriptor, in the order they were parked
        self.next_deadline = math.inf  # no parked deadline is earlier (it may be later: a cheap bound)
        self.park_cap = park_cap()
        self.held = 0  # connections this worker has open: parked, runnable or being served
        self.kept = 0  # of them, kept alive and parked between requests
        self.excess = 0  # connections held over the fair share (while another worker takes connections)
        self.close_over = REBALANCE_SLACK  # rule 3 closes connections held over the share beyond this
        self.over_since = math.inf  # since when excess has been over close_over
        self.queued_since = math.inf  # out of the rotation, and the accept queue not empty since
        self.short_of_share = False  # listening and under the fair share: checks the accept queue each turn
        self.current: Session | None = None  # the session being served, for the slow-client log
        self.served = 0
        self.slow = 0
        self.accept_paused_until = 0.0
        self.accept_failed = RateLog(logging.ERROR)
        self.dropped_at_cap = RateLog(logging.WARNING)

    def _take_signals(self) -> SignalQueue:
        """The worker's own dispositions, over those inherited from the master: SIGTERM queued, INT/QUIT at once."""
        queue = SignalQueue((signal.SIGTERM,))
        signal.signal(signal.SIGINT, self._fast_exit)
        signal.signal(signal.SIGQUIT, self._fast_exit)
        for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR1):
            signal.signal(sig, signal.SIG_IGN)  # the master's business; TTIN/TTOU would stop us
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        return queue

    def _make_poller(self) -> select.epoll:
        """The worker's epoll set with what wakes it besides clients: its signals and the doorbell."""
        poller = select.epoll()
        poller.register(self.signals.fileno(), select.EPOLLIN)
        # Edge-triggered and never read: every ring is an edge for every worker, and an
        # eventfd's counter does not overflow in any lifetime.
        poller.register(self.doorbell, select.EPOLLIN | select.EPOLLET)
        return poller

    def handle_sigterm(self) -> None:
        self.alive = False

    def _fast_exit(self, signum: int, frame: FrameType | None) -> None:
        # The one handler that acts: a fast stop must not wait for the request in progress.
        os._exit(EXIT_OK)

    def run(self) -> None:
        code = EXIT_OK
        try:
            code = self._run()
        except BaseException:
            traceback.print_exc()
            code = 1
        finally:
            sys.stderr.flush()
            os._exit(code)

    def _run(self) -> int:
        if self.app is None:
            try:
                self.app = load_app(self.opts.app)
            except Exception:
                log.error("worker %d cannot load %s\n%s", os.getpid(), self.opts.app, traceback.format_exc())
                return EXIT_APP_LOAD_FAILED
        set_wait_hook(self._on_client_wait)
        self.board.ready(self.slot)
        try:
            return self._loop()
        finally:
            self._shut_down()

    def _loop(self) -> int:
        board, slot, signals = self.board, self.slot, self.signals
        while self.alive:
            now = time.monotonic()
            board.beat(slot, now)
            self._balance(now)
            events = self.poller.poll(self._poll_timeout(now))
            if os.getppid() != self.master:
                log.error("worker %d: master is gone, exiting", os.getpid())
                return EXIT_OK
            runnable: list[Session] = []
            accepted = rang = False
            for fd, _ in events:
                if fd == self.listen_fd:
                    self._accept_some(runnable)
                    accepted = True
                elif fd in self.parked:
                    self._readable(fd, runnable)
                elif fd == self.doorbell:
                    rang = True
                elif fd == signals.fileno():
                    signals.drain()
                # else: a parked connection closed earlier in this turn (made room at the cap)
            if (rang or self.short_of_share) and not accepted:
                self._take_stranded(runnable)
            signals.dispatch(self)
            for session in runnable:
                self._serve(session)
                if signals.pending:
                    signals.dispatch(self)  # a SIGTERM now makes the rest answer and close
                if self.alive and self.quota and self.served >= self.quota:
                    self.alive = False  # the rest of this turn have a request in: answered, with Connection: close
                    log.info("worker %d served %d requests, recycling", os.getpid(), self.served)
            if self.parked and time.monotonic() >= self.next_deadline:
                self._expire(time.monotonic())
        return EXIT_OK

    def _shut_down(self) -> None:
        """Answer what has a request in; close idle and half-sent connections at once.

        A connection accepted a moment ago that has not spoken yet gets FRESH_GRACE_S: its
        client has most likely sent its request already, and we accepted it, so it is owed
        an answer rather than a reset. A silent one is closed when the grace ends.
        """
        self._listen(False)
        grace_ends = time.monotonic() + FRESH_GRACE_S
        while True:
            expired = time.monotonic() >= grace_ends
            for fd, entry in list(self.parked.items()):
                session = entry.session
                if session.conn.feed_nowait() and session.conn.started:
                    self._unpark(fd)
                    self._serve(session)  # alive is False: answered with Connection: close
                elif expired or session.served or session.conn.started:
                    self._unpark(fd)
                    self._close(session)
            if not self.parked:
                break
            self.poller.poll(max(0.0, grace_ends - time.monotonic()))
            self.signals.drain()
        self.signals.close()

    # balance and accept ------------------------------------------------------
    def _balance(self, now: float) -> None:
        """Rules 2 and 3 of the header: out of the accept rotation while over the fair share, and close the excess."""
        total, ready, fewest = self.board.load(self.slot, now)
        share = math.ceil(total / ready) if ready else self.held
        # Without kept-alive connections (a new connection per request) held counts only the
        # connections of the current batch: balancing them would only flap in and out of the rotation.
        self.excess = self.held - share if fewest < share and self.kept else 0
        self.close_over = max(REBALANCE_SLACK, share // REBALANCE_CLOSE_FRACTION)
        if self.excess <= self.close_over:
            self.over_since = math.inf
        elif self.over_since == math.inf:
            self.over_since = now
        self._listen(self._take_part(now) and now >= self.accept_paused_until)
        # Connections queued before another worker left the rotation woke that worker, not
        # this one: a worker under its share looks at the queue itself, often.
        self.short_of_share = self.listening and self.held + REBALANCE_SLACK < share

    def _take_part(self, now: float) -> bool:
        """Rule 2, with a safety net: connections still queued REBALANCE_POLL_S after this worker left
        the rotation mean the others do not take them (stopped, say, and not yet timed out)."""
        if self.excess <= REBALANCE_SLACK:
            self.queued_since = math.inf
            return True
        if not accept_queue_length(self.listener):
            self.queued_since = math.inf
            return False
        self.queued_since = min(self.queued_since, now)
        return now - self.queued_since >= REBALANCE_POLL_S

    def _take_stranded(self, runnable: list[Session]) -> None:
        """Connections queued before another worker left the rotation woke that worker, not this one."""
        self._balance(time.monotonic())
        if self.short_of_share and accept_queue_length(self.listener):
            self._accept_some(runnable)

    def _ring(self) -> None:
        """Wake every worker to look at the accept queue: this one leaves connections in it."""
        try:
            os.eventfd_write(self.doorbell, 1)
        except OSError:
            pass

    def _listen(self, on: bool) -> None:
        if on == self.listening:
            return
        if on:
            # EPOLLEXCLUSIVE cannot be changed with EPOLL_CTL_MOD, so it is registered anew.
            self.poller.register(self.listen_fd, select.EPOLLIN | select.EPOLLEXCLUSIVE)
        else:
            self.poller.unregister(self.listen_fd)
            if accept_queue_length(self.listener):
                self._ring()
        self.listening = on
        self.board.set_listening(self.slot, on)

    def _accept_quota(self) -> tuple[int, bool]:
        """Rule 1 of the header: up to the fair share counting the listen queue, at least one, at most a batch.

        Also whether the share, not the batch, set it (then what is left in the queue is
        the other workers' to take).
        """
        if not self.kept:
            # Rule 1 is for persistent connections; without any, a batch is served and closed at once.
            return ACCEPT_BATCH, False
        total, ready, _ = self.board.load()
        share = math.ceil((total + accept_queue_length(self.listener)) / max(1, ready))
        quota = max(1, min(ACCEPT_BATCH, share - self.held))
        return quota, ready > 1 and quota < ACCEPT_BATCH

    def _accept_some(self, runnable: list[Session]) -> None:
        """Accept up to the quota; a connection whose headers are in is runnable, any other is parked.

        The first is accepted even when SIGTERM just arrived: with EPOLLEXCLUSIVE this
        worker may be the only one woken for it.
        """
        quota, for_others = self._accept_quota()
        for _ in range(quota):
            try:
                conn, peer = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return  # the backlog is empty, or another worker took it
            except OSError as exc:
                if exc.errno in OUT_OF_DESCRIPTORS:
                    self.accept_paused_until = time.monotonic() + ACCEPT_PAUSE_S
                    self._listen(False)
                    self.accept_failed("accept failed: %s; not accepting for %.1fs", exc.strerror, ACCEPT_PAUSE_S)
                else:
                    log.warning("accept failed: %s", exc)  # ECONNABORTED and the like: that client only
                return
            self._opened()
            assert self.app is not None  # loaded before the first turn of the loop
            session = Session(conn, peer, self.app, self.info, self.limits)
            if session.conn.feed_nowait() or (not session.conn.started and first_bytes(conn)
                                               and session.conn.feed_nowait()):
                runnable.append(session)
            else:
                self._park(session, time.monotonic() + self.limits.header_timeout, idle=False)
            if self.quota and self.served + len(runnable) >= self.quota:
                return
        if for_others and accept_queue_length(self.listener):
            self._ring()  # up to its share, and more are waiting: they are the other workers'

    def _opened(self) -> None:
        self.held += 1
        self.board.set_held(self.slot, self.held)

    def _close(self, session: Session) -> None:
        session.close()
        self.held -= 1
        self.board.set_held(self.slot, self.held)

    # parked connections ------------------------------------------------------
    def _park(self, session: Session, deadline: float, idle: bool) -> None:
        if len(self.parked) >= self.park_cap:
            oldest = next(iter(self.parked))
            self._close(self._unpark(oldest).session)
            self.dropped_at_cap("%d connections parked: dropped the longest-waiting one", self.park_cap)
        fd = session.sock.fileno()
        self.parked[fd] = Parked(session, deadline, idle)
        self.kept += idle
        self.poller.register(fd, select.EPOLLIN)
        self.next_deadline = min(self.next_deadline, deadline)

    def _unpark(self, fd: int) -> Parked:
        self.poller.unregister(fd)
        entry = self.parked.pop(fd)
        self.kept -= entry.idle
        return entry

    def _readable(self, fd: int, runnable: list[Session]) -> None:
        entry = self.parked[fd]
        conn = entry.session.conn
        if conn.feed_nowait():
            runnable.append(self._unpark(fd).session)
        elif entry.idle and conn.started:
            # The first bytes of the next request: from now on its headers are due.
            entry.idle = False
            self.kept -= 1
            entry.deadline = time.monotonic() + self.limits.header_timeout
            self.next_deadline = min(self.next_deadline, entry.deadline)

    def _expire(self, now: float) -> None:
        nearest = math.inf
        for fd, entry in list(self.parked.items()):
            if entry.deadline > now:
                nearest = min(nearest, entry.deadline)
                continue
            self._unpark(fd)
            if not entry.idle:
                self._slow_client(entry.session, f"no complete request header in {self.limits.header_timeout:g}s")
            self._close(entry.session)
        self.next_deadline = nearest

    def _poll_timeout(self, now: float) -> float:
        timeout = IDLE_BEAT_S
        if self.parked:
            timeout = min(timeout, self.next_deadline - now)
        if not self.listening or self.short_of_share:
            timeout = min(timeout, REBALANCE_POLL_S)  # to rejoin the rotation, or find a stranded queue, in time
        return max(0.0, timeout)

    # slow clients -------------------------------------------------------------
    def _on_client_wait(self, timed_out: bool) -> None:
        """The http core waits on a client (a body, a response it does not read): beat, and count a timeout."""
        self.board.beat(self.slot, time.monotonic())
        if timed_out:
            self._slow_client(self.current, "a read or write on the client timed out")

    def _slow_client(self, session: Session | None, why: str) -> None:
        self.slow += 1
        self.board.set_slow(self.slot, self.slow)
        peer = session.peer if session is not None else "?"
        log.info("worker %d dropped slow client %s: %s", os.getpid(), peer, why)

    # serving -------------------------------------------------------------------
    def _serve(self, session: Session) -> None:
        """Answer the session's request and any pipelined behind it, then park or close it.

        When the worker is stopping, or holds more than its share (``excess``), the
        response says ``Connection: close``.
        """
        if not self.alive:
            session.limits = self.closing_limits
        elif (self.excess > self.close_over and session.served and session.limits is self.limits
              and time.monotonic() - self.over_since >= REBALANCE_AFTER_S):
            # Not on a connection's first response: rules 1 and 2 just placed it, and the
            # imbalance it sees may be a transient (a connection closing, not yet counted out).
            session.limits = self.closing_limits
            self.excess -= 1
        board, slot = self.board, self.slot
        keep = True
        before = session.served
        self.current = session
        try:
            while keep:
                board.request_started(slot, time.monotonic())
                keep = session.serve_next()
                if not session.pipelined:
                    break
        finally:
            self.current = None
            self.served += session.served - before
            board.request_done(slot, self.served)
        if keep and self.alive and len(self.parked) < self.park_cap:
            conn = session.conn
            if conn.started or conn.msg.in_message:
                self._park(session, time.monotonic() + self.limits.header_timeout, idle=False)
            else:
                self._park(session, time.monotonic() + self.limits.keepalive, idle=True)
            return
        self._close(session)


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
        # Rung by a worker that leaves connections in the accept queue for the others (see the header).
        self.doorbell = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.free_slots = list(range(MAX_SLOTS - 1, -1, -1))
        self.generation = 0
        self.retiring: set[int] = set()  # old generation, waiting for the new one to be ready
        self.signals: SignalQueue | None = None  # made in run(): handlers belong to the loop that dispatches
        self.stopping: str | None = None  # None, "graceful" or "fast"
        self.stop_deadline = 0.0
        self.boot_failures = 0
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

    def spawn(self) -> None:
        slot = self.free_slots.pop()
        self.board.reset(slot, time.monotonic())
        pid = os.fork()
        if pid:
            self.workers[pid] = WorkerRecord(pid, self.generation, slot)
            return
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
        signals = self.signals = SignalQueue(MASTER_SIGNALS)
        self.listener.setblocking(False)
        if self.app is not None:
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
    p.add_argument("--body-timeout", type=float, default=Limits().body_timeout,
                   help="seconds to receive a request's body once its headers are in (default %(default)s)")
    args = p.parse_args(argv)
    setup_logging(args.log_level, "prefork")
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
    app: WSGIApp | None = None
    if opts.preload:
        app = preload_app(opts.app)  # once: the workers inherit this very object
        if app is None:
            return EXIT_APP_LOAD_FAILED
    listener = open_listener(host, port, args.backlog)
    if listener is None:
        return EXIT_BIND_FAILED
    info = ServerInfo(software="workerbench-prefork", host=host, port=listener.getsockname()[1])
    limits = dataclasses.replace(_cli.limits(args), body_timeout=args.body_timeout)
    return Arbiter(listener, opts, info, limits, app).run()


if __name__ == "__main__":
    sys.exit(main())
