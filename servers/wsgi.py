"""The WSGI side of a request: its PEP 3333 environ, the app's run, and the response's framing.

Theory of operation
-------------------
:func:`build_environ` turns a parsed :class:`~servers.parse.Request` into a complete
PEP 3333 environ. :func:`run_wsgi` calls the app and streams its iterable out through a
:class:`_Response`, whose ``start_response`` the app calls: headers go with the first
non-empty body chunk, ``Content-Length`` is kept when the app sets it (and never
exceeded on the wire), chunked encoding is used on HTTP/1.1 when it does not, ``HEAD``,
204 and 304 get no body, and the iterable's ``close()`` is always called. The app's
status and headers are checked for control characters (:func:`check_head`). Any
exception of the app before the headers are sent becomes a 500 (:func:`send_error`,
which also answers a refused request); after that the connection is cut. Only an error
of our own send means the client left (:class:`~servers.netio.ClientGone`).
"""

from __future__ import annotations

import email.utils
import io
import logging
import re
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote_to_bytes

import httptools

from servers.netio import ClientGone, send_all
from servers.parse import ProtocolError, Request

log = logging.getLogger("workerbench.http")  # the core's one logger, whichever of its modules logs

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

REASONS = {
    100: "Continue",
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    413: "Content Too Large",
    417: "Expectation Failed",
    414: "URI Too Long",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerInfo:
    """How the serving process model should be described to the app (PEP 3333 flags)."""

    software: str
    host: str
    port: int
    multithread: bool = False
    multiprocess: bool = True
    run_once: bool = False


_date_cache: tuple[int, bytes] = (0, b"")


def http_date() -> bytes:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, email.utils.formatdate(now, usegmt=True).encode("ascii"))
    return _date_cache[1]


def build_environ(request: Request, server: ServerInfo, peer: tuple[str, int] | Any) -> dict[str, Any]:
    """A complete PEP 3333 environ for ``request``."""
    if request.url == b"*":
        path, query = b"*", b""
    else:
        try:
            parsed = httptools.parse_url(request.url)
        except httptools.HttpParserInvalidURLError:
            raise ProtocolError(400, "invalid request target") from None
        path, query = parsed.path or b"/", parsed.query or b""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": request.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
        "QUERY_STRING": query.decode("latin-1"),
        "SERVER_NAME": server.host,
        "SERVER_PORT": str(server.port),
        "SERVER_PROTOCOL": f"HTTP/{request.version}",
        "SERVER_SOFTWARE": server.software,
        "REMOTE_ADDR": peer[0] if isinstance(peer, tuple) else "",
        "REMOTE_PORT": str(peer[1]) if isinstance(peer, tuple) else "",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(request.body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": server.multithread,
        "wsgi.multiprocess": server.multiprocess,
        "wsgi.run_once": server.run_once,
    }
    for raw_name, raw_value in request.headers:
        name = raw_name.decode("latin-1").upper().replace("-", "_")
        value = raw_value.decode("latin-1")
        if name == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value
            continue
        if name == "CONTENT_LENGTH":
            environ["CONTENT_LENGTH"] = value
            continue
        key = f"HTTP_{name}"
        environ[key] = f"{environ[key]},{value}" if key in environ else value
    if "CONTENT_LENGTH" not in environ and request.body:
        environ["CONTENT_LENGTH"] = str(len(request.body))  # a de-chunked body
    return environ


def _status_line(version: str, status: int) -> bytes:
    return f"HTTP/{version} {status} {REASONS.get(status, '')}\r\n".encode("latin-1")


def send_error(sock: socket.socket, status: int, detail: str, server: ServerInfo) -> None:
    """One complete error response, then the caller closes the connection."""
    body = f"{REASONS.get(status, 'Error')}: {detail}\n".encode("latin-1", "replace")
    head = (
        _status_line("1.1", status)
        + b"Date: " + http_date() + b"\r\n"
        + f"Server: {server.software}\r\n".encode()
        + b"Content-Type: text/plain; charset=utf-8\r\n"
        + f"Content-Length: {len(body)}\r\n".encode()
        + b"Connection: close\r\n\r\n"
    )
    try:
        send_all(sock, head + body, 2.0)  # best effort: whoever sent a bad request may not read
    except OSError:
        pass


