"""The ``world`` table and how a worker process reaches it.

Backends
--------
By default the table lives in a SQLite file named by ``WORKERBENCH_DB``. The
harness creates it once before a run (:func:`create`); an app started by hand
creates the default file on first use, atomically, so concurrent workers never
see half a table. That default file lives in a folder private to the user
(``$TMPDIR/workerbench-<uid>``, mode 0700, checked to be theirs), not at a
fixed name in the shared temporary folder where anyone could leave one first;
and a database file the current user does not own is refused, wherever it is.

When ``WORKERBENCH_DATABASE_URL`` holds a ``postgresql://`` URL, the same
queries go to that PostgreSQL server through psycopg 3 instead. The table there
must be created first with :func:`seed_postgres` (idempotent): it holds the
same seeded numbers as the SQLite file, so both backends answer alike.
PostgreSQL connections run in autocommit mode, so a kept connection is never
left "idle in transaction" holding a snapshot between requests.

Strategies
----------
``WORKERBENCH_DB_STRATEGY`` picks what a request pays for its connection:

``reuse`` (default)
    each process opens one connection on its first query and keeps it for
    every later request: a request pays for its queries only.
``per-request``
    every :func:`random_rows` call connects, runs its queries and closes, as
    an app without a pool does: a request also pays for the connection (for
    PostgreSQL, a new server backend process and its start-up).

Why a connection is never inherited across ``fork()``
------------------------------------------------------
A forked child shares its parent's open sockets and files. Two processes
talking over one PostgreSQL socket interleave their protocol messages and read
each other's replies, and SQLite's locks belong to the process that took them.
So the kept connection is cached with the pid that opened it, and a process
whose pid differs (a child forked after the parent, or the master with
``--preload``, had used it) opens its own. The inherited object is neither
closed nor garbage-collected in the child: closing it would send PostgreSQL's
Terminate message on the parent's session (and psycopg warns when an open
connection is deleted), so the child keeps a reference and never touches it.
The random sequence is reseeded in every forked child, so workers do not all
ask for the same ids.

Settings are read from the environment once per process, at the first query,
so the request path never consults ``os.environ``; a forked child inherits
them. :func:`reset` forgets them (and closes this process's connection) when
the environment changes within one process, as in tests.

Tracing
-------
When ``WORKERBENCH_DB_TRACE`` names a file, every connection opened to serve
queries appends the line ``"<pid> <backend>\\n"`` to it (``O_APPEND`` and one
``write`` per line, so lines from concurrent processes never interleave).
Tests count the lines to check the strategies. The short-lived connections
that only check or build the table (:func:`create`, :func:`seed_postgres`) are
not traced.
"""

from __future__ import annotations

import atexit
import os
import random
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

    Connection = sqlite3.Connection | psycopg.Connection[Any]

ROWS = 10_000
MAX_RANDOM_NUMBER = 10_000
ENV_PATH = "WORKERBENCH_DB"
ENV_URL = "WORKERBENCH_DATABASE_URL"

if os.environ.get(ENV_URL):
    # Import the driver with the app, not at the first query: a process forked per request would
    # otherwise pay the import (about 90 ms here) on every request, and measure that, not the database.
    import psycopg

ENV_STRATEGY = "WORKERBENCH_DB_STRATEGY"
ENV_TRACE = "WORKERBENCH_DB_TRACE"
SEED = 20261128

REUSE = "reuse"
PER_REQUEST = "per-request"
STRATEGIES = (REUSE, PER_REQUEST)
SQLITE = "sqlite"
POSTGRESQL = "postgresql"
URL_SCHEMES = ("postgresql://", "postgres://")

# Taken by seed_postgres so that concurrent seeders build the table once; an arbitrary constant.
_SEED_LOCK_KEY = 0x776F726C64  # "world"


@dataclass(frozen=True)
class _Settings:
    backend: str
    reuse: bool
    target: Path | None  # SQLite file
    url: str | None  # PostgreSQL URL
    trace: str | None
    query: Callable[[Any, int], list[dict[str, int]]]


