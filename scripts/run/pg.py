"""A throwaway PostgreSQL server for a bench run or the tests: ``with postgres() as url: ...``.

It runs the installed server binaries (Debian puts them in
``/usr/lib/postgresql/<version>/bin``, off ``PATH``) on a fresh cluster in a
temporary folder, and removes everything on exit. PostgreSQL refuses to run as
root, so as root ``initdb`` and ``pg_ctl`` run as the ``postgres`` OS user
(``subprocess``'s ``user=``, no ``su`` or ``runuser`` needed) and the folder is
handed over to it.

Who may connect: the cluster trusts whoever reaches it (no password to hand
around), so it listens on no TCP port at all, only on a unix socket inside its
0700 folder. The user that started it (or root) reaches that folder; no other
local account does. On TCP, trust would let any local user in as the superuser,
and a superuser runs programs on the host (``COPY ... FROM PROGRAM``). The URL
names the socket's folder as its host, percent-encoded
(``postgresql://postgres@%2Ftmp%2Fworkerbench-pg-XXXX:5432/postgres``), which
psycopg and libpq read as a unix socket.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from glob import glob
from pathlib import Path
from urllib.parse import quote

from scripts.common.procs import log_tail

SERVICE_USER = "postgres"
PORT = 5432  # only names the socket file (.s.PGSQL.5432) in the cluster's own folder: no clash possible
START_TIMEOUT_S = 60
STOP_TIMEOUT_S = 10


class PostgresUnavailable(Exception):
    """The PostgreSQL server binaries (or, as root, the ``postgres`` user) are not there."""


@dataclass(frozen=True)
class Binaries:
    initdb: Path
    pg_ctl: Path


def find_binaries() -> Binaries:
    """The newest installed ``initdb`` and ``pg_ctl``; raises :class:`PostgresUnavailable`."""

    def version(bindir: str) -> tuple[int, ...]:
        match = re.search(r"/postgresql/([\d.]+)/bin$", bindir)
        return tuple(int(p) for p in match.group(1).split(".") if p) if match else ()

    candidates = sorted(glob("/usr/lib/postgresql/*/bin"), key=version, reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for bindir in candidates:
        initdb, pg_ctl = Path(bindir, "initdb"), Path(bindir, "pg_ctl")
        if os.access(initdb, os.X_OK) and os.access(pg_ctl, os.X_OK):
            return Binaries(initdb, pg_ctl)
    raise PostgresUnavailable(
        "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin or on PATH;"
        " install them with: apt-get install postgresql"
    )


def _run_as() -> pwd.struct_passwd | None:
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVICE_USER)
    except KeyError:
        raise PostgresUnavailable(f"running as root but there is no {SERVICE_USER!r} user to run PostgreSQL as") \
            from None


def _base_dir(user: pwd.struct_passwd | None) -> str:
    # The server user must be able to reach its folder: a TMPDIR inside root's home would not do.
    base = tempfile.gettempdir()
    if user is not None:
        for part in (Path(base), *Path(base).parents):
            if not part.stat().st_mode & stat.S_IXOTH:
                return "/tmp"
    return base


def _env() -> dict[str, str]:
    # No PG* variables from the caller's shell may point the tools at another server or data folder.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env["LC_ALL"] = "C"
    return env


def _run(argv: list[str], user: pwd.struct_passwd | None, what: str) -> None:
    kwargs: dict[str, object] = {}
    if user is not None:
        kwargs = {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}
    proc = subprocess.run(
        argv, env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
        timeout=START_TIMEOUT_S + 30, **kwargs,  # type: ignore[call-overload]
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed ({proc.returncode}): {' '.join(argv)}\n{proc.stdout}{proc.stderr}")


def _postmaster_pid(data: Path) -> int | None:
    try:
        return int((data / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    # A zombie waiting for its reaper (the postmaster's parent is init) no longer serves anything.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _stop(binaries: Binaries, data: Path, user: pwd.struct_passwd | None) -> None:
    """Stop the server in ``data`` if it runs; SIGKILL it if ``pg_ctl stop`` does not do it in time."""
    pid = _postmaster_pid(data)
    if pid is None:
        return
    try:
        _run([str(binaries.pg_ctl), "stop", "-D", str(data), "-m", "immediate", "-w"], user, "pg_ctl stop")
    finally:
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)


@contextlib.contextmanager
def postgres() -> Iterator[str]:
    """Start a private PostgreSQL server; yields ``postgresql://postgres@<its socket folder>:5432/postgres``.

    The server is stopped (``pg_ctl stop -m immediate``) and its folder removed on every exit path.
    """
    binaries = find_binaries()
    user = _run_as()
    root = Path(tempfile.mkdtemp(prefix="workerbench-pg-", dir=_base_dir(user)))
    data, log = root / "data", root / "server.log"
    try:
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        # Trust on the socket alone; any TCP connection is rejected, were a listener ever turned on.
        _run([str(binaries.initdb), "-D", str(data), "--auth-local=trust", "--auth-host=reject",
              f"--username={SERVICE_USER}", "--encoding=UTF8", "--locale=C", "--no-sync"], user, "initdb")
        try:
            _start(binaries, data, log, root, user)
            yield f"postgresql://{SERVICE_USER}@{quote(str(root), safe='')}:{PORT}/postgres"
        finally:
            _stop(binaries, data, user)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _start(binaries: Binaries, data: Path, log: Path, socket_dir: Path, user: pwd.struct_passwd | None) -> None:
    options = " ".join([
        "-c listen_addresses=''", f"-p {PORT}", f"-c unix_socket_directories={socket_dir}",
        "-c unix_socket_permissions=0700",
        "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
        "-c log_connections=on", "-c log_disconnections=on", "-c max_connections=100",
    ])
    try:
        _run([str(binaries.pg_ctl), "start", "-D", str(data), "-l", str(log), "-w", "-t", str(START_TIMEOUT_S),
              "-o", options], user, "pg_ctl start")
    except RuntimeError as exc:
        _stop(binaries, data, user)
        raise RuntimeError(f"{exc}\nserver log:\n{log_tail(log, 20)}") from None
