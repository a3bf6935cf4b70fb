"""A served and closed connection is freed by reference counting, not left for the cyclic collector."""

from __future__ import annotations

import gc
import socket
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

from apps.wsgi import app
from servers.http import Session
from servers.parse import Limits
from servers.wsgi import ServerInfo

INFO = ServerInfo(software="t", host="127.0.0.1", port=1)


@contextmanager
def collector_off() -> Iterator[None]:
    """The cyclic collector stopped, so only reference counting can free what the test watches."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def test_a_closed_connection_leaves_no_garbage_cycle() -> None:
    # httptools' parser holds its callbacks' object, which holds the parser: one cycle per connection made
    # the worker run the cyclic collector every ~80 connections with a new connection per request.
    server_side, client = socket.socketpair()
    session = Session(server_side, ("127.0.0.1", 1), app, INFO, Limits(keepalive=5.0))
    message = weakref.ref(session.conn.msg)
    client.sendall(b"GET /plaintext HTTP/1.1\r\nHost: t\r\n\r\n"
                   b"GET /json HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    with client, collector_off():
        assert session.serve_next() and session.pipelined
        assert not session.serve_next()
        session.close()
        session.close()  # twice is harmless
        del session
        assert message() is None


def test_a_connection_whose_request_fails_is_freed_too() -> None:
    server_side, client = socket.socketpair()
    session = Session(server_side, ("127.0.0.1", 1), app, INFO, Limits())
    message = weakref.ref(session.conn.msg)
    client.sendall(b"GET  /two-spaces HTTP/1.1\r\nHost: t\r\n\r\n")
    with client, collector_off():
        assert not session.serve_next()
        assert client.recv(100).startswith(b"HTTP/1.1 400")
        session.close()
        del session
        assert message() is None
