"""A test app that uses up its process's descriptors for a while, and one that counts its imports.

``/hog?s=N`` answers, and a moment later (its own connection closed) a timer thread opens
``/dev/null`` until the process hits its descriptor limit, holds them N seconds and closes them:
for that long the worker cannot accept.
Every import of this module appends a line to the file named by ``$FD_APP_IMPORTS`` (if set).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from typing import Any

from tests.servers.faulty_app import app as faulty_app

_marker = os.environ.get("FD_APP_IMPORTS")
if _marker:
    with open(_marker, "a") as f:
        f.write(f"{os.getpid()}\n")

_held: list[int] = []


def _hog(seconds: float) -> None:
    try:
        while True:
            _held.append(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        pass  # EMFILE: every descriptor is taken
    threading.Timer(seconds, _release).start()


def _release() -> None:
    while _held:
        os.close(_held.pop())


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    if environ["PATH_INFO"] == "/hog":
        seconds = float(environ["QUERY_STRING"].partition("=")[2] or "2")
        threading.Timer(0.2, _hog, args=(seconds,)).start()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]
    return faulty_app(environ, start_response)
