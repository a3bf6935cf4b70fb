"""Balance and accept: how workers share one listener's connections (rules 1-3 of the docs' theory of operation)."""

from __future__ import annotations

import math
import os
import select
import socket
import struct
import time
from typing import TYPE_CHECKING

from servers.http import Session
from servers.parse import Limits
from servers.prefork.options import (
    ACCEPT_BATCH,
    ACCEPT_PAUSE_S,
    OUT_OF_DESCRIPTORS,
    REBALANCE_CLOSE_FRACTION,
    REBALANCE_POLL_S,
    REBALANCE_SLACK,
    SILENT_PARKED,
    TCP_INFO_LEN,
    TCPI_UNACKED,
    log,
)
from servers.prefork.parking import Parked, RateLog, first_bytes
from servers.prefork.scoreboard import Scoreboard
from servers.wsgi import ServerInfo, WSGIApp


def accept_queue_length(listener: socket.socket) -> int:
    """Connections waiting in ``listener``'s accept queue (0 if the kernel will not say)."""
    try:
        info = listener.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LEN)
    except OSError:
        return 0
    return int(struct.unpack_from("I", info, TCPI_UNACKED)[0]) if len(info) >= TCPI_UNACKED + 4 else 0


class Balance:
    """Accepting and balancing connections across the pool (mixed into :class:`servers.prefork.worker.Worker`)."""

    board: Scoreboard
    slot: int
    doorbell: int
    listener: socket.socket
    listen_fd: int
    poller: select.epoll
    app: WSGIApp | None
    info: ServerInfo
    limits: Limits
    listening: bool
    held: int
    kept: int
    excess: int
    close_over: int
    over_since: float
    queued_since: float
    short_of_share: bool
    quota: int
    served: int
    accept_paused_until: float
    accept_failed: RateLog
    parked: dict[int, Parked]

    if TYPE_CHECKING:
        def _park(self, session: Session, deadline: float, idle: bool) -> None: ...

    # balance and accept ------------------------------------------------------
    def _balance(self, now: float) -> None:
        """Rules 2 and 3 (prefork.md): out of the accept rotation while over the fair share, and close the excess."""
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
        """Rule 1 (prefork.md): up to the fair share counting the listen queue, at least one, at most a batch.

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
            if session.conn.feed_nowait() or (not session.conn.started and self._first_bytes(conn)
                                               and session.conn.feed_nowait()):
                runnable.append(session)
            else:
                self._park(session, time.monotonic() + self.limits.header_timeout, idle=False)
            if self.quota and self.served + len(runnable) >= self.quota:
                return
        if for_others and accept_queue_length(self.listener):
            self._ring()  # up to its share, and more are waiting: they are the other workers'

    def _first_bytes(self, conn: socket.socket) -> bool:
        """:func:`first_bytes`, unless SILENT_PARKED connections already wait for theirs (then False at once)."""
        if len(self.parked) - self.kept >= SILENT_PARKED:
            return False
        return first_bytes(conn)

    def _opened(self) -> None:
        self.held += 1
        self.board.set_held(self.slot, self.held)

    def _close(self, session: Session) -> None:
        session.close()
        self.held -= 1
        self.board.set_held(self.slot, self.held)

