"""The pre-fork pool under slow and greedy clients: half-sent requests, trickled bodies, clients that do not
read, descriptor exhaustion, and SIGTERM with idle connections open. Real servers, real sockets, real signals."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import psutil
import pytest

from scripts.common.procs import get
from tests.conftest import Server, StartServer

APP = "tests.servers.faulty_app:app"
FD_APP = "tests.servers.fd_app:app"
HALF_SENT = b"GET /plaintext HTTP/1.1\r\nHost: x\r\n"  # the blank line that would end it never comes


def prefork(*extra: str, workers: int = 2, app: str = APP,
            nofile: int | None = None) -> Callable[[str, int], list[str]]:
    """argv of a real prefork server; with ``nofile``, started under that RLIMIT_NOFILE (as ``ulimit -n`` would)."""

    def build(host: str, port: int) -> list[str]:
        cmd = ["-m", "servers.prefork", app, "--bind", f"{host}:{port}", "--workers", str(workers),
               "--log-level", "info", *extra]
        if nofile is None:
            return [sys.executable, *cmd]
        return ["prlimit", f"--nofile={nofile}:{nofile}", "--", sys.executable, *cmd]

    return build


@contextmanager
def half_sent(srv: Server, count: int, data: bytes = HALF_SENT) -> Iterator[list[socket.socket]]:
    with ExitStack() as stack:
        socks = []
        for _ in range(count):
            s = stack.enter_context(socket.create_connection((srv.host, srv.port), timeout=10))
            s.sendall(data)
            socks.append(s)
        yield socks


def normal_requests(srv: Server, count: int, timeout: float = 3.0) -> tuple[list[float], list[str]]:
    """``count`` requests at once, each on a new connection: (latencies of the good ones, failures)."""
    latencies: list[float] = []
    failures: list[str] = []

    def one() -> None:
        start = time.monotonic()
        try:
            status, _, body = get(srv.host, srv.port, "/plaintext", timeout=timeout)
        except (OSError, http.client.HTTPException) as exc:
            failures.append(type(exc).__name__)
            return
        if status != 200 or body != b"Hello, World!":
            failures.append(f"status {status}")
            return
        latencies.append(time.monotonic() - start)

    threads = [threading.Thread(target=one) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout + 5)
    return latencies, failures


def still_open(s: socket.socket) -> bool:
    """The server has neither closed nor answered ``s``."""
    s.setblocking(False)
    try:
        return not s.recv(1)  # b"" would be a close, bytes an answer
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


# item 10: slowloris ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [8, 64])
def test_half_sent_requests_do_not_hold_the_workers(k: int, start_server: StartServer) -> None:
    with start_server(prefork()) as srv, half_sent(srv, k) as socks:
        time.sleep(0.3)  # every one of them accepted and its bytes seen by a worker
        latencies, failures = normal_requests(srv, 20)
        parked = sum(still_open(s) for s in socks)
    assert failures == [], failures
    assert len(latencies) == 20
    assert parked == k  # waiting in the epoll sets, not dropped to make room


def test_a_request_sent_in_pieces_is_answered_when_its_headers_are_complete(start_server: StartServer) -> None:
    pieces = [b"GET /pid HTT", b"P/1.1\r\nHo", b"st: x\r\n", b"\r\n"]
    with start_server(prefork(workers=1)) as srv, socket.create_connection((srv.host, srv.port), timeout=5) as s:
        for piece in pieces[:-1]:
            s.sendall(piece)
            time.sleep(0.2)
            # The single worker serves others between the pieces: it is not blocked on this client.
            assert get(srv.host, srv.port, "/plaintext", timeout=2)[0] == 200
        s.sendall(pieces[-1])
        answer = s.recv(4096)
        worker = next(iter(srv.live_children()))
    assert answer.startswith(b"HTTP/1.1 200")
    assert answer.endswith(str(worker).encode())


def test_the_header_timeout_still_drops_a_half_sent_request(start_server: StartServer) -> None:
    with start_server(prefork("--header-timeout", "1", workers=1)) as srv, half_sent(srv, 3) as socks:
        start = time.monotonic()
        for s in socks:
            assert s.recv(4096) == b""  # closed by the server, no answer
        took = time.monotonic() - start
        assert get(srv.host, srv.port, "/plaintext")[0] == 200
        time.sleep(0.2)
        log = srv.log_text()
    assert 0.7 < took < 4
    assert len(re.findall(r"dropped slow client .*: no complete request header in 1s", log)) == 3, log


# item 11: slow body, client that does not read -------------------------------------------------------------------


def test_a_trickled_body_does_not_get_the_worker_killed(start_server: StartServer) -> None:
    """1 byte every 2 s, --timeout 2: the worker beats while it waits, and drops the client at --body-timeout."""
    args = prefork("--timeout", "2", "--kill-grace", "0.5", "--body-timeout", "4")
    with start_server(args) as srv, socket.create_connection((srv.host, srv.port), timeout=15) as s:
        workers = srv.live_children()
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        start = time.monotonic()
        time.sleep(0.3)
        answered_meanwhile = 0
        closed_after = None
        while time.monotonic() - start < 10:
            try:
                s.sendall(b"x")
            except OSError:
                closed_after = time.monotonic() - start
                break
            if not still_open(s):
                closed_after = time.monotonic() - start
                break
            for _ in range(5):  # the other worker keeps serving
                answered_meanwhile += get(srv.host, srv.port, "/plaintext", timeout=3)[0] == 200
            time.sleep(2)
        after = srv.live_children()
        log = srv.log_text()
    assert closed_after is not None and 3.5 < closed_after < 8, closed_after
    assert after == workers  # no worker was killed or replaced
    assert not re.search(r"worker \d+ timed out", log), log
    # The body is read while the connection is parked (issue 19.2): the worker is not even held by it.
    assert re.search(r"dropped slow client \('127.0.0.1', \d+\): no complete request body in 4s", log), log
    assert answered_meanwhile >= 10


def test_a_client_that_does_not_read_does_not_get_the_worker_killed(start_server: StartServer) -> None:
    args = prefork("--timeout", "2", "--kill-grace", "0.5", "--send-timeout", "4", workers=1)
    with start_server(args) as srv:
        worker = srv.live_children()
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(15)
        s.connect((srv.host, srv.port))
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # 16 MiB, and we read none of it for a while
        time.sleep(5.5)
        received = 0
        while chunk := s.recv(1 << 20):  # ends: the server gave up and closed
            received += len(chunk)
        s.close()
        assert get(srv.host, srv.port, "/plaintext")[0] == 200
        assert srv.live_children() == worker
        log = srv.log_text()
    assert received < 16 << 20
    assert not re.search(r"worker \d+ timed out", log), log
    assert "dropped slow client" in log


# item 12: descriptor exhaustion ----------------------------------------------------------------------------------


def cpu_seconds(pids: set[int]) -> float:
    total = 0.0
    for pid in pids:
        times = psutil.Process(pid).cpu_times()
        total += times.user + times.system
    return total


def test_silent_connections_beyond_the_descriptor_limit_do_not_spin(start_server: StartServer) -> None:
    with start_server(prefork(workers=1, nofile=48)) as srv:
        worker = srv.live_children()
        with half_sent(srv, 60, data=b"") as socks:
            time.sleep(0.3)
            before = cpu_seconds(worker)
            time.sleep(3)
            used = cpu_seconds(worker) - before
            # Past the cap the longest-parked connection makes room: new clients still get in.
            latencies, failures = normal_requests(srv, 5)
            for s in socks:
                s.close()
        time.sleep(0.3)
        assert get(srv.host, srv.port, "/plaintext")[0] == 200
        log_lines = srv.log_text().count("\n")
    assert used < 0.5, used
    assert failures == [] and len(latencies) == 5, failures
    assert log_lines < 20


def test_accept_backs_off_while_descriptors_are_exhausted(start_server: StartServer) -> None:
    with start_server(prefork(workers=1, app=FD_APP, nofile=64)) as srv:
        worker = srv.live_children()
        assert get(srv.host, srv.port, "/hog?s=2.5")[0] == 200  # every descriptor taken for 2.5 s
        time.sleep(0.4)
        before = cpu_seconds(worker)
        start = time.monotonic()
        latencies, failures = normal_requests(srv, 4, timeout=8)  # wait in the backlog until then
        took = time.monotonic() - start
        used = cpu_seconds(worker) - before
        log = srv.log_text()
    assert failures == [] and len(latencies) == 4, failures
    assert 1.5 < took < 6
    assert used < 0.5, used
    assert 1 <= log.count("accept failed") <= 2, log


# item 13: graceful shutdown ---------------------------------------------------------------------------------------


def test_sigterm_closes_silent_connections_at_once_and_finishes_requests_in_flight(
        start_server: StartServer) -> None:
    with start_server(prefork("--graceful-timeout", "20")) as srv, half_sent(srv, 3, data=b"") as silent:
        result: dict[str, object] = {}

        def in_flight() -> None:
            result["answer"] = get(srv.host, srv.port, "/io?ms=1200", timeout=10)

        t = threading.Thread(target=in_flight)
        t.start()
        time.sleep(0.4)  # the request is inside the app now
        os.kill(srv.proc.pid, signal.SIGTERM)
        start = time.monotonic()
        code = srv.proc.wait(timeout=15)
        took = time.monotonic() - start
        t.join(10)
        closed = [s.recv(10) for s in silent]
    assert code == 0
    assert took < 2.5, took  # the 1.2 s request, not the 10 s header timeout nor the 20 s grace
    assert closed == [b""] * 3
    answer = result["answer"]
    assert isinstance(answer, tuple) and answer[0] == 200


def test_sigterm_with_idle_keepalive_connections_exits_at_once(start_server: StartServer) -> None:
    with start_server(prefork("--keepalive", "30", "--graceful-timeout", "20")) as srv:
        conns = [http.client.HTTPConnection(srv.host, srv.port, timeout=5) for _ in range(4)]
        for c in conns:
            c.request("GET", "/plaintext")
            c.getresponse().read()
        os.kill(srv.proc.pid, signal.SIGTERM)
        start = time.monotonic()
        code = srv.proc.wait(timeout=15)
        took = time.monotonic() - start
        for c in conns:
            c.close()
    assert code == 0
    assert took < 1.5, took
