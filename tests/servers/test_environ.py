"""The PEP 3333 environ each hand-written server builds, echoed back by a test app."""

from __future__ import annotations

import json
import socket
import sys

import pytest

from tests.conftest import StartServer

RUN_ONCE = {"fork": True, "prefork": False, "cgi": True}


@pytest.mark.parametrize("kind", ["fork", "prefork", "cgi"])
def test_environ_is_complete_and_truthful(kind: str, start_server: StartServer) -> None:
    def build(host: str, port: int) -> list[str]:
        return [sys.executable, "-m", f"servers.{kind}", "tests.servers.faulty_app:app", "--bind", f"{host}:{port}"]

    with start_server(build) as srv:
        with socket.create_connection((srv.host, srv.port), timeout=10) as s, s.makefile("rb") as f:
            s.sendall(b"POST /environ/a%20b%C3%A9?x=1&y=%20 HTTP/1.1\r\nHost: example.test:8080\r\n"
                      b"Content-Type: text/plain\r\nContent-Length: 5\r\nX-Repeat: one\r\nX-Repeat: two\r\n"
                      b"User-Agent: t\r\nX_Evil: 1\r\nContent_Length: 999\r\n\r\nhello")
            raw = f.read()
        head, _, body = raw.partition(b"\r\n\r\n")
        env = json.loads(body)
        port = srv.port
    assert head.startswith(b"HTTP/1.1 200")
    assert env["REQUEST_METHOD"] == "POST"
    assert env["SCRIPT_NAME"] == ""
    assert env["PATH_INFO"] == "/environ/a b\u00c3\u00a9"  # percent-decoded, then latin-1 as PEP 3333 says
    assert env["QUERY_STRING"] == "x=1&y=%20"  # left encoded
    assert env["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert env["SERVER_NAME"] and env["SERVER_PORT"] == str(port)
    assert env["REMOTE_ADDR"] == "127.0.0.1"
    assert env["CONTENT_TYPE"] == "text/plain" and env["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in env and "HTTP_CONTENT_LENGTH" not in env
    assert "HTTP_X_EVIL" not in env  # names with "_" are dropped: Content_Length did not override the 5 above
    assert env["HTTP_HOST"] == "example.test:8080"
    assert env["HTTP_X_REPEAT"] in ("one,two", "one, two")  # repeated headers joined with commas
    assert env["HTTP_USER_AGENT"] == "t"
    assert env["wsgi.version"] == [1, 0]
    assert env["wsgi.url_scheme"] == "http"
    assert env["wsgi.multithread"] is False
    assert env["wsgi.multiprocess"] is True
    assert env["wsgi.run_once"] is RUN_ONCE[kind]
    assert env["body"] == "hello" and env["read_after_end"] == ""  # wsgi.input stops at the body's end
