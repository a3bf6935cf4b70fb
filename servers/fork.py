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

When the cap is reached the parent stops watching the listener, so new clients
wait in the kernel's accept backlog instead of being refused. Signal handlers
only queue the signal; the loop reaps children with ``waitpid(-1, WNOHANG)``
on every wake-up, so no zombie outlives one pass of the loop.

When ``fork()`` itself fails (EAGAIN at the process limit, RLIMIT_NPROC or the
kernel's pid limit; ENOMEM), the parent answers that one connection 503 and
stops accepting until a child exits or a short back-off passes (doubling to
FORK_RETRY_MAX_S while forks keep failing), so the others wait in the backlog.
It logs once when forks start failing and once when they work again, with the
count of refused connections, never a line per connection.

A child ignores SIGTERM so that a ``kill`` of the whole process group (what the
harness does) lets the request in progress finish; the parent SIGKILLs any
child still running when ``--graceful-timeout`` runs out.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]  # typeshed has no stub for signal's C module
import argparse
import gc
import logging
import os
import select
import selectors
import signal
import socket
import sys
import time
import traceback

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
from servers.http import serve_connection, warm_up
from servers.netio import RECV_SIZE, wait_for
from servers.parse import Limits
from servers.wsgi import ServerInfo, WSGIApp, http_date, send_error

log = logging.getLogger("workerbench.fork")

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGCHLD)
# After a failed fork(), the parent stops accepting for this long (or until a child exits), doubling per
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
        self.stopping = False
        self.draining_deadline: float | None = None
        self.fork_failures = 0  # in a row; while > 0, accepting pauses until paused_until or a child's exit
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

    def _fork(self, conn: socket.socket, peer: object) -> None:
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
            signal.set_wakeup_fd(-1)
            # _signal.signal, not signal.signal: the wrapper turns the old handler into an enum
            # member, code no child has run before, and that costs each child ~40 page copies.
            _signal.signal(signal.SIGTERM, _signal.SIG_IGN)
            for sig in (signal.SIGINT, signal.SIGQUIT, signal.SIGCHLD):
                _signal.signal(sig, _signal.SIG_DFL)
            self.listener.close()
            gc.disable()  # the process lives for one connection; collection is wasted work
            self.serve_child(conn, peer)
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
            log.error("fork failed: %s; answering 503 and accepting again once a child exits (or after %.2fs, "
                      "up to %.1fs while it fails) with %d children running", exc, delay, FORK_RETRY_MAX_S,
                      len(self.children))
        refuse(conn, self.info)

    def serve_child(self, conn: socket.socket, peer: object) -> None:
        """What a child does with its connection before it exits (:mod:`servers.cgi` execs here)."""
        serve_connection(conn, peer, self.app, self.info, self.limits)

    # main loop -------------------------------------------------------------
    def run(self) -> int:
        signals = self.signals = SignalQueue(HANDLED_SIGNALS)
        self.listener.setblocking(False)
        selector = selectors.DefaultSelector()
        selector.register(signals, selectors.EVENT_READ)
        warm_up(self.info, self.limits)
        gc.collect()
        gc.freeze()  # keep the preloaded app's objects out of every child's copy-on-write
        log.info("fork server on %s:%d, at most %d children", self.info.host, self.info.port, self.max_children)
        try:
            while True:
                self._watch_listener(selector)
                for key, _ in selector.select(self._select_timeout()):
                    if key.fileobj is signals:
                        signals.drain()
                signals.dispatch(self)
                self.reap()
                http_date()  # children inherit this second's Date header instead of formatting it
                if self.watching and not self.stopping:
                    self._accept_pending()
                if self.stopping and self._drained():
                    return EXIT_OK
        finally:
            signals.close()
            selector.close()
            self.listener.close()

    def _watch_listener(self, selector: selectors.BaseSelector) -> None:
        """Watch the listener only while a child may be forked: beyond the cap, clients wait in the backlog."""
        want = not self.stopping and len(self.children) < self.max_children and not self._paused()
        if want != self.watching:
            if want:
                selector.register(self.listener, selectors.EVENT_READ)
            else:
                selector.unregister(self.listener)
            self.watching = want

    def _paused(self) -> bool:
        """Accepting waits after a failed fork (see FORK_RETRY_FIRST_S)."""
        return self.paused_until != 0.0 and self.paused_until > time.monotonic()  # no clock read when not paused

    def _select_timeout(self) -> float:
        if self.draining_deadline is None:
            return max(0.0, min(1.0, self.paused_until - time.monotonic())) if self._paused() else 1.0
        return max(0.0, min(1.0, self.draining_deadline - time.monotonic()))

    def _drained(self) -> bool:
        """While stopping: True once no child is left, those still running at the deadline killed."""
        if not self.children:
            return True
        assert self.draining_deadline is not None
        if time.monotonic() < self.draining_deadline:
            return False
        log.warning("grace over: killing %d children", len(self.children))
        self._kill_children(signal.SIGKILL)
        self._wait_children()
        return True

    def _accept_pending(self) -> None:
        while len(self.children) < self.max_children and not self._paused():
            try:
                conn, peer = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # e.g. EMFILE or ECONNABORTED: log, keep serving
                log.error("accept failed: %s", exc)
                return
            self._fork(conn, peer)
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
