"""What a hand-written server's ``main()`` does before it serves, and the codes it exits with.

Each server parses its options (:mod:`servers._cli`), sets up logging, imports the app
(or has a worker do it), and opens the listening socket, in that order: a bad app is
reported before the port is taken, and every failure is told to the user on stderr and
ends the process with one of the ``EXIT_*`` codes below, which the harness and the tests
read to tell a taken port from a broken app.
"""

from __future__ import annotations

import logging
import socket
import sys
import traceback

from servers.netio import BindError, listen
from servers.wsgi import WSGIApp, load_app

# Exit codes of the hand-written servers (argparse itself exits 2 on bad usage).
EXIT_OK = 0
EXIT_BIND_FAILED = 3
EXIT_APP_LOAD_FAILED = 4
EXIT_BOOT_FAILED = 5


def setup_logging(level: str, name: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format=f"%(asctime)s [%(process)d] [{name}] %(levelname)s %(message)s",
    )


def preload_app(spec: str) -> WSGIApp | None:
    """The app, or None after telling the user why it cannot be imported (exit with EXIT_APP_LOAD_FAILED)."""
    try:
        return load_app(spec)
    except Exception:
        traceback.print_exc()
        report_app_failure(spec)
        return None


def report_app_failure(spec: str) -> None:
    print(f"error: cannot load app {spec!r}", file=sys.stderr)


def open_listener(host: str, port: int, backlog: int) -> socket.socket | None:
    """The listening socket, or None after telling the user why it cannot be had (exit with EXIT_BIND_FAILED)."""
    try:
        return listen(host, port, backlog)
    except BindError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None
