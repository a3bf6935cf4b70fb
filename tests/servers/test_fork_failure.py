"""Issue 19, item 3: a failed ``fork()`` does not stop a server.

Each server runs as an unprivileged uid no one else uses (tests/unprivileged.py) under a low RLIMIT_NPROC,
so ``fork()`` fails with EAGAIN for real once the uid has that many processes. fork and cgi answer 503,
log the failure once, and serve again once a child exits; prefork's master keeps its workers and retries
the spawn with a back-off until the limit lets it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from apps import db
from scripts.common.procs import free_port, get, running, wait_ready
from tests.conftest import HOST, ROOT, live_children
from tests.unprivileged import argv as as_user
from tests.unprivileged import python_for, require_root, unused_uid

pytestmark = pytest.mark.slow  # every test here starts real server processes

HELD = 2  # children held busy by requests that wait HOLD_MS in the app
HOLD_MS = 5000


@dataclass
class Limited:
    port: int
    pid: int
    log: Path
    poll: Callable[[], int | None]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def limited_server(kind: str, nproc: int, world_db: Path, tmp_path: Path, *extra: str,
                   uid: int | None = None) -> Iterator[Limited]:
    """``servers.<kind>`` as ``uid`` (default: a fresh unprivileged one) whose processes are capped at ``nproc``."""
    require_root("a server under RLIMIT_NPROC")
    uid = unused_uid() if uid is None else uid
    python, env = python_for(uid)
    # The uid reaches nothing under root's 0700 folders (pytest's tmp_path included): a folder of its own.
    home = Path(tempfile.mkdtemp(prefix="workerbench-nproc-", dir="/tmp"))
    try:
        os.chmod(home, 0o755)
        database = home / "world.sqlite"
        shutil.copy(world_db, database)
        os.chown(database, uid, uid)  # apps.db refuses a file its user does not own
        env = {**env, db.ENV_PATH: str(database), "PYTHONUNBUFFERED": "1"}
        port, log = free_port(HOST), tmp_path / f"{kind}.log"
        command = [python, "-m", f"servers.{kind}", "apps.wsgi:app", "--bind", f"{HOST}:{port}",
                   "--header-timeout", "60", *extra]
        with running(as_user(uid, nproc, command), log_path=log, env=env, cwd=ROOT) as proc:
            wait_ready(proc, HOST, port, log_path=log, deadline_s=30)
            yield Limited(port, proc.pid, log, proc.poll)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def status_of(port: int) -> int | str:
    """The status of one GET /plaintext on a new connection, or how the connection failed."""
    try:
        with socket.create_connection((HOST, port), timeout=10) as s:
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n")
            got = b""
            while chunk := s.recv(65536):
                got += chunk
    except OSError as exc:
        return type(exc).__name__
    return int(got.split(b" ", 2)[1]) if got else "closed"


def wait_until(what: str, check: Callable[[], bool], deadline_s: float = 20.0) -> None:
    deadline = time.monotonic() + deadline_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.mark.parametrize("kind", ["fork", "cgi"])
def test_fork_and_cgi_answer_503_at_the_process_limit_and_serve_again(kind: str, world_db: Path,
                                                                      tmp_path: Path) -> None:
    with limited_server(kind, 1 + HELD, world_db, tmp_path) as srv, ExitStack() as stack:
        # The children of the readiness probes may still be exiting (a cgi script answers, then its
        # interpreter shuts down); until reaped they count against the limit too.
        wait_until("the probes' children to be reaped", lambda: not psutil.Process(srv.pid).children())
        # A half-sent request no longer takes a child (the parent keeps it until it is whole): each holder
        # sends a whole request that waits in the app, so its child stays until the wait is over.
        for _ in range(HELD):
            s = stack.enter_context(socket.create_connection((HOST, srv.port), timeout=10))
            s.sendall(f"GET /io?ms={HOLD_MS} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        wait_until(f"{HELD} children", lambda: len(live_children(srv.pid)) == HELD)
        refused = [status_of(srv.port) for _ in range(5)]
        alive = srv.poll() is None
        print(f"{kind} at RLIMIT_NPROC={1 + HELD}: {refused}; server alive: {alive}")
        assert alive, srv.log_text()
        assert refused == [503] * 5, srv.log_text()
        # The holders' waits end, their children answer and exit: processes free up.
        wait_until("the children to exit", lambda: not live_children(srv.pid), deadline_s=HOLD_MS / 1000 + 20)
        assert [get(HOST, srv.port, "/plaintext")[0] for _ in range(3)] == [200] * 3
        log = srv.log_text()
    assert len(re.findall(r"fork failed: \[Errno 11\]", log)) == 1, log  # once, not once per connection
    assert "fork works again after 5 failures; 5 connections were answered 503" in log


def workers(srv: Limited) -> set[int]:
    return live_children(srv.pid)


def test_prefork_master_keeps_its_workers_and_retries_a_failed_spawn(world_db: Path, tmp_path: Path) -> None:
    require_root("a server under RLIMIT_NPROC")
    uid = unused_uid()
    # One process of the uid that stands for "the rest of the machine": stopping it frees a slot.
    with running(as_user(uid, 0, ["sleep", "600"]), log_path=tmp_path / "sleep.log") as other, \
            limited_server("prefork", 4, world_db, tmp_path, "--workers", "2", uid=uid) as srv:
        wait_until("2 workers", lambda: len(workers(srv)) == 2)
        before = workers(srv)
        os.kill(srv.pid, signal.SIGTTIN)  # a third worker: one process more than the uid may have
        wait_until("the failed spawn to be logged", lambda: "cannot fork a worker" in srv.log_text())
        time.sleep(1.5)  # a few retries
        assert srv.poll() is None, srv.log_text()
        assert workers(srv) == before  # the workers it had are kept, and serve
        assert [get(HOST, srv.port, "/plaintext")[0] for _ in range(4)] == [200] * 4
        os.kill(other.pid, signal.SIGKILL)  # a process of the uid exits: room for the third worker
        other.wait()
        wait_until("the third worker", lambda: len(workers(srv)) == 3, deadline_s=15)
        assert workers(srv) > before
        assert get(HOST, srv.port, "/plaintext")[0] == 200
        log = srv.log_text()
    fails = re.findall(r"cannot fork a worker \(failure (\d+) in a row\).*retrying in ([\d.]+)s", log)
    print(f"prefork at RLIMIT_NPROC=4 (+TTIN): {len(fails)} failed spawns, retry delays {[d for _, d in fails]}")
    assert fails and fails[0][0] == "1", log
    delays = [float(d) for _, d in fails]
    assert delays == sorted(delays) and len(delays) < 12, log  # backed off, not one attempt per loop pass
    assert "spawned a worker again after" in log
