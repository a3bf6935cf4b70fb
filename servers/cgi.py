"""Classic CGI: ``python -m servers.cgi APP --bind HOST:PORT``, a fresh interpreter per request.

Theory of operation
-------------------
The parent is the fork server's accept loop (:class:`servers.fork.ForkServer`):
the same cap on children, reaping and signal handling. What differs is the
child. It does the web server's half of CGI with the HTTP core: it reads
and checks the request with :mod:`servers.parse` (bad input gets its 4xx here,
as from every other mode), turns it into CGI meta-variables (RFC 3875: ``REQUEST_METHOD``,
``PATH_INFO``, ``QUERY_STRING``, ``CONTENT_LENGTH``, ``HTTP_*``, ...), puts the
body on standard input (an in-memory file, so a large body cannot fill a pipe
and deadlock), points standard output at the client's socket, and ``exec``\\ s a
new interpreter::

    python -m servers.cgi --run APP

That process imports the app and runs it under :mod:`wsgiref`'s CGI handler in
its "non-parsed headers" form: it writes the HTTP status line itself, straight
to the socket, with ``Connection: close``, and exits. So every request pays
``fork()``, ``exec()``, interpreter start-up and the app's import: the bench's
``cgi`` against ``fork`` is what exec and import cost on top of fork alone.

The parent never imports the app (a bigger parent would make every fork
dearer); it checks once, in a subprocess at start-up, that the app imports,
so a broken app fails at start and not on every request.
"""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
import traceback
from typing import IO, Any, cast
from wsgiref.handlers import BaseCGIHandler
from wsgiref.headers import Headers

from servers import _cli, fork
from servers._startup import (
    EXIT_APP_LOAD_FAILED,
    EXIT_BIND_FAILED,
    EXIT_OK,
    open_listener,
    report_app_failure,
    setup_logging,
)
from servers.connection import Connection
from servers.fork import ForkServer
from servers.netio import ClientGone
from servers.parse import Limits, ProtocolError
from servers.wsgi import REASONS, ServerInfo, build_environ, check_head, load_app, send_error

SOFTWARE = "workerbench-cgi"


# Request headers that must not become meta-variables. ``Proxy:`` arrives as HTTP_PROXY, which
# curl, requests, Go's net/http and others read as the proxy to send their own requests through:
# the client would choose where the script's outgoing requests go (httpoxy, CVE-2016-5385).
DROPPED_META = frozenset({"HTTP_PROXY"})


def cgi_environment(environ: dict[str, Any], base: dict[str, str]) -> dict[str, str]:
    """The CGI meta-variables for a request, over the server's own environment."""
    env = dict(base)
    for key, value in environ.items():
        if not key.startswith("wsgi.") and isinstance(value, str) and key not in DROPPED_META:
            env[key] = value
    env["GATEWAY_INTERFACE"] = "CGI/1.1"
    env.setdefault("CONTENT_LENGTH", "0")
    return env


class CGIServer(ForkServer):
    def __init__(self, app_spec: str, listener: socket.socket, info: ServerInfo, limits: Limits,
                 **kwargs: Any) -> None:
        super().__init__(_never_called, listener, info, limits, **kwargs)
        self.app_spec = app_spec

    def serve_child(self, conn: socket.socket, peer: object, reader: Connection | None) -> None:
        try:
            if reader is None:  # the parent only peeked at a request that came whole
                reader = Connection(conn, self.limits)
            request = reader.read_request(first=True)
            if request is None:
                return
            environ = build_environ(request, self.info, peer)
            # execve() cannot carry a NUL (from %00 in the path, say) in the environment: refuse
            # the request here rather than let the exec fail and the client see a bare EOF.
            if any("\x00" in value for value in environ.values() if isinstance(value, str)):
                raise ProtocolError(400, "a NUL byte in the request cannot be passed to a CGI script")
        except ProtocolError as exc:
            send_error(conn, exc.status, exc.detail, self.info)
            return
        except ClientGone:
            return
        # The script writes to the socket with plain blocking writes; the kernel's send timeout
        # makes a client that stops reading fail them instead of holding the process for ever
        # (and the script turns it into one deadline for the whole response: SocketStdout).
        _set_send_timeout(conn, self.limits.send_timeout)
        body = os.memfd_create("cgi-body")
        view = memoryview(request.body)
        while view:
            view = view[os.write(body, view):]
        os.lseek(body, 0, os.SEEK_SET)
        os.dup2(body, 0)
        os.dup2(conn.fileno(), 1)
        env = cgi_environment(environ, dict(os.environ))
        os.execve(sys.executable, [sys.executable, "-m", "servers.cgi", "--run", self.app_spec], env)


def _never_called(environ: dict[str, Any], start_response: Any) -> list[bytes]:  # pragma: no cover
    raise AssertionError("the CGI parent never runs the app itself")


