"""Fault endpoints: requests that crash, hang, fail, leak memory or leak state, on purpose.

They exist only when ``WORKERBENCH_FAULTS=1`` is in the environment when :mod:`apps.workloads` is
imported (the fault harness, ``python -m scripts.faults``, sets it for the servers it starts);
without it every path below is an ordinary 404. They are part of the identical-apps contract: the
same status, content type and body format under WSGI and ASGI. What differs between modes is only
what the process model makes differ (which pid answers, what a process remembers), which is what
the fault harness measures.

| path | what it does |
| --- | --- |
| ``/fault/crash?how=exit`` | ``os._exit(70)``: the process serving the request dies without answering |
| ``/fault/crash?how=segv`` | reads address 0 through ctypes: a real SIGSEGV |
| ``/fault/hang?s=N`` | blocks the serving thread for N s (default and cap 3600): a request that never returns |
| ``/fault/spin?s=N`` | busy in Python for N s (default and cap 3600), never yielding: a hung computation |
| ``/fault/sqlite?ms=N`` | one SQLite query that runs about N ms (default 200, cap 10000) inside the C library |
| ``/fault/error`` | raises ``RuntimeError``: the server's own 500 |
| ``/fault/leak?kb=N`` | keeps N KiB (default 64, cap 65536) in a module-level list, written so it is resident |
| ``/fault/state?set=T`` | remembers T in a module-level variable; answers the value the previous request left |
| ``/fault/big?kb=N`` | N KiB of ``x`` (default 1024, cap 16384) as text: a response a client can refuse to read |
"""

from __future__ import annotations

import ctypes
import json
import os
import sqlite3
import time
from urllib.parse import parse_qs

ENV = "WORKERBENCH_FAULTS"
JSON = "application/json"
CRASH_EXIT_CODE = 70  # EX_SOFTWARE: distinguishable in a server's log from its own exit codes
MAX_HANG_S = 3600.0
DEFAULT_LEAK_KB = 64
MAX_LEAK_KB = 65536
MAX_TOKEN = 64
DEFAULT_BIG_KB = 1024
MAX_BIG_KB = 16384

# Module-level on purpose: a long-lived worker keeps these between requests, a process per request
# starts from the parent's (never touched) copy. That difference is what /fault/state and /fault/leak show.
_kept: list[bytearray] = []
_state: dict[str, str | None] = {"token": None}


def enabled() -> bool:
    return os.environ.get(ENV) == "1"


def _param(query: str, name: str) -> str | None:
    values = parse_qs(query).get(name)
    return values[0] if values else None


def _number(query: str, name: str, default: float, low: float, high: float) -> float:
    try:
        value = float(_param(query, name) or default)
    except ValueError:
        value = default
    return max(low, min(high, value)) if value == value else default


def body(obj: object) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def crash(query: str) -> None:
    """Never returns: the process ends without a byte of answer."""
    if _param(query, "how") == "segv":
        ctypes.string_at(0)  # a NULL read: the kernel sends SIGSEGV, no Python handler runs
    os._exit(CRASH_EXIT_CODE)


def hang(query: str) -> bytes:
    """Blocks the thread (in ASGI that is the event loop, as a blocking call in async code does)."""
    seconds = _number(query, "s", MAX_HANG_S, 0.0, MAX_HANG_S)
    time.sleep(seconds)
    return body({"hung_s": seconds, "pid": os.getpid()})


def spin(query: str) -> bytes:
    """Busy in Python, calling nothing that could yield. A thread still lets the others run at each GIL switch
    interval; a greenlet (gevent) or a coroutine gives its event loop no chance until it ends: green threads
    switch only where the code blocks on something gevent patched, and a computation never does."""
    seconds = _number(query, "s", MAX_HANG_S, 0.0, MAX_HANG_S)
    end = time.monotonic() + seconds
    turns = 0
    while time.monotonic() < end:
        turns += 1
    return body({"spun_s": seconds, "turns": turns, "pid": os.getpid()})


DEFAULT_SQLITE_MS = 200.0
MAX_SQLITE_MS = 10_000.0
_sqlite_rows_per_ms: list[float] = []  # measured once per process


def _count_to(conn: sqlite3.Connection, n: int) -> int:
    row = conn.execute("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
                       "SELECT count(*) FROM c", (n,)).fetchone()
    return int(row[0])


def sqlite_query(query: str) -> bytes:
    """A query that spends about ``ms`` in SQLite's C code (a recursive count, sized from a first timed one in this
    process). The sqlite3 module releases the GIL while SQLite works, so other threads run beside it; gevent
    cannot patch a C library's work into a yield, so every greenlet of the worker waits for it, as every
    coroutine of an event loop waits for any synchronous call."""
    ms = _number(query, "ms", DEFAULT_SQLITE_MS, 0.0, MAX_SQLITE_MS)
    with sqlite3.connect(":memory:") as conn:
        if not _sqlite_rows_per_ms:
            _count_to(conn, 50_000)  # a first query pays for warming up, not for counting
            started = time.perf_counter()
            _count_to(conn, 200_000)
            _sqlite_rows_per_ms.append(200_000 / max((time.perf_counter() - started) * 1000, 1e-3))
        started = time.perf_counter()
        rows = _count_to(conn, max(1, int(ms * _sqlite_rows_per_ms[0])))
        took = (time.perf_counter() - started) * 1000
    return body({"asked_ms": ms, "took_ms": round(took, 1), "rows": rows, "pid": os.getpid()})


def error(_: str) -> bytes:
    raise RuntimeError("fault injected: /fault/error")


def leak(query: str) -> bytes:
    kb = int(_number(query, "kb", DEFAULT_LEAK_KB, 0, MAX_LEAK_KB))
    # Filled with a non-zero byte: a zeroed allocation may be lazily mapped and never become resident.
    _kept.append(bytearray(b"\x01") * (kb * 1024))
    total = sum(len(b) for b in _kept) // 1024
    return body({"kept_kb": total, "requests": len(_kept), "pid": os.getpid()})


def state(query: str) -> bytes:
    previous = _state["token"]
    token = (_param(query, "set") or "")[:MAX_TOKEN] or None
    _state["token"] = token
    return body({"previous": previous, "pid": os.getpid()})


def big(query: str) -> bytes:
    return b"x" * (int(_number(query, "kb", DEFAULT_BIG_KB, 0, MAX_BIG_KB)) * 1024)
