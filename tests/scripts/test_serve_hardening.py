"""Issue 19, items 10 and 12, against real processes: ``python -m scripts.serve``'s status endpoint stays on
loopback, drops silent clients and caps its connections; the fault endpoints are never inherited from the shell.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from apps import db
from apps import faults as app_faults
from scripts import serve as serve_cmd
from scripts.common.procs import free_port, get, running
from scripts.faults import slowclients
from scripts.plan.plan import plan_from_args
from scripts.run import cell
from scripts.run.cell import server_env
from tests.conftest import ROOT
from tests.scripts.test_remote import ready_line

pytestmark = pytest.mark.slow  # every test here starts real server processes

HOST = "127.0.0.1"
OTHER = "127.0.0.2"  # another loopback address: a socket bound to 127.0.0.1 alone is not reachable on it


@contextmanager
def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None
          ) -> Iterator[tuple[dict[str, Any], psutil.Process]]:
    log = tmp_path / f"serve-{len(list(tmp_path.glob('serve-*')))}.log"
    with running([sys.executable, "-m", "scripts.serve", *args], log_path=log, cwd=ROOT, env=env) as proc:
        yield ready_line(log, proc), psutil.Process(proc.pid)


def status_address(info: dict[str, Any]) -> tuple[str, int]:
    host, _, port = info["status"].removeprefix("http://").rstrip("/").rpartition(":")
    return host.strip("[]"), int(port)


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


# 10. the status endpoint ----------------------------------------------------------------------

def test_the_status_endpoint_is_on_loopback_whatever_bind_says(tmp_path: Path) -> None:
    port = free_port(OTHER)
    with serve(tmp_path, "fork", "--bind", f"{OTHER}:{port}") as (info, _):
        host, status_port = status_address(info)
        assert host == HOST
        assert get(HOST, status_port, "/")[0] == 200
        assert get(OTHER, port, "/health")[0] == 200  # the server itself is where --bind put it
        assert not reachable(OTHER, status_port)  # bound to 127.0.0.1 alone, not the server's address


def test_expose_status_puts_it_on_the_servers_address(tmp_path: Path) -> None:
    port = free_port(OTHER)
    with serve(tmp_path, "fork", "--bind", f"{OTHER}:{port}", "--expose-status") as (info, _):
        host, status_port = status_address(info)
        assert host == OTHER and get(OTHER, status_port, "/")[0] == 200


def test_silent_status_clients_are_capped_and_dropped(tmp_path: Path) -> None:
    port = free_port(HOST)
    with serve(tmp_path, "fork", "--bind", f"{HOST}:{port}") as (info, serve_proc), ExitStack() as stack:
        host, status_port = status_address(info)
        threads_before = serve_proc.num_threads()
        silent = [stack.enter_context(socket.create_connection((host, status_port), timeout=10)) for _ in range(60)]
        time.sleep(0.5)  # let the endpoint accept them all
        threads_with_60 = serve_proc.num_threads()
        print(f"status endpoint threads: {threads_before} idle, {threads_with_60} with 60 silent clients")
        assert threads_with_60 <= threads_before + serve_cmd.STATUS_MAX_CONNECTIONS
        # Those beyond the cap were closed at once; those within it after the read timeout.
        start = time.monotonic()
        closed_at: list[float] = []
        for s in silent:
            s.settimeout(serve_cmd.STATUS_READ_TIMEOUT_S + 5)
            try:
                assert s.recv(1) == b""
            except ConnectionResetError:
                pass
            closed_at.append(time.monotonic() - start)
        assert max(closed_at) < serve_cmd.STATUS_READ_TIMEOUT_S + 3
        assert get(host, status_port, "/")[0] == 200  # and it serves again
        assert serve_proc.num_threads() <= threads_before + 1


# 12. no fault endpoints by inheritance --------------------------------------------------------

def with_faults() -> dict[str, str]:
    return {**os.environ, app_faults.ENV: "1"}


def test_serve_drops_an_inherited_faults_variable(tmp_path: Path) -> None:
    port = free_port(HOST)
    with serve(tmp_path, "fork", "--bind", f"{HOST}:{port}", env=with_faults()) as _:
        assert get(HOST, port, "/fault/error")[0] == 404
        assert get(HOST, port, "/fault/crash?how=exit")[0] == 404
        assert get(HOST, port, "/plaintext")[0] == 200


def test_a_server_the_bench_starts_drops_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, world_db: Path) -> None:
    monkeypatch.setenv(app_faults.ENV, "1")
    plan = plan_from_args(["--modes", "fork", "--quick", "--out", str(tmp_path / "run")])
    assert plan is not None
    env = server_env(plan, world_db, db.REUSE)  # what every cell's server gets
    assert app_faults.ENV not in env
    port = free_port(HOST)
    argv = plan.registry["fork"].argv(host=HOST, port=port, workers=plan.workers)
    with cell.serving(plan, argv, port, plan.scenario_registry["plaintext"], tmp_path / "server.log", env):
        assert get(HOST, port, "/fault/error")[0] == 404
        assert get(HOST, port, "/plaintext")[0] == 200


def test_the_slow_clients_bench_drops_it_too(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, world_db: Path) -> None:
    monkeypatch.setenv(app_faults.ENV, "1")
    monkeypatch.setenv(db.ENV_PATH, str(world_db))
    plan = slowclients.parse_args(["--modes", "fork"])
    with slowclients.serving("fork", plan, tmp_path, None) as port:
        assert get(HOST, port, "/fault/error")[0] == 404
        assert get(HOST, port, "/plaintext")[0] == 200
