"""The fault endpoints: absent (404) unless WORKERBENCH_FAULTS=1, and the same contract under WSGI and ASGI.

Served for real: prefork (WSGI) and uvicorn (ASGI) processes with the variable set; the crash
really ends the serving process (a new pid answers next), the SIGSEGV is a real signal (the
prefork master logs the worker's death by SIGSEGV).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from apps import faults, workloads
from scripts.common.procs import free_port, get, running, wait_ready
from scripts.modes import MODES
from tests.apps.test_workloads import call_asgi, call_wsgi
from tests.conftest import HOST, ROOT, live_children

FAULT_PATHS = [e.path for e in workloads.FAULT_ENDPOINTS]


@pytest.mark.parametrize("path", FAULT_PATHS)
def test_absent_without_the_variable(path: str) -> None:
    # The test process imported apps.workloads without WORKERBENCH_FAULTS=1.
    assert os.environ.get(faults.ENV) != "1"
    assert call_wsgi("GET", path)[0] == "404 Not Found"
    status, headers, body = call_asgi("GET", path)
    assert (status, headers["content-type"], body) == (404, workloads.TEXT, b"Not Found")


@contextmanager
def serving(mode: str, world_db: Path, tmp_path: Path, workers: int = 1) -> Iterator[tuple[int, int]]:
    port = free_port(HOST)
    env = {**os.environ, faults.ENV: "1", "WORKERBENCH_DB": str(world_db), "PYTHONPATH": str(ROOT)}
    log = tmp_path / f"{mode}.log"
    argv = MODES[mode].argv(host=HOST, port=port, workers=workers)
    with running(argv, log_path=log, env=env, cwd=ROOT) as proc:
        wait_ready(proc, HOST, port, log_path=log, deadline_s=30)
        yield port, proc.pid


def fetch(port: int, path: str) -> tuple[int, str, bytes]:
    status, headers, body = get(HOST, port, path, timeout=10)
    return status, headers.get("content-type", ""), body


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory, world_db: Path) -> Iterator[dict[str, int]]:
    tmp = tmp_path_factory.mktemp("faults")
    with serving("prefork", world_db, tmp) as (wsgi_port, _), serving("uvicorn", world_db, tmp) as (asgi_port, _):
        yield {"wsgi": wsgi_port, "asgi": asgi_port}


@pytest.mark.slow
def test_state_leak_and_hang_have_one_format(both: dict[str, int]) -> None:
    for port in both.values():
        first = fetch(port, "/fault/state?set=alpha")
        second = fetch(port, "/fault/state?set=beta")
        assert first[:2] == second[:2] == (200, workloads.JSON)
        # One worker: the second request sees what the first left behind.
        assert json.loads(second[2])["previous"] == "alpha"
        assert set(json.loads(second[2])) == {"previous", "pid"}
        leak = [json.loads(fetch(port, "/fault/leak?kb=4")[2]) for _ in range(2)]
        assert leak[1]["kept_kb"] - leak[0]["kept_kb"] == 4 and set(leak[1]) == {"kept_kb", "requests", "pid"}
        big = fetch(port, "/fault/big?kb=3")
        assert big == (200, workloads.TEXT, b"x" * 3072)
        hang = fetch(port, "/fault/hang?s=0.05")
        assert hang[:2] == (200, workloads.JSON) and json.loads(hang[2])["hung_s"] == 0.05
        spin = fetch(port, "/fault/spin?s=0.05")
        assert spin[:2] == (200, workloads.JSON) and json.loads(spin[2])["spun_s"] == 0.05
        assert set(json.loads(spin[2])) == {"spun_s", "turns", "pid"}
        query = fetch(port, "/fault/sqlite?ms=20")
        assert query[:2] == (200, workloads.JSON) and json.loads(query[2])["rows"] > 0
        assert set(json.loads(query[2])) == {"asked_ms", "took_ms", "rows", "pid"}


@pytest.mark.slow
def test_error_is_a_500_from_the_server(both: dict[str, int]) -> None:
    for port in both.values():
        assert fetch(port, "/fault/error")[0] == 500
        assert fetch(port, "/health")[0] == 200  # the process survived


def wait_for_replacement(leader: int, before: set[int], deadline_s: float = 20.0) -> tuple[set[int], set[int]]:
    """(gone, new) once a process of ``before`` has died and as many run again."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        now = live_children(leader, recursive=True)
        if before - now and len(now) >= len(before):
            return before - now, now - before
        time.sleep(0.05)
    raise AssertionError(f"no worker of {before} was replaced within {deadline_s} s")


@pytest.mark.slow
@pytest.mark.parametrize("how", ["exit", "segv"])
@pytest.mark.parametrize("mode", ["prefork", "uvicorn"])
def test_crash_really_ends_the_process(mode: str, how: str, world_db: Path, tmp_path: Path) -> None:
    # Two workers: uvicorn with one runs without its supervisor, and a crash would end the server.
    with serving(mode, world_db, tmp_path, workers=2) as (port, leader):
        before = live_children(leader, recursive=True)
        with pytest.raises(OSError):  # no answer: the connection closes under the request
            get(HOST, port, f"/fault/crash?how={how}", timeout=10)
        gone, new = wait_for_replacement(leader, before)
        assert len(gone) == 1 and len(new) == 1
        assert fetch(port, "/health")[0] == 200
    if mode == "prefork":
        log = (tmp_path / "prefork.log").read_text()
        assert ("SIGSEGV" if how == "segv" else f"exit code {faults.CRASH_EXIT_CODE}") in log
