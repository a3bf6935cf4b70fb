"""The work behind every endpoint, independent of any server interface.

Both adapters (:mod:`apps.wsgi`, :mod:`apps.asgi`) call :func:`dispatch` and send
exactly the status, headers and body it returns, so a response is byte-identical
whichever process model serves it. The only thing an adapter decides is *how* to
wait in ``/io``: it blocks in WSGI and awaits in ASGI (see :class:`Wait`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from apps import db, faults

TEXT = "text/plain; charset=utf-8"
JSON = "application/json"

HELLO = b"Hello, World!"
DEFAULT_IO_MS = 20
MAX_IO_MS = 10_000
DEFAULT_CPU_N = 1_000
MAX_CPU_N = 1_000_000
MAX_QUERIES = 500
CPU_SEED = b"workerbench"


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    content_type: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()

    def header_list(self) -> list[tuple[str, str]]:
        """All headers an adapter sends, Content-Length included."""
        return [
            ("Content-Type", self.content_type),
            ("Content-Length", str(len(self.body))),
            *self.headers,
        ]


@dataclass(frozen=True, slots=True)
class Wait:
    """Returned by ``/io``: the adapter waits ``seconds`` its own way, then sends ``then``."""

    seconds: float
    then: Response


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: str = ""
    body: bytes = b""


@dataclass(frozen=True, slots=True)
class Endpoint:
    path: str
    methods: frozenset[str]
    handler: Callable[[Request], Response | Wait]
    reads_body: bool = False
    deterministic: bool = True
    summary: str = field(default="", compare=False)


def _json(obj: object, status: int = 200) -> Response:
    return Response(status, JSON, json.dumps(obj, separators=(",", ":")).encode())


def _int_param(query: str, name: str, default: int) -> int:
    values = parse_qs(query).get(name)
    if not values:
        return default
    try:
        return int(values[0])
    except ValueError:
        return default


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def plaintext(_: Request) -> Response:
    return Response(200, TEXT, HELLO)


def json_hello(_: Request) -> Response:
    return _json({"message": "Hello, World!"})


def single_query(_: Request) -> Response:
    return _json(db.random_rows(1)[0])


def queries(request: Request) -> Response:
    # TechEmpower's rule: a missing or non-numeric count is 1, then clamp to 1..500.
    n = _clamp(_int_param(request.query, "n", 1), 1, MAX_QUERIES)
    return _json(db.random_rows(n))


def io_wait(request: Request) -> Wait:
    ms = _clamp(_int_param(request.query, "ms", DEFAULT_IO_MS), 0, MAX_IO_MS)
    return Wait(ms / 1000, _json({"waited_ms": ms}))


def cpu_digest(n: int) -> str:
    """``n`` chained rounds of SHA-256 over a fixed seed: cost linear in ``n``, result fixed."""
    digest = CPU_SEED
    for _ in range(n):
        digest = hashlib.sha256(digest).digest()
    return digest.hex()


def cpu(request: Request) -> Response:
    n = _clamp(_int_param(request.query, "n", DEFAULT_CPU_N), 1, MAX_CPU_N)
    return _json({"n": n, "sha256": cpu_digest(n)})


def upload(request: Request) -> Response:
    return _json({"length": len(request.body), "sha256": hashlib.sha256(request.body).hexdigest()})


def health(_: Request) -> Response:
    return Response(200, TEXT, b"ok")


ENDPOINTS: dict[str, Endpoint] = {
    e.path: e
    for e in (
        Endpoint("/plaintext", frozenset({"GET"}), plaintext, summary="Hello, World! as text"),
        Endpoint("/json", frozenset({"GET"}), json_hello, summary="a small JSON object"),
        Endpoint("/db", frozenset({"GET"}), single_query, deterministic=False, summary="one random row"),
        Endpoint(
            "/queries", frozenset({"GET"}), queries, deterministic=False, summary="n random rows, n in 1..500"
        ),
        Endpoint("/io", frozenset({"GET"}), io_wait, summary="wait ms (default 20) like a slow upstream"),
        Endpoint("/cpu", frozenset({"GET"}), cpu, summary="n chained SHA-256 rounds"),
        Endpoint("/upload", frozenset({"POST"}), upload, reads_body=True, summary="length and SHA-256 of the body"),
        Endpoint("/health", frozenset({"GET"}), health, summary="ok"),
    )
}



def _fault(run: Callable[[str], bytes | None], content_type: str = JSON) -> Callable[[Request], Response]:
    def handle(request: Request) -> Response:
        out = run(request.query)
        assert out is not None  # crash() never returns
        return Response(200, content_type, out)

    return handle


# Only when the harness asks for them (WORKERBENCH_FAULTS=1 at import); otherwise they are 404.
FAULT_ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint("/fault/crash", frozenset({"GET"}), _fault(faults.crash), deterministic=False,
             summary="the serving process dies (how=exit: os._exit, how=segv: SIGSEGV)"),
    Endpoint("/fault/hang", frozenset({"GET"}), _fault(faults.hang), deterministic=False,
             summary="blocks s seconds (default 3600)"),
    Endpoint("/fault/spin", frozenset({"GET"}), _fault(faults.spin), deterministic=False,
             summary="busy in Python s seconds (default 3600), never yielding"),
    Endpoint("/fault/sqlite", frozenset({"GET"}), _fault(faults.sqlite_query), deterministic=False,
             summary="one SQLite query of about ms milliseconds (default 200) in the C library"),
    Endpoint("/fault/error", frozenset({"GET"}), _fault(faults.error), summary="raises: the server's 500"),
    Endpoint("/fault/leak", frozenset({"GET"}), _fault(faults.leak), deterministic=False,
             summary="keeps kb KiB per request in the process"),
    Endpoint("/fault/state", frozenset({"GET"}), _fault(faults.state), deterministic=False,
             summary="stores set=T; answers what the previous request in this process stored"),
    Endpoint("/fault/big", frozenset({"GET"}), _fault(faults.big, TEXT), summary="kb KiB of x (default 1024)"),
)
if faults.enabled():
    ENDPOINTS.update((e.path, e) for e in FAULT_ENDPOINTS)


def allowed_methods(endpoint: Endpoint) -> list[str]:
    """Methods to list in ``Allow``; HEAD rides along with GET as HTTP requires."""
    methods = set(endpoint.methods)
    if "GET" in methods:
        methods.add("HEAD")
    return sorted(methods)


def not_found() -> Response:
    return Response(404, TEXT, b"Not Found")


def method_not_allowed(endpoint: Endpoint) -> Response:
    return Response(405, TEXT, b"Method Not Allowed", (("Allow", ", ".join(allowed_methods(endpoint))),))


def route(method: str, path: str) -> tuple[Endpoint | None, Response | None]:
    """Find the endpoint for ``method path``, or the 404/405 response to send instead."""
    endpoint = ENDPOINTS.get(path)
    if endpoint is None:
        return None, not_found()
    effective = "GET" if method == "HEAD" else method
    if effective not in endpoint.methods:
        return endpoint, method_not_allowed(endpoint)
    return endpoint, None


def dispatch(request: Request) -> Response | Wait:
    endpoint, error = route(request.method, request.path)
    if error is not None:
        return error
    assert endpoint is not None
    return endpoint.handler(request)
