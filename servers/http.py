"""The HTTP/1.1 core shared by the hand-written servers (:mod:`servers.fork`, :mod:`servers.prefork`).

Theory of operation
-------------------
A server hands every accepted socket to :func:`serve_connection`. It owns the
socket until it returns, and then the caller closes it. One connection is a
loop of three steps:

1. **read**: :class:`Connection` feeds received bytes to an httptools
   (llhttp) parser until one complete request is queued. Limits are checked as
   bytes arrive, so an oversized or slow request is refused before it is
   buffered: request line (414), header count, block and field size (431),
   body size (413), and a deadline for the whole header block (slow clients
   are dropped). Every request line, pipelined ones included, is held to the
   RFC 9112 grammar before the parser sees it; header names with ``_`` and
   all trailer fields are dropped before they can reach the environ.
   Pipelined requests are queued in order, and an error in bytes behind a
   complete request waits until that request has been answered.
2. **run**: :func:`run_wsgi` builds a PEP 3333 environ, calls the app, and
   streams its iterable out: headers go with the first non-empty body chunk,
   ``Content-Length`` is kept when the app sets it (and never exceeded on the
   wire), chunked encoding is used on HTTP/1.1 when it does not, ``HEAD``,
   204 and 304 get no body, and the iterable's ``close()`` is always called.
   The app's status and headers are checked for control characters. Any
   exception of the app before the headers are sent becomes a 500; after that
   the connection is cut. Only our own socket errors mean the client left.
3. **decide**: the connection stays open only when the server enabled
   keep-alive (``keepalive > 0``), the client allows it, and the response
   was framed exactly as declared. Otherwise it is closed (``Connection: close``).

Errors in the request itself raise :class:`ProtocolError`, which becomes one
short response with the right 4xx/5xx status followed by a close. The README's
"Hand-written servers: request policy" lists the choices made where the RFCs
leave one.
"""

from __future__ import annotations

import email.utils
import io
import logging
import re
import select
import socket
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import unquote_to_bytes

import httptools

log = logging.getLogger("workerbench.http")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

RECV_SIZE = 64 * 1024

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
    505: "HTTP Version Not Supported",
}


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """What one request may cost the server; every field is a command-line option."""

    max_request_line: int = 8 * 1024
    max_headers: int = 100
    max_header_bytes: int = 16 * 1024
    max_header_field: int = 8190  # one field's name or value (gunicorn's limit; nginx's buffers are 8 KiB)
    max_body: int = 10 * 1024 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    send_timeout: float = 10.0  # seconds a response may make no progress (a client that stops reading)
    keepalive: float = 0.0  # idle seconds between requests; 0 closes after every response


@dataclass(frozen=True, kw_only=True, slots=True)
class ServerInfo:
    """How the serving process model should be described to the app (PEP 3333 flags)."""

    software: str
    host: str
    port: int
    multithread: bool = False
    multiprocess: bool = True
    run_once: bool = False


class ProtocolError(Exception):
    """A request the server refuses; the status is sent and the connection closed."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class ClientGone(Exception):
    """The peer closed or reset the connection, or let a timeout pass."""


# Every recv() and send() is made with MSG_DONTWAIT, and the code waits (poll) only when the
# kernel says "not yet" (EAGAIN). A socket with a Python-level timeout would poll() before
# every recv() and send(), two system calls where one almost always suffices: a request has
# usually arrived by the time it is read, and a response fits in the send buffer. The flag,
# rather than a non-blocking descriptor, saves a further call per connection and leaves the
# descriptor as accept() made it (the cgi mode hands it to a CGI script as its stdout).


WaitHook = Callable[[bool], None]
WAIT_SLICE_S = 1.0  # with a wait hook set, it is called at least this often during a wait
_wait_hook: WaitHook | None = None


def set_wait_hook(hook: WaitHook | None) -> None:
    """Make every wait on a client call ``hook(False)`` at least every WAIT_SLICE_S, ``hook(True)`` on its timeout.

    A pre-fork worker is judged alive by a heartbeat. A wait on a slow client (a body
    trickled in, a response it does not read) is bounded by the body and send timeouts
    and is the client's doing, so the worker beats through it instead of looking hung,
    and counts the timeout as the client's failure. Per process: a worker sets it once.
    """
    global _wait_hook
    _wait_hook = hook


def wait_for(sock: socket.socket, events: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``events`` (select.POLLIN/POLLOUT) on ``sock``."""
    if timeout <= 0:
        return False
    poller = select.poll()
    poller.register(sock, events)
    hook = _wait_hook
    if hook is None:
        return bool(poller.poll(timeout * 1000))
    deadline = time.monotonic() + timeout
    while True:
        hook(False)
        left = deadline - time.monotonic()
        if left <= 0:
            hook(True)
            return False
        if poller.poll(min(left, WAIT_SLICE_S) * 1000):
            return True


