"""Issue 9, items 1-9 and 15: the exact bytes of each reported defect, against real server processes.

One server per mode for the module (keep-alive on, so pipelining and connection reuse can be
seen); every test opens its own connection, checks what came back byte for byte (status,
what the app saw, that nothing more is on the wire), and that the server serves the next
request.
"""

from __future__ import annotations

import json
import socket
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pytest

from scripts.common.procs import free_port, get, running, wait_ready
from tests.conftest import HOST, ROOT, Server, StartServer, server_env

APP = "tests.servers.faulty_app:app"


@pytest.fixture(scope="module", params=["fork", "prefork"])
def srv(request: pytest.FixtureRequest, world_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    kind = request.param
    port = free_port(HOST)
    log = tmp_path_factory.mktemp(kind) / "server.log"
    argv = [sys.executable, "-m", f"servers.{kind}", APP, "--bind", f"{HOST}:{port}", "--keepalive", "5"]
    if kind == "prefork":
        argv += ["--workers", "2"]
    with running(argv, log_path=log, env=server_env(world_db), cwd=ROOT) as proc:
        wait_ready(proc, HOST, port, log_path=log)
        yield Server(HOST, port, proc, log)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes


def read_response(f: BinaryIO, head: bool = False) -> Response:
    """One response off the stream, framed as a client must frame it (RFC 9112 6.3)."""
    line = f.readline()
    if not line:
        raise EOFError("the server closed the connection before a response")
    status = int(line.split(b" ", 2)[1])
    headers: dict[str, str] = {}
    while (raw := f.readline()) not in (b"\r\n", b""):
        name, _, value = raw.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if head or status in (204, 304):
        body = b""
    elif "content-length" in headers:
        body = f.read(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        parts = []
        while size := int(f.readline().split(b";")[0], 16):
            parts.append(f.read(size))
            f.readline()
        f.readline()
        body = b"".join(parts)
    else:
        body = f.read()
    return Response(status, headers, body)


@dataclass
class Exchange:
    responses: list[Response]
    rest: bytes  # what came after the responses read
    closed: bool  # the server closed the connection after them


def talk(srv: Server, *parts: bytes, responses: int, head: bool = False, pause: float = 0.05) -> Exchange:
    """Send ``parts`` (as separate writes, ``pause`` s apart), read ``responses`` answers, then whatever follows."""
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i, part in enumerate(parts):
            if i:
                time.sleep(pause)  # the server reads them as separate segments
            s.sendall(part)
        f = s.makefile("rb")
        got = [read_response(f, head=head and i == 0) for i in range(responses)]
        s.settimeout(1.0)  # the server keeps an idle connection 5 s: one quiet second means nothing more
        rest, closed = b"", False
        try:
            while chunk := f.read1(65536):
                rest += chunk
            closed = True
        except (TimeoutError, ConnectionResetError):
            closed = isinstance(sys.exc_info()[1], ConnectionResetError)
        f.close()
    return Exchange(got, rest, closed)


def still_serves(srv: Server) -> None:
    assert get(srv.host, srv.port, "/plaintext")[2] == b"Hello, World!"


def environ_of(response: Response) -> dict[str, str]:
    assert response.status == 200, response
    env: dict[str, str] = json.loads(response.body)
    return env


CHUNKED_POST = b"POST /environ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"


# 1. trailers ------------------------------------------------------------------------------------

def test_harmless_trailers_are_dropped_before_the_environ(srv: Server) -> None:
    ex = talk(srv, CHUNKED_POST + b"X-Forwarded-For: 6.6.6.6\r\nX-Trailer: t\r\n\r\n", responses=1)
    env = environ_of(ex.responses[0])
    assert env["body"] == "hello" and env["HTTP_HOST"] == "x"
    assert "HTTP_X_FORWARDED_FOR" not in env and "HTTP_X_TRAILER" not in env
    assert ex.rest == b"" and not ex.closed  # framed, kept alive
    still_serves(srv)


def test_the_issues_trailer_injection_is_refused(srv: Server) -> None:
    trailers = b"Host: evil\r\nX-Forwarded-For: 6.6.6.6\r\nContent-Type: text/evil\r\nAuthorization: Basic eDp5\r\n\r\n"
    ex = talk(srv, CHUNKED_POST + trailers, responses=1)
    assert ex.responses[0].status == 400
    assert ex.rest == b"" and ex.closed
    still_serves(srv)


@pytest.mark.parametrize("field", [b"Host", b"Content-Length", b"Transfer-Encoding", b"Content-Type",
                                   b"Authorization", b"Content-Encoding", b"Trailer", b"Cookie", b"Range"])
def test_a_trailer_naming_a_forbidden_field_is_400(srv: Server, field: bytes) -> None:
    ex = talk(srv, CHUNKED_POST + field + b": 1\r\n\r\n", responses=1)
    assert ex.responses[0].status == 400 and ex.closed


# 2. header names with "_" ----------------------------------------------------------------------

def test_underscore_headers_are_dropped_and_alias_nothing(srv: Server) -> None:
    ex = talk(srv, b"POST /environ HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent_Length: 999\r\n"
                   b"Content-Type: text/plain\r\nContent_Type: text/evil\r\nX-Forwarded-For: 1.1.1.1\r\n"
                   b"X_Forwarded_For: 6.6.6.6\r\nX_Only_Underscore: u\r\n\r\nhello", responses=1)
    env = environ_of(ex.responses[0])
    assert env["CONTENT_LENGTH"] == "5" and env["body"] == "hello"
    assert env["CONTENT_TYPE"] == "text/plain"
    assert env["HTTP_X_FORWARDED_FOR"] == "1.1.1.1"
    assert "HTTP_X_ONLY_UNDERSCORE" not in env
    assert ex.rest == b""
    still_serves(srv)


# 3. a complete request is answered before an error in later bytes --------------------------------

def test_a_complete_request_is_answered_before_a_parse_error_behind_it(srv: Server) -> None:
    ex = talk(srv, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\nBOGUS\r\n\r\n", responses=2)
    assert [r.status for r in ex.responses] == [200, 400]
    assert ex.responses[0].body == b"ok"
    assert ex.rest == b"" and ex.closed
    still_serves(srv)


@pytest.mark.parametrize("ending", [b"GET /health HTTP/1.0\r\n\r\n",
                                    b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"],
                         ids=["http-1.0", "connection-close"])
def test_bytes_after_a_closing_request_are_ignored(srv: Server, ending: bytes) -> None:
    ex = talk(srv, ending + b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\nmore junk", responses=1)
    assert ex.responses[0].status == 200 and ex.responses[0].body == b"ok"
    assert ex.rest == b"" and ex.closed  # no "400 Data after Connection: close", no second answer
    still_serves(srv)


# 4. every request line gets the grammar check --------------------------------------------------

FIRST = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
DOUBLE_SPACE = b"GET  /health HTTP/1.1\r\nHost: x\r\n\r\n"


@pytest.mark.parametrize("first", [FIRST,
                                   b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc",
                                   CHUNKED_POST.replace(b"/environ", b"/upload") + b"X-T: t\r\n\r\n",
                                   b"\r\n" + FIRST],
                         ids=["get", "content-length-body", "chunked-body-with-trailer", "after-empty-line"])
def test_a_pipelined_request_line_gets_the_same_check(srv: Server, first: bytes) -> None:
    ex = talk(srv, first + DOUBLE_SPACE, responses=2)
    assert ex.responses[0].status == 200
    assert ex.responses[1].status == 400
    assert ex.rest == b"" and ex.closed
    still_serves(srv)


def test_a_pipelined_request_line_split_across_reads_is_checked(srv: Server) -> None:
    ex = talk(srv, FIRST + b"GET  /hea", b"lth HTTP/1.1\r\nHost: x\r\n\r\n", responses=2)
    assert [r.status for r in ex.responses] == [200, 400]


def test_a_request_line_split_after_thousands_of_spaces_is_checked(srv: Server) -> None:
    ex = talk(srv, b"GET" + b" " * 5000, b"/health HTTP/1.1\r\nHost: x\r\n\r\n", responses=1)
    assert ex.responses[0].status == 400 and ex.closed


def test_well_formed_pipelined_requests_are_all_served_in_order(srv: Server) -> None:
    reqs = (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
            b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
            b"POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n0\r\n\r\n"
            b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
    ex = talk(srv, reqs[:50], reqs[50:130], reqs[130:], responses=4)
    assert [r.status for r in ex.responses] == [200] * 4
    assert b'"length":3' in ex.responses[1].body and b'"length":2' in ex.responses[2].body
    assert ex.responses[3].body == b"Hello, World!"
    assert ex.rest == b"" and not ex.closed


# 5. missing checks -----------------------------------------------------------------------------

# A field line counts as gunicorn counts it: "name: value" and its CRLF, at most 8,190 bytes (issue 19.13).
@pytest.mark.parametrize(("field", "status"), [
    (b"X-Big: " + b"v" * 8181, 200),
    (b"X-Big: " + b"v" * 8182, 431),
    (b"X: " + b"v" * 8193, 431),
    (b"X" * 8185 + b": v", 200),
    (b"X" * 8186 + b": v", 431),
], ids=["line-8190", "line-8191", "line-8196", "name-8185", "name-8186"])
def test_one_header_field_line_over_8190_bytes_is_431(srv: Server, field: bytes, status: int) -> None:
    ex = talk(srv, b"GET /health HTTP/1.1\r\nHost: x\r\n" + field + b"\r\n\r\n", responses=1)
    assert ex.responses[0].status == status
    still_serves(srv)


def test_asterisk_form_is_400_except_for_options(srv: Server) -> None:
    assert talk(srv, b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", responses=1).responses[0].status == 400
    options = talk(srv, b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", responses=1)
    assert options.responses[0].status not in (400, 500)  # the app answered it
    assert not options.closed


def test_a_repeated_content_type_is_400(srv: Server) -> None:
    ex = talk(srv, b"POST /upload HTTP/1.1\r\nHost: x\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n"
                   b"Content-Length: 1\r\n\r\nx", responses=1)
    assert ex.responses[0].status == 400 and ex.closed


# 6. compatibility ------------------------------------------------------------------------------

def test_empty_lines_before_the_request_line_are_ignored_a_few_times(srv: Server) -> None:
    assert talk(srv, b"\r\n" + FIRST, responses=1).responses[0].status == 200
    assert talk(srv, b"\r\n\r\n\r\n\r\n" + FIRST, responses=1).responses[0].status == 200
    assert talk(srv, b"\r\n" * 5 + FIRST, responses=1).responses[0].status == 400  # bounded
    ex = talk(srv, b"\r\n", FIRST, responses=1)  # the empty line in a read of its own
    assert ex.responses[0].status == 200


def test_an_upgrade_request_is_served_as_http11(srv: Server) -> None:
    upgrade = b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n" \
              b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
    ex = talk(srv, upgrade + b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n", responses=2)
    assert [r.status for r in ex.responses] == [200, 200]
    assert ex.responses[0].body == b"ok" and ex.responses[1].body == b"Hello, World!"
    assert ex.rest == b"" and not ex.closed


def test_an_upgrade_with_a_body_is_refused_not_smuggled(srv: Server) -> None:
    # llhttp skips an upgrade request's body, so the body must not be read as a request.
    inner = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n"
    ex = talk(srv, b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n"
                   b"Content-Length: %d\r\n\r\n" % len(inner) + inner, responses=1)
    assert ex.responses[0].status == 501
    assert ex.rest == b"" and ex.closed


# 7. response framing ---------------------------------------------------------------------------

def test_a_body_over_the_declared_length_is_cut_and_the_connection_closed(srv: Server) -> None:
    ex = talk(srv, b"GET /bad/overrun HTTP/1.1\r\nHost: x\r\n\r\n" + FIRST, responses=1)
    assert ex.responses[0].status == 200 and ex.responses[0].body == b"ok"
    assert ex.rest == b"" and ex.closed  # neither the smuggled response nor an answer to the next request
    assert "more than its Content-Length of 2" in srv.log_text()
    still_serves(srv)


def test_a_body_under_the_declared_length_closes_the_connection(srv: Server) -> None:
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(b"GET /bad/short HTTP/1.1\r\nHost: x\r\n\r\n")
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    assert b"Content-Length: 10" in head and body == b"ok"  # then EOF, not a wait for 8 more bytes


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_is_sent_on_204_and_304(srv: Server, status: int) -> None:
    ex = talk(srv, b"GET /bad/%d HTTP/1.1\r\nHost: x\r\n\r\n" % status + FIRST, responses=2)
    assert [r.status for r in ex.responses] == [status, 200]
    assert ex.responses[1].body == b"ok"  # the next response is read where it belongs
    assert ("content-length" in ex.responses[0].headers) == (status == 304)  # RFC 9110 8.6
    assert ex.rest == b"" and not ex.closed


def test_no_body_is_sent_to_head_and_the_connection_stays_in_step(srv: Server) -> None:
    ex = talk(srv, b"HEAD /plaintext HTTP/1.1\r\nHost: x\r\n\r\n" + FIRST, responses=2, head=True)
    assert ex.responses[0].headers["content-length"] == "13"
    assert ex.responses[1].status == 200 and ex.responses[1].body == b"ok"
    assert ex.rest == b""


# 8. header injection from the app --------------------------------------------------------------

@pytest.mark.parametrize("what", ["crlf-value", "crlf-name", "crlf-status", "nul-value"])
def test_control_characters_from_the_app_are_a_500_and_never_reach_the_wire(srv: Server, what: str) -> None:
    with socket.create_connection((srv.host, srv.port), timeout=5) as s:
        s.sendall(b"GET /bad/%s HTTP/1.1\r\nHost: x\r\n\r\n" % what.encode())
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    assert got.startswith(b"HTTP/1.1 500 ")
    assert b"Injected" not in got and b"\x00" not in got
    assert f"GET /bad/{what}" in srv.log_text() and "invalid" in srv.log_text()
    still_serves(srv)


# 9. app failures -------------------------------------------------------------------------------

@pytest.mark.parametrize(("what", "logged"), [
    ("str-list", "PEP 3333 bodies are bytes"),
    ("str", "PEP 3333 bodies are bytes"),
    ("timeout", "TimeoutError: the app's own timeout error"),
    ("reset", "ConnectionResetError: the app's own reset error"),
    ("broken-pipe", "BrokenPipeError: the app's own broken-pipe error"),
    ("oserror", "OSError: the app's own oserror error"),
])
def test_app_failures_are_a_500_with_the_traceback_logged(srv: Server, what: str, logged: str) -> None:
    ex = talk(srv, b"GET /bad/%s HTTP/1.1\r\nHost: x\r\n\r\n" % what.encode(), responses=1)
    assert ex.responses[0].status == 500 and ex.closed
    log = srv.log_text()
    assert logged in log and "Traceback (most recent call last)" in log
    still_serves(srv)


# 15. cgi ---------------------------------------------------------------------------------------

def cgi_argv(*extra: str) -> Callable[[str, int], list[str]]:
    def build(host: str, port: int) -> list[str]:
        return [sys.executable, "-m", "servers.cgi", APP, "--bind", f"{host}:{port}", *extra]

    return build


def test_cgi_head_has_no_body_and_a_nul_is_400_before_exec(start_server: StartServer) -> None:
    with start_server(cgi_argv()) as srv:
        head = srv.exchange(b"HEAD /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
        nul = srv.exchange(b"GET /a%00b HTTP/1.1\r\nHost: x\r\n\r\n")
        still_serves(srv)
        log = srv.log_text()
    status, _, rest = head.partition(b"\r\n")
    assert status == b"HTTP/1.1 200 OK"
    headers, _, body = rest.partition(b"\r\n\r\n")
    assert b"Content-Length: 13" in headers and body == b""
    assert nul.startswith(b"HTTP/1.1 400 ") and b"NUL" in nul
    assert "Traceback" not in log  # refused, not a failed execve


def test_cgi_script_gives_up_on_a_client_that_never_reads(start_server: StartServer) -> None:
    with start_server(cgi_argv("--send-timeout", "1")) as srv:
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # 16 MiB that is never read
            deadline = time.monotonic() + 20
            seen_child = False
            while time.monotonic() < deadline:
                children = srv.live_children()
                seen_child = seen_child or bool(children)
                if seen_child and not children:
                    break
                time.sleep(0.1)
            assert seen_child and not srv.live_children(), "the CGI script still blocks on its client"
        still_serves(srv)
