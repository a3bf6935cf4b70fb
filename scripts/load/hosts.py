"""The hosts the generators may load: loopback, and the one server named by ``--target`` while a cell runs against it
(:mod:`scripts.plan.target`). Any other host is refused, by wrk's runner and by the native engine alike."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager

# The one host beyond loopback the generators may load: the one named by --target, for as long as a cell runs
# against it. An environment variable, because the native engine runs as a subprocess and checks again there.
ENV_HOST = "WORKERBENCH_TARGET_HOST"


def allowed(host: str) -> bool:
    """Whether ``host`` is the ``--target`` the user named (the generators refuse any other host but loopback)."""
    return bool(host) and host == os.environ.get(ENV_HOST)


def address_of(host: str) -> str:
    """The address to connect to for an allowed target host (a name is resolved once)."""
    return str(socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][4][0])


@contextmanager
def loading(host: str) -> Iterator[None]:
    """Allow the generators to load ``host`` inside the block."""
    before = os.environ.get(ENV_HOST)
    os.environ[ENV_HOST] = host
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ENV_HOST, None)
        else:
            os.environ[ENV_HOST] = before
