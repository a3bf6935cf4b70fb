"""The native closed-loop generator (scripts.load.engine_process --closed-loop on
scripts.load.engine) against real servers.

The server keeps its own tally: ``counting_app`` (served by a real prefork, two workers) appends
one byte per answered request to a file opened with O_APPEND (``o`` for 200, ``e`` for 503;
every 7th request of each worker is a 503; ``b`` and a 400 for a body of the wrong length), so
the generator's counts can be checked against what the server did, request for request.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pytest

from scripts.common.procs import free_port
from scripts.load import engine_process
from scripts.load.histogram import Histogram
from tests.conftest import HOST, StartServer

COUNT_FILE_ENV = "WB_TEST_COUNT_FILE"
BODY_LENGTH_ENV = "WB_TEST_BODY_LENGTH"
FAIL_EVERY = 7
_state: dict[str, int] = {}


def counting_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/health":  # the harness's readiness poll is not part of the count
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    if "fd" not in _state:
        _state["fd"] = os.open(os.environ[COUNT_FILE_ENV], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        _state["n"] = 0
    _state["n"] += 1
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    headers = [("Content-Type", "text/plain"), ("Content-Length", "2")]
    # One byte per write with O_APPEND: the workers' writes never interleave or overwrite.
    if len(body) != int(os.environ.get(BODY_LENGTH_ENV, "0")):
        os.write(_state["fd"], b"b")
        start_response("400 Bad Request", headers)
    elif _state["n"] % FAIL_EVERY == 0:
        os.write(_state["fd"], b"e")
        start_response("503 Service Unavailable", headers)
    else:
        os.write(_state["fd"], b"o")
        start_response("200 OK", headers)
    return [b"ok"]


def prefork_counting(host: str, port: int, workers: int = 2) -> list[str]:
    return [sys.executable, "-m", "servers.prefork", "tests.scripts.test_native:counting_app", "--bind",
            f"{host}:{port}", "--workers", str(workers), "--keepalive", "5"]


def prefork_counting_one_worker(host: str, port: int) -> list[str]:
    # One worker for the keep-alive count: with two, prefork may close a kept-alive connection
    # to even out the workers' shares (see servers/prefork.py), and the generator rightly reconnects.
    return prefork_counting(host, port, workers=1)


def check_result(r: engine_process.OpenLoopResult, tally: bytes, *, duration: float, least: int = 100) -> None:
    """Every request the server answered was counted once, with its status, and the report reads like wrk's."""
    assert r.mode == "closed" and r.completed >= least and b"b" not in tally
    assert r.completed == r.requests == len(tally) == r.sent == r.scheduled
    assert r.errors["status"] == r.non_2xx == tally.count(b"e") > 0
    assert r.ok == tally.count(b"o") == r.completed - r.non_2xx
    assert r.socket_errors == 0 and {k: v for k, v in r.errors.items() if k != "status"} == dict.fromkeys(
        ("connect", "read", "write", "timeout"), 0)
    assert duration <= r.measured_s < duration + 1.0
    assert r.throughput_rps == pytest.approx(r.requests / r.measured_s, rel=1e-3)
    latency = r.latency_ms
    assert 0 < latency["p50"] <= latency["p75"] <= latency["p90"] <= latency["p99"] <= latency["p999"] <= latency["max"]
    assert latency == r.latency_uncorrected_ms and r.latency_uncorrected_histogram == {}
    hist = r.histogram()
    assert isinstance(hist, Histogram) and hist.count == r.completed
    assert hist.summary_ms() == latency
    assert r.latency_histogram["spectrum"][-1] == [100.0, hist.max]


@pytest.mark.parametrize("close", [False, True], ids=["keep-alive", "close"])
def test_counts_match_the_servers_tally(close: bool, start_server: StartServer, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    tally_file = tmp_path / "tally"
    monkeypatch.setenv(COUNT_FILE_ENV, str(tally_file))
    with start_server(prefork_counting if close else prefork_counting_one_worker) as srv:
        started = time.monotonic()
        r = engine_process.run_openloop(f"http://{HOST}:{srv.port}/count", closed_loop=True, duration=1.5,
                                  connections=8, close=close, workdir=tmp_path / "gen")
        elapsed = time.monotonic() - started
    assert elapsed < 1.5 + 10  # the run plus process start-up: it stops by itself
    check_result(r, tally_file.read_bytes(), duration=1.5)
    if close:
        assert r.connects == r.completed  # a new connection per request
    else:
        assert r.connects == 8  # each connection opened once and kept


@pytest.mark.slow
def test_nobody_listening_fails_fast_and_ends(tmp_path: Path) -> None:
    # Refused connects fail at once; the closed loop must go on retrying until the end (not recurse,
    # not spin past the end) and count each as a connect error.
    port = free_port(HOST)
    started = time.monotonic()
    r = engine_process.run_openloop(f"http://{HOST}:{port}/", closed_loop=True, duration=1, connections=4, timeout=1,
                              workdir=tmp_path)
    assert time.monotonic() - started < 1 + 10
    assert r.completed == 0 and r.sent == 0 and r.connects == 0
    assert r.errors["connect"] == r.scheduled > 4
    assert r.socket_errors == r.errors["connect"] and r.latency_ms == {} and r.latency_histogram["count"] == 0


@pytest.mark.slow
def test_silent_server_times_out_within_the_bound(tmp_path: Path) -> None:
    # A listener that never accepts: the handshakes complete in the kernel, nobody answers.
    with socket.socket() as listener:
        listener.bind((HOST, 0))
        listener.listen(64)
        started = time.monotonic()
        r = engine_process.run_openloop(f"http://{HOST}:{listener.getsockname()[1]}/", closed_loop=True, duration=1,
                                  connections=4, timeout=0.5, workdir=tmp_path)
        elapsed = time.monotonic() - started
    assert elapsed < 1 + 0.5 + 10
    assert r.completed == 0 and r.connects >= 4
    # Each connection's request times out after 0.5 s and the slot sends another: about 2 each, in 1 s.
    assert r.errors["timeout"] == r.scheduled and 4 <= r.scheduled <= 16
    assert r.measured_s < 1 + 0.5 + 0.5


def test_large_bodies_go_out_whole(start_server: StartServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 3 MiB does not fit a loopback socket's send buffer in one send(): the rest of each request
    # goes out as the socket becomes writable again, and none of it may run into the next request.
    body = bytes(range(256)) * (3 * 4096)
    tally_file = tmp_path / "tally"
    monkeypatch.setenv(COUNT_FILE_ENV, str(tally_file))
    monkeypatch.setenv(BODY_LENGTH_ENV, str(len(body)))
    with start_server(prefork_counting) as srv:
        r = engine_process.run_openloop(f"http://{HOST}:{srv.port}/count", closed_loop=True, duration=1, connections=2,
                                  method="POST", body=body, workdir=tmp_path / "gen")
    check_result(r, tally_file.read_bytes(), duration=1, least=2 * FAIL_EVERY)
    assert r.connects == 2 and r.method == "POST"
