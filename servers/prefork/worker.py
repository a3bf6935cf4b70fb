"""The worker: the code that runs in a worker process, its loop, its shutdown and how it serves a connection."""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import select
import signal
import socket
import sys
import time
import traceback
from types import FrameType

from servers._signals import SignalQueue
from servers._startup import EXIT_APP_LOAD_FAILED, EXIT_OK
from servers.http import Session
from servers.netio import set_wait_hook
from servers.parse import Limits
from servers.prefork.balance import Balance
from servers.prefork.options import (
    FRESH_GRACE_S,
    REBALANCE_AFTER_S,
    REBALANCE_SLACK,
    Options,
    log,
    request_quota,
)
from servers.prefork.parking import Parked, Parking, RateLog, park_cap
from servers.prefork.scoreboard import Scoreboard
from servers.wsgi import ServerInfo, WSGIApp, load_app


class Worker(Balance, Parking):
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

