"""Fixtures that start real servers on free loopback ports, and the two tiers of the suite.

The ``slow`` marker is the line between the tiers: a test marked slow starts a process (a server, wrk or locust,
chromium, PostgreSQL, a ``python -m`` command); every other test runs in this interpreter, and
``pytest -m "not slow"`` runs those alone in well under a minute. A test gets the marker explicitly
(``@pytest.mark.slow``, or ``pytestmark`` for a module of them) or by asking for a fixture of
:data:`PROCESS_FIXTURES` (:func:`pytest_collection_modifyitems`). While a test without the marker runs, starting a
process fails it with a message saying so (:func:`_guarded`), so the tier cannot rot.

``nox -s tests`` runs the suite on several pytest-xdist workers, handed tests in collection order: most slow tests
wait (for a timeout, a sleep, a server's start) more than they compute. A test whose assertion is a timing or a share
of the CPU that tests running beside it would distort carries the ``alone`` marker: while it runs, no other slow test
runs on any worker (:class:`_Alone`).
"""

from __future__ import annotations

import fcntl
import functools
import os
import socket
import subprocess
from collections.abc import Callable, Generator, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from apps import db
from scripts.common.procs import free_port, running, wait_ready

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"

# Fixtures that start a process (or hand out one that runs): a test asking for one, directly or through another
# fixture, is in the slow tier.
PROCESS_FIXTURES = frozenset({
    "start_server",  # a server per `with start_server(...)`, below
    "shared_server",  # a server kept for the module's tests that only read from it, below
    "pg_url",  # a PostgreSQL server for the session, below
    "wrk_exe",  # asked for by every test that runs wrk (tests/scripts/conftest.py)
    "browser", "visit",  # chromium through playwright (tests/scripts/browser.py)
    "netns",  # network namespaces made with `ip`, and what runs inside them (tests/scripts/conftest.py)
    "srv",  # the module-scoped running server of the corpus, malformed, hardening and third-party modules
})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
    if "PYTEST_XDIST_WORKER" in os.environ:
        # The tests marked alone last (in their order), where the other workers are running out of tests: each one
        # waits for the tests running beside it to end, and the fewer there are, the shorter the wait.
        items.sort(key=lambda item: item.get_closest_marker("alone") is not None)


class _ProcessGuard:
    """Makes starting a process fail the running test: subprocess (asyncio's too), fork and posix_spawn."""

    def __init__(self, item: pytest.Item) -> None:
        self.item = item
        self.saved: list[tuple[object, str, object]] = []
        self.refused: list[str] = []  # what was refused, in case the code under test swallowed the failure

    def message(self, what: str) -> str:
        return (f"{self.item.nodeid} starts a process ({what}) but is not in the slow tier: mark it "
                f"@pytest.mark.slow, or ask for a fixture of PROCESS_FIXTURES (tests/conftest.py)")

    def _refuse(self, what: str) -> Callable[..., object]:
        def refuse(*args: object, **kwargs: object) -> object:
            self.refused.append(what)
            pytest.fail(self.message(what))

        return refuse

    def __enter__(self) -> None:
        targets: list[tuple[object, str, str]] = [(subprocess.Popen, "_execute_child", "subprocess")]
        targets += [(os, name, f"os.{name}") for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp")
                    if hasattr(os, name)]
        for owner, name, what in targets:
            self.saved.append((owner, name, getattr(owner, name)))
            setattr(owner, name, self._refuse(what))

    def __exit__(self, *exc: object) -> None:
        for owner, name, original in reversed(self.saved):
            setattr(owner, name, original)
        self.saved.clear()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _guarded(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, object, object]:
    return (yield from _guarded(item))


class _Alone:
    """A readers-writer lock shared by the xdist workers of one run, with a turnstile so a waiting writer is not
    starved: a slow test holds it shared, a test marked ``alone`` holds it exclusively (so it starts once the running
    ones end, and none start until it ends). Files in the run's base temporary folder, which every worker's is in."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.turnstile = os.open(folder / "alone-turnstile.lock", os.O_RDWR | os.O_CREAT, 0o600)
        self.room = os.open(folder / "alone-room.lock", os.O_RDWR | os.O_CREAT, 0o600)

    @contextmanager
    def holding(self, alone: bool) -> Iterator[None]:
        fcntl.flock(self.turnstile, fcntl.LOCK_EX)  # an alone holder keeps it: later arrivals queue behind
        try:
            fcntl.flock(self.room, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
            if not alone:
                fcntl.flock(self.turnstile, fcntl.LOCK_UN)
            try:
                yield
            finally:
                fcntl.flock(self.room, fcntl.LOCK_UN)
        finally:
            fcntl.flock(self.turnstile, fcntl.LOCK_UN)  # releasing an unheld flock is a no-op


@functools.cache
def _alone_lock(folder: Path) -> _Alone:
    return _Alone(folder)


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: pytest-timeout's clock starts once the lock is held
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    """Under pytest-xdist, a slow test takes :class:`_Alone`'s lock for its setup, call and teardown."""
    alone = item.get_closest_marker("alone") is not None
    if "PYTEST_XDIST_WORKER" not in os.environ or not (alone or item.get_closest_marker("slow")):
        return (yield)
    # A worker's base temporary folder is inside the run's (xdist's workermanage): the run's folder is shared.
    with _alone_lock(Path(item.config.option.basetemp).parent).holding(alone):
        return (yield)


def _guarded(item: pytest.Item) -> Generator[None, object, object]:
    """Runs one phase of ``item``; outside the slow tier, with :class:`_ProcessGuard` on."""
    if item.get_closest_marker("slow") is not None:
        return (yield)
    guard = _ProcessGuard(item)
    with guard:
        result = yield
    if guard.refused:  # refused, and the failure caught on the way (a thread, an `except BaseException`)
        pytest.fail(guard.message(guard.refused[0]))
    return result


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


SharedServer = Callable[[Callable[[str, int], list[str]]], Server]


@pytest.fixture(scope="module")
def shared_server(world_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedServer]:
    """``srv = shared_server(argv_builder)``: a server the module's tests share, started by the first test to ask
    for its command line and stopped when the module is done.

    For tests that only send requests and read the answers (or the log); a test that signals, kills, fills or
    otherwise changes the server starts its own with ``start_server``. Command lines are compared with port 0, so
    every builder that makes the same command shares one server.
    """
    servers: dict[tuple[str, ...], Server] = {}
    with ExitStack() as stack:

        def get_server(build: Callable[[str, int], list[str]]) -> Server:
            key = tuple(build(HOST, 0))
            if key not in servers:
                port = free_port(HOST)
                log = tmp_path_factory.mktemp("shared") / f"server-{port}.log"
                proc = stack.enter_context(running(build(HOST, port), log_path=log, env=server_env(world_db),
                                                   cwd=ROOT))
                wait_ready(proc, HOST, port, log_path=log, deadline_s=30)
                servers[key] = Server(HOST, port, proc, log)
            srv = servers[key]
            assert srv.proc.poll() is None, f"a shared server has exited (a test changed it?):\n{srv.log_text()}"
            return srv

        yield get_server


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