# What an app may put in its status line and header fields (RFC 9110 5.1, 5.5, 15). Anything else,
# CR and LF above all, would let the app write headers or a whole response of its own on the wire.
# 1xx is refused too: the server sends 100 Continue itself, and a client reads any other 1xx as
# interim and waits for a final response that never comes.
STATUS = re.compile(r"[2-9][0-9]{2}(?: [\t\x20-\x7e\x80-\xff]*)?")
TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
FIELD_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")
SERVER_OWNED = frozenset({"connection", "transfer-encoding", "date", "server", "keep-alive"})


class InvalidResponse(ValueError):
    """The app's status or headers cannot be sent as they are; it becomes a 500."""


_checked: set[object] = set()  # statuses and (name, value) pairs that passed check_head, in this process


def check_head(status: object, headers: Iterable[tuple[object, object]]) -> None:
    """Refuse a status or header that is not a str or holds CR, LF or another control character."""
    # Apps send the same few statuses and header pairs over and over: remembering those that
    # passed turns two regex matches per header into one set lookup on the hot path.
    checked = _checked
    if status not in checked:
        if not isinstance(status, str) or not STATUS.fullmatch(status):
            raise InvalidResponse(f"invalid status line from the app: {status!r}")
        _remember(status)
    for pair in headers:
        if type(pair) is tuple and pair in checked:
            continue
        name, value = pair
        if not (isinstance(name, str) and TOKEN.fullmatch(name)):
            raise InvalidResponse(f"invalid header name from the app: {name!r}")
        if not (isinstance(value, str) and FIELD_VALUE.fullmatch(value)):
            raise InvalidResponse(f"invalid value of header {name} from the app: {value!r}")
        if type(pair) is tuple:
            _remember(pair)


def _remember(item: object) -> None:
    if len(_checked) >= 4096:
        _checked.clear()  # bounded: an app that varies its headers per request only loses the shortcut
    _checked.add(item)


