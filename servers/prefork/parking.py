"""Parked connections: a worker's epoll set of connections waiting for a request's bytes, with their deadlines."""

from __future__ import annotations

import math
import select
import socket
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from servers.http import Session
from servers.netio import descriptor_cap
from servers.parse import Limits
from servers.prefork.options import (
    FD_HEADROOM,
    FIRST_BYTES_WAIT_S,
    IDLE_BEAT_S,
    LOG_EVERY_S,
    MAX_PARKED,
    REBALANCE_POLL_S,
    log,
)


@dataclass(slots=True)
class Parked:
    """A connection in the worker's epoll set, and until when it may stay there."""

    session: Session
    deadline: float
    idle: bool  # between requests (deadline --keepalive); False: a request's headers are due
    body: bool = False  # the header block is in and the body is due (deadline --body-timeout)




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
    return descriptor_cap(MAX_PARKED, FD_HEADROOM)


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


class Parking:
    """The worker's parked connections (mixed into :class:`servers.prefork.worker.Worker`)."""

    poller: select.epoll
    parked: dict[int, Parked]
    next_deadline: float
    park_cap: int
    kept: int
    limits: Limits
    listening: bool
    short_of_share: bool
    dropped_at_cap: RateLog

    if TYPE_CHECKING:
        def _close(self, session: Session) -> None: ...
        def _slow_client(self, session: Session | None, why: str) -> None: ...

    # parked connections ------------------------------------------------------
    def _park(self, session: Session, deadline: float, idle: bool) -> None:
        if len(self.parked) >= self.park_cap:
            oldest = next(iter(self.parked))
            self._close(self._unpark(oldest).session)
            self.dropped_at_cap("%d connections parked: dropped the longest-waiting one", self.park_cap)
        fd = session.sock.fileno()
        entry = self.parked[fd] = Parked(session, deadline, idle)
        self.kept += idle
        self.poller.register(fd, select.EPOLLIN)
        self.next_deadline = min(self.next_deadline, deadline)
        if session.conn.msg.headers_complete:
            self._headers_in(entry)

    def _headers_in(self, entry: Parked) -> None:
        """Once a parked request's header block is in, its body has --body-timeout to come (the worker is not held)."""
        if not entry.body and entry.session.conn.msg.headers_complete:
            entry.body = True
            entry.deadline = time.monotonic() + self.limits.body_timeout
            self.next_deadline = min(self.next_deadline, entry.deadline)

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
            return
        if entry.idle and conn.started:
            # The first bytes of the next request: from now on its headers are due.
            entry.idle = False
            self.kept -= 1
            entry.deadline = time.monotonic() + self.limits.header_timeout
            self.next_deadline = min(self.next_deadline, entry.deadline)
        self._headers_in(entry)

    def _expire(self, now: float) -> None:
        nearest = math.inf
        for fd, entry in list(self.parked.items()):
            if entry.deadline > now:
                nearest = min(nearest, entry.deadline)
                continue
            self._unpark(fd)
            if not entry.idle:
                if entry.body:
                    self._slow_client(entry.session, f"no complete request body in {self.limits.body_timeout:g}s")
                else:
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
