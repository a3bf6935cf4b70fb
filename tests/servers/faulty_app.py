"""Test apps for the hand-written servers: one that raises, one that cannot be imported."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from apps.wsgi import app as real_app

_leaked: list[bytes] = []
LEAK_BYTES = 256 * 1024


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    path = environ["PATH_INFO"]
    if path == "/leak":  # keeps a quarter MiB per request for ever, as a leaking app does
        _leaked.append(os.urandom(16) * (LEAK_BYTES // 16))
        body = str(len(_leaked)).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/raise":
        raise RuntimeError("boom from the test app")
    if path == "/pid":
        body = str(os.getpid()).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/stream":  # no Content-Length: the server must frame it
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"one,", b"", b"two,", b"three"])
    return real_app(environ, start_response)
