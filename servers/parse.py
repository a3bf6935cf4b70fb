"""Reading requests: from the bytes a client sends to checked :class:`Request` objects.

Theory of operation
-------------------
Parsing does no I/O (sans-I/O, as hypercorn's ``protocol/h11.py`` and h11 itself):
:class:`RequestParser` takes bytes (:meth:`~RequestParser.feed`) and gives back requests
or the :class:`ProtocolError` to answer with (:meth:`~RequestParser.next_request`), so
every request corpus runs against it in-process. The I/O layer over one socket (reads,
deadlines, ``100 Continue``) is :class:`servers.connection.Connection`. The parser feeds
the bytes to an httptools (llhttp) parser, whose callbacks are a :class:`_Message`,
until one complete request is queued. Limits are
checked as bytes arrive, so an oversized or slow request is refused before it is
buffered: request line (414), header count, block and field size (431), body size
(413), and a deadline for the whole header block (slow clients are dropped). Every
request line, pipelined ones included, is held to the RFC 9112 grammar
(``REQUEST_LINE``) before the parser sees it; header names with ``_`` and all trailer
fields are dropped before they can reach the environ, and framing that a proxy in
front could read differently (two lengths, a coding other than chunked, a bad Host) is
refused. Pipelined requests are queued in order, and an error in bytes behind a
complete request waits (``deferred``) until that request has been answered.

A chunked body is fed to llhttp in pieces as large as its chunks: the parser follows
the chunk framing itself (:meth:`RequestParser._chunk_stop`) so that a body's cost is
linear in its bytes whatever they hold, and it caps a chunk-size line (extensions
included) at MAX_CHUNK_LINE bytes, which llhttp would otherwise skip without a limit.

A refusal is a :class:`ProtocolError` carrying the status to answer with.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass

import httptools


@dataclass(frozen=True, kw_only=True, slots=True)
class Limits:
    """What one request may cost the server; every field is a command-line option."""

    max_request_line: int = 8 * 1024
    max_headers: int = 100
    max_header_bytes: int = 16 * 1024
    # One field line, "name: value" and its CRLF, as gunicorn counts it (limit_request_field_size); nginx's buffers
    # are 8 KiB.
    max_header_field: int = 8190
    max_body: int = 10 * 1024 * 1024
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    send_timeout: float = 10.0  # seconds a response may make no progress (a client that stops reading)
    keepalive: float = 0.0  # idle seconds between requests; 0 closes after every response


class ProtocolError(Exception):
    """A request the server refuses; the status is sent and the connection closed."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


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
        self.last_chunked = False
        self.chunk_left = 0
        self.chunk_line = bytearray()
        self.trailer_bytes = -1
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

    def release(self) -> None:
        """Break the parser's reference cycle (it holds its callbacks' object, which holds it), so a closed
        connection is freed at once rather than by the cyclic collector: one cycle per connection made it
        run a gen-0 collection every ~80 connections (-1.3 us a connection measured on the parse-and-answer
        path)."""
        self.__dict__.pop("parser", None)  # closing twice is harmless

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
        # llhttp hands over the value without its leading whitespace: the line is counted with one space after the
        # colon, as clients write it (gunicorn: len("name: value") + len("\r\n") > limit_request_field_size).
        if (self.header_count > limits.max_headers or self.header_bytes > limits.max_header_bytes
                or name_size + value_size + 4 > limits.max_header_field):
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
        if te:
            self.chunk_left = 0  # chunk data (and its CRLF) still to come: see RequestParser._chunk_stop
            self.chunk_line = bytearray()
            self.trailer_bytes = -1  # -1 until the last chunk: then the bytes of the trailer section so far
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
        self.last_chunked = self.chunked
        self._reset()
        self.in_message = False


