"""scripts.load.wrk_process and loadtests/wrk_report.lua: the parser on captured wrk output, and real wrk runs on
loopback.

wrk is a system package. Without it these tests fail with the install hint, unless
``WORKERBENCH_NO_WRK=1`` says the machine has no wrk on purpose (then they are skipped).
"""

from __future__ import annotations

import socket
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from loadtests.scenarios import UPLOAD_BODY
from scripts.common.procs import free_port
from scripts.load import wrk_process
from tests.conftest import HOST, SharedServer

DATA = Path(__file__).parent / "data"


def prefork(*extra: str) -> Callable[[str, int], list[str]]:
    def build(host: str, port: int) -> list[str]:
        return [sys.executable, "-m", "servers.prefork", "apps.wsgi:app", "--bind", f"{host}:{port}",
                "--workers", "2", *extra]

    return build


# --- parsing real output ------------------------------------------------------------------------------------------


# wrk -t1 -c4 -d2s, this script, against `python -m servers.prefork apps.wsgi:app --workers 2` (no keep-alive,
# so one connection per request) GET /plaintext on a 2-core machine: a real capture.
CAPTURED_REQUESTS = 15559
CAPTURED_DURATION_S = 2.002566
CAPTURED_LATENCY_MS = {"p50": 0.367, "p75": 0.524, "p90": 0.809, "p99": 3.39, "p999": 10.053,
                       "mean": 0.524982, "max": 17.017}