_settings: _Settings | None = None
_conn: Connection | None = None
_conn_pid: int | None = None
# Connections a forked child inherited: kept referenced, never closed (see the module docstring).
_inherited: list[Connection] = []
_rng = random.Random()
os.register_at_fork(after_in_child=_rng.seed)


class UnsafeDatabase(PermissionError):
    """The SQLite file, or the folder of the default one, belongs to someone else or is open to others."""


def default_path() -> Path:
    """The default SQLite file, in this user's private folder (made on first use, checked on every use).

    One folder per user rather than one per process (mkdtemp): every process of a fork server started
    by hand would otherwise build its own table, once per request.
    """
    folder = Path(tempfile.gettempdir()) / f"workerbench-{os.geteuid()}"
    try:
        folder.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(folder)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise UnsafeDatabase(
            f"refusing the default database folder {folder}: it must be a directory owned by this user "
            f"(uid {os.geteuid()}) and closed to others (mode 0700), and it is not (uid {st.st_uid}, "
            f"mode {stat.filemode(st.st_mode)}); remove it, or name a file of your own in {ENV_PATH}")
    return folder / "world.sqlite"


def check_owner(target: Path) -> None:
    """Refuse (:class:`UnsafeDatabase`) an existing database file that the current user does not own.

    Whoever owns it can change the table under the app (or replace it with a crafted one) at any time.
    """
    try:
        owner = os.stat(target).st_uid
    except FileNotFoundError:
        return
    if owner != os.geteuid():
        raise UnsafeDatabase(
            f"refusing the SQLite database {target}: it belongs to uid {owner}, not to this user "
            f"(uid {os.geteuid()}); remove it, or point {ENV_PATH} at a file of your own")


def path() -> Path:
    value = os.environ.get(ENV_PATH)
    return Path(value) if value else default_path()


def strategy() -> str:
    """The strategy ``WORKERBENCH_DB_STRATEGY`` names (default ``reuse``); ValueError if unknown."""
    value = os.environ.get(ENV_STRATEGY) or REUSE
    if value not in STRATEGIES:
        raise ValueError(f"unknown {ENV_STRATEGY}={value!r}; valid: {', '.join(STRATEGIES)}")
    return value


def database_url() -> str | None:
    """The PostgreSQL URL in ``WORKERBENCH_DATABASE_URL``, or None for SQLite; ValueError if not PostgreSQL."""
    value = os.environ.get(ENV_URL)
    if not value:
        return None
    if not value.startswith(URL_SCHEMES):
        raise ValueError(f"{ENV_URL} must be a postgresql:// URL, got {value.split('://')[0]!r}://...")
    return value


def backend() -> str:
    """``postgresql`` when ``WORKERBENCH_DATABASE_URL`` is set, else ``sqlite``."""
    return POSTGRESQL if database_url() else SQLITE


def _seeded_numbers(rows: int) -> Iterator[tuple[int, int]]:
    seeded = random.Random(SEED)
    return ((i, seeded.randint(1, MAX_RANDOM_NUMBER)) for i in range(1, rows + 1))


def create(target: Path, rows: int = ROWS) -> Path:
    """Create the ``world`` table at ``target`` unless a complete one is there already (and is ours)."""
    check_owner(target)
    if _is_complete(target, rows):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".world-", suffix=".sqlite", dir=target.parent)
    os.close(fd)
    try:
        with sqlite3.connect(tmp_name) as conn:
            conn.execute("CREATE TABLE world (id INTEGER PRIMARY KEY, randomNumber INTEGER NOT NULL)")
            conn.executemany("INSERT INTO world (id, randomNumber) VALUES (?, ?)", _seeded_numbers(rows))
        conn.close()
        os.replace(tmp_name, target)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return target


def _is_complete(target: Path, rows: int) -> bool:
    if not target.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{target}?mode=ro", uri=True)
        try:
            (count,) = conn.execute("SELECT count(*) FROM world").fetchone()
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return bool(count == rows)


