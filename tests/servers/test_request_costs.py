"""What a request costs the hand-written servers, against real processes (issue 19, items 1 and 7).

A chunked body's CPU is linear in its bytes whatever they hold (10 MiB of newlines cost
4.5-5.2 s of server CPU under every mode when the parser was fed a line at a time; 10 MiB
of ``x`` 0.01-0.03 s), and pipelined requests whose reads never end on a request
boundary are all answered (a 431 came after ~24 KiB of them).
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections.abc import Callable

import pytest

from scripts.common.procs import group_members
from tests.conftest import Server, StartServer

TICKS = os.sysconf("SC_CLK_TCK")
KINDS = ["fork", "prefork", "cgi"]


def argv(kind: str, *extra: str) -> Callable[[str, int], list[str]]:
    def build(host: str, port: int) -> list[str]:
        cmd = [sys.executable, "-m", f"servers.{kind}", "apps.wsgi:app", "--bind", f"{host}:{port}", *extra]
        return cmd + (["--workers", "2"] if kind == "prefork" else [])

    return build


def group_cpu_s(pgid: int) -> float:
    """CPU seconds of the server's process group: the live members and the children they reaped."""
    total = 0
    for pid in group_members(pgid):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += sum(int(x) for x in fields[11:15])  # utime, stime, cutime, cstime
    return total / TICKS


def exchange(srv: Server, data: bytes) -> bytes:
    with socket.create_connection((srv.host, srv.port), timeout=30) as s:
        s.sendall(data)
        chunks = []
        while chunk := s.recv(1 << 16):
            chunks.append(chunk)
    return b"".join(chunks)


def chunked_post(fill: bytes, mib: int = 10) -> bytes:
    piece = 1 << 16
    count = (mib << 20) // piece - 1  # under the 10 MiB body limit with the framing
    body = b"".join(b"%x\r\n" % piece + fill * piece + b"\r\n" for _ in range(count)) + b"0\r\n\r\n"
    return b"POST /plaintext HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + body


@pytest.mark.parametrize("kind", KINDS)
def test_a_chunked_body_of_newlines_costs_what_one_of_x_costs(start_server: StartServer, kind: str) -> None:
    with start_server(argv(kind, "--keepalive", "0")) as srv:
        def cost(fill: bytes) -> float:
            time.sleep(0.2)  # the previous request's process is reaped and counted
            before = group_cpu_s(srv.proc.pid)
            answer = exchange(srv, chunked_post(fill))
            assert answer.startswith(b"HTTP/1.1 405 "), answer[:200]  # read whole, then the app's answer
            time.sleep(0.2)
            return group_cpu_s(srv.proc.pid) - before

        plain = min(cost(b"x") for _ in range(2))
        newlines = min(cost(b"\n") for _ in range(2))
        # 2x, plus a few clock ticks: a cgi request costs ~0.15 s of interpreter start-up either way.
        assert newlines <= 2 * plain + 0.1, (plain, newlines)


@pytest.mark.parametrize("kind", ["fork", "prefork"])  # cgi closes after every response
def test_pipelined_requests_in_reads_that_never_end_on_a_boundary_are_all_answered(
        start_server: StartServer, kind: str) -> None:
    one = b"GET /plaintext HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 40 + b"\r\n\r\n"
    count, step = 1200, 31
    assert len(one) % step
    data = one * count
    with start_server(argv(kind, "--keepalive", "5")) as srv:
        with socket.create_connection((srv.host, srv.port), timeout=20) as s:
            got = bytearray()

            def read() -> None:
                try:
                    while (chunk := s.recv(1 << 16)) and got.count(b"HTTP/1.1 ") < count:
                        got.extend(chunk)
                except OSError:
                    pass

            reader = threading.Thread(target=read)
            reader.start()
            for i in range(0, len(data), step):
                s.sendall(data[i : i + step])
                time.sleep(0.0002)  # keep the writes apart: the server's reads end where they do, mostly mid-request
            reader.join(20)
        answers = bytes(got)
        assert answers.count(b"HTTP/1.1 200 ") == count, answers.count(b"HTTP/1.1 431 ")
