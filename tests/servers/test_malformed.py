"""A sample of the malformed-request corpus over real sockets against each hand-written server: the parser's answer
(every case runs in-process in test_parser.py), then normal service."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.common.procs import free_port, get, running, wait_ready
from tests.conftest import HOST, ROOT, Server, server_env
from tests.servers.malformed import CORPUS
from tests.servers.test_parser import outcome

KINDS = ["fork", "prefork", "cgi"]
# Every fourth case, and every case of issue 19: the socket layer adds reads, deadlines and the answer; which
# bytes are refused is the parser's, tested case by case in-process.
SAMPLE = [c for i, c in enumerate(CORPUS) if i % 4 == 0 or c[0].startswith(("field-line", "chunk-extension"))]


@pytest.fixture(scope="module", params=KINDS)
def srv(request: pytest.FixtureRequest, world_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    kind = request.param
    port = free_port(HOST)
    log = tmp_path_factory.mktemp(kind) / "server.log"
    argv = [sys.executable, "-m", f"servers.{kind}", "apps.wsgi:app", "--bind", f"{HOST}:{port}", "--keepalive", "0"]
    if kind == "prefork":
        argv += ["--workers", "2"]
    with running(argv, log_path=log, env=server_env(world_db), cwd=ROOT) as proc:
        wait_ready(proc, HOST, port, log_path=log)
        yield Server(HOST, port, proc, log)


def test_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 80
    assert len({name for name, _, _ in CORPUS}) == len(CORPUS)


@pytest.mark.parametrize(("name", "data", "expected"), SAMPLE, ids=[c[0] for c in SAMPLE])
def test_malformed_request_gets_the_right_answer(srv: Server, name: str, data: bytes, expected: set[int]) -> None:
    answer = srv.exchange(data)
    assert answer.startswith(b"HTTP/1.1 "), (name, answer[:200])
    status = int(answer.split(b" ", 2)[1])
    assert status in expected, (name, answer[:300])
    assert status == outcome(data), "the server answers what its parser answers in-process"
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(re.search(rb"\r\nContent-Length: (\d+)\r\n", head + b"\r\n").group(1))  # type: ignore[union-attr]
    assert len(body) == length, "one answer, then the connection is closed: nothing smuggled through"
    assert b"\r\nConnection: close\r\n" in head + b"\r\n"
    assert proc_alive(srv)
    assert get(srv.host, srv.port, "/plaintext")[2] == b"Hello, World!"


def proc_alive(srv: Server) -> bool:
    return srv.proc.poll() is None
