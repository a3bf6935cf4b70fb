"""A WSGI app that answers /plaintext wrongly, to prove the harness checks before it loads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from apps.wsgi import app as real_app


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/plaintext":
        body = b"Hello, Wrong!"
        start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "13")])
        return [body]
    return real_app(environ, start_response)