def seed_postgres(url: str, rows: int = ROWS) -> None:
    """Create and fill ``world`` at ``url`` unless it already holds exactly ``rows`` rows.

    One transaction under an advisory lock: concurrent callers build it once,
    and readers see either the old table or the complete new one.
    """
    import psycopg

    with psycopg.connect(url) as conn, conn.cursor() as cur:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SEED_LOCK_KEY,))
        cur.execute("CREATE TABLE IF NOT EXISTS world (id integer PRIMARY KEY, randomnumber integer NOT NULL)")
        cur.execute("SELECT count(*) FROM world")
        row = cur.fetchone()
        if row is not None and row[0] == rows:
            return
        cur.execute("TRUNCATE world")
        with cur.copy("COPY world (id, randomnumber) FROM STDIN") as copy:
            for record in _seeded_numbers(rows):
                copy.write_row(record)
        # So the planner knows the table is not empty before autovacuum gets to it.
        cur.execute("ANALYZE world")


def _configure() -> _Settings:
    global _settings
    url = database_url()
    trace = os.environ.get(ENV_TRACE) or None
    reuse = strategy() == REUSE
    if url:
        _settings = _Settings(POSTGRESQL, reuse, None, url, trace, _postgres_rows)
    else:
        _settings = _Settings(SQLITE, reuse, create(path()), None, trace, _sqlite_rows)
    return _settings


def reset() -> None:
    """Forget the settings read from the environment and close this process's own connection."""
    global _settings, _conn, _conn_pid
    if _conn is not None and _conn_pid == os.getpid():
        _conn.close()
    elif _conn is not None:
        _inherited.append(_conn)
    _settings, _conn, _conn_pid = None, None, None


def connect() -> Connection:
    """A new connection to the configured backend (traced); the caller closes it."""
    settings = _settings or _configure()
    conn: Connection
    if settings.url is not None:
        import psycopg

        conn = psycopg.connect(settings.url, autocommit=True)
    else:
        conn = sqlite3.connect(f"file:{settings.target}?mode=ro", uri=True, check_same_thread=False)
    if settings.trace:
        fd = os.open(settings.trace, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, f"{os.getpid()} {settings.backend}\n".encode())
        finally:
            os.close(fd)
    return conn


def connection() -> Connection:
    """This process's kept connection, opened on first use after any fork.

    ``random_rows`` uses it under the ``reuse`` strategy; under ``per-request``
    it is only opened if something else asks for it.
    """
    global _conn, _conn_pid
    pid = os.getpid()
    if _conn is None or _conn_pid != pid:
        if _conn is not None:
            _inherited.append(_conn)
        _conn = connect()
        _conn_pid = pid
    return _conn


def _sqlite_rows(conn: sqlite3.Connection, n: int) -> list[dict[str, int]]:
    rows = []
    for _ in range(n):
        row_id = _rng.randint(1, ROWS)
        (number,) = conn.execute("SELECT randomNumber FROM world WHERE id = ?", (row_id,)).fetchone()
        rows.append({"id": row_id, "randomNumber": number})
    return rows


def _postgres_rows(conn: psycopg.Connection[Any], n: int) -> list[dict[str, int]]:
    rows = []
    with conn.cursor() as cur:
        for _ in range(n):
            row_id = _rng.randint(1, ROWS)
            cur.execute("SELECT randomnumber FROM world WHERE id = %s", (row_id,))
            (number,) = cur.fetchone()  # type: ignore[misc]
            rows.append({"id": row_id, "randomNumber": number})
    return rows


def _drop_if_broken(conn: Connection) -> None:
    # A PostgreSQL session that died (server restart, killed backend) stays dead: forget it so the
    # next request reconnects instead of every later request failing the same way.
    global _conn, _conn_pid
    if conn is _conn and getattr(conn, "broken", False):
        conn.close()
        _conn, _conn_pid = None, None


def random_rows(n: int) -> list[dict[str, int]]:
    settings = _settings or _configure()
    if settings.reuse:
        conn = connection()
        try:
            return settings.query(conn, n)
        except Exception:
            _drop_if_broken(conn)
            raise
    conn = connect()
    try:
        return settings.query(conn, n)
    finally:
        conn.close()


@atexit.register
def _close_own_connection() -> None:
    # Ends a PostgreSQL session cleanly instead of leaving the server to notice a dropped socket.
    if _conn is not None and _conn_pid == os.getpid():
        try:
            _conn.close()
        except Exception:
            pass
