"""servers._signals: handlers only record, the self-pipe wakes a sleeping loop, dispatch goes in order."""

from __future__ import annotations

import os
import select
import signal
from collections.abc import Iterator

import pytest

from servers._signals import SignalQueue, handler_name


class Owner:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def handle_sigusr1(self) -> None:
        self.calls.append("usr1")

    def handle_sigusr2(self) -> None:
        self.calls.append("usr2")


@pytest.fixture
def queue() -> Iterator[SignalQueue]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGUSR1, signal.SIGUSR2)}
    q = SignalQueue(saved)
    try:
        yield q
    finally:
        q.close()
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def test_signals_wake_the_pipe_and_are_dispatched_in_order(queue: SignalQueue) -> None:
    owner = Owner()
    assert select.select([queue.fileno()], [], [], 0)[0] == []
    os.kill(os.getpid(), signal.SIGUSR2)
    os.kill(os.getpid(), signal.SIGUSR1)
    assert select.select([queue.fileno()], [], [], 2)[0] == [queue.fileno()]
    assert owner.calls == []  # recorded only: nothing ran inside the handlers
    queue.drain()
    queue.dispatch(owner)
    assert owner.calls == ["usr2", "usr1"]
    assert select.select([queue.fileno()], [], [], 0)[0] == []  # drained
    queue.dispatch(owner)
    assert owner.calls == ["usr2", "usr1"]  # each signal dispatched once


def test_handler_names() -> None:
    assert handler_name(signal.SIGTERM) == "handle_sigterm"
    assert handler_name(signal.SIGCHLD) == "handle_sigchld"
