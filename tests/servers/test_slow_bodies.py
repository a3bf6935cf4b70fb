"""Slow bodies and silent connections against every hand-written mode (issue 19, items 2 and 6). Real servers.

A request is read whole, body included, before it takes a prefork worker or a fork/cgi child:
a client that trickles its body, or sends ``Expect: 100-continue`` and then nothing, or
connects and says nothing, costs a parked socket. Before: 2 such clients stopped a 2-worker
prefork pool and 64 stopped fork and cgi until --body-timeout (30 s) or --header-timeout
(10 s); 1,000 silent connections a second raised a fresh client's median to ~0.45 s under prefork.
"""

from __future__ import annotations

import hashlib
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import pytest

from servers.parse import PARKED_BODY_MAX
from tests.conftest import Server, StartServer

BODY = b"0123456789"
HEAD = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n" % len(BODY)
HOLDERS = {"prefork": 2, "fork": 64, "cgi": 64}  # what held every worker or child before


def argv(kind: str) -> Callable[[str, int], list[str]]:
    def build(host: str, port: int) -> list[str]:
        cmd = [sys.executable, "-m", f"servers.{kind}", "apps.wsgi:app", "--bind", f"{host}:{port}"]
        return cmd + (["--workers", "2"] if kind == "prefork" else [])

    return build


def fresh_get_s(srv: Server, timeout: float = 5.0) -> float:
    """Seconds for a GET on a new connection; fails on anything but the app's answer."""
    start = time.monotonic()
    with socket.create_connection((srv.host, srv.port), timeout=timeout) as s:
        s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"Hello, World!"), answer[:200]
    return time.monotonic() - start


def read_all(s: socket.socket) -> bytes:
    s.settimeout(60)  # 64 cgi requests at once: a Python start-up each, on a shared machine
    answer = b""
    while chunk := s.recv(4096):
        answer += chunk
    return answer


@contextmanager
def connections(srv: Server, count: int, data: bytes, spacing: float) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        socks = []
        for _ in range(count):
            s = stack.enter_context(socket.create_connection((srv.host, srv.port), timeout=10))
            if data:
                s.sendall(data)
            socks.append(s)
            time.sleep(spacing)  # prefork: each worker takes one (a worker inside a request is offered no more)
        yield socks


@pytest.mark.parametrize("kind", list(HOLDERS))
def test_trickled_bodies_hold_no_worker_and_still_arrive(start_server: StartServer, kind: str) -> None:
    count = HOLDERS[kind]
    spacing = 0.4 if kind == "prefork" else 0.0
    with start_server(argv(kind)) as srv, connections(srv, count, HEAD + b"\r\n" + BODY[:1], spacing) as socks:
        for i in range(1, 3):  # the bodies trickle on while fresh clients are served
            time.sleep(0.5)
            for s in socks:
                s.sendall(BODY[i : i + 1])
            assert fresh_get_s(srv) < 1.0
        for s in socks:
            s.sendall(BODY[3:])
        answers = [read_all(s) for s in socks]
    digest = hashlib.sha256(BODY).hexdigest().encode()
    assert all(a.startswith(b"HTTP/1.1 200 ") and digest in a for a in answers), answers[0][:300]


@pytest.mark.parametrize("kind", list(HOLDERS))
def test_clients_waiting_for_100_continue_hold_no_worker(start_server: StartServer, kind: str) -> None:
    count = HOLDERS[kind]
    spacing = 0.4 if kind == "prefork" else 0.0
    head = HEAD + b"Expect: 100-continue\r\n\r\n"
    with start_server(argv(kind)) as srv, connections(srv, count, head, spacing) as socks:
        time.sleep(0.3)
        assert max(fresh_get_s(srv) for _ in range(3)) < 1.0
        for s in socks:
            assert s.recv(4096) == b"HTTP/1.1 100 Continue\r\n\r\n"
            s.sendall(BODY)
        answers = [read_all(s) for s in socks]
    digest = hashlib.sha256(BODY).hexdigest().encode()
    assert all(a.startswith(b"HTTP/1.1 200 ") and digest in a for a in answers), answers[0][:300]


@pytest.mark.parametrize("kind", ["fork", "cgi"])
def test_seventy_silent_connections_do_not_hold_fork_or_cgi(start_server: StartServer, kind: str) -> None:
    with start_server(argv(kind)) as srv, connections(srv, 70, b"", 0.0):
        time.sleep(0.3)
        assert max(fresh_get_s(srv) for _ in range(3)) < 1.0


def test_a_thousand_silent_connections_a_second_leave_prefork_fast(start_server: StartServer) -> None:
    with start_server(argv("prefork")) as srv:
        stop = threading.Event()
        opened = 0

        def flood() -> None:
            nonlocal opened
            held: list[socket.socket] = []
            start = time.monotonic()
            while not stop.is_set():
                try:
                    held.append(socket.create_connection((srv.host, srv.port), timeout=5))
                    opened += 1
                except OSError:
                    pass
                if len(held) > 800:  # under the workers' park cap: a steady stream, not an exhaustion
                    for s in held[:400]:
                        s.close()
                    del held[:400]
                time.sleep(max(0.0, opened / 1000 - (time.monotonic() - start)))
            for s in held:
                s.close()

        flooder = threading.Thread(target=flood)
        flooder.start()
        try:
            time.sleep(0.5)
            latencies = []
            until = time.monotonic() + 3
            while time.monotonic() < until:
                latencies.append(fresh_get_s(srv))
                time.sleep(0.02)
        finally:
            stop.set()
            flooder.join()
    assert opened > 2000  # the flood did run at about its rate
    assert statistics.median(latencies) < 0.05, sorted(latencies)


@pytest.mark.parametrize("kind", list(HOLDERS))
def test_a_body_over_the_parked_limit_is_handed_over_and_arrives(start_server: StartServer, kind: str) -> None:
    """Past PARKED_BODY_MAX the rest of a body is read by the worker or child, as before: memory stays bounded."""
    body = bytes(range(256)) * (PARKED_BODY_MAX // 256 * 2)
    head = b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
    with start_server(argv(kind)) as srv, socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(head + body[: PARKED_BODY_MAX + 1024])
        time.sleep(0.3)
        s.sendall(body[PARKED_BODY_MAX + 1024 :])
        answer = read_all(s)
    assert answer.startswith(b"HTTP/1.1 200 ") and hashlib.sha256(body).hexdigest().encode() in answer, answer[:300]
