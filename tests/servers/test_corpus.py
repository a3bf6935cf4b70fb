"""Requests that must reach the app, and the cases of llhttp's and h11's test suites, over sockets against each mode.

Every case runs in-process against the parser (test_parser.py); here a sample of them goes over real sockets
to fork, prefork and cgi, each held to the parser's answer. One server per mode for the module; every case is
one connection: the exact answer (a
refusal's status, or the app's response), exactly one response framed as it says, and the
server serving the next request.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.common.procs import free_port, get, running, wait_ready
from tests.conftest import HOST, ROOT, Server, server_env
from tests.servers.corpus.upstream import H11, LLHTTP, SERVED, Case
from tests.servers.malformed import SERVED as SERVED_CASES
from tests.servers.test_parser import outcome

# What the server itself answers when it refuses a request; anything else came from the app.
REFUSALS = {400, 408, 413, 414, 417, 431, 500, 501, 505}


@pytest.fixture(scope="module", params=["fork", "prefork", "cgi"])
def srv(request: pytest.FixtureRequest, world_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    kind = request.param
    port = free_port(HOST)
    log = tmp_path_factory.mktemp(kind) / "server.log"
    argv = [sys.executable, "-m", f"servers.{kind}", "apps.wsgi:app", "--bind", f"{HOST}:{port}", "--keepalive", "0",
            "--header-timeout", "3"]
    if kind == "prefork":
        argv += ["--workers", "2"]
    with running(argv, log_path=log, env=server_env(world_db), cwd=ROOT) as proc:
        wait_ready(proc, HOST, port, log_path=log)
        yield Server(HOST, port, proc, log)


def only_response(answer: bytes, head_request: bool) -> tuple[int, bytes]:
    """The status and head of the one response in ``answer``; fails if the body is not exactly as framed."""
    assert re.match(rb"HTTP/1\.[01] \d{3} ", answer), answer[:200]
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = re.search(rb"\r\nContent-Length: (\d+)(?:\r\n|$)", head)
    if (head_request and status not in REFUSALS) or status in (204, 304):  # a refusal is followed by a close
        assert body == b"", answer[:300]
    elif length:
        assert len(body) == int(length.group(1)), answer[:300]
    else:
        assert b"\r\nTransfer-Encoding: chunked" in head and body.endswith(b"0\r\n\r\n"), answer[:300]
        assert body.count(b"0\r\n\r\n") == 1
    return status, head


def check(srv: Server, raw: bytes, expect: int | str) -> None:
    answer = srv.exchange(raw)
    is_head = raw.lstrip(b"\r\n").startswith(b"HEAD ")
    status, head = only_response(answer, is_head)
    assert (SERVED if status not in REFUSALS else status) == outcome(raw), "the parser's answer in-process"
    if expect == SERVED:
        assert status not in REFUSALS, answer[:300]
    else:
        assert status == expect, answer[:300]
        assert b"\r\nConnection: close" in head
    assert srv.proc.poll() is None
    assert get(srv.host, srv.port, "/plaintext")[2] == b"Hello, World!"


def test_the_upstream_corpus_is_what_the_fixture_says() -> None:
    cases = LLHTTP + H11
    assert len(LLHTTP) >= 100 and len(H11) >= 20
    assert len({c.name for c in cases}) == len(cases)
    assert {c.expect for c in cases} <= REFUSALS | {SERVED}


SERVED_SAMPLE = [c for i, c in enumerate(SERVED_CASES) if i % 3 == 0 or c[0].startswith(("field-line", "chunk"))]
UPSTREAM_SAMPLE = (LLHTTP + H11)[::5]


@pytest.mark.parametrize(("name", "raw"), SERVED_SAMPLE, ids=[c[0] for c in SERVED_SAMPLE])
def test_odd_but_valid_requests_reach_the_app(srv: Server, name: str, raw: bytes) -> None:
    check(srv, raw, SERVED)


@pytest.mark.parametrize("case", UPSTREAM_SAMPLE, ids=[c.name for c in UPSTREAM_SAMPLE])
def test_upstream_case(srv: Server, case: Case) -> None:
    check(srv, case.raw, case.expect)
