"""The I/O side of one client connection: socket reads into a sans-I/O :class:`~servers.parse.RequestParser`.

Parsing itself does no I/O (:mod:`servers.parse`); this layer owns the socket: reads go through
:mod:`servers.netio` (``MSG_DONTWAIT`` first, a bounded wait only on EAGAIN), the header and body
deadlines, and the ``100 Continue`` a client that sent ``Expect`` waits for.
"""

from __future__ import annotations

import select
import socket
import time

from servers.netio import RECV_SIZE, ClientGone, send_all, wait_for
from servers.parse import PARKED_BODY_MAX, Limits, ProtocolError, Request, RequestParser


class Connection:
    """The I/O side of one client connection: reads bytes into a :class:`RequestParser`, within deadlines.

    A blocking server calls :meth:`read_request`; an event-driven worker calls
    :meth:`feed_nowait` when the socket is readable until it returns True.
    """

    def __init__(self, sock: socket.socket, limits: Limits) -> None:
        self.sock = sock
        self.limits = limits
        self.parser = RequestParser(limits)
        self.msg = self.parser.msg
        self.continue_sent = False
        self.handed_over = False  # feed_nowait() gave up parking a body over PARKED_BODY_MAX
        self.pending: bytes | None = None  # received by prefetch(), not yet parsed

    @property
    def deferred(self) -> ProtocolError | None:
        return self.parser.deferred

    def prefetch(self) -> bool:
        """One read that does not wait: True if there is something to act on (bytes, or the peer's close)."""
        try:
            data = self.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True  # the read in read_request() meets the error again and reports it
        if data:
            self.pending = data
        return True

    def feed_nowait(self) -> bool:
        """Receive and parse what has arrived, without waiting; True once :meth:`read_request` would not wait.

        For an event-driven server (prefork's workers, fork's parent) that keeps a connection
        in its epoll set until its whole request is in, body included, so that a client
        sending it slowly (slowloris, a trickled body, an ``Expect: 100-continue`` that never
        sends its body) never holds a worker or a child; a body over PARKED_BODY_MAX is handed
        over (True, ``handed_over``) to be read in full there. The ``100 Continue`` is sent here
        once the header block is in. The bytes go through the same parser as in
        :meth:`read_request` as they come, so a malformed request is refused at once rather
        than when a blank line that may never come arrives. True when a request is in, when
        it is refused (the refusal waits in the parser for :meth:`read_request` to raise),
        and when the client closed or failed, which the next read in :meth:`read_request`
        meets again and reports.
        """
        parser = self.parser
        msg = parser.msg
        if msg.done or parser.deferred is not None or parser.closing:  # parser.complete(), inlined: twice a request
            return True
        try:
            data = self.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if not data:
            return True
        parser.feed(data)
        if msg.done or parser.deferred is not None or parser.closing:
            return True
        if msg.headers_complete and len(msg.body) > PARKED_BODY_MAX:
            self.handed_over = True
            return True
        if msg.need_continue and not self.continue_sent:
            try:
                send_all(self.sock, b"HTTP/1.1 100 Continue\r\n\r\n", self.limits.send_timeout)
            except OSError:
                return True  # read_request meets the failure again
            self.continue_sent = True
        return False

    @property
    def started(self) -> bool:
        """Bytes of a request have arrived (a parked idle connection's next request has begun)."""
        parser = self.parser
        return self.pending is not None or parser.buffered > 0 or bool(parser.msg.done)  # parser.started, inlined

    def read_request(self, first: bool) -> Request | None:
        """The next request, or None when the client closed cleanly between requests."""
        parser = self.parser
        msg = parser.msg
        header_deadline: float | None = None
        body_deadline: float | None = None
        while not msg.done:
            if parser.deferred is not None:
                parser.next_request()  # raises it
            if parser.closing:
                return None
            now = time.monotonic()
            if not msg.headers_complete:
                if header_deadline is None:
                    idle = (not first) and parser.buffered == 0
                    header_deadline = now + (self.limits.keepalive if idle else self.limits.header_timeout)
                deadline = header_deadline
            else:
                if body_deadline is None:  # rare: a body mostly comes in the read that ends its headers
                    body_deadline = self._await_body(now)
                deadline = body_deadline
            remaining = deadline - now
            if remaining <= 0:
                self._stop_reading("request not received in time")
                return None  # idle keep-alive connection: close quietly
            if self.pending is not None:
                data, self.pending = self.pending, None
            else:
                try:
                    data = self.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    wait_for(self.sock, select.POLLIN, remaining)
                    continue  # the top of the loop tells data from a deadline that passed
                except OSError as exc:
                    raise ClientGone(str(exc)) from None
            if not data:
                self._stop_reading("client closed mid-request")
                return None
            if header_deadline is not None and parser.buffered == 0 and not first:
                # The first byte of a new request starts its header timeout.
                header_deadline = time.monotonic() + self.limits.header_timeout
            parser.feed(data)
        request = msg.done.popleft()  # parser.next_request(), inlined: the path of every request
        if not msg.done and not msg.in_message and not parser.line:
            parser.buffered = 0
        self.continue_sent = False
        return request

    def _await_body(self, now: float) -> float:
        """The deadline of a body that did not come with its headers; 100 Continue first if the client waits for it."""
        if self.msg.need_continue and not self.continue_sent:
            try:
                send_all(self.sock, b"HTTP/1.1 100 Continue\r\n\r\n", self.limits.send_timeout)
            except OSError as exc:
                raise ClientGone(str(exc)) from None
            self.continue_sent = True
        return now + self.limits.body_timeout

    def _stop_reading(self, why: str) -> None:
        """The read is over (a deadline passed, the client closed): quietly between requests, ClientGone inside one."""
        if self.parser.buffered:
            raise ClientGone(why)
