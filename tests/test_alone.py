"""The lock behind the ``alone`` marker (tests/conftest.py), with three holders in this process: flock locks belong to
open file descriptions, so three instances on one folder exclude each other as three xdist workers do."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import _Alone


def _hold(lock: _Alone, alone: bool, events: list[str], name: str, release: threading.Event) -> threading.Thread:
    def run() -> None:
        with lock.holding(alone):
            events.append(f"{name} in")
            release.wait(10)
            events.append(f"{name} out")  # still holding it: no other holder can be in before this line

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert condition()


def test_an_alone_test_waits_for_the_running_ones_and_keeps_new_ones_out(tmp_path: Path) -> None:
    running, alone, later = (_Alone(tmp_path) for _ in range(3))
    events: list[str] = []
    free_running, free_alone, free_later = threading.Event(), threading.Event(), threading.Event()
    threads = [_hold(running, False, events, "running", free_running)]
    _until(lambda: events == ["running in"])
    threads.append(_hold(alone, True, events, "alone", free_alone))
    time.sleep(0.2)  # the alone one is waiting for the running one now
    threads.append(_hold(later, False, events, "later", free_later))  # arrives while the alone one waits
    time.sleep(0.3)
    assert events == ["running in"]  # the alone one waits for the running one; the later one waits behind it
    free_running.set()
    _until(lambda: len(events) >= 3)
    time.sleep(0.2)
    assert events == ["running in", "running out", "alone in"]  # not starved by the later one
    free_alone.set()
    free_later.set()
    for thread in threads:
        thread.join(5)
    assert events == ["running in", "running out", "alone in", "alone out", "later in", "later out"]


def test_tests_that_are_not_alone_run_side_by_side(tmp_path: Path) -> None:
    first, second = _Alone(tmp_path), _Alone(tmp_path)
    events: list[str] = []
    free = threading.Event()
    threads = [_hold(first, False, events, "first", free), _hold(second, False, events, "second", free)]
    _until(lambda: sorted(events) == ["first in", "second in"])  # both in at once
    free.set()
    for thread in threads:
        thread.join(5)
