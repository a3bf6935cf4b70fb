"""Test apps for the hand-written servers: one that raises, one that cannot be imported, and one that
breaks the rules of PEP 3333 and HTTP framing on purpose (the /bad/... paths)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
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
    if path == "/environ" or path.startswith("/environ/"):  # echoes what the server told the app
        data: dict[str, Any] = {k: v for k, v in environ.items() if isinstance(v, str)}
        for flag in ("wsgi.multithread", "wsgi.multiprocess", "wsgi.run_once", "wsgi.url_scheme"):
            data[flag] = environ[flag]
        data["wsgi.version"] = list(environ["wsgi.version"])
        data["body"] = environ["wsgi.input"].read(1 << 30).decode("latin-1")  # asks for far more than there is
        data["read_after_end"] = environ["wsgi.input"].read(10).decode("latin-1")
        body = json.dumps(data).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/closing":  # an iterable whose close() leaves a mark, for PEP 3333's "close() is always called"
        marker = environ["QUERY_STRING"]
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return _Closing([b"ok"], marker, fail="fail" in marker)
    if path == "/big":  # 16 MiB in 64 KiB pieces, for clients that leave half-way
        start_response("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(16 << 20))])
        return (b"x" * 65536 for _ in range(256))
    if path == "/stream":  # no Content-Length: the server must frame it
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"one,", b"", b"two,", b"three"])
    if path.startswith("/bad/"):
        return _misbehave(path[len("/bad/"):], start_response)
    return real_app(environ, start_response)


SMUGGLED = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\nX-Smuggled: yes\r\n\r\nsmuggled"
TEXT = ("Content-Type", "text/plain")


def _misbehave(what: str, start_response: Any) -> Iterable[Any]:
    """Each way an app can get its response wrong; the server must keep the wire clean."""
    if what == "overrun":  # declares 2 bytes, then yields a whole second response after them
        start_response("200 OK", [TEXT, ("Content-Length", "2")])
        return [b"ok", SMUGGLED]
    if what == "short":  # declares 10 bytes, sends 2
        start_response("200 OK", [TEXT, ("Content-Length", "10")])
        return [b"ok"]
    if what in ("204", "304"):  # a body where HTTP allows none
        start_response(f"{what} X", [TEXT, ("Content-Length", str(len(SMUGGLED)))])
        return [SMUGGLED]
    if what == "crlf-value":
        start_response("200 OK", [TEXT, ("X-A", "a\r\nX-Injected: yes")])
        return [b"ok"]
    if what == "crlf-name":
        start_response("200 OK", [TEXT, ("X-Injected: yes\r\nX-A", "a")])
        return [b"ok"]
    if what == "crlf-status":
        start_response("200 OK\r\nX-Injected: yes", [TEXT])
        return [b"ok"]
    if what == "nul-value":
        start_response("200 OK", [TEXT, ("X-A", "a\x00b")])
        return [b"ok"]
    if what == "str-list":  # PEP 3333: a body is bytes; ["hello"] is the classic mistake
        start_response("200 OK", [TEXT])
        return ["hello"]
    if what == "str":
        start_response("200 OK", [TEXT])
        return "hello"
    errors: dict[str, type[Exception]] = {
        "timeout": TimeoutError, "reset": ConnectionResetError, "broken-pipe": BrokenPipeError, "oserror": OSError,
    }
    raise errors[what](f"the app's own {what} error")  # unknown names raise KeyError: a 500 as well


class _Closing:
    """A response body that writes ``marker`` (a file path) when the server closes it."""

    def __init__(self, chunks: list[bytes], marker: str, fail: bool) -> None:
        self.chunks = chunks
        self.marker = marker
        self.fail = fail

    def __iter__(self) -> Iterator[bytes]:
        if self.fail:
            raise RuntimeError("the body fails half-way")
        return iter(self.chunks)

    def close(self) -> None:
        with open(self.marker, "w") as f:
            f.write("closed")
