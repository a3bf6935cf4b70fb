"""A plain WSGI (PEP 3333) app over :mod:`apps.workloads`: ``apps.wsgi:app``."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from apps import workloads

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

MAX_BODY = 10 * 1024 * 1024

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed", 413: "Content Too Large"}


def _path(environ: WSGIEnvironment) -> str:
    # PEP 3333 hands PATH_INFO over as latin-1-decoded bytes; our routes are ASCII.
    raw = environ.get("PATH_INFO", "") or "/"
    return raw.encode("latin-1").decode("utf-8", "replace")


def _read_body(environ: WSGIEnvironment) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    if length <= 0:
        return b""
    return bytes(environ["wsgi.input"].read(min(length, MAX_BODY)))


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    method = environ["REQUEST_METHOD"]
    path = _path(environ)
    endpoint, _ = workloads.route(method, path)
    body = _read_body(environ) if endpoint is not None and endpoint.reads_body else b""
    result = workloads.dispatch(workloads.Request(method, path, environ.get("QUERY_STRING", ""), body))
    if isinstance(result, workloads.Wait):
        # A blocking wait, as a sync call to a slow upstream holds its worker.
        time.sleep(result.seconds)
        result = result.then
    status = f"{result.status} {REASONS.get(result.status, '')}".rstrip()
    start_response(status, result.header_list())
    return [result.body]


if __name__ == "__main__":  # pragma: no cover - manual use
    from wsgiref.simple_server import make_server

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    make_server("127.0.0.1", port, app).serve_forever()
