"""The workloads and both adapters, called in-process."""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import pytest

from apps import asgi, db, workloads, wsgi


def call_wsgi(method: str, path: str, query: str = "", body: bytes = b"") -> tuple[str, dict[str, str], bytes]:
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "wsgi.input": io.BytesIO(body),
    }
    captured: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        captured["status"], captured["headers"] = status, dict(headers)

    out = b"".join(wsgi.app(environ, start_response))
    return captured["status"], captured["headers"], out


def call_asgi(method: str, path: str, query: str = "", body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"test"), (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80),
    }
    sent: list[dict[str, Any]] = []
    inbox = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, Any]:
        return inbox.pop(0) if inbox else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(asgi.app(scope, receive, send))
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], headers, b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture(autouse=True)
def _db(world_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(db.ENV_PATH, str(world_db))


CASES = [
    ("GET", "/plaintext", "", b""),
    ("GET", "/json", "", b""),
    ("GET", "/io", "ms=1", b""),
    ("GET", "/cpu", "n=5", b""),
    ("GET", "/cpu", "n=abc", b""),
    ("POST", "/upload", "", b"x" * 1000),
    ("GET", "/health", "", b""),
    ("GET", "/missing", "", b""),
    ("POST", "/json", "", b""),
    ("GET", "/upload", "", b""),
]


@pytest.mark.parametrize(("method", "path", "query", "body"), CASES, ids=[f"{c[0]} {c[1]}?{c[2]}" for c in CASES])
def test_adapters_are_byte_identical(method: str, path: str, query: str, body: bytes) -> None:
    w_status, w_headers, w_body = call_wsgi(method, path, query, body)
    a_status, a_headers, a_body = call_asgi(method, path, query, body)
    assert int(w_status.split()[0]) == a_status
    assert w_body == a_body
    for name in ("Content-Type", "Content-Length", "Allow"):
        assert w_headers.get(name) == a_headers.get(name.lower()), name


def test_plaintext_and_json_bodies() -> None:
    assert call_wsgi("GET", "/plaintext")[2] == b"Hello, World!"
    assert call_wsgi("GET", "/json")[2] == b'{"message":"Hello, World!"}'
    assert call_wsgi("GET", "/plaintext")[1]["Content-Type"] == "text/plain; charset=utf-8"


def test_method_not_allowed_lists_allowed_methods() -> None:
    status, headers, _ = call_wsgi("DELETE", "/json")
    assert status.startswith("405")
    assert headers["Allow"] == "GET, HEAD"


@pytest.mark.parametrize(("query", "rows"), [("", 1), ("n=5", 5), ("n=0", 1), ("n=-3", 1), ("n=abc", 1),
                                             ("n=501", 500), ("n=20&n=3", 20)])
def test_queries_are_clamped(query: str, rows: int) -> None:
    status, _, body = call_wsgi("GET", "/queries", query)
    assert status.startswith("200")
    data = json.loads(body)
    assert len(data) == rows
    conn = db.connection()
    for row in data:
        (number,) = conn.execute("SELECT randomNumber FROM world WHERE id = ?", (row["id"],)).fetchone()
        assert row["randomNumber"] == number


def test_db_row_comes_from_the_table() -> None:
    row = json.loads(call_wsgi("GET", "/db")[2])
    assert set(row) == {"id", "randomNumber"}
    assert 1 <= row["id"] <= db.ROWS


def test_cpu_is_deterministic_and_scales() -> None:
    expected = b"workerbench"
    for _ in range(3):
        expected = hashlib.sha256(expected).digest()
    assert workloads.cpu_digest(3) == expected.hex()
    assert json.loads(call_wsgi("GET", "/cpu", "n=3")[2]) == {"n": 3, "sha256": expected.hex()}


def test_io_waits_in_both_adapters() -> None:
    import time

    start = time.perf_counter()
    call_wsgi("GET", "/io", "ms=30")
    assert time.perf_counter() - start >= 0.03
    start = time.perf_counter()
    assert call_asgi("GET", "/io", "ms=30")[2] == b'{"waited_ms":30}'
    assert time.perf_counter() - start >= 0.03


def test_upload_reports_length_and_digest() -> None:
    body = bytes(range(256)) * 10
    data = json.loads(call_wsgi("POST", "/upload", body=body)[2])
    assert data == {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}


def test_database_is_created_once_and_complete(tmp_path: Path) -> None:
    target = db.create(tmp_path / "w.sqlite")
    mtime = target.stat().st_mtime_ns
    assert db.create(target) == target
    assert target.stat().st_mtime_ns == mtime  # a complete table is not rebuilt
    assert not list(tmp_path.glob(".world-*"))  # no temporary file left behind


@pytest.mark.slow
def test_connection_is_not_reused_across_fork(world_db: Path) -> None:
    import os

    parent = db.connection()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        child = db.connection()
        os.write(w, b"1" if child is not parent else b"0")
        os._exit(0)
    os.waitpid(pid, 0)
    assert os.read(r, 1) == b"1"
    assert db.connection() is parent
