"""The hand-written servers as real processes: HTTP handling, bad input, signals, process hygiene."""

from __future__ import annotations

import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from scripts.common.procs import free_port, get, group_members, running
from servers import _startup
from tests.conftest import HOST, ROOT, SharedServer, StartServer

SERVERS = ["fork", "prefork"]


def argv(kind: str, *extra: str, app: str = "tests.servers.faulty_app:app") -> Callable[[str, int], list[str]]:
    def build(host: str, port: int) -> list[str]:
        cmd = [sys.executable, "-m", f"servers.{kind}", app, "--bind", f"{host}:{port}", "--log-level", "info"]
        if kind == "prefork":
            cmd += ["--workers", "2"]
        return cmd + list(extra)

    return build


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1])


@pytest.fixture(params=SERVERS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_head_has_headers_but_no_body(kind: str, shared_server: SharedServer) -> None:
    resp = shared_server(argv(kind)).exchange(b"HEAD /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = resp.partition(b"\r\n\r\n")
    assert status_of(resp) == 200
    assert b"Content-Length: 13" in head
    assert body == b""


def test_chunked_request_body(kind: str, shared_server: SharedServer) -> None:
    resp = shared_server(argv(kind)).exchange(b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                              b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
    assert status_of(resp) == 200
    assert b'"length":11' in resp


def test_response_without_length_is_chunked(kind: str, shared_server: SharedServer) -> None:
    resp = shared_server(argv(kind)).exchange(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = resp.partition(b"\r\n\r\n")
    assert b"Transfer-Encoding: chunked" in head
    assert body == b"4\r\none,\r\n4\r\ntwo,\r\n5\r\nthree\r\n0\r\n\r\n"


def test_expect_100_continue(kind: str, shared_server: SharedServer) -> None:
    srv = shared_server(argv(kind))
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(b"abc")
        assert b'"length":3' in s.recv(4096)


BAD = [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /plaintext HTTP/1.1\r\n\r\n", 400),  # no Host
    (b"GET /plaintext HTTP/9.9\r\nHost: x\r\n\r\n", 400),
    (b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(101)) + b"\r\n", 431),
    (b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"y" * 17000 + b"\r\n\r\n", 431),
    (b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
    (b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: -3\r\n\r\n", 400),
    (b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n", 413),
    (b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n0\r\n\r\n", 400),
]


@pytest.mark.parametrize(("request_bytes", "expected"), BAD, ids=[f"{i}-{c}" for i, (_, c) in enumerate(BAD)])
def test_bad_requests_get_the_right_status_and_the_server_stays_up(
    kind: str, shared_server: SharedServer, request_bytes: bytes, expected: int
) -> None:
    srv = shared_server(argv(kind))
    assert status_of(srv.exchange(request_bytes)) == expected
    assert get(srv.host, srv.port, "/plaintext")[2] == b"Hello, World!"


def test_app_exception_is_a_500_and_the_server_lives_on(kind: str, shared_server: SharedServer) -> None:
    srv = shared_server(argv(kind))
    for _ in range(5):
        assert get(srv.host, srv.port, "/raise")[0] == 500
    assert get(srv.host, srv.port, "/plaintext")[0] == 200
    assert "boom from the test app" in srv.log_text()


def test_sigterm_stops_every_process(kind: str, start_server: StartServer) -> None:
    with start_server(argv(kind)) as srv:
        for _ in range(10):
            get(srv.host, srv.port, "/plaintext")
        assert group_members(srv.proc.pid)
        os.kill(srv.proc.pid, signal.SIGTERM)
        assert srv.proc.wait(timeout=15) == 0
        deadline = time.monotonic() + 5
        while group_members(srv.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert group_members(srv.proc.pid) == []


def test_sigterm_lets_the_request_in_flight_finish(kind: str, start_server: StartServer) -> None:
    with start_server(argv(kind)) as srv:
        result: dict[str, object] = {}

        def slow() -> None:
            result["answer"] = get(srv.host, srv.port, "/io?ms=700", timeout=10)

        t = threading.Thread(target=slow)
        t.start()
        time.sleep(0.3)  # the request is in the app's wait by now
        os.kill(srv.proc.pid, signal.SIGTERM)
        t.join(10)
        assert result["answer"][0] == 200  # type: ignore[index]
        assert srv.proc.wait(timeout=15) == 0


@pytest.mark.slow
def test_port_in_use_is_a_clear_error(kind: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        out = _run_to_exit(argv(kind)(HOST, port), tmp_path / "bind.log")
    assert out[0] == _startup.EXIT_BIND_FAILED
    assert f"cannot bind {HOST}:{port}: Address already in use" in out[1]


def _run_to_exit(cmd: list[str], log: os.PathLike[str], timeout: float = 30) -> tuple[int, str]:
    with running(cmd, log_path=Path(log), cwd=ROOT,
                 env={**os.environ, "PYTHONPATH": str(ROOT)}) as proc:
        code = proc.wait(timeout=timeout)
    return code, Path(log).read_text()


def test_fork_reaps_children_and_caps_them(start_server: StartServer) -> None:
    with start_server(argv("fork", "--max-children", "2")) as srv:
        parent = psutil.Process(srv.proc.pid)
        peak = 0
        answers: list[int] = []

        def slow() -> None:
            answers.append(get(srv.host, srv.port, "/io?ms=300", timeout=10)[0])

        threads = [threading.Thread(target=slow) for _ in range(5)]
        for t in threads:
            t.start()
        while any(t.is_alive() for t in threads):
            peak = max(peak, len(parent.children()))
            time.sleep(0.02)
        assert answers == [200] * 5  # clients beyond the cap waited, none was refused
        assert 1 <= peak <= 2
        for _ in range(30):
            get(srv.host, srv.port, "/plaintext")
        deadline = time.monotonic() + 3
        while parent.children() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert parent.children() == []  # no zombie is left behind


def test_fork_serves_each_request_in_a_new_process(shared_server: SharedServer) -> None:
    srv = shared_server(argv("fork"))
    pids = {get(srv.host, srv.port, "/pid")[2] for _ in range(5)}
    assert len(pids) == 5
    assert str(srv.proc.pid).encode() not in pids


def test_prefork_reuses_workers_and_replaces_a_killed_one(start_server: StartServer) -> None:
    with start_server(argv("prefork")) as srv:
        master = psutil.Process(srv.proc.pid)
        workers = {c.pid for c in master.children()}
        assert len(workers) == 2
        seen = {int(get(srv.host, srv.port, "/pid")[2]) for _ in range(20)}
        assert seen <= workers
        victim = next(iter(workers))
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            now = srv.live_children()  # the victim may vanish between listing and looking
            if len(now) == 2 and victim not in now:
                break
            time.sleep(0.05)
        assert len(now) == 2 and victim not in now
        assert get(srv.host, srv.port, "/plaintext")[0] == 200
        assert f"worker {victim} exited (killed by SIGKILL)" in srv.log_text()


@pytest.mark.slow
def test_fork_refuses_an_app_that_cannot_be_imported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    code, log = _run_to_exit(argv("fork", app="tests.servers.broken_app:app")(HOST, free_port()), tmp_path / "l")
    assert code == _startup.EXIT_APP_LOAD_FAILED
    assert "this app cannot be imported" in log


@pytest.mark.slow
def test_prefork_backs_off_then_gives_up_on_an_app_that_cannot_be_imported(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cmd = argv("prefork", "--max-boot-failures", "4", app="tests.servers.broken_app:app")(HOST, free_port())
    start = time.monotonic()
    code, log = _run_to_exit(cmd, tmp_path / "l")
    elapsed = time.monotonic() - start
    assert code == _startup.EXIT_BOOT_FAILED
    assert "failure 1 of 4, retrying in 0.1s" in log
    assert "failure 3 of 4, retrying in 0.4s" in log
    assert "giving up" in log
    assert elapsed >= 0.1 + 0.2 + 0.4  # backed off instead of forking in a tight loop


@pytest.mark.parametrize("failing", [False, True], ids=["normal", "body-raises"])
def test_the_app_iterables_close_is_always_called(
    kind: str, shared_server: SharedServer, tmp_path: Path, failing: bool
) -> None:
    marker = tmp_path / ("closed-fail" if failing else "closed")
    srv = shared_server(argv(kind))
    status = get(srv.host, srv.port, f"/closing?{marker}")[0] if not failing else None
    if failing:
        answer = srv.exchange(f"GET /closing?{marker} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        status = status_of(answer)
    deadline = time.monotonic() + 5
    # The server lives on: wait for close() to have written its mark, not only opened the file.
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert marker.read_text() == "closed"
    assert status == (500 if failing else 200)


def test_warm_up_runs_the_core_over_a_socketpair_and_leaves_nothing_open() -> None:
    from servers import http, parse, wsgi

    fds = set(os.listdir("/proc/self/fd"))
    wsgi._date_cache = (0, b"")
    http.warm_up(wsgi.ServerInfo(software="t", host=HOST, port=1), parse.Limits(), rounds=3)
    assert set(os.listdir("/proc/self/fd")) == fds
    assert abs(wsgi._date_cache[0] - time.time()) < 2  # the Date header a child will inherit
