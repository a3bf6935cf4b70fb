"""The database module against real backends: SQLite files and a private PostgreSQL server.

Connection counts come from the module's trace file (``WORKERBENCH_DB_TRACE``):
one line per connection opened, with the pid that opened it.
"""

from __future__ import annotations

import json
import os
import random
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import psycopg
import pytest

from apps import db
from scripts.common.procs import get
from tests.conftest import ROOT, StartServer

BACKENDS = [db.SQLITE, pytest.param(db.POSTGRESQL, marks=pytest.mark.slow)]  # PostgreSQL: a server process
CALLS = 30
REQUESTS = 50


@cache
def seeded() -> dict[int, int]:
    """The table both backends must hold, derived here independently of the module."""
    rng = random.Random(db.SEED)
    return {i: rng.randint(1, db.MAX_RANDOM_NUMBER) for i in range(1, db.ROWS + 1)}


def assert_rows_are_seeded(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        assert set(row) == {"id", "randomNumber"}
        assert row["randomNumber"] == seeded()[row["id"]], row


def read_trace(trace: Path) -> list[tuple[int, str]]:
    if not trace.exists():
        return []
    lines = trace.read_text().splitlines()
    return [(int(pid), backend) for pid, backend in (line.split(" ") for line in lines)]


@pytest.fixture(autouse=True)
def _fresh_module(world_db: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts from a clean environment and module state, and leaves none behind."""
    monkeypatch.setenv(db.ENV_PATH, str(world_db))
    for name in (db.ENV_URL, db.ENV_STRATEGY, db.ENV_TRACE):
        monkeypatch.delenv(name, raising=False)
    db.reset()
    yield
    db.reset()


@pytest.fixture
def trace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "connections.trace"
    monkeypatch.setenv(db.ENV_TRACE, str(path))
    return path


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Points the module at one backend; the PostgreSQL one starts the session's server."""
    if request.param == db.POSTGRESQL:
        monkeypatch.setenv(db.ENV_URL, request.getfixturevalue("pg_url"))
    return str(request.param)


def use_strategy(monkeypatch: pytest.MonkeyPatch, strategy: str) -> None:
    monkeypatch.setenv(db.ENV_STRATEGY, strategy)
    db.reset()


# --- in this process ------------------------------------------------------------------------------------------------


def test_reuse_opens_one_connection_per_process(backend: str, trace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_strategy(monkeypatch, db.REUSE)
    for _ in range(CALLS):
        assert_rows_are_seeded(db.random_rows(3))
    assert read_trace(trace) == [(os.getpid(), backend)]


def test_reuse_is_the_default(backend: str, trace: Path) -> None:
    assert db.strategy() == db.REUSE
    for _ in range(CALLS):
        db.random_rows(1)
    assert read_trace(trace) == [(os.getpid(), backend)]


def test_per_request_opens_one_connection_per_call(backend: str, trace: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    use_strategy(monkeypatch, db.PER_REQUEST)
    for _ in range(CALLS):
        assert_rows_are_seeded(db.random_rows(3))
    assert read_trace(trace) == [(os.getpid(), backend)] * CALLS


def _session_id(conn: Any) -> object:
    """What identifies a connection's server side: the backend pid for PostgreSQL, the object for SQLite."""
    return conn.info.backend_pid if isinstance(conn, psycopg.Connection) else id(conn)


@pytest.mark.slow
def test_forked_child_opens_its_own_connection(backend: str, trace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_strategy(monkeypatch, db.REUSE)
    db.random_rows(2)
    parent = db.connection()
    parent_session = _session_id(parent)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        report: dict[str, Any] = {}
        try:
            rows = db.random_rows(5) + db.random_rows(5)
            child = db.connection()
            report = {"distinct": child is not parent, "session": _session_id(child), "rows": rows}
        except BaseException as exc:
            report = {"error": repr(exc)}
        finally:
            os.write(w, json.dumps(report).encode())
            os._exit(0)
    os.close(w)
    _, status = os.waitpid(pid, 0)
    with os.fdopen(r, "rb") as pipe:
        report = json.loads(pipe.read())
    assert os.waitstatus_to_exitcode(status) == 0
    assert "error" not in report, report["error"]
    assert report["distinct"]
    assert_rows_are_seeded(report["rows"])
    if backend == db.POSTGRESQL:
        assert report["session"] != parent_session  # a server session of its own, not the parent's
    # The parent's connection was left alone by the child and still works.
    assert_rows_are_seeded(db.random_rows(5))
    assert db.connection() is parent
    assert _session_id(parent) == parent_session
    assert read_trace(trace) == [(os.getpid(), backend), (pid, backend)]


def test_nothing_is_traced_when_unset(backend: str, trace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    db.random_rows(1)
    assert len(read_trace(trace)) == 1
    monkeypatch.delenv(db.ENV_TRACE)
    for strategy in db.STRATEGIES:
        use_strategy(monkeypatch, strategy)
        for _ in range(5):
            db.random_rows(1)
    assert len(read_trace(trace)) == 1


def test_unknown_strategy_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    use_strategy(monkeypatch, "pooled")
    with pytest.raises(ValueError, match=r"'pooled'.*valid: reuse, per-request"):
        db.strategy()
    with pytest.raises(ValueError, match=r"valid: reuse, per-request"):
        db.random_rows(1)


def test_non_postgres_url_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(db.ENV_URL, "mysql://user@127.0.0.1/world")
    with pytest.raises(ValueError, match="postgresql://"):
        db.random_rows(1)


# --- PostgreSQL specifics -------------------------------------------------------------------------------------------


def test_postgres_rows_match_the_seeded_table(pg_url: str, world_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(db.ENV_URL, pg_url)
    for strategy in db.STRATEGIES:
        use_strategy(monkeypatch, strategy)
        rows = db.random_rows(200)
        assert len(rows) == 200
        assert_rows_are_seeded(rows)
    with psycopg.connect(pg_url) as conn:
        pg_table = conn.execute("SELECT id, randomnumber FROM world ORDER BY id").fetchall()
    with sqlite3.connect(world_db) as lite:
        lite_table = lite.execute("SELECT id, randomNumber FROM world ORDER BY id").fetchall()
    lite.close()
    assert pg_table == lite_table == sorted(seeded().items())


def test_reused_postgres_connection_is_autocommit(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(db.ENV_URL, pg_url)
    db.random_rows(3)
    conn = db.connection()
    assert isinstance(conn, psycopg.Connection)
    assert conn.autocommit
    with psycopg.connect(pg_url, autocommit=True) as observer:
        (state,) = observer.execute("SELECT state FROM pg_stat_activity WHERE pid = %s",
                                    (conn.info.backend_pid,)).fetchone() or (None,)
    assert state == "idle"  # not "idle in transaction"


def test_dead_postgres_session_is_replaced(pg_url: str, trace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(db.ENV_URL, pg_url)
    db.random_rows(1)
    first = db.connection()
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (first.info.backend_pid,))  # type: ignore[union-attr]
    with pytest.raises(psycopg.OperationalError):
        db.random_rows(1)
    assert_rows_are_seeded(db.random_rows(3))
    assert db.connection() is not first
    assert len(read_trace(trace)) == 2


@pytest.fixture
def scratch_url(pg_url: str) -> Any:
    """An empty database on the session's server, dropped afterwards."""
    name = f"scratch_{os.getpid()}_{random.randrange(1 << 30)}"
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        yield pg_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _table(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(url) as conn:
        return conn.execute("SELECT id, randomnumber, xmin::text FROM world ORDER BY id").fetchall()


def test_seed_postgres_is_idempotent_and_repairs(scratch_url: str) -> None:
    db.seed_postgres(scratch_url, rows=500)
    first = _table(scratch_url)
    assert [(i, n) for i, n, _ in first] == [(i, seeded()[i]) for i in range(1, 501)]
    db.seed_postgres(scratch_url, rows=500)
    assert _table(scratch_url) == first  # same row versions: a complete table is not rewritten
    with psycopg.connect(scratch_url) as conn:
        conn.execute("DELETE FROM world WHERE id > 400")
    db.seed_postgres(scratch_url, rows=500)
    assert [(i, n) for i, n, _ in _table(scratch_url)] == [(i, n) for i, n, _ in first]


def test_concurrent_seeders_build_the_table_once(scratch_url: str) -> None:
    errors: list[BaseException] = []

    def seed() -> None:
        try:
            db.seed_postgres(scratch_url)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=seed) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    rows = _table(scratch_url)
    assert len(rows) == db.ROWS
    assert len({xmin for _, _, xmin in rows}) == 1  # one transaction wrote them all


# --- fresh processes, settings from the environment at start -------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("strategy", db.STRATEGIES)
def test_fresh_process_reads_the_environment(backend: str, strategy: str, trace: Path, world_db: Path) -> None:
    env = {**os.environ, db.ENV_STRATEGY: strategy, "PYTHONPATH": str(ROOT)}
    code = (
        "import os\n"
        "from apps import db\n"
        f"for _ in range({CALLS}):\n"
        "    assert len(db.random_rows(2)) == 2\n"
        "print(os.getpid())\n"
    )
    proc = subprocess.run([sys.executable, "-W", "error", "-c", code], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    child = int(proc.stdout)
    expected = 1 if strategy == db.REUSE else CALLS
    assert read_trace(trace) == [(child, backend)] * expected


@pytest.mark.parametrize("strategy", db.STRATEGIES)
def test_prefork_server_connections(backend: str, strategy: str, trace: Path, start_server: StartServer,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(db.ENV_STRATEGY, strategy)

    def build(host: str, port: int) -> list[str]:
        return [sys.executable, "-m", "servers.prefork", "apps.wsgi:app", "--bind", f"{host}:{port}", "--workers", "2"]

    with start_server(build) as srv:
        for _ in range(REQUESTS):
            status, headers, body = get(srv.host, srv.port, "/db")
            assert status == 200, body
            assert headers["content-type"].startswith("application/json")
            assert_rows_are_seeded([json.loads(body)])
        master = srv.proc.pid
    opened = read_trace(trace)
    assert {b for _, b in opened} == {backend}
    pids = [pid for pid, _ in opened]
    assert master not in pids  # the master never queries; its workers do
    assert 1 <= len(set(pids)) <= 2
    if strategy == db.REUSE:
        assert len(pids) == len(set(pids))  # one connection per worker
    else:
        assert len(pids) == REQUESTS
