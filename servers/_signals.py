"""Signals for the hand-written servers: handlers only record, a loop dispatches.

A handler that did real work would run at an arbitrary bytecode of the loop it
interrupts (half-way through a reap, a fork or a dict update). So a handler here
only appends the signal number to a queue; ``signal.set_wakeup_fd`` writes a
byte to a self-pipe, whose read end the server's loop watches beside its
sockets, so a sleeping loop wakes at once; the loop then calls
``owner.handle_<name>()`` for each recorded signal, in order (gunicorn's arbiter,
uvicorn's supervisor).
"""

from __future__ import annotations

import os
import signal
from collections import deque
from collections.abc import Iterable
from types import FrameType

_HANDLER_NAMES: dict[int, str] = {}


def handler_name(signum: int) -> str:
    """``handle_sigterm`` for SIGTERM; cached: the enum lookup is slow, and a fork server sees a SIGCHLD a request."""
    name = _HANDLER_NAMES.get(signum)
    if name is None:
        name = _HANDLER_NAMES[signum] = f"handle_{signal.Signals(signum).name.lower()}"
    return name


class SignalQueue:
    """A self-pipe plus a queue of recorded signals; ``close()`` undoes both.

    Create it in the process that handles the signals (after a fork, the child makes its
    own: a pipe shared with the parent would wake both).
    """

    def __init__(self, signals: Iterable[int]) -> None:
        self.read_fd, self.write_fd = os.pipe()
        os.set_blocking(self.read_fd, False)
        os.set_blocking(self.write_fd, False)
        self.pending: deque[int] = deque()
        signal.set_wakeup_fd(self.write_fd)
        for sig in signals:
            signal.signal(sig, self._record)

    def _record(self, signum: int, frame: FrameType | None) -> None:
        self.pending.append(signum)

    def fileno(self) -> int:
        """The end of the self-pipe to watch for readability."""
        return self.read_fd

    def drain(self) -> None:
        """Empty the self-pipe; its bytes carry nothing the queue does not already hold."""
        try:
            while os.read(self.read_fd, 512):
                pass
        except BlockingIOError:
            pass

    def dispatch(self, owner: object) -> None:
        """Call ``owner.handle_<name>()`` for every recorded signal, in the order they came."""
        while self.pending:
            getattr(owner, handler_name(self.pending.popleft()))()

    def close(self) -> None:
        signal.set_wakeup_fd(-1)
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass
