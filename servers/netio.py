"""Socket I/O for the hand-written servers: a send or a read costs one system call when it can.

Theory of operation
-------------------
Every ``recv()`` and ``send()`` on a client socket is made with ``MSG_DONTWAIT``, and
the code waits (``poll``) only when the kernel says "not yet" (EAGAIN). A socket with a
Python-level timeout would poll() before every recv() and send(), two system calls where
one almost always suffices: a request has usually arrived by the time it is read, and a
response fits in the send buffer. The flag, rather than a non-blocking descriptor, saves
a further call per connection and leaves the descriptor as accept() made it (the cgi
mode hands it to a CGI script as its stdout).

Every wait is bounded by a timeout. A pre-fork worker hooks into the waits
(:func:`set_wait_hook`) so that its heartbeat goes on while a slow client holds it. An
error on the server's own socket (a reset, a close, a timeout) is the client leaving:
the callers raise :class:`ClientGone` for it. The listening socket is made here too
(:func:`parse_bind`, :func:`listen`).
"""

from __future__ import annotations

import os
import resource
import select
import socket
import time
from collections.abc import Callable

RECV_SIZE = 64 * 1024


class ClientGone(Exception):
    """The peer closed or reset the connection, or let a timeout pass."""


WaitHook = Callable[[bool], None]
WAIT_SLICE_S = 1.0  # with a wait hook set, it is called at least this often during a wait
_wait_hook: WaitHook | None = None


def set_wait_hook(hook: WaitHook | None) -> None:
    """Make every wait on a client call ``hook(False)`` at least every WAIT_SLICE_S, ``hook(True)`` on its timeout.

    A pre-fork worker is judged alive by a heartbeat. A wait on a slow client (a body
    trickled in, a response it does not read) is bounded by the body and send timeouts
    and is the client's doing, so the worker beats through it instead of looking hung,
    and counts the timeout as the client's failure. Per process: a worker sets it once.
    """
    global _wait_hook
    _wait_hook = hook


def wait_for(sock: socket.socket, events: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``events`` (select.POLLIN/POLLOUT) on ``sock``."""
    if timeout <= 0:
        return False
    poller = select.poll()
    poller.register(sock, events)
    hook = _wait_hook
    if hook is None:
        return bool(poller.poll(timeout * 1000))
    deadline = time.monotonic() + timeout
    while True:
        hook(False)
        left = deadline - time.monotonic()
        if left <= 0:
            hook(True)
            return False
        if poller.poll(min(left, WAIT_SLICE_S) * 1000):
            return True


def send_all(sock: socket.socket, data: bytes, timeout: float) -> None:
    """``sendall`` that waits only when the send buffer is full: TimeoutError after ``timeout`` s without progress."""
    try:
        sent = sock.send(data, socket.MSG_DONTWAIT)
    except BlockingIOError:
        sent = 0
    if sent == len(data):
        return
    view = memoryview(data)[sent:]
    while view:
        if not wait_for(sock, select.POLLOUT, timeout):
            raise TimeoutError("the client stopped reading the response")
        try:
            view = view[sock.send(view, socket.MSG_DONTWAIT):]
        except BlockingIOError:
            continue


def parse_bind(value: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or ``:PORT`` (on 127.0.0.1), the port 1-65535: the one rule for every
    ``--bind`` (the servers' and ``python -m scripts.serve``'s)."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--bind must be HOST:PORT (e.g. 127.0.0.1:8000 or [::1]:8000), got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


class BindError(Exception):
    """The address cannot be listened on; the message says which and why."""


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening socket, or :class:`BindError` with a message a person can act on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot bind {host}:{port}: {exc.strerror}") from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


def descriptor_cap(most: int, headroom: int) -> int:
    """``most``, or fewer so that as many open connections leave ``headroom`` descriptors free under RLIMIT_NOFILE
    (the cap on connections a fork parent or a prefork worker keeps parked)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return most
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 16
    return max(1, min(most, soft - in_use - headroom))