def send_all(sock: socket.socket, data: bytes, timeout: float) -> None:
    """``sendall`` that waits only when the send buffer is full: TimeoutError after ``timeout`` s without progress."""
    try:
        sent = sock.send(data, socket.MSG_DONTWAIT)
    except BlockingIOError:
        sent = 0
    if sent == len(data):
        return
    view = memoryview(data)[sent:]
    while view:
        if not wait_for(sock, select.POLLOUT, timeout):
            raise TimeoutError("the client stopped reading the response")
        try:
            view = view[sock.send(view, socket.MSG_DONTWAIT):]
        except BlockingIOError:
            continue


@dataclass(slots=True)
class Request:
    method: str
    url: bytes
    version: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    keep_alive: bool
    expects_continue: bool = False


# RFC 9110 6.5.1: fields a sender must not put in a trailer section, because they frame, route,
# modify or authenticate the request, or describe its content. A trailer naming one is refused
# rather than dropped: a client that sends it is probing for a server that merges trailers.
FORBIDDEN_TRAILERS = frozenset({
    b"host", b"content-length", b"transfer-encoding", b"trailer", b"te", b"connection", b"keep-alive",
    b"upgrade", b"content-type", b"content-encoding", b"content-range", b"authorization",
    b"proxy-authorization", b"cookie", b"expect", b"max-forwards", b"cache-control", b"pragma", b"range",
    b"if-match", b"if-none-match", b"if-modified-since", b"if-unmodified-since", b"if-range",
})


# RFC 9112 3.2 / RFC 3986 3.2.2: uri-host [ ":" port ], where the host is an IP literal or a reg-name.
HOST = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._~!$&'()*+,;=%-]*)(?::[0-9]*)?")
_good_hosts: set[bytes] = set()
# An int, not b"_": CPython's bytes.__contains__ tries its argument as an int first, and for a
# bytes argument that attempt raises and clears a TypeError (a formatted message) every time.
UNDERSCORE = ord("_")


