"""Persistent connections on the hand-written servers: reuse, pipelining, idle timeout, fairness, slow clients."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from scripts.common.procs import get
from tests.conftest import SharedServer, StartServer

APP = "tests.servers.faulty_app:app"


def server(kind: str, *extra: str, workers: int = 2) -> Callable[[str, int], list[str]]:
    def build(host: str, port: int) -> list[str]:
        cmd = [sys.executable, "-m", f"servers.{kind}", APP, "--bind", f"{host}:{port}", "--log-level", "info"]
        if kind == "prefork":
            cmd += ["--workers", str(workers)]
        return cmd + list(extra)

    return build


@pytest.fixture(params=["fork", "prefork"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def read_response(f: object) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response from a buffered socket file (Content-Length framed)."""
    status_line = f.readline()  # type: ignore[attr-defined]
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := f.readline()) not in (b"\r\n", b""):  # type: ignore[attr-defined]
        name, _, value = line.decode().partition(":")
        headers[name.strip().lower()] = value.strip()
    body = f.read(int(headers.get("content-length", 0)))  # type: ignore[attr-defined]
    return status, headers, body


def test_http11_connection_is_reused(kind: str, shared_server: SharedServer) -> None:
    srv = shared_server(server(kind, "--keepalive", "5"))
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
    pids = []
    for _ in range(5):
        conn.request("GET", "/pid")
        resp = conn.getresponse()
        pids.append(resp.read())
        assert resp.getheader("Connection") is None  # HTTP/1.1: persistent unless said otherwise
    conn.close()
    assert len(set(pids)) == 1  # one process served the whole connection