class NonParsedHeaders(BaseCGIHandler):
    """wsgiref's CGI handler, writing a complete HTTP response (status line included) to stdout."""

    origin_server = True
    http_version = "1.1"
    server_software = SOFTWARE
    wsgi_run_once = True  # PEP 3333: this process serves one request and exits
    # The same 500 as fork and prefork give (servers.wsgi.send_error), not wsgiref's HTML-less default.
    error_status = f"500 {REASONS[500]}"
    error_body = f"{REASONS[500]}: the application failed\n".encode()
    error_headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(error_body)))]

    # Set by BaseHandler as it runs; typeshed's stub does not declare them.
    environ: dict[str, str]
    headers: Headers | None
    headers_sent: bool
    bytes_sent: int

    def start_response(self, status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        # wsgiref writes the app's status and headers as they are: the check fork and prefork run
        # (servers.wsgi.check_head) keeps CR, LF and other control characters off the wire here too.
        # An InvalidResponse raised to the app ends in handle_error(): logged, and a 500.
        headers = list(headers)
        check_head(status, headers)
        return super().start_response(status, headers, exc_info)

    def log_exception(self, exc_info: Any) -> None:
        # As run_wsgi logs an app's failure: the request it failed on, then the traceback.
        print(f"app failed on {self.environ.get('REQUEST_METHOD')} {self.environ.get('PATH_INFO')}\n"
              + "".join(traceback.format_exception(*exc_info)), file=sys.stderr, end="", flush=True)

    def cleanup_headers(self) -> None:
        super().cleanup_headers()
        assert self.headers is not None  # start_response() set them before the cleanup
        self.headers["Connection"] = "close"

    def write(self, data: bytes) -> None:
        if self.environ.get("REQUEST_METHOD") != "HEAD":
            super().write(data)
        elif not self.headers_sent:
            # wsgiref sends a HEAD body like any other: send the headers (with the length the
            # body would have had, as for GET) and drop the body.
            self.bytes_sent = len(data)
            self.send_headers()


class SocketStdout:
    """The client's socket as the script's stdout: whole writes, or TimeoutError once the send timeout is spent.

    The parent sets the send timeout as the socket's SO_SNDTIMEO. The kernel restarts that
    timeout on every write() call, and a write that made some progress returns short: a
    client that reads a little now and then would hold the process far beyond it. So the
    timeout is read back here and made one deadline for the whole response, counted from
    its first write, and each write gets only what is left of it.

    sys.stdout.buffer will not do: once the timeout passes it reports a short write, and
    wsgiref retries a short write for ever.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.timeout: float | None = None  # None: not a socket with a send timeout (run by hand)
        self.deadline: float | None = None
        self.sock: socket.socket | None = None  # a second handle on fd, for its options; fd does the writes
        copy = os.dup(fd)
        try:
            self.sock = socket.socket(fileno=copy)
            sec, usec = struct.unpack("ll", self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, 16))
        except OSError:
            if self.sock is None:
                os.close(copy)
            self.sock = None
        else:
            self.timeout = sec + usec / 1_000_000 or None

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        if self.timeout is not None and self.deadline is None:
            self.deadline = time.monotonic() + self.timeout
        while view:
            if self.deadline is not None and self.sock is not None:
                left = self.deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError("the client did not read the response within the send timeout")
                _set_send_timeout(self.sock, left)
            try:
                view = view[os.write(self.fd, view):]
            except BlockingIOError:
                raise TimeoutError("the client did not read the response within the send timeout") from None
        return len(data)

    def flush(self) -> None:
        pass  # nothing is buffered


def _set_send_timeout(sock: socket.socket, seconds: float) -> None:
    seconds = max(seconds, 0.001)  # 0 would mean no timeout at all
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                    struct.pack("ll", int(seconds), int(seconds % 1 * 1_000_000)))


def run_request(app_spec: str) -> int:
    """The exec'd side: one request from the CGI environment, answered on stdout."""
    app = load_app(app_spec)
    out = cast(IO[bytes], SocketStdout(sys.stdout.fileno()))
    handler = NonParsedHeaders(sys.stdin.buffer, out, sys.stderr, dict(os.environ), multithread=False,
                               multiprocess=True)
    handler.run(app)
    return EXIT_OK


def check_app(app_spec: str) -> bool:
    code = f"from servers.wsgi import load_app; load_app({app_spec!r})"
    return subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) == 2 and argv[0] == "--run":
        return run_request(argv[1])
    p = fork.parser("python -m servers.cgi", "CGI server: fork and exec a fresh Python interpreter per request.")
    args = p.parse_args(argv)
    setup_logging(args.log_level, "cgi")
    host, port = _cli.bind(args, p)
    if not check_app(args.app):
        report_app_failure(args.app)
        return EXIT_APP_LOAD_FAILED
    listener = open_listener(host, port, args.backlog)
    if listener is None:
        return EXIT_BIND_FAILED
    info = ServerInfo(software=SOFTWARE, host=host, port=listener.getsockname()[1], run_once=True)
    limits = _cli.limits(args)
    if limits.keepalive:
        print("warning: CGI closes every connection; --keepalive is ignored", file=sys.stderr)
    server = CGIServer(args.app, listener, info, limits, max_children=args.max_children,
                       graceful_timeout=args.graceful_timeout)
    return server.run()


if __name__ == "__main__":
    sys.exit(main())