# RFC 9112's request-line: method SP request-target SP HTTP-version CRLF, with exactly one space
# between the parts. llhttp tolerates extra spaces; we do not, because a server that reads a
# request line differently from a proxy in front of it is how requests get smuggled.
REQUEST_LINE = re.compile(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+ [^\x00-\x20\x7f]+ HTTP/[0-9]\.[0-9]\r\n")


MAX_EMPTY_LINES = 4  # RFC 9112 2.2: ignore "at least one" empty line before a request line; a few, not a flood
# A chunk-size line with its extensions: RFC 9112 7.1.1 sets no limit, and llhttp skips extensions without one
# (h11 bounds the line by its 16 KiB incomplete-event limit, nginx by its 1 KiB-8 KiB buffers).
MAX_CHUNK_LINE = 4096
# A body is read into a parked connection (prefork's workers, fork's parent) up to this size; past it the
# connection is handed over and the rest read by the worker or child, as before, so that a thousand parked
# uploads cannot make one process buffer a thousand --max-body bodies.
PARKED_BODY_MAX = 256 * 1024
CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]+")


class RequestParser:
    """Bytes in, requests or a refusal out: the request reading of one connection, with no I/O.

    :meth:`feed` takes whatever bytes arrived; :meth:`next_request` gives the requests in
    order, then raises the :class:`ProtocolError` of a refused one. Every request line, the
    first on the connection or one pipelined behind others (also one split across
    reads), is held to REQUEST_LINE before llhttp sees it. The common case, one read
    holding one whole request, is parsed in one call; a read that turns out to hold more
    than one request (or an upgrade) is parsed again by pieces cut where a request line
    can start, so each line is found and checked. An error in bytes behind complete
    requests is kept in ``deferred`` and raised only after those requests were taken;
    after a request that closes the connection the rest is ignored (``closing``).
    """

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.msg = _Message(limits)
        self.buffered = 0  # bytes received for the message in progress
        self.line: bytearray | None = bytearray()  # the request line being checked; None inside a message
        self.empty_lines = 0
        self.deferred: ProtocolError | None = None
        self.closing = False

    # the sans-I/O interface ---------------------------------------------------
    def feed(self, data: bytes) -> None:
        """Parse received bytes; a refusal is kept for :meth:`next_request` (after the requests before it)."""
        self.buffered += len(data)
        try:
            self._parse(data)
        except ProtocolError as exc:
            # Kept without its traceback, whose frames hold this parser: a cycle for the collector to free.
            self.deferred = exc.with_traceback(None)

    def next_request(self) -> Request | None:
        """The next complete request; None if more bytes are needed (or ``closing``); raises a refusal in its turn."""
        msg = self.msg
        if msg.done:
            request = msg.done.popleft()
            if not msg.done and not msg.in_message and not self.line:
                self.buffered = 0
            return request
        if self.deferred is not None:
            refusal, self.deferred = self.deferred, None
            self.closing = True  # the refusal is the last answer on the connection
            try:
                raise refusal
            finally:
                del refusal  # its traceback holds this frame, which would hold it: a cycle
        return None

    def complete(self) -> bool:
        """A whole request (its body included), a refusal or the end is in: serving it would not wait on the client."""
        return bool(self.msg.done) or self.deferred is not None or self.closing

    @property
    def started(self) -> bool:
        """Bytes of a request have arrived (an idle connection's next request has begun)."""
        return self.buffered > 0 or bool(self.msg.done)

    # parsing ------------------------------------------------------------------
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
        """Check and parse received bytes (counted in ``buffered``); an error behind complete requests waits for them.

        The callbacks raise the precise 414 or 431 when they see a limit passed; the check on
        ``buffered`` after them bounds what they do not see yet: httptools reports a field
        only once it is complete, so one that never ends would otherwise grow without limit.
        ``buffered`` counts the bytes of the message in progress only (a read that ends in
        the middle of a pipelined request counts from where that request began).
        """
        if self.closing or self.deferred is not None:
            return
        try:
            if self.line is not None and not self.line and not self.msg.in_message:
                self._parse_whole(data)
            else:
                self._parse_pieces(data, 0)
            if not self.msg.headers_complete and not self.msg.done and self.buffered > (
                self.limits.max_request_line + self.limits.max_header_bytes
            ):
                raise ProtocolError(431, "header block too large")
        except ProtocolError as exc:
            if not self.msg.done:
                raise
            self.deferred = exc.with_traceback(None)

    def _parse_whole(self, data: bytes) -> None:
        """The fast path from a message boundary: one parser call, unless ``data`` holds more than one request."""
        msg = self.msg
        before = len(msg.done)
        line_end = self._check_line(data, 0)
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
                if msg.last_chunked:  # hold its chunk-size lines to MAX_CHUNK_LINE as if it had come in pieces
                    try:
                        self._chunk_follow(data, data.find(b"\r\n\r\n", max(0, line_end - 2)) + 4)
                    except ProtocolError:
                        msg.done.pop()
                        raise
                self.line = bytearray()
                if not msg.done[-1].keep_alive:
                    self.closing = True
            elif msg.chunked and msg.headers_complete:
                # The chunked body began in this read: follow its framing from where the header block ends.
                self._chunk_follow(data, data.find(b"\r\n\r\n", max(0, line_end - 2)) + 4)
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
            chunk_piece = False
            if self.line is not None:
                stop = self._check_line(data, pos)
            elif msg.headers_complete and msg.content_length is not None:
                stop = min(size, pos + msg.content_length - len(msg.body))
            elif msg.headers_complete and msg.chunked:
                stop = self._chunk_stop(data, pos)
                chunk_piece = True
            else:
                end = data.find(b"\n", pos)
                stop = size if end < 0 else end + 1
            before = len(msg.done)
            upgraded = self._execute(data[pos:stop])
            if len(msg.done) > before:
                if chunk_piece and (len(msg.done) > before + 1 or msg.in_message):
                    # llhttp ended the message before the framing we followed did: never parse on unchecked.
                    raise ProtocolError(400, "malformed chunked body")
                self._message_done()
                self.buffered = size - stop  # what is left of this read belongs to the next request
            if upgraded:
                self._upgraded()
            pos = stop

    def _chunk_follow(self, data: bytes, pos: int) -> None:
        """Follow the chunk framing over bytes the parser has already taken."""
        size = len(data)
        while 0 < pos < size:
            pos = self._chunk_stop(data, pos)

    def _chunk_stop(self, data: bytes, pos: int) -> int:
        """Where the next piece of a chunked body ends: after the last chunk's size line, then a trailer line at a time.

        Everything before the last chunk cannot end the message, so it is one piece
        however many newlines its data holds (fed a line at a time, a body of newlines
        cost a parser call per byte: 4.5 s for 10 MiB). A chunk-size line longer than
        MAX_CHUNK_LINE is refused. Malformed framing is llhttp's to refuse; a piece only
        has to end no later than the message can.
        """
        msg = self.msg
        size = len(data)
        if msg.trailer_bytes >= 0:
            end = data.find(b"\n", pos)
            stop = size if end < 0 else end + 1
            msg.trailer_bytes += stop - pos
            if msg.trailer_bytes > self.limits.max_header_bytes:
                raise ProtocolError(431, "trailer section too large")
            return stop
        while pos < size:
            if msg.chunk_left:
                take = min(msg.chunk_left, size - pos)
                msg.chunk_left -= take
                pos += take
                continue
            end = data.find(b"\n", pos, pos + MAX_CHUNK_LINE + 1 - len(msg.chunk_line))
            line = msg.chunk_line
            if end < 0:
                line += data[pos : pos + MAX_CHUNK_LINE + 1]
                if len(line) > MAX_CHUNK_LINE:
                    raise ProtocolError(400, "chunk-size line (with its extensions) too long")
                return size
            line += data[pos : end + 1]
            pos = end + 1
            match = CHUNK_SIZE.match(line)
            length = int(match.group(), 16) if match else 0
            line.clear()
            if length == 0:  # the last chunk (or a malformed line, which llhttp refuses): trailers follow
                msg.trailer_bytes = 0
                return pos
            msg.chunk_left = length + 2
        return size
