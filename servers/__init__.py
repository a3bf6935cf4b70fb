"""HOW an app is served: the registry of server modes.

Every mode is one :class:`Mode` entry in :data:`MODES`. An entry is
declarative: the interface it serves (WSGI or ASGI) and a function that turns a
:class:`Launch` (app, address, worker count) into a command line. The harness
starts that command in a process group of its own and stops the whole group,
so a mode needs no wrapper class. To add a mode, add one entry.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Interface = Literal["wsgi", "asgi"]

APPS: dict[Interface, str] = {"wsgi": "apps.wsgi:app", "asgi": "apps.asgi:app"}


@dataclass(frozen=True, kw_only=True, slots=True)
class Launch:
    """Where and how big one server start is; the same for every mode in a run."""

    app: str
    host: str
    port: int
    workers: int
    python: str = sys.executable


@dataclass(frozen=True, kw_only=True, slots=True)
class Mode:
    name: str
    interface: Interface
    summary: str
    command: Callable[[Launch], list[str]]
    uses_workers: bool = True  # False: --workers does not apply (there is no pool to size)
    # A process forked per request (or per connection): the bench then measures the machine's own fork
    # rates as references for it (scripts/reference.py).
    fork_per_request: bool = False
    # A mode that needs a good part of a second per request needs a longer measured interval to
    # complete enough requests to measure, and has no place in a sweep to hundreds of connections.
    min_duration_s: float = 0.0
    in_sweeps: bool = True
    only_scenarios: tuple[str, ...] = ()  # measured in these scenarios only (empty: all)
    start_s: float = 0.3  # rough start-up and shut-down time, for the run's time estimate only

    def argv(self, *, host: str, port: int, workers: int, python: str = sys.executable) -> list[str]:
        return self.command(Launch(app=APPS[self.interface], host=host, port=port, workers=workers, python=python))


def _cgi(l: Launch) -> list[str]:  # noqa: E741
    return [l.python, "-m", "servers.cgi", l.app, "--bind", f"{l.host}:{l.port}", "--max-children", "64"]


# Persistent connections are kept 5 s, as uvicorn does by default; whether a cell uses them is
# the client's choice (the keep-alive-off cells send "Connection: close").
KEEPALIVE_S = "5"


def _fork(l: Launch) -> list[str]:  # noqa: E741
    # No keep-alive: a child per request is this mode's point. (With it, the child cap would also cap
    # the connections served at once, and clients beyond it would wait for a child's idle timeout.)
    return [l.python, "-m", "servers.fork", l.app, "--bind", f"{l.host}:{l.port}", "--max-children", "64"]


def _prefork(l: Launch) -> list[str]:  # noqa: E741
    return [l.python, "-m", "servers.prefork", l.app, "--bind", f"{l.host}:{l.port}", "--workers", str(l.workers),
            "--keepalive", KEEPALIVE_S]


def _gunicorn_sync(l: Launch) -> list[str]:  # noqa: E741
    # gunicorn writes no access log unless --access-logfile is given.
    return [
        l.python, "-m", "gunicorn", l.app,
        "--bind", f"{l.host}:{l.port}",
        "--workers", str(l.workers),
        "--worker-class", "sync",
        "--log-level", "warning",
    ]


def _uvicorn(l: Launch) -> list[str]:  # noqa: E741
    return [
        l.python, "-m", "uvicorn", l.app,
        "--host", l.host,
        "--port", str(l.port),
        "--workers", str(l.workers),
        "--http", "httptools",
        "--loop", "uvloop",
        "--no-access-log",
        "--log-level", "warning",
    ]


MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        Mode(
            name="cgi",
            interface="wsgi",
            summary="classic CGI: fork and exec a fresh Python per request, which imports the app (wsgiref)",
            command=_cgi,
            uses_workers=False,
            fork_per_request=True,
            # A fresh interpreter per request costs about 0.2 s of CPU here: 32 clients at once need
            # several seconds for their first answers, so cgi is measured on plaintext only, for 8 s.
            min_duration_s=8.0,
            in_sweeps=False,
            only_scenarios=("plaintext",),
        ),
        Mode(
            name="fork",
            interface="wsgi",
            summary="hand-written fork-per-request server: the app is preloaded, each request gets a child",
            command=_fork,
            uses_workers=False,
            fork_per_request=True,
        ),
        Mode(
            name="prefork",
            interface="wsgi",
            summary="hand-written pre-fork server: a master and a pool of long-lived workers on one socket",
            command=_prefork,
        ),
        Mode(
            name="gunicorn-sync",
            interface="wsgi",
            summary="gunicorn with sync workers (one request at a time per worker, no keep-alive)",
            command=_gunicorn_sync,
        ),
        Mode(
            name="uvicorn",
            interface="asgi",
            summary="uvicorn with httptools and uvloop: one event loop per worker multiplexes connections",
            command=_uvicorn,
            start_s=2.0,  # --workers 2 runs a supervisor that spawns (not forks) its workers
        ),
    )
}
