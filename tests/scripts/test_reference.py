"""The machine's own fork rates, measured for real."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

from scripts.common import procs
from scripts.run import reference
from tests.conftest import ROOT


@pytest.mark.slow
def test_fork_rate_is_measured_in_a_fresh_interpreter() -> None:
    result = reference.measure_fork_rate(0.3, repeats=3)
    assert result["forks"] > 0 and len(result["rates"]) == 3
    assert result["rate"] == sorted(result["rates"])[1]  # the median run


@pytest.mark.slow
def test_fork_loop_server_answers_each_connection_from_a_new_process(tmp_path: Path) -> None:
    port = procs.free_port()
    argv = [sys.executable, "-m", "scripts.run.reference", "fork-loop", "--port", str(port)]
    log = tmp_path / "loop.log"
    with procs.running(argv, log_path=log, cwd=ROOT) as proc:
        procs.wait_ready(proc, "127.0.0.1", port, log_path=log, path="/")
        status, headers, body = procs.get("127.0.0.1", port, "/")
        assert (status, body, headers["connection"]) == (200, b"Hello, World!", "close")
        deadline = time.monotonic() + 5
        while procs.group_members(proc.pid) != [proc.pid] and time.monotonic() < deadline:
            time.sleep(0.01)  # the child may still be on its way out after the client has its answer
        assert procs.group_members(proc.pid) == [proc.pid]  # no zombie: the kernel reaped the children


def test_fork_loop_rate_is_driven_by_wrk_and_leaves_nothing_behind(wrk_exe: str, tmp_path: Path) -> None:
    result = reference.measure_fork_loop_rate(1, None, None, tmp_path)
    assert result["rate"] > 0 and result["errors"] == 0
    assert result["connections"] == 32
    assert (tmp_path / "fork-loop" / "wrk.log").exists()


@pytest.mark.slow
def test_stdlib_fork_server_serves_the_app_from_a_child_per_connection(tmp_path: Path) -> None:
    port = procs.free_port()
    argv = [sys.executable, "-m", "scripts.run.reference", "stdlib-fork", "--port", str(port)]
    log = tmp_path / "stdlib.log"
    with procs.running(argv, log_path=log, cwd=ROOT) as proc:
        procs.wait_ready(proc, "127.0.0.1", port, log_path=log, path="/plaintext")
        status, headers, body = procs.get("127.0.0.1", port, "/plaintext")
        assert (status, body) == (200, b"Hello, World!")
        assert headers["server"].startswith("WSGIServer/")  # wsgiref answered, not one of our servers
    assert log.read_text().count("GET /plaintext") == 0  # per-request log lines are off: they would be measured


def test_stdlib_fork_rate_is_driven_by_wrk_like_the_modes(wrk_exe: str, tmp_path: Path) -> None:
    result = reference.measure_fork_loop_rate(1, None, None, tmp_path, what="stdlib-fork")
    assert result["rate"] > 0 and result["errors"] == 0 and result["connections"] == 32
    assert (tmp_path / "stdlib-fork" / "wrk.log").exists()
