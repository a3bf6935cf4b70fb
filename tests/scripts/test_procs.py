"""Process groups: what counts as still running, and stopping a group whose children outlive its leader."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from scripts.common import procs

# The leader forks a child that exits at once and is never reaped (a zombie), and one that keeps running.
ZOMBIE_AND_SLEEPER = """
import os, signal, time
if os.fork() == 0:
    os._exit(0)
if os.fork() == 0:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # outlives the leader until SIGKILL
    time.sleep(60)
    os._exit(0)
time.sleep(60)
"""


def _wait_for(condition: Callable[[], bool], deadline_s: float = 10.0) -> None:
    end = time.monotonic() + deadline_s
    while not condition() and time.monotonic() < end:
        time.sleep(0.02)


@pytest.mark.slow
def test_a_zombie_is_a_member_of_its_group_but_not_a_live_one() -> None:
    proc = subprocess.Popen([sys.executable, "-c", ZOMBIE_AND_SLEEPER], start_new_session=True)
    try:
        _wait_for(lambda: len(procs.group_members(proc.pid)) == 3)
        members = procs.group_members(proc.pid)
        assert len(members) == 3
        _wait_for(lambda: len(procs.live_members(proc.pid)) == 2)
        live = procs.live_members(proc.pid)
        assert len(live) == 2 and proc.pid in live
    finally:
        left = procs.stop_group(proc, grace=0.5)
    # The child that ignored SIGTERM was killed: nothing that runs is left, zombies aside.
    assert left == []
    assert procs.live_members(proc.pid) == []


def test_a_ctrl_c_while_a_process_starts_is_held_until_its_clean_up_is_armed() -> None:
    # Python's own handler, as a command's main() has it: a pytest-xdist worker may start with SIGINT ignored (then a
    # held Ctrl-C is rightly dropped), and which test ran before this one on the worker decides what is there.
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        held = procs.HeldSigint()
        os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would, while Popen waits for the child's exec
        time.sleep(0.05)  # the handler runs between bytecodes: had it raised, it would have by now
        assert held.pending is not None
        with pytest.raises(KeyboardInterrupt):
            held.release()
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the previous handler is back
    finally:
        signal.signal(signal.SIGINT, before)


def test_a_held_ctrl_c_is_dropped_where_sigint_was_ignored() -> None:
    before = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        held = procs.HeldSigint()
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert held.pending is not None
        held.release()  # nothing raised: the process had chosen to ignore Ctrl-C
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, before)
