"""Command-line options shared by the hand-written servers, and the :class:`Limits` they make.

Each server adds its own options to :func:`parser`; what a server does with them before it
serves (logging, the app, the listening socket, exit codes) is in :mod:`servers._startup`.
"""

from __future__ import annotations

import argparse

from servers.netio import parse_bind
from servers.parse import Limits


def parser(prog: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=description)
    p.add_argument("app", help="WSGI app as module:attribute, e.g. apps.wsgi:app")
    p.add_argument("--bind", default="127.0.0.1:8000", help="HOST:PORT to listen on (default %(default)s)")
    p.add_argument("--backlog", type=int, default=2048, help="listen backlog (default %(default)s)")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    p.add_argument("--keepalive", type=float, default=0.0,
                   help="seconds an idle persistent connection is kept; 0 closes after every response")
    p.add_argument("--header-timeout", type=float, default=10.0, help="seconds to receive a request's headers")
    p.add_argument("--send-timeout", type=float, default=10.0,
                   help="seconds a response may make no progress before the client is dropped")
    p.add_argument("--max-body", type=int, default=10 * 1024 * 1024, help="largest request body in bytes")
    p.add_argument("--max-request-line", type=int, default=8 * 1024)
    p.add_argument("--max-headers", type=int, default=100)
    p.add_argument("--max-header-bytes", type=int, default=16 * 1024)
    p.add_argument("--max-header-field", type=int, default=8190,
                   help="longest header name or value in bytes; a longer one is answered 431")
    return p


def limits(args: argparse.Namespace) -> Limits:
    return Limits(
        max_request_line=args.max_request_line,
        max_headers=args.max_headers,
        max_header_bytes=args.max_header_bytes,
        max_header_field=args.max_header_field,
        max_body=args.max_body,
        header_timeout=args.header_timeout,
        send_timeout=args.send_timeout,
        keepalive=args.keepalive,
    )


def bind(args: argparse.Namespace, p: argparse.ArgumentParser) -> tuple[str, int]:
    try:
        return parse_bind(args.bind)
    except ValueError as exc:
        p.error(str(exc))
        raise  # unreachable: error() exits
