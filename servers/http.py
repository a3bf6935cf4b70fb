"""The HTTP/1.1 core shared by the hand-written servers: one connection, served a request at a time.

Theory of operation
-------------------
A server (:mod:`servers.fork`, :mod:`servers.prefork`) hands every accepted socket to
:func:`serve_connection`; an event-driven worker keeps a :class:`Session` per socket
instead and calls :meth:`Session.serve_next` when the socket is readable. It owns the
socket until it returns, and then the caller closes it. One connection is a loop of
three steps, the first two in modules of their own:

1. **read** (:mod:`servers.parse`): received bytes are held to the limits and the RFC
   9112 grammar and fed to llhttp until one complete request is queued. A request the
   server refuses raises :class:`~servers.parse.ProtocolError`, which becomes one short
   response with the right 4xx/5xx status followed by a close.
2. **run** (:mod:`servers.wsgi`): a PEP 3333 environ is built, the app is called, and
   its iterable is streamed out, framed as the app declared it (or chunked). An app that
   fails before its headers are out gets a 500; after that the connection is cut.
3. **decide**: the connection stays open only when the server enabled keep-alive
   (``keepalive > 0``), the client allows it, and the response was framed exactly as
   declared. Otherwise it is closed (``Connection: close``).

Underneath, :mod:`servers.netio` makes every ``recv``/``send`` with ``MSG_DONTWAIT`` and
waits only on EAGAIN; an error of the server's own socket is
:class:`~servers.netio.ClientGone`: the client left. The modules import in one
direction: netio, then parse, then wsgi, then this one. The README's "Hand-written
servers: request policy" lists the choices made where the RFCs leave one.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from typing import Any

from servers.connection import Connection
from servers.netio import RECV_SIZE, ClientGone
from servers.parse import Limits, ProtocolError
from servers.wsgi import ServerInfo, WSGIApp, build_environ, run_wsgi, send_error

log = logging.getLogger("workerbench.http")


class Session:
    """One client connection, served a request at a time.

    A blocking server calls :meth:`serve_next` in a loop (:func:`serve_connection`); an
    event-driven worker calls it when the socket is readable and parks the session
    between requests, so an idle keep-alive client never holds the worker.
    """

    def __init__(self, sock: socket.socket, peer: Any, app: WSGIApp, server: ServerInfo, limits: Limits,
                 conn: Connection | None = None) -> None:
        self.sock = sock
        self.peer = peer
        self.app = app
        self.server = server
        self.limits = limits
        self.conn = Connection(sock, limits) if conn is None else conn  # given: the request was read already
        self.served = 0

    def serve_next(self) -> bool:
        """Read and answer one request; False when the connection is to be closed."""
        try:
            try:
                request = self.conn.read_request(first=self.served == 0)
                if request is None:
                    return False
                environ = build_environ(request, self.server, self.peer)
            except ProtocolError as exc:
                send_error(self.sock, exc.status, exc.detail, self.server)
                return False
            keep_alive = self.limits.keepalive > 0 and request.keep_alive
            reuse = run_wsgi(self.app, environ, self.sock, request, self.server, keep_alive,
                             self.limits.send_timeout)
            self.served += 1
            return reuse
        except ClientGone as exc:
            log.debug("client gone: %s", exc)
            return False

    @property
    def pipelined(self) -> bool:
        """A complete request (or the error behind one) is already buffered: act on it before waiting on the socket."""
        return bool(self.conn.msg.done) or self.conn.parser.deferred is not None

    def close(self) -> None:
        self.sock.close()  # the worker holds the only descriptor, so this sends the FIN
        self.conn.msg.release()


def serve_connection(sock: socket.socket, peer: Any, app: WSGIApp, server: ServerInfo, limits: Limits,
                     conn: Connection | None = None) -> int:
    """Serve every request on ``sock`` until it should close; returns the number of requests served."""
    session = Session(sock, peer, app, server, limits, conn)
    try:
        while session.serve_next():
            pass
        return session.served
    finally:
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


WARM_UP_REQUEST = (
    b"GET /warm-up?x=1 HTTP/1.1\r\nHost: warm-up\r\nUser-Agent: workerbench\r\nAccept: */*\r\n"
    b"Connection: close\r\n\r\n"
)


def _warm_up_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def warm_up(server: ServerInfo, limits: Limits, rounds: int = 64) -> None:
    """Run ``rounds`` synthetic requests through the core (this module, parse, wsgi, netio) over a socketpair.

    A fork-per-request parent never serves, so without this every child runs the core's
    code cold: CPython 3.11 counts down and rewrites the bytecode of a function during its
    first executions (specialisation), fills its attribute caches, and formats the Date
    header, and each of those writes lands on a page shared with the parent, which the
    kernel must copy (copy-on-write). Running the code here first leaves those pages
    already written, so each child copies fewer. The user's app is not called: a stand-in
    app answers.
    """
    for _ in range(rounds):
        a, b = socket.socketpair()
        try:
            b.sendall(WARM_UP_REQUEST)
            serve_connection(a, ("127.0.0.1", 0), _warm_up_app, server, limits)
            while b.recv(RECV_SIZE):
                pass
        finally:
            a.close()
            b.close()
