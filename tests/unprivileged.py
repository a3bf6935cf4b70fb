"""Run a command as an unprivileged uid that no one else uses, from a test process running as root.

``python -m tests.unprivileged UID NPROC -- ARGV...`` (started as root) drops every group, takes the gid
and uid ``UID``, sets ``RLIMIT_NPROC`` to ``NPROC`` (0: leave it), and execs ``ARGV``. RLIMIT_NPROC counts
every process (every thread) of the uid on the machine, so the uid must be one no one else runs as:
:func:`unused_uid` picks one with no passwd entry and no process. :func:`python_for` finds an interpreter
that uid can run (the venv's may sit under root's 0700 home) and the ``PYTHONPATH`` that gives it the
project's packages.

The tests that need this are skipped, saying why, when not run as root, and fail instead under ``CI=true``.
"""

from __future__ import annotations

import os
import pwd
import random
import resource
import site
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import psutil
import pytest

ROOT = Path(__file__).resolve().parent.parent


def cannot(reason: str) -> NoReturn:
    """Skip the test, saying why; under ``CI=true`` fail it instead: there it must run."""
    if os.environ.get("CI") == "true":
        pytest.fail(reason)
    pytest.skip(reason)


def require_root(what: str) -> None:
    """Skip (fail in CI) unless this process may switch users."""
    if os.geteuid() != 0:
        cannot(f"{what}: needs root, to run the server as an unprivileged uid of its own")


def unused_uid(start: int = 64_100, stop: int = 65_000) -> int:
    """A uid with no passwd entry and no process on the machine, picked at random so that two test runs at
    once (RLIMIT_NPROC counts both) are unlikely to share one."""
    busy = set()
    for proc in psutil.process_iter(["uids"]):
        uids = proc.info.get("uids")
        if uids is not None:
            busy.update(uids)
    for uid in random.sample(range(start, stop), stop - start):
        if uid in busy:
            continue
        try:
            pwd.getpwuid(uid)
        except KeyError:
            return uid
    raise RuntimeError(f"no unused uid in {start}..{stop}")


def python_for(uid: int) -> tuple[str, dict[str, str]]:
    """An interpreter of this Python's version that ``uid`` can run, and the environment to give it.

    PYTHONPATH holds the project and this interpreter's site-packages (same major.minor, so the same ABI).
    """
    paths = [str(ROOT), *site.getsitepackages()]
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join(paths), "PYTHONDONTWRITEBYTECODE": "1",
           "HOME": "/nonexistent", "LC_ALL": "C.UTF-8"}
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    for exe in (sys.executable, f"/usr/bin/{version}", f"/usr/local/bin/{version}"):
        try:
            probe = subprocess.run([exe, "-c", "import httptools, psutil, servers.fork, apps.wsgi"],
                                   user=uid, group=uid, extra_groups=[], env=env, cwd=ROOT,
                                   capture_output=True, check=False)
        except OSError:  # not there, or not reachable by uid
            continue
        if probe.returncode == 0:
            return exe, env
    cannot(f"no {version} interpreter that uid {uid} can run with the project's packages")


def argv(uid: int, nproc: int, command: Sequence[str]) -> list[str]:
    """The command line that runs ``command`` as ``uid`` under RLIMIT_NPROC=``nproc`` (0: unlimited)."""
    return [sys.executable, "-m", "tests.unprivileged", str(uid), str(nproc), "--", *command]


def main(args: Sequence[str]) -> None:
    uid, nproc, sep, *command = args
    assert sep == "--" and command, "usage: python -m tests.unprivileged UID NPROC -- ARGV..."
    os.setgroups([])
    os.setgid(int(uid))
    os.setuid(int(uid))
    if int(nproc):
        resource.setrlimit(resource.RLIMIT_NPROC, (int(nproc), int(nproc)))
    os.execvp(command[0], command)


if __name__ == "__main__":
    main(sys.argv[1:])