class _Response:
    """PEP 3333 ``start_response`` and the body framing for one request.

    The framing is the server's, whatever the app does: never more body than its
    Content-Length (the rest is cut, logged, and the connection closed), no body at all for
    HEAD, 204 and 304, and a connection whose body came up short is not reused.
    """

    def __init__(self, sock: socket.socket, request: Request, server: ServerInfo, keep_alive: bool,
                 send_timeout: float) -> None:
        self.sock = sock
        self.send_timeout = send_timeout
        self.request = request
        self.server = server
        self.keep_alive = keep_alive
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.headers_sent = False
        self.chunked = False
        self.content_length: int | None = None
        self.sent_body = 0
        self.send_body = True
        self.overrun = False
        self.is_head = request.method == "HEAD"

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AssertionError("start_response called twice without exc_info")
        headers = list(headers)  # one pass for the check and the head, whatever iterable the app gave
        check_head(status, headers)
        self.status = status
        self.headers = headers
        return self.write

    def _head(self) -> bytes:
        assert self.status is not None
        code = int(self.status[:3])
        no_length = code == 204  # RFC 9110 8.6: a 204 carries no Content-Length
        self.send_body = not (self.is_head or no_length or code == 304)
        lines = [f"HTTP/{self.request.version} {self.status}\r\n".encode("latin-1")]
        lines.append(b"Date: " + http_date() + b"\r\n")
        lines.append(f"Server: {self.server.software}\r\n".encode())
        for name, value in self.headers:
            lower = name.lower()
            if lower in SERVER_OWNED:
                continue  # hop-by-hop and server-owned headers are the server's to set
            if lower == "content-length":
                length = int(value) if value.isascii() and value.isdigit() else -1
                if length < 0 or (self.content_length is not None and length != self.content_length):
                    raise InvalidResponse(f"invalid Content-Length from the app: {value!r}")
                self.content_length = length
                if no_length:
                    continue
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        if self.content_length is None and self.send_body:
            if self.request.version == "1.1":
                self.chunked = True
                lines.append(b"Transfer-Encoding: chunked\r\n")
            else:
                self.keep_alive = False  # HTTP/1.0 without a length: close delimits the body
        if self.keep_alive:
            if self.request.version == "1.0":
                lines.append(b"Connection: keep-alive\r\n")
        else:
            lines.append(b"Connection: close\r\n")
        lines.append(b"\r\n")
        return b"".join(lines)

    def _send(self, data: bytes) -> None:
        # Only an error of our own send is the client's doing; the same exception types raised
        # by the app are the app's failure and must become a 500.
        try:
            send_all(self.sock, data, self.send_timeout)
        except OSError as exc:
            raise ClientGone(f"{type(exc).__name__}: {exc}") from None

    def write(self, data: bytes) -> None:
        if self.status is None:
            raise AssertionError("write() before start_response()")
        if not isinstance(data, bytes):
            raise TypeError(f"the app gave a {type(data).__name__} as body; PEP 3333 bodies are bytes")
        out = b""
        if not self.headers_sent:
            out = self._head()
            self.headers_sent = True
        if data and self.send_body:
            if self.content_length is not None and self.sent_body + len(data) > self.content_length:
                if not self.overrun:
                    log.error("app sent more than its Content-Length of %d on %s %r; cut, connection closed",
                              self.content_length, self.request.method, self.request.url)
                self.overrun = True
                self.keep_alive = False
                data = data[: self.content_length - self.sent_body]
            self.sent_body += len(data)
            if self.chunked:
                out += f"{len(data):x}\r\n".encode() + data + b"\r\n"
            else:
                out += data
        if out:
            try:  # _send() inlined: once per response
                send_all(self.sock, out, self.send_timeout)
            except OSError as exc:
                raise ClientGone(f"{type(exc).__name__}: {exc}") from None

    def finish(self) -> None:
        if not self.headers_sent:
            if (self.status or "")[:3] not in ("204", "304") and not any(
                n.lower() == "content-length" for n, _ in self.headers
            ):
                self.headers.append(("Content-Length", "0"))
            self.write(b"")
        elif self.chunked:
            self._send(b"0\r\n\r\n")
        if self.send_body and self.content_length is not None and self.sent_body < self.content_length:
            log.warning("app sent %d of its Content-Length of %d on %s %r; connection closed",
                        self.sent_body, self.content_length, self.request.method, self.request.url)
            self.keep_alive = False  # the client waits for bytes that never come; never reuse this stream


def run_wsgi(app: WSGIApp, environ: dict[str, Any], sock: socket.socket, request: Request,
             server: ServerInfo, keep_alive: bool, send_timeout: float) -> bool:
    """Run ``app`` for one request and send its response; True if the connection may be reused.

    :class:`ClientGone` (raised by our own send) propagates; any other exception, whatever its
    type, is the app's failure: logged with its traceback, and a 500 if the status is not out yet.
    """
    response = _Response(sock, request, server, keep_alive, send_timeout)
    result: Iterable[bytes] | None = None
    try:
        result = app(environ, response.start_response)
        for chunk in result:
            if chunk:
                response.write(chunk)
        response.finish()
    except ClientGone:
        raise
    except Exception:
        log.error("app failed on %s %s\n%s", request.method, environ.get("PATH_INFO"), traceback.format_exc())
        if response.headers_sent:
            return False  # the status is out; cutting the stream is all that is left
        send_error(sock, 500, "the application failed", server)
        return False
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except Exception:
                log.error("app iterable close() raised\n%s", traceback.format_exc())
    return response.keep_alive


def load_app(spec: str) -> WSGIApp:
    """Import ``module:attribute`` the way gunicorn and uvicorn name an app."""
    import importlib

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"app must look like 'module:attribute', got {spec!r}")
    app: Any = importlib.import_module(module_name)
    for part in attr.split("."):
        app = getattr(app, part)
    if not callable(app):
        raise TypeError(f"{spec} is not callable")
    return cast(WSGIApp, app)