def test_http10_keep_alive_is_honoured_and_plain_http10_closes(kind: str, shared_server: SharedServer) -> None:
    srv = shared_server(server(kind, "--keepalive", "5"))
    with socket.create_connection((srv.host, srv.port), timeout=5) as s, s.makefile("rb") as f:
        for _ in range(2):
            s.sendall(b"GET /plaintext HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            status, headers, body = read_response(f)
            assert (status, headers["connection"], body) == (200, "keep-alive", b"Hello, World!")
    with socket.create_connection((srv.host, srv.port), timeout=5) as s, s.makefile("rb") as f:
        s.sendall(b"GET /plaintext HTTP/1.0\r\n\r\n")
        status, headers, _ = read_response(f)
        assert headers["connection"] == "close"
        assert f.read() == b""  # the server closed


def test_pipelined_requests_are_answered_in_order(kind: str, shared_server: SharedServer) -> None:
    srv = shared_server(server(kind, "--keepalive", "5"))
    with socket.create_connection((srv.host, srv.port), timeout=5) as s, s.makefile("rb") as f:
        s.sendall(b"GET /json HTTP/1.1\r\nHost: x\r\n\r\n"
                  b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
                  b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answers = [read_response(f) for _ in range(3)]
        assert f.read() == b""
    assert answers[0][2] == b'{"message":"Hello, World!"}'
    assert b'"length":3' in answers[1][2]
    assert answers[2][2] == b"Hello, World!" and answers[2][1]["connection"] == "close"


def test_idle_connection_is_closed_after_the_keepalive_timeout(kind: str, start_server: StartServer) -> None:
    with start_server(server(kind, "--keepalive", "0.5")) as srv:
        with socket.create_connection((srv.host, srv.port), timeout=5) as s, s.makefile("rb") as f:
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
            assert read_response(f)[0] == 200
            start = time.monotonic()
            assert f.read() == b""  # EOF: the server let the idle connection go
            idle = time.monotonic() - start
    assert 0.3 < idle < 3


def test_keepalive_off_closes_after_each_response(kind: str, shared_server: SharedServer) -> None:
    srv = shared_server(server(kind))
    with socket.create_connection((srv.host, srv.port), timeout=5) as s, s.makefile("rb") as f:
        s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(f)[1]["connection"] == "close"
        assert f.read() == b""


def test_idle_keepalive_clients_do_not_starve_others(start_server: StartServer) -> None:
    """2 sync workers, 64 persistent connections: half sit idle, half keep asking; nobody waits a second."""
    with start_server(server("prefork", "--keepalive", "30", workers=2)) as srv:
        idle = [socket.create_connection((srv.host, srv.port), timeout=5) for _ in range(32)]
        for s in idle:  # each idle client has been served once, then says nothing
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
        worst: list[float] = []
        errors: list[str] = []

        def active() -> None:
            conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
            try:
                for _ in range(20):
                    start = time.monotonic()
                    conn.request("GET", "/io?ms=2")
                    resp = conn.getresponse()
                    resp.read()
                    worst.append(time.monotonic() - start)
                    if resp.status != 200:
                        errors.append(str(resp.status))
                    time.sleep(0.005)
            except (OSError, http.client.HTTPException) as exc:
                errors.append(type(exc).__name__)
            finally:
                conn.close()

        threads = [threading.Thread(target=active) for _ in range(32)]
        for t in threads:
            t.start()
        # Brand-new clients get in too while all of that goes on.
        fresh = [get(srv.host, srv.port, "/plaintext", timeout=5)[0] for _ in range(10)]
        for t in threads:
            t.join(30)
        for s in idle:  # the idle ones are still usable afterwards
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(4096).startswith(b"HTTP/1.1 200")
            s.close()
    assert not errors, errors
    assert fresh == [200] * 10
    assert len(worst) == 32 * 20
    assert max(worst) < 1.0, max(worst)


def test_slow_client_is_dropped_after_the_header_timeout(kind: str, start_server: StartServer) -> None:
    with start_server(server(kind, "--header-timeout", "1")) as srv:
        with socket.create_connection((srv.host, srv.port), timeout=10) as s:
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHo")
            start = time.monotonic()
            # Meanwhile everyone else is served.
            assert get(srv.host, srv.port, "/plaintext")[0] == 200
            rest = s.recv(4096)
            took = time.monotonic() - start
    assert not rest.startswith(b"HTTP/1.1 200")
    assert 0.8 < took < 5


def test_silent_connection_does_not_hold_a_prefork_worker(start_server: StartServer) -> None:
    with start_server(server("prefork", "--header-timeout", "5", workers=1)) as srv:
        silent = socket.create_connection((srv.host, srv.port), timeout=10)
        time.sleep(0.1)
        start = time.monotonic()
        assert get(srv.host, srv.port, "/plaintext")[0] == 200  # the only worker is not stuck on it
        assert time.monotonic() - start < 1
        silent.close()


def test_client_leaving_mid_response_leaves_the_server_well(kind: str, start_server: StartServer) -> None:
    with start_server(server(kind)) as srv:
        for _ in range(5):
            with socket.create_connection((srv.host, srv.port), timeout=5) as s:
                s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
                assert s.recv(1024).startswith(b"HTTP/1.1 200")
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")  # RST
        assert get(srv.host, srv.port, "/plaintext")[2] == b"Hello, World!"
        time.sleep(0.2)
        log = srv.log_text()
    assert "Traceback" not in log, log


def test_client_that_stops_reading_is_dropped_after_the_send_timeout(kind: str, start_server: StartServer) -> None:
    with start_server(server(kind, "--send-timeout", "1", workers=1)) as srv:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(10)
        s.connect((srv.host, srv.port))
        s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # 16 MiB, and then we read none of it
        time.sleep(2.5)
        received = 0
        while chunk := s.recv(1 << 20):  # ends: the server gave up and closed
            received += len(chunk)
        s.close()
        assert received < 16 * 1024 * 1024
        start = time.monotonic()
        assert get(srv.host, srv.port, "/plaintext")[0] == 200
        assert time.monotonic() - start < 1
        time.sleep(0.2)
        log = srv.log_text()
    assert "Traceback" not in log, log


def pid_round(conns: list[http.client.HTTPConnection]) -> Counter[str]:
    """One request on each persistent connection: how many each worker answered (a closed one reconnects)."""
    pids: Counter[str] = Counter()
    for conn in conns:
        conn.request("GET", "/pid")
        pids[conn.getresponse().read().decode()] += 1
    return pids


def wait_for_ready_workers(status_path: Path, count: int, timeout: float = 10.0) -> None:
    """Until the master's status file shows ``count`` workers with the app loaded."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            workers = json.loads(status_path.read_text())["workers"]
        except (OSError, ValueError, KeyError):
            workers = []
        if sum(w["state"] == "ready" for w in workers) == count:
            return
        time.sleep(0.05)
    raise AssertionError(f"{count} ready workers not seen within {timeout}s")


@pytest.mark.alone  # how the kernel and the workers share 32 connections depends on which process runs when
def test_persistent_connections_spread_evenly_over_the_workers(start_server: StartServer, tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    with start_server(server("prefork", "--keepalive", "30", "--status-file", str(status), workers=2)) as srv:
        wait_for_ready_workers(status, 2)  # a worker still importing the app has no share yet
        conns = [http.client.HTTPConnection(srv.host, srv.port, timeout=5) for _ in range(32)]
        barrier = threading.Barrier(32)

        def first(conn: http.client.HTTPConnection) -> None:
            barrier.wait()  # all 32 connect at once, as wrk does
            conn.request("GET", "/pid")
            conn.getresponse().read()

        threads = [threading.Thread(target=first, args=(c,)) for c in conns]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        rounds = [pid_round(conns) for _ in range(3)]
        for c in conns:
            c.close()
    assert len(rounds[-1]) == 2 and max(rounds[-1].values()) <= 17, rounds


def test_a_worker_added_to_the_pool_takes_its_share_of_persistent_connections(start_server: StartServer) -> None:
    with start_server(server("prefork", "--keepalive", "30", workers=1)) as srv:
        conns = [http.client.HTTPConnection(srv.host, srv.port, timeout=5) for _ in range(32)]
        assert len(pid_round(conns)) == 1
        os.kill(srv.proc.pid, signal.SIGTTIN)
        rounds = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            rounds.append(pid_round(conns))
            if len(rounds[-1]) == 2 and max(rounds[-1].values()) <= 18:
                break
            time.sleep(0.05)
        for c in conns:
            c.close()
        log = srv.log_text()
    # The old worker answered its excess with Connection: close, and the clients reconnected to the new one;
    # it keeps up to an eighth of its share (2) over, as rule 3 tolerates.
    assert len(rounds[-1]) == 2 and max(rounds[-1].values()) <= 18, rounds
    assert "Traceback" not in log, log