def test_parse_captured_prefork_plaintext() -> None:
    result = wrk_process.parse_wrk_output((DATA / "wrk_output.txt").read_text())
    assert result.requests == CAPTURED_REQUESTS
    assert result.duration_s == CAPTURED_DURATION_S
    assert result.throughput_rps == pytest.approx(7769.53, abs=0.01)  # as wrk's own "Requests/sec" line
    assert result.errors == {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    assert result.non_2xx == 0
    assert result.socket_errors == 0
    assert result.latency_ms == pytest.approx(CAPTURED_LATENCY_MS, abs=1e-9)
    assert list(result.latency_ms) == list(CAPTURED_LATENCY_MS)


def test_parse_without_marker_names_the_tail() -> None:
    text = "Running 1s test @ http://127.0.0.1:1/\n" + "".join(f"line {i}\n" for i in range(100)) + "last words\n"
    with pytest.raises(wrk_process.WrkError, match="WORKERBENCH_WRK_JSON") as info:
        wrk_process.parse_wrk_output(text)
    assert "last words" in str(info.value)
    assert "line 5\n" not in str(info.value)


def test_parse_garbled_report_is_an_error() -> None:
    with pytest.raises(wrk_process.WrkError, match="unreadable"):
        wrk_process.parse_wrk_output('WORKERBENCH_WRK_JSON {"requests": 3}\n')


# --- command line, environment, refusals ----------------------------------------------------------------------------


def test_command_line() -> None:
    argv = wrk_process.wrk_command(url="http://127.0.0.1:8000/plaintext", connections=2, duration=5, threads=4)
    assert argv[1:] == ["--threads", "2", "--connections", "2", "--duration", "5s", "--timeout", "10s",
                        "--script", str(wrk_process.LUA_SCRIPT), "http://127.0.0.1:8000/plaintext"]
    assert wrk_process.LUA_SCRIPT.is_absolute() and wrk_process.LUA_SCRIPT.is_file()
    with pytest.raises(ValueError):
        wrk_process.wrk_command(url="http://127.0.0.1:8000/", connections=0, duration=1)


def test_env_writes_the_body_to_a_file(tmp_path: Path) -> None:
    env = wrk_process.wrk_env(method="POST", body=UPLOAD_BODY, close=True, workdir=tmp_path)
    assert env["WB_METHOD"] == "POST" and env["WB_CLOSE"] == "1"
    assert Path(env["WB_BODY_FILE"]).read_bytes() == UPLOAD_BODY
    assert wrk_process.wrk_env(method="GET", body=b"", close=False, workdir=tmp_path / "empty") == {
        "WB_METHOD": "GET", "WB_BODY_FILE": "", "WB_CLOSE": "0", "WB_HEADERS": ""}
    assert not (tmp_path / "empty").exists()
    headers = (("Content-Type", "application/json"), ("X-Token", "a: b"))
    env = wrk_process.wrk_env(method="GET", body=b"", close=False, workdir=tmp_path, headers=headers)
    assert env["WB_HEADERS"] == "Content-Type: application/json\nX-Token: a: b"
    with pytest.raises(ValueError, match="method"):
        wrk_process.wrk_env(method="GET /x HTTP/1.1\r\n", body=b"", close=False, workdir=tmp_path)


def test_url_brackets_ipv6() -> None:
    assert wrk_process.url_for("::1", 8000, "/json") == "http://[::1]:8000/json"
    assert wrk_process.url_for("localhost", 8000, "/io?ms=20") == "http://localhost:8000/io?ms=20"
    with pytest.raises(ValueError, match="path"):
        wrk_process.url_for("127.0.0.1", 8000, "plaintext")


@pytest.mark.parametrize("host", ["10.0.0.1", "example.com", "0.0.0.0", "127.0.0.2", ""])
def test_refuses_hosts_other_than_loopback(host: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="loopback"):
        wrk_process.run_wrk(host=host, port=80, path="/", connections=1, duration=1, workdir=tmp_path)
    assert not (tmp_path / "wrk.log").exists()  # refused before anything was started


def test_install_hint_is_printed_once(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(wrk_process, "_warned", False)
    wrk_process.warn_missing_once()
    wrk_process.warn_missing_once()
    captured = capsys.readouterr()
    assert captured.err == ("wrk not found: apt-get install wrk (Debian/Ubuntu); using the native generator "
                            "(scripts/load/engine_process.py, closed loop) instead\n")
    assert captured.out == ""


# --- real runs against the prefork server ------------------------------------------------------------------------


def test_get_plaintext(wrk_exe: str, shared_server: SharedServer, tmp_path: Path) -> None:
    srv = shared_server(prefork("--keepalive", "5"))
    result = wrk_process.run_wrk(host=srv.host, port=srv.port, path="/plaintext", connections=4, duration=1,
                         workdir=tmp_path)
    assert result.requests > 0
    assert result.errors == {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0}
    assert 0 < result.latency_ms["p50"] <= result.latency_ms["p99"] <= result.latency_ms["max"]
    assert 0.5 < result.duration_s < 3
    assert "WORKERBENCH_WRK_JSON" in (tmp_path / "wrk.log").read_text()


def test_refused_connection_is_an_error(wrk_exe: str, tmp_path: Path) -> None:
    # wrk 4.1 checks that it can connect before it starts, and exits 1 when it cannot.
    port = free_port(HOST)  # nobody listens here
    with pytest.raises(wrk_process.WrkError, match="unable to connect"):
        wrk_process.run_wrk(host=HOST, port=port, path="/", connections=1, duration=1, workdir=tmp_path)


def test_status_errors_are_counted(wrk_exe: str, shared_server: SharedServer, tmp_path: Path) -> None:
    srv = shared_server(prefork("--keepalive", "5"))
    upload = wrk_process.run_wrk(host=srv.host, port=srv.port, path="/upload", method="POST", body=UPLOAD_BODY,
                         connections=2, duration=1, workdir=tmp_path / "post")
    wrong_method = wrk_process.run_wrk(host=srv.host, port=srv.port, path="/upload", connections=2, duration=1,
                               workdir=tmp_path / "get")
    missing = wrk_process.run_wrk(host=srv.host, port=srv.port, path="/nowhere", connections=2, duration=1,
                          workdir=tmp_path / "404")
    assert upload.requests > 0 and upload.non_2xx == 0 and upload.socket_errors == 0
    # The same path without the POST is refused (405): the method really comes from WB_METHOD.
    assert wrong_method.requests > 0 and wrong_method.non_2xx == wrong_method.requests
    assert missing.requests > 0 and missing.non_2xx == missing.requests and missing.socket_errors == 0


def test_close_succeeds_against_a_keepalive_server(wrk_exe: str, shared_server: SharedServer, tmp_path: Path) -> None:
    srv = shared_server(prefork("--keepalive", "5"))
    result = wrk_process.run_wrk(host=srv.host, port=srv.port, path="/plaintext", close=True, connections=2,
                         duration=1, workdir=tmp_path)
    assert result.requests > 0 and result.non_2xx == 0 and result.socket_errors == 0


# --- what wrk really sends, seen by a recording server -------------------------------------------------------------


@dataclass
class Recorder:
    """A small threaded HTTP/1.1 server that answers 200 and records what arrives (bounded)."""

    port: int
    keep: int = 20  # raw requests kept; the rest are only counted
    connections: int = 0
    requests: int = 0
    per_connection: list[int] = field(default_factory=list)  # requests served on each closed connection
    raw: list[tuple[bytes, bytes]] = field(default_factory=list)  # (head, body)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def serve(self, conn: socket.socket) -> None:
        conn.settimeout(5.0)
        buf = b""
        served = 0
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                headers = {}
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip()
                length = int(headers.get(b"content-length", b"0"))
                while len(buf) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                body, buf = buf[:length], buf[length:]
                served += 1
                with self.lock:
                    self.requests += 1
                    if len(self.raw) < self.keep:
                        self.raw.append((head, body))
                close = headers.get(b"connection", b"").lower() == b"close"
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n"
                             + (b"Connection: close\r\n" if close else b"") + b"\r\nok")
                if close:
                    return
        except OSError:
            return
        finally:
            conn.close()
            with self.lock:
                self.per_connection.append(served)


@contextmanager
def recording_server() -> Iterator[Recorder]:
    port = free_port(HOST)
    rec = Recorder(port)
    listener = socket.create_server((HOST, port), backlog=128)
    listener.settimeout(0.2)
    stop = threading.Event()
    handlers: list[threading.Thread] = []

    def accept_loop() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with rec.lock:
                rec.connections += 1
            t = threading.Thread(target=rec.serve, args=(conn,), daemon=True)
            t.start()
            handlers.append(t)
            handlers[:] = [h for h in handlers if h.is_alive()]

    acceptor = threading.Thread(target=accept_loop, daemon=True)
    acceptor.start()
    try:
        yield rec
    finally:
        stop.set()
        acceptor.join(5)
        listener.close()
        for t in list(handlers):
            t.join(6)
    assert not acceptor.is_alive()


def test_post_body_and_connection_close_arrive(wrk_exe: str, tmp_path: Path) -> None:
    with recording_server() as rec:
        result = wrk_process.run_wrk(host=HOST, port=rec.port, path="/upload", method="POST", body=UPLOAD_BODY,
                             close=True, connections=1, duration=1, workdir=tmp_path)
    assert result.requests > 0 and result.non_2xx == 0 and result.socket_errors == 0
    assert 0 < result.requests <= rec.requests
    # One request per connection. wrk's start-up check connects once without a request, and a
    # connection may be opened just as the run ends.
    assert len(rec.per_connection) == rec.connections
    assert max(rec.per_connection) == 1
    assert rec.per_connection.count(0) <= 2
    assert sum(rec.per_connection) == rec.requests
    assert rec.raw
    for head, body in rec.raw:
        lines = head.split(b"\r\n")
        assert lines[0] == b"POST /upload HTTP/1.1"
        assert b"Connection: close" in lines
        assert b"Content-Length: 16384" in lines
        assert b"Host: 127.0.0.1:%d" % rec.port in lines
        assert body == UPLOAD_BODY


def test_keepalive_is_the_default(wrk_exe: str, tmp_path: Path) -> None:
    with recording_server() as rec:
        result = wrk_process.run_wrk(host=HOST, port=rec.port, path="/plaintext", connections=2, duration=1,
                             workdir=tmp_path)
    assert result.requests > 10 and result.socket_errors == 0
    # Every request went over the two connections wrk opened (plus its start-up check, which sends nothing).
    assert len(rec.per_connection) == rec.connections
    assert sorted(n > 0 for n in rec.per_connection) == [False, True, True]
    assert sum(rec.per_connection) == rec.requests
    for head, body in rec.raw:
        lines = head.split(b"\r\n")
        assert lines[0] == b"GET /plaintext HTTP/1.1"
        assert not any(line.lower().startswith(b"connection:") for line in lines)
        assert not any(line.lower().startswith(b"content-length:") for line in lines)
        assert body == b""


def test_a_warm_up_shorter_than_a_second_loads_the_server_and_stops_wrk(wrk_exe: str, tmp_path: Path) -> None:
    # wrk's shortest run is a second; a 0.3 s warm-up stops it before it ends, so it never prints its report.
    with recording_server() as rec:
        wrk_process.warm_up(host=HOST, port=rec.port, path="/plaintext", method="POST", body=b"x", close=True,
                    connections=2, seconds=0.3, workdir=tmp_path)
        served = rec.requests
    assert served > 0
    assert wrk_process.MARKER not in (tmp_path / "wrk.log").read_text()
    head, body = rec.raw[0]
    assert head.split(b"\r\n")[0] == b"POST /plaintext HTTP/1.1" and b"Connection: close" in head and body == b"x"