class _Message:
    """Parser callbacks for one connection; completed requests go to ``done``."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.done: deque[Request] = deque()
        self.parser = httptools.HttpRequestParser(self)
        self.error: ProtocolError | None = None
        self.in_message = False
        self.last_had_body = False
        self._reset()

    def _reset(self) -> None:
        self.url = b""
        self.headers: list[tuple[bytes, bytes]] = []
        self.header_bytes = 0
        self.header_count = 0
        self.body = bytearray()
        self.content_length: int | None = None
        self.chunked = False
        self.headers_complete = False
        self.need_continue = False

    def new_parser(self) -> None:
        """A fresh parser at a message boundary (after an upgrade pause, or to re-read a buffer)."""
        self.parser = httptools.HttpRequestParser(self)
        self.error = None
        self.in_message = False
        self._reset()

    def _fail(self, status: int, detail: str) -> None:
        self.error = ProtocolError(status, detail)
        raise self.error

    # httptools callbacks -------------------------------------------------
    def on_message_begin(self) -> None:
        self._reset()
        self.in_message = True

    def on_url(self, url: bytes) -> None:
        self.url += url
        if len(self.url) > self.limits.max_request_line:
            self._fail(414, "request line too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        # llhttp calls this for trailer fields too, after on_headers_complete.
        name_size = len(name)
        value_size = len(value)
        self.header_count += 1
        self.header_bytes += name_size + value_size + 4
        limits = self.limits
        if (self.header_count > limits.max_headers or self.header_bytes > limits.max_header_bytes
                or name_size > limits.max_header_field or value_size > limits.max_header_field):
            self._over_limit(name_size, value_size)
        if self.headers_complete:
            if name.lower() in FORBIDDEN_TRAILERS:
                self._fail(400, "a trailer names a field that is not allowed in trailers")
            return  # trailers never reach the app: a proxy in front may not have checked them
        if UNDERSCORE in name:
            return  # Content_Length would alias Content-Length in the environ; gunicorn drops these too
        if value and (value[-1] == 32 or value[-1] == 9):
            value = value.rstrip(b" \t")  # llhttp strips leading whitespace only (RFC 9110 5.5: both)
        self.headers.append((name, value))

    def _over_limit(self, name_size: int, value_size: int) -> None:
        if self.header_count > self.limits.max_headers:
            self._fail(431, "too many headers")
        if self.header_bytes > self.limits.max_header_bytes:
            self._fail(431, "header block too large")
        self._fail(431, "header field too large")

    def on_headers_complete(self) -> None:
        self.headers_complete = True
        names: dict[bytes, list[bytes]] = {}
        for name, value in self.headers:
            names.setdefault(name.lower(), []).append(value)
        parser = self.parser
        version = parser.get_http_version()
        if version not in ("1.0", "1.1"):
            self._fail(505, f"HTTP/{version} is not supported")
        if self.url == b"*" and parser.get_method() != b"OPTIONS":
            self._fail(400, "asterisk-form target on a method other than OPTIONS")
        hosts = names.get(b"host", [])
        if version == "1.1" and not hosts:
            self._fail(400, "request without Host (HTTP/1.1 requires one)")
        if len(hosts) > 1:
            self._fail(400, "more than one Host header")
        if hosts and hosts[0] not in _good_hosts:
            if not HOST.fullmatch(hosts[0]):
                self._fail(400, "invalid Host")  # RFC 9112 3.2: a MUST, and a proxy may route on it
            if len(_good_hosts) >= 1024:
                _good_hosts.clear()
            _good_hosts.add(hosts[0])  # clients repeat one Host; a set lookup is cheaper than the match
        if len(names.get(b"content-type", ())) > 1:
            self._fail(400, "more than one Content-Type header")
        te = names.get(b"transfer-encoding")
        cl = names.get(b"content-length")
        if te and cl:
            self._fail(400, "both Content-Length and Transfer-Encoding")
        if te and version == "1.0":
            self._fail(400, "Transfer-Encoding in an HTTP/1.0 request")  # RFC 9112 6.1: faulty framing
        if te and b",".join(te).strip().lower() != b"chunked":
            self._fail(501, "only the chunked transfer coding is supported")
        self.chunked = bool(te)
        if cl:
            if len(set(cl)) != 1 or not cl[0].strip().isdigit():
                self._fail(400, "invalid Content-Length")
            self.content_length = int(cl[0])
            if self.content_length > self.limits.max_body:
                self._fail(413, "body over the limit")
        expect = names.get(b"expect")
        if expect and version == "1.1":
            if expect[0].lower() != b"100-continue":
                self._fail(417, "unsupported Expect")
            self.need_continue = True

    def on_body(self, body: bytes) -> None:
        self.need_continue = False
        self.body += body
        if len(self.body) > self.limits.max_body:
            self._fail(413, "body over the limit")

    def on_message_complete(self) -> None:
        method = self.parser.get_method().decode("ascii")
        self.done.append(
            Request(
                method=method,
                url=self.url,
                version=self.parser.get_http_version(),
                headers=self.headers,
                body=bytes(self.body),
                keep_alive=self.parser.should_keep_alive(),
            )
        )
        self.last_had_body = self.chunked or bool(self.content_length)
        self._reset()
        self.in_message = False


# RFC 9112's request-line: method SP request-target SP HTTP-version CRLF, with exactly one space
# between the parts. llhttp tolerates extra spaces; we do not, because a server that reads a
# request line differently from a proxy in front of it is how requests get smuggled.
REQUEST_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^\x00-\x20\x7f]+ HTTP/[0-9]\.[0-9]\r\n")


MAX_EMPTY_LINES = 4  # RFC 9112 2.2: ignore "at least one" empty line before a request line; a few, not a flood


class Connection:
    """Reads requests from one client socket, in order, within the limits.

    Every request line, the first on the connection or one pipelined behind others (also one
    split across reads), is held to REQUEST_LINE before the parser sees it. The common case,
    one read holding one whole request, is parsed in one call; a read that turns out to hold
    more than one request (or an upgrade) is parsed again by pieces cut where a request line
    can start, so each line is found and checked. An error in bytes behind complete requests
    is kept in ``deferred`` and raised only after those requests were answered; after a
    request that closes the connection the rest is ignored (``closing``).
    """

    def __init__(self, sock: socket.socket, limits: Limits) -> None:
        self.sock = sock
        self.limits = limits
        self.msg = _Message(limits)
        self.buffered = 0  # bytes received for the message in progress
        self.continue_sent = False
        self.line: bytearray | None = bytearray()  # the request line being checked; None inside a message
        self.empty_lines = 0
        self.deferred: ProtocolError | None = None
        self.closing = False
        self.pending: bytes | None = None  # received by prefetch(), not yet parsed

    def prefetch(self) -> bool:
        """One read that does not wait: True if there is something to act on (bytes, or the peer's close)."""
        try:
            data = self.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True  # the read in read_request() meets the error again and reports it
        if data:
            self.pending = data
        return True

    def feed_nowait(self) -> bool:
        """Receive and parse what has arrived, without waiting; True once :meth:`read_request` would not wait.

        For an event-driven worker that keeps a connection in its epoll set until its
        request's header block is in, so that a client sending it slowly (slowloris) never
        holds the worker. The bytes go through the same checks and parser as in
        :meth:`read_request` as they come, so a malformed request is refused at once rather
        than when a blank line that may never come arrives. True when the headers (or a
        whole request) are in, when the request is refused (the error waits in ``deferred``
        for :meth:`read_request` to raise), and when the client closed or failed, which the
        next read in :meth:`read_request` meets again and reports.
        """
        msg = self.msg
        if msg.done or msg.headers_complete or self.deferred is not None or self.closing:
            return True
        try:
            data = self.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
        except BlockingIOError:
            return False
        except OSError:
            return True
        if not data:
            return True
        self.buffered += len(data)
        try:
            self._parse(data)
            if not msg.headers_complete and not msg.done and self.buffered > (
                self.limits.max_request_line + self.limits.max_header_bytes
            ):
                raise ProtocolError(431, "header block too large")
        except ProtocolError as exc:
            self.deferred = exc
        return bool(msg.done) or msg.headers_complete or self.deferred is not None or self.closing

    @property
    def started(self) -> bool:
        """Bytes of a request have arrived (a parked idle connection's next request has begun)."""
        return self.pending is not None or self.buffered > 0

    def _check_line(self, data: bytes, pos: int) -> int:
        """Hold the request line that starts at ``self.line + data[pos:]`` to the grammar; the offset after it."""
        line = self.line
        assert line is not None
        while True:
            end = data.find(b"\n", pos)
            if end < 0:
                line += data[pos:]
                if len(line) > self.limits.max_request_line + 16:
                    raise ProtocolError(414, "request line too long")
                return len(data)
            line += data[pos : end + 1]
            pos = end + 1
            if line == b"\r\n" or line == b"\n":
                self.empty_lines += 1
                if self.empty_lines > MAX_EMPTY_LINES:
                    raise ProtocolError(400, "too many empty lines before the request line")
                line.clear()
                continue
            if not REQUEST_LINE.fullmatch(line):
                raise ProtocolError(400, "malformed request line")
            self.line = None
            self.empty_lines = 0
            return pos

    def _execute(self, data: bytes) -> bool:
        """Feed the parser; True when it paused after a request that asked for an upgrade (or CONNECT)."""
        try:
            self.msg.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            return True
        except httptools.HttpParserError as exc:
            if self.msg.error is not None:
                raise self.msg.error from None
            raise ProtocolError(400, f"malformed request: {exc}") from None
        return False

    def _message_done(self) -> None:
        self.line = bytearray()
        if not self.msg.done[-1].keep_alive:
            self.closing = True  # llhttp would call any byte after it an error; it is simply not read

    def _upgraded(self) -> None:
        """Serve a request that asked for an upgrade as plain HTTP/1.1, and go on with a fresh parser."""
        request = self.msg.done[-1]
        if request.method == "CONNECT" or self.msg.last_had_body:
            # llhttp skips the body of an upgrade request, so its bytes would be read as the next request.
            self.msg.done.pop()
            raise ProtocolError(501, "CONNECT, or an upgrade with a request body, is not supported")
        self.msg.new_parser()

    def _parse(self, data: bytes) -> None:
        """Check and parse received bytes; an error behind complete requests waits until they are answered."""
        if self.closing or self.deferred is not None:
            return
        try:
            if self.line is not None and not self.line and not self.msg.in_message:
                self._parse_whole(data)
            else:
                self._parse_pieces(data, 0)
        except ProtocolError as exc:
            if not self.msg.done:
                raise
            self.deferred = exc

    def _parse_whole(self, data: bytes) -> None:
        """The fast path from a message boundary: one parser call, unless ``data`` holds more than one request."""
        msg = self.msg
        before = len(msg.done)
        self._check_line(data, 0)
        upgraded = False
        try:
            msg.parser.feed_data(data)  # _execute() inlined: this is the path of almost every request
        except httptools.HttpParserUpgrade:
            upgraded = True
        except httptools.HttpParserError as exc:
            if len(msg.done) - before <= 1:
                if msg.error is not None:
                    raise msg.error from None
                raise ProtocolError(400, f"malformed request: {exc}") from None
            upgraded = True  # not an upgrade: a second request came out unchecked, so read it again
        completed = len(msg.done) - before
        if not upgraded and (completed == 0 or (completed == 1 and not msg.in_message)):
            if completed:  # _message_done() inlined
                self.line = bytearray()
                if not msg.done[-1].keep_alive:
                    self.closing = True
            return
        for _ in range(completed):
            msg.done.pop()
        msg.new_parser()  # the parser was at a boundary before this read, so a fresh one is the same
        self.line = bytearray()
        self.empty_lines = 0
        self._parse_pieces(data, 0)

    def _parse_pieces(self, data: bytes, pos: int) -> None:
        """Feed ``data`` a piece at a time, cut wherever a message may end, so that each request line is checked."""
        msg = self.msg
        size = len(data)
        while pos < size and not self.closing:
            if self.line is not None:
                stop = self._check_line(data, pos)
            elif msg.headers_complete and msg.content_length is not None:
                stop = min(size, pos + msg.content_length - len(msg.body))
            else:
                end = data.find(b"\n", pos)
                stop = size if end < 0 else end + 1
            before = len(msg.done)
            upgraded = self._execute(data[pos:stop])
            if len(msg.done) > before:
                self._message_done()
            if upgraded:
                self._upgraded()
            pos = stop

    def read_request(self, first: bool) -> Request | None:
        """The next request, or None when the client closed cleanly between requests."""
        header_deadline: float | None = None
        body_deadline: float | None = None
        while not self.msg.done:
            if self.deferred is not None:
                raise self.deferred
            if self.closing:
                return None
            now = time.monotonic()
            if not self.msg.headers_complete:
                if header_deadline is None:
                    idle = (not first) and self.buffered == 0
                    header_deadline = now + (self.limits.keepalive if idle else self.limits.header_timeout)
                deadline = header_deadline
            else:
                if self.msg.need_continue and not self.continue_sent:
                    try:
                        send_all(self.sock, b"HTTP/1.1 100 Continue\r\n\r\n", self.limits.send_timeout)
                    except OSError as exc:
                        raise ClientGone(str(exc)) from None
                    self.continue_sent = True
                if body_deadline is None:
                    body_deadline = now + self.limits.body_timeout
                deadline = body_deadline
            remaining = deadline - now
            if remaining <= 0:
                if self.buffered == 0:
                    return None  # idle keep-alive connection: close quietly
                raise ClientGone("request not received in time")
            if self.pending is not None:
                data, self.pending = self.pending, None
            else:
                try:
                    data = self.sock.recv(RECV_SIZE, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    wait_for(self.sock, select.POLLIN, remaining)
                    continue  # the top of the loop tells data from a deadline that passed
                except OSError as exc:
                    raise ClientGone(str(exc)) from None
            if not data:
                if self.buffered == 0:
                    return None
                raise ClientGone("client closed mid-request")
            if header_deadline is not None and self.buffered == 0 and not first:
                # The first byte of a new request starts its header timeout.
                header_deadline = time.monotonic() + self.limits.header_timeout
            self.buffered += len(data)
            self._parse(data)  # raises the precise 414/431 when a callback sees the limit
            if not self.msg.headers_complete and not self.msg.done and self.buffered > (
                self.limits.max_request_line + self.limits.max_header_bytes
            ):
                raise ProtocolError(431, "header block too large")
        request = self.msg.done.popleft()
        if not self.msg.done and not self.msg.in_message and not self.line:
            self.buffered = 0
        self.continue_sent = False
        return request


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


class Session:
    """One client connection, served a request at a time.

    A blocking server calls :meth:`serve_next` in a loop (:func:`serve_connection`); an
    event-driven worker calls it when the socket is readable and parks the session
    between requests, so an idle keep-alive client never holds the worker.
    """

    def __init__(self, sock: socket.socket, peer: Any, app: WSGIApp, server: ServerInfo, limits: Limits) -> None:
        self.sock = sock
        self.peer = peer
        self.app = app
        self.server = server
        self.limits = limits
        self.conn = Connection(sock, limits)
        self.served = 0

    def serve_next(self) -> bool:
        """Read and answer one request; False when the connection is to be closed."""
        try:
            try:
                request = self.conn.read_request(first=self.served == 0)
                if request is None:
                    return False
                environ = build_environ(request, self.server, self.peer)
            except ProtocolError as exc:
                send_error(self.sock, exc.status, exc.detail, self.server)
                return False
            keep_alive = self.limits.keepalive > 0 and request.keep_alive
            reuse = run_wsgi(self.app, environ, self.sock, request, self.server, keep_alive,
                             self.limits.send_timeout)
            self.served += 1
            return reuse
        except ClientGone as exc:
            log.debug("client gone: %s", exc)
            return False

    @property
    def pipelined(self) -> bool:
        """A complete request (or the error behind one) is already buffered: act on it before waiting on the socket."""
        return bool(self.conn.msg.done) or self.conn.deferred is not None

    def close(self) -> None:
        self.sock.close()  # the worker holds the only descriptor, so this sends the FIN


def serve_connection(sock: socket.socket, peer: Any, app: WSGIApp, server: ServerInfo, limits: Limits) -> int:
    """Serve every request on ``sock`` until it should close; returns the number of requests served."""
    session = Session(sock, peer, app, server, limits)
    try:
        while session.serve_next():
            pass
        return session.served
    finally:
        try:
            sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass


WARM_UP_REQUEST = (
    b"GET /warm-up?x=1 HTTP/1.1\r\nHost: warm-up\r\nUser-Agent: workerbench\r\nAccept: */*\r\n"
    b"Connection: close\r\n\r\n"
)


def _warm_up_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def warm_up(server: ServerInfo, limits: Limits, rounds: int = 64) -> None:
    """Run ``rounds`` synthetic requests through this module over a socketpair, in this process.

    A fork-per-request parent never serves, so without this every child runs the core's
    code cold: CPython 3.11 counts down and rewrites the bytecode of a function during its
    first executions (specialisation), fills its attribute caches, and formats the Date
    header, and each of those writes lands on a page shared with the parent, which the
    kernel must copy (copy-on-write). Running the code here first leaves those pages
    already written, so each child copies fewer. The user's app is not called: a stand-in
    app answers.
    """
    for _ in range(rounds):
        a, b = socket.socketpair()
        try:
            b.sendall(WARM_UP_REQUEST)
            serve_connection(a, ("127.0.0.1", 0), _warm_up_app, server, limits)
            while b.recv(RECV_SIZE):
                pass
        finally:
            a.close()
            b.close()


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


def parse_bind(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"--bind must be HOST:PORT, got {value!r}")
    host = host.strip("[]") or "127.0.0.1"
    return host, int(port)


class BindError(Exception):
    """The address cannot be listened on; the message says which and why."""


def listen(host: str, port: int, backlog: int = 2048) -> socket.socket:
    """A listening socket, or :class:`BindError` with a message a person can act on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot bind {host}:{port}: {exc.strerror}") from None
    sock.listen(backlog)
    sock.set_inheritable(True)
    return sock
