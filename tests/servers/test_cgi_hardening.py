"""Issue 19, items 4, 8 and 9: the cgi mode's response, environment and send timeout, against real servers.

4. the app's status and headers get the same check (and the same 500) as under fork and prefork;
8. a ``Proxy:`` request header never reaches the script as ``HTTP_PROXY`` (httpoxy);
9. ``--send-timeout`` bounds the whole response: a client that reads a little now and then does not
   hold the script past it.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from scripts.common.procs import free_port, get, running, wait_ready
from tests.conftest import HOST, ROOT, Server, StartServer, server_env

pytestmark = pytest.mark.slow  # every test here starts real server processes

APP = "tests.servers.faulty_app:app"


def argv(kind: str, *extra: str) -> Callable[[str, int], list[str]]:
    def build(host: str, port: int) -> list[str]:
        return [sys.executable, "-m", f"servers.{kind}", APP, "--bind", f"{host}:{port}", *extra]

    return build


@pytest.fixture(scope="module")
def pair(world_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """A cgi server and a fork server on the same app, to compare their answers."""
    servers: dict[str, Server] = {}
    procs = []
    try:
        for kind in ("cgi", "fork"):
            port = free_port(HOST)
            log = tmp_path_factory.mktemp(kind) / "server.log"
            cm = running(argv(kind)(HOST, port), log_path=log, env=server_env(world_db), cwd=ROOT)
            proc = cm.__enter__()
            procs.append(cm)
            wait_ready(proc, HOST, port, log_path=log)
            servers[kind] = Server(HOST, port, proc, log)
        yield servers
    finally:
        for cm in reversed(procs):
            cm.__exit__(None, None, None)


def raw(srv: Server, request: bytes) -> bytes:
    with socket.create_connection((srv.host, srv.port), timeout=10) as s:
        s.sendall(request)
        got = b""
        while chunk := s.recv(65536):
            got += chunk
    return got


def split(response: bytes) -> tuple[bytes, dict[bytes, bytes], bytes]:
    head, _, body = response.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(b":") for line in lines)}
    return status, headers, body


# 4. header injection --------------------------------------------------------------------------

@pytest.mark.parametrize("what", ["crlf-value", "crlf-name", "crlf-status", "nul-value"])
def test_cgi_refuses_control_characters_from_the_app_with_forks_500(pair: dict[str, Server], what: str) -> None:
    request = b"GET /bad/%s HTTP/1.1\r\nHost: x\r\n\r\n" % what.encode()
    answers = {kind: raw(srv, request) for kind, srv in pair.items()}
    for got in answers.values():
        assert b"Injected" not in got and b"\x00" not in got
    (cgi_status, cgi_headers, cgi_body), (fork_status, fork_headers, fork_body) = (
        split(answers["cgi"]), split(answers["fork"]))
    assert cgi_status == fork_status == b"HTTP/1.1 500 Internal Server Error"
    assert cgi_body == fork_body
    for name in (b"content-type", b"content-length", b"connection"):
        assert cgi_headers[name] == fork_headers[name], name
    log = pair["cgi"].log_text()
    assert f"app failed on GET /bad/{what}" in log and "InvalidResponse: invalid" in log
    assert get(HOST, pair["cgi"].port, "/plaintext")[2] == b"Hello, World!"


# 8. httpoxy -----------------------------------------------------------------------------------

def test_cgi_does_not_pass_a_proxy_header_to_the_script(pair: dict[str, Server]) -> None:
    got = raw(pair["cgi"], b"GET /environ HTTP/1.1\r\nHost: x\r\nProxy: http://evil.example:3128\r\n"
                           b"X-Other: kept\r\nConnection: close\r\n\r\n")
    status, _, body = split(got)
    assert status == b"HTTP/1.1 200 OK"
    env = json.loads(body)
    assert env["HTTP_X_OTHER"] == "kept"  # other headers still arrive
    assert env.get("HTTP_PROXY") != "http://evil.example:3128"


# 9. the send timeout is a deadline ------------------------------------------------------------

SEND_TIMEOUT_S = 2.0


def slow_reader(s: socket.socket, stop: threading.Event) -> None:
    """Reads 4 KiB every 0.05 s: the response always progresses, far too slowly to finish."""
    while not stop.is_set():
        try:
            if not s.recv(4096):
                return
        except OSError:
            return
        time.sleep(0.05)


def test_cgi_send_timeout_bounds_the_whole_response_for_a_slow_reader(start_server: StartServer) -> None:
    with start_server(argv("cgi", "--send-timeout", str(SEND_TIMEOUT_S))) as srv:
        stop = threading.Event()
        with socket.create_connection((srv.host, srv.port), timeout=5) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")  # 16 MiB
            first = s.recv(1024)
            started = time.monotonic()  # the script has written: its deadline runs
            assert first.startswith(b"HTTP/1.1 200 OK")
            reader = threading.Thread(target=slow_reader, args=(s, stop), daemon=True)
            reader.start()
            limit = started + 4 * SEND_TIMEOUT_S + 10  # long enough to see the old behaviour
            while srv.live_children() and time.monotonic() < limit:
                time.sleep(0.05)
            held = time.monotonic() - started
            stop.set()
            reader.join(5)
        print(f"a slow reader held the cgi script {held:.1f}s with --send-timeout {SEND_TIMEOUT_S}")
        assert held < 1.5 * SEND_TIMEOUT_S, f"held {held:.1f}s"  # it was 2x, about 3x with the default 10 s
        assert not srv.live_children()
        assert "the client did not read the response within the send timeout" in srv.log_text()
        assert get(srv.host, srv.port, "/plaintext")[2] == b"Hello, World!"
