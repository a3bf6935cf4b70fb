"""The ``world`` table and how a worker process reaches it.

A connection is owned by the process that opened it: it is cached with the pid
that opened it and reopened when ``os.getpid()`` changes, so a connection is
never used across ``fork()`` even when an app is imported before the fork
(``--preload``). Each worker therefore opens its own connection on its first
query and reuses it for every later request.

The database file is named by ``WORKERBENCH_DB``. The harness creates it once
before a run (:func:`create`); an app started by hand creates the default file
on first use, atomically, so concurrent workers never see half a table.
"""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
from pathlib import Path

ROWS = 10_000
MAX_RANDOM_NUMBER = 10_000
ENV_PATH = "WORKERBENCH_DB"
SEED = 20261128

_conn: sqlite3.Connection | None = None
_conn_pid: int | None = None
_rng = random.Random()


def default_path() -> Path:
    return Path(tempfile.gettempdir()) / "workerbench-world.sqlite"


def path() -> Path:
    value = os.environ.get(ENV_PATH)
    return Path(value) if value else default_path()


def create(target: Path, rows: int = ROWS) -> Path:
    """Create the ``world`` table at ``target`` unless a complete one is there already."""
    if _is_complete(target, rows):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".world-", suffix=".sqlite", dir=target.parent)
    os.close(fd)
    try:
        seeded = random.Random(SEED)
        with sqlite3.connect(tmp_name) as conn:
            conn.execute("CREATE TABLE world (id INTEGER PRIMARY KEY, randomNumber INTEGER NOT NULL)")
            conn.executemany(
                "INSERT INTO world (id, randomNumber) VALUES (?, ?)",
                ((i, seeded.randint(1, MAX_RANDOM_NUMBER)) for i in range(1, rows + 1)),
            )
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


def connection() -> sqlite3.Connection:
    """This process's connection, opened on first use after any fork."""
    global _conn, _conn_pid
    pid = os.getpid()
    if _conn is None or _conn_pid != pid:
        # A connection inherited from the parent is dropped, never closed: closing it
        # here could disturb the parent's file locks.
        target = create(path())
        _conn = sqlite3.connect(f"file:{target}?mode=ro", uri=True, check_same_thread=False)
        _conn_pid = pid
        _rng.seed()  # forked children must not share the parent's random sequence
    return _conn


def random_rows(n: int) -> list[dict[str, int]]:
    conn = connection()
    rows = []
    for _ in range(n):
        row_id = _rng.randint(1, ROWS)
        (number,) = conn.execute("SELECT randomNumber FROM world WHERE id = ?", (row_id,)).fetchone()
        rows.append({"id": row_id, "randomNumber": number})
    return rows
