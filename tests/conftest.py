"""Fixtures that start real servers on free loopback ports."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from apps import db
from scripts.common.procs import free_port, running, wait_ready

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def live_children(leader: int, recursive: bool = False) -> set[int]:
    """Pids of ``leader``'s children (or all descendants) that are running: not zombies, not gone while we looked."""
    alive = set()
    for child in psutil.Process(leader).children(recursive=recursive):
        try:
            if child.status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
                alive.add(child.pid)
        except psutil.NoSuchProcess:
            continue
    return alive


@dataclass
class Server:
    host: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def live_children(self) -> set[int]:
        """Pids of the server's children that are running (not zombies, not gone while we looked)."""
        return live_children(self.proc.pid)

    def exchange(self, data: bytes, timeout: float = 10.0) -> bytes:
        """Send raw bytes on a new connection and read until the server closes it."""
        with socket.create_connection((self.host, self.port), timeout=timeout) as s:
            try:
                s.sendall(data)
            except OSError:
                pass  # the server may answer and close before it has read everything
            chunks = []
            while True:
                try:
                    chunk = s.recv(65536)
                except ConnectionResetError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
        return b"".join(chunks)


@pytest.fixture(scope="session")
def world_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return db.create(tmp_path_factory.mktemp("db") / "world.sqlite")


def server_env(world_db: Path) -> dict[str, str]:
    return {**os.environ, db.ENV_PATH: str(world_db), "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}


StartServer = Callable[..., AbstractContextManager[Server]]


@pytest.fixture
def start_server(world_db: Path, tmp_path: Path) -> StartServer:
    """``with start_server(argv_builder) as srv:`` where ``argv_builder(host, port) -> argv``."""

    @contextmanager
    def start(build: Callable[[str, int], list[str]], *, ready: bool = True, name: str = "server") -> Iterator[Server]:
        port = free_port(HOST)
        log = tmp_path / f"{name}-{port}.log"
        with running(build(HOST, port), log_path=log, env=server_env(world_db), cwd=ROOT) as proc:
            if ready:
                wait_ready(proc, HOST, port, log_path=log, deadline_s=30)
            yield Server(HOST, port, proc, log)

    return start


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A private PostgreSQL server for the session with a seeded ``world`` table; its URL.

    Skips only when the PostgreSQL server binaries are not installed; any other failure is an error.
    """
    from scripts.run import pg

    try:
        pg.find_binaries()
    except pg.PostgresUnavailable as exc:
        print(f"pg_url: skipping PostgreSQL tests: {exc}")
        pytest.skip(str(exc))
    with pg.postgres() as url:
        db.seed_postgres(url)
        yield url
