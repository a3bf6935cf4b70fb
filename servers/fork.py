"""A fork-per-request WSGI server: ``python -m servers.fork APP --bind HOST:PORT``.

Theory of operation
-------------------
One parent process imports the app once, binds, and then loops::

    ACCEPTING --(children == cap)--> FULL --(a child exits)--> ACCEPTING
        |                                                         |
        +----------------(SIGTERM)--> DRAINING --(children == 0 or grace over)--> exit
        +----------------(SIGINT / SIGQUIT)--> children killed --> exit

While ACCEPTING it waits on the listening socket and on the self-pipe that
signals are written to (:class:`servers._signals.SignalQueue`), accepts every pending
connection up to the cap on running children, and forks one child per
connection. The child already has the app (it was imported before the fork,
and ``gc.freeze()`` keeps the collector from touching those pages), serves the
connection with :mod:`servers.http`, and leaves with ``os._exit``. With the
default ``--keepalive 0`` that is one request per process, the classic model.

What a child costs is mostly the pages it writes: each one shared with the
parent is copied first (about 470 page faults for one plaintext request here,
against about 230 for a child that only exits). So before the first fork the
parent runs its HTTP code on synthetic requests (``http.warm_up``, the app is
not called) and keeps the Date header current, and children inherit that work
done instead of each redoing it on copied pages.

A child is forked only for a connection whose request is all in: the parent accepts
every connection, keeps each in its selector (``parked``) until the request's header block
and body have arrived (or it is refused, or the client leaves). A request that came whole
with no body is only peeked at, and the child reads it as before; one that came in pieces,
or has a body, the parent reads and parses, and the child inherits the parsed request with
the rest of the parent's memory. So a client that sends nothing, or
trickles its body, or waits for a ``100 Continue`` (the parent sends it) costs a parked
socket, not one of the ``--max-children``: 64 such clients used to stop the server. A
parked request that does not come in within ``--header-timeout`` (``--body-timeout``
once its headers are in) is closed, as a child would have closed it.

When the cap on children is reached, requests that are in wait in order (``ready``); when
MAX_PARKED of them wait, the parent stops watching the listener, so new clients wait in the
kernel's accept backlog instead of being refused. At MAX_PARKED connections parked, the
longest-waiting one is closed to make room (as prefork's workers do). Signal handlers
only queue the signal; the loop reaps children with ``waitpid(-1, WNOHANG)``
on every wake-up, so no zombie outlives one pass of the loop.

A child ignores SIGTERM so that a ``kill`` of the whole process group (what the
harness does) lets the request in progress finish; the parent SIGKILLs any
child still running when ``--graceful-timeout`` runs out.

When ``fork()`` itself fails (EAGAIN at the process limit, RLIMIT_NPROC or the
kernel's pid limit; ENOMEM), the parent answers that one connection 503 and
forks no more until a child exits or a short back-off passes (doubling to
FORK_RETRY_MAX_S while forks keep failing); the other requests wait in order
(``ready``). It logs once when forks start failing and once when they work again,
with the count of refused connections, never a line per connection.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # typeshed has no stub for signal's C module
import argparse
import gc
import logging
import math
import os
import re
import select
import selectors
import signal
import socket
import sys
import time
import traceback
from collections import deque
from dataclasses import dataclass

from servers import _cli
from servers._signals import SignalQueue
from servers._startup import (
    EXIT_APP_LOAD_FAILED,
    EXIT_BIND_FAILED,
    EXIT_OK,
    open_listener,
    preload_app,
    setup_logging,
)
from servers.connection import Connection
from servers.http import serve_connection, warm_up
from servers.netio import RECV_SIZE, descriptor_cap, wait_for
from servers.parse import Limits
from servers.wsgi import ServerInfo, WSGIApp, http_date, send_error

log = logging.getLogger("workerbench.fork")

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGCHLD)
MAX_PARKED = 1000  # connections the parent holds while their requests come in; lowered to fit RLIMIT_NOFILE
WAIT, READY, GONE = range(3)  # what a waiting connection is: still coming in, for a child, closed by the parent
# A header line that announces a body: such a request is read whole by the parent.
MAY_HAVE_BODY = re.compile(rb"\n(?:content-length|transfer-encoding):", re.IGNORECASE)
PEEK_SIZE = 4096  # a head longer than this is read by the parent, as one that came in pieces
# A just-accepted connection whose bytes are not in yet is waited for this long before it is parked, while fewer
# than FIRST_BYTES_PARKED are parked: parking it and a turn of the loop cost the parent more than the wait.
FIRST_BYTES_WAIT_S = 0.001
FIRST_BYTES_PARKED = 8
FD_HEADROOM = 32  # descriptors kept free beside them: the listener, the selector, the self-pipe, the app's own
# After a failed fork(), the parent forks no more for this long (or until a child exits), doubling per
# failure in a row up to the max: long enough not to spin on a limit, short enough to notice it lifting.
FORK_RETRY_FIRST_S = 0.05
FORK_RETRY_MAX_S = 1.0


def refuse(conn: socket.socket, info: ServerInfo) -> None:
    """Answer 503 on a connection no process can serve, from the parent, and close it.

    The request is read (briefly waited for) first: closing a socket with unread bytes sends a reset,
    and the client could lose the 503 to it.
    """
    if wait_for(conn, select.POLLIN, 0.05):
        try:
            conn.recv(RECV_SIZE, socket.MSG_DONTWAIT)
        except OSError:
            pass
    send_error(conn, 503, "no process is free to serve the request; retry later", info)
    try:
        conn.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    conn.close()


@dataclass(slots=True, eq=False)
class Waiting:
    """An accepted connection whose request the parent reads before a child is forked for it."""

    conn: socket.socket
    peer: object
    reader: Connection | None  # None while the parent has only peeked at the request
    deadline: float
    body: bool = False  # the header block is in: the deadline is the body's


class ForkServer:
    def __init__(
        self,
        app: WSGIApp,
        listener: socket.socket,
        info: ServerInfo,
        limits: Limits,
        *,
        max_children: int = 64,
        graceful_timeout: float = 10.0,
    ) -> None:
        self.app = app
        self.listener = listener
        self.info = info
        self.limits = limits
        self.max_children = max(1, max_children)
        self.graceful_timeout = graceful_timeout
        self.children: set[int] = set()
        self.signals: SignalQueue | None = None  # made in run(): handlers belong to the loop that dispatches
        self.watching = False  # the listener is registered with the selector
        self.selector: selectors.BaseSelector | None = None
        self.parked: dict[int, Waiting] = {}  # by descriptor: requests still coming in
        self.ready: deque[Waiting] = deque()  # requests in, waiting for a child
        self.next_deadline = math.inf  # no parked deadline is earlier
        self.park_cap = descriptor_cap(MAX_PARKED, FD_HEADROOM)
        self.stopping = False
        self.draining_deadline: float | None = None
        self.fork_failures = 0  # in a row; while > 0, forking pauses until paused_until or a child's exit
        self.refused = 0  # connections answered 503 since forks started failing
        self.paused_until = 0.0

    # signals ---------------------------------------------------------------
    def handle_sigchld(self) -> None:
        pass  # reaping happens on every pass of the loop

    def handle_sigterm(self) -> None:
        if not self.stopping:
            log.info("SIGTERM: draining %d children", len(self.children))
            self.stopping = True
            self.draining_deadline = time.monotonic() + self.graceful_timeout

    def handle_sigint(self) -> None:
        log.info("fast shutdown: killing %d children", len(self.children))
        self._kill_children(signal.SIGKILL)
        self.stopping = True
        self.draining_deadline = time.monotonic()

    handle_sigquit = handle_sigint

    # children --------------------------------------------------------------
    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.children.clear()
                return
            if pid == 0:
                return
            self.children.discard(pid)
            self.paused_until = 0.0  # a process slot is free again: try the next fork now
            if os.WIFSIGNALED(status):
                sig = signal.Signals(os.WTERMSIG(status)).name
                log.warning("child %d killed by %s", pid, sig)
            elif os.WEXITSTATUS(status) != 0:
                log.warning("child %d exited with code %d", pid, os.WEXITSTATUS(status))

    def _kill_children(self, sig: int) -> None:
        for pid in list(self.children):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                self.children.discard(pid)

    def _fork(self, waiting: Waiting) -> None:
        conn = waiting.conn
        try:
            pid = os.fork()
        except OSError as exc:  # EAGAIN at a process limit, ENOMEM: refuse this one, keep serving
            self._fork_failed(conn, exc)
            return
        if pid:
            self.children.add(pid)
            conn.close()
            if self.fork_failures:
                log.warning("fork works again after %d failures; %d connections were answered 503",
                            self.fork_failures, self.refused)
                self.fork_failures = self.refused = 0
                self.paused_until = 0.0
            return
        code = 0
        try:
            # The other clients' sockets: a child holding one would keep it open after the parent closes it.
            for other in (*self.parked.values(), *self.ready):
                other.conn.close()
            if self.selector is not None:
                self.selector.close()
            signal.set_wakeup_fd(-1)
            # _signal.signal, not signal.signal: the wrapper turns the old handler into an enum
            # member, code no child has run before, and that costs each child ~40 page copies.
            _signal.signal(signal.SIGTERM, _signal.SIG_IGN)
            for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGCHLD):
                _signal.signal(sig, _signal.SIG_DFL)
            self.listener.close()
            gc.disable()  # the process lives for one connection; collection is wasted work
            self.serve_child(conn, waiting.peer, waiting.reader)
        except BaseException:
            code = 1
            traceback.print_exc()
        finally:
            try:
                conn.close()
            finally:
                os._exit(code)

    def _fork_failed(self, conn: socket.socket, exc: OSError) -> None:
        self.fork_failures += 1
        self.refused += 1
        delay = min(FORK_RETRY_MAX_S, FORK_RETRY_FIRST_S * 2 ** (self.fork_failures - 1))
        self.paused_until = time.monotonic() + delay
        if self.fork_failures == 1:  # once per episode; its end is logged by the next fork that works
            log.error("fork failed: %s; answering 503 and forking again once a child exits (or after %.2fs, "
                      "up to %.1fs while it fails) with %d children running", exc, delay, FORK_RETRY_MAX_S,
                      len(self.children))
        refuse(conn, self.info)

    def _paused(self) -> bool:
        """Forking waits after a failed fork (see FORK_RETRY_FIRST_S)."""
        return self.paused_until != 0.0 and self.paused_until > time.monotonic()  # no clock read when not paused

    def serve_child(self, conn: socket.socket, peer: object, reader: Connection | None) -> None:
        """What a child does with its connection, its request already read, before it exits (cgi execs here)."""
        serve_connection(conn, peer, self.app, self.info, self.limits, reader)

    # main loop -------------------------------------------------------------
    def run(self) -> int:
        signals = self.signals = SignalQueue(HANDLED_SIGNALS)
        self.listener.setblocking(False)
        selector = self.selector = selectors.DefaultSelector()
        selector.register(signals, selectors.EVENT_READ)
        warm_up(self.info, self.limits)
        gc.collect()
        gc.freeze()  # keep the preloaded app's objects out of every child's copy-on-write
        log.info("fork server on %s:%d, at most %d children", self.info.host, self.info.port, self.max_children)
        try:
            while True:
                self._watch_listener(selector)
                accept = False
                for key, _ in selector.select(self._select_timeout()):
                    if key.fileobj is signals:
                        signals.drain()
                    elif key.fileobj is self.listener:
                        accept = True
                    else:
                        self._readable(key.data)
                signals.dispatch(self)
                self.reap()
                http_date()  # children inherit this second's Date header instead of formatting it
                if accept and self.watching and not self.stopping:
                    self._accept_pending()
                if self.stopping and self.parked:
                    self._close_parked()
                self._fork_ready()
                if self.parked and time.monotonic() >= self.next_deadline:
                    self._expire(time.monotonic())
                if self.stopping and self._drained():
                    return EXIT_OK
        finally:
            signals.close()
            for waiting in (*self.parked.values(), *self.ready):
                waiting.conn.close()
            selector.close()
            self.listener.close()

    def _watch_listener(self, selector: selectors.BaseSelector) -> None:
        """Watch the listener while there is room for more connections: beyond it, clients wait in the backlog."""
        want = not self.stopping and len(self.ready) < self.park_cap
        if want != self.watching:
            if want:
                selector.register(self.listener, selectors.EVENT_READ)
            else:
                selector.unregister(self.listener)
            self.watching = want

    def _select_timeout(self) -> float:
        timeout = 1.0 if self.draining_deadline is None else min(1.0, self.draining_deadline - time.monotonic())
        if self.parked:
            timeout = min(timeout, self.next_deadline - time.monotonic())
        if self.ready and self._paused():
            timeout = min(timeout, self.paused_until - time.monotonic())
        return max(0.0, timeout)

    def _drained(self) -> bool:
        """While stopping: True once no child is left, those still running at the deadline killed."""
        if not self.children and not self.ready:
            return True
        assert self.draining_deadline is not None
        if time.monotonic() < self.draining_deadline:
            return False
        log.warning("grace over: killing %d children", len(self.children))
        self._kill_children(signal.SIGKILL)
        self._wait_children()
        for waiting in self.ready:
            waiting.conn.close()
        self.ready.clear()
        return True

    # requests coming in ------------------------------------------------------
    def _accept_pending(self) -> None:
        while len(self.ready) < self.park_cap:
            try:
                conn, peer = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE or ECONNABORTED: log, keep serving
                log.error("accept failed: %s", exc)
                return
            waiting = Waiting(conn, peer, None, time.monotonic() + self.limits.header_timeout)
            state = self._advance(waiting)
            if state == WAIT and waiting.reader is None and len(self.parked) < FIRST_BYTES_PARKED:
                poller = select.poll()
                poller.register(conn, select.POLLIN)
                if poller.poll(FIRST_BYTES_WAIT_S * 1000):
                    state = self._advance(waiting)
            if state == READY:
                self.ready.append(waiting)
                self._fork_ready()  # at once: a burst of accepts must not keep the first requests waiting
            elif state == GONE:
                conn.close()
            else:
                if len(self.parked) + len(self.ready) >= self.park_cap and self.parked:
                    oldest = next(iter(self.parked.values()))  # as prefork does: the longest-waiting one goes
                    self._unpark(oldest)
                    oldest.conn.close()
                self._park(waiting)

    def _park(self, waiting: Waiting) -> None:
        assert self.selector is not None
        self.selector.register(waiting.conn, selectors.EVENT_READ, waiting)
        self.parked[waiting.conn.fileno()] = waiting
        self.next_deadline = min(self.next_deadline, waiting.deadline)

    def _unpark(self, waiting: Waiting) -> None:
        assert self.selector is not None
        self.selector.unregister(waiting.conn)
        del self.parked[waiting.conn.fileno()]

    def _headers_in(self, waiting: Waiting) -> None:
        """Once the header block is in, the request has --body-timeout for its body."""
        if not waiting.body and waiting.reader is not None and waiting.reader.msg.headers_complete:
            waiting.body = True
            waiting.deadline = time.monotonic() + self.limits.body_timeout
            self.next_deadline = min(self.next_deadline, waiting.deadline)

    def _advance(self, waiting: Waiting) -> int:
        """Look at what a connection has sent: READY for a child, WAIT for more, GONE (to be closed here).

        A request whose header block came whole and announces no body goes to a child unread,
        only peeked at (MSG_PEEK), and the child reads and parses it as before: the parent's
        work for it stays an accept, a peek and a fork. Parsing every request here cost
        +15-30% CPU a request, mostly the parent's own writes to pages it shares with its
        children. Anything else (a head that came in pieces, a request with a body) is read
        here until it is whole, so only a complete request ever takes a child.
        """
        reader = waiting.reader
        if reader is None:
            try:
                head = waiting.conn.recv(PEEK_SIZE, socket.MSG_PEEK | socket.MSG_DONTWAIT)
            except BlockingIOError:
                return WAIT
            except OSError:
                return GONE
            if not head:
                return GONE  # closed before a byte: a child would have answered nothing
            end = head.find(b"\r\n\r\n")
            if end >= 0 and not MAY_HAVE_BODY.search(head, 0, end):
                return READY
            reader = waiting.reader = Connection(waiting.conn, self.limits)
        if not reader.feed_nowait():
            self._headers_in(waiting)
            return WAIT
        if reader.parser.complete() or reader.handed_over:
            return READY
        return GONE  # the client closed or failed first

    def _readable(self, waiting: Waiting) -> None:
        state = self._advance(waiting)
        if state == WAIT:
            return
        self._unpark(waiting)
        if state == READY:
            self.ready.append(waiting)
        else:
            waiting.conn.close()

    def _expire(self, now: float) -> None:
        nearest = math.inf
        for waiting in list(self.parked.values()):
            if waiting.deadline > now:
                nearest = min(nearest, waiting.deadline)
                continue
            self._unpark(waiting)
            waiting.conn.close()  # what a child did when a request did not come in time: close, no answer
            log.debug("closed %s: its request did not come in time", waiting.peer)
        self.next_deadline = nearest

    def _close_parked(self) -> None:
        """Stopping: requests not in yet are not waited for (those in are still served)."""
        for waiting in list(self.parked.values()):
            self._unpark(waiting)
            waiting.conn.close()

    def _fork_ready(self) -> None:
        while self.ready and len(self.children) < self.max_children and not self._paused():
            self._fork(self.ready.popleft())
            # Reap between forks too: under load the loop may not return to select for a while.
            self.reap()

    def _wait_children(self) -> None:
        deadline = time.monotonic() + 5.0
        while self.children and time.monotonic() < deadline:
            self.reap()
            time.sleep(0.01)


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The shared options plus those of a server built on :class:`ForkServer` (fork and cgi)."""
    p = _cli.parser(prog, description)
    p.add_argument("--max-children", type=int, default=64,
                   help="cap on children (one per connection) running at once; clients beyond it wait in the backlog")
    p.add_argument("--graceful-timeout", type=float, default=10.0,
                   help="seconds running children get to finish after SIGTERM")
    return p


def main(argv: list[str] | None = None) -> int:
    p = parser("python -m servers.fork", "Fork-per-request WSGI server.")
    args = p.parse_args(argv)
    setup_logging(args.log_level, "fork")
    host, port = _cli.bind(args, p)
    app = preload_app(args.app)
    if app is None:
        return EXIT_APP_LOAD_FAILED
    listener = open_listener(host, port, args.backlog)
    if listener is None:
        return EXIT_BIND_FAILED
    port = listener.getsockname()[1]
    limits = _cli.limits(args)
    info = ServerInfo(
        software="workerbench-fork",
        host=host,
        port=port,
        multiprocess=True,
        run_once=limits.keepalive == 0,
    )
    server = ForkServer(
        app, listener, info, limits, max_children=args.max_children, graceful_timeout=args.graceful_timeout
    )
    return server.run()


if __name__ == "__main__":
    sys.exit(main())
