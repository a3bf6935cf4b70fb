"""The faults suite's settings (how long, how hard, how many of each) and what one case needs: a fault against
one mode, with its files and its server's environment."""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from apps import faults as app_faults
from loadtests.scenarios import Scenario
from scripts.modes import Mode
from scripts.plan import userapp
from scripts.records.records import FaultRecord

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"


@dataclass(frozen=True, kw_only=True, slots=True)
class Settings:
    quick: bool
    out: Path
    workers: int = 2
    host: str = HOST
    pg_url: str | None = None  # a PostgreSQL server with the world table, for the cleanup fault

    lead_s: float | None = None  # seconds of load before the fault; None: by quick
    app: userapp.UserApp | None = None  # a user's app (--app/--asgi-app), served instead of the sample app
    request: Scenario | None = None  # its one request the steady load sends (userapp.load_request)

    @property
    def duration(self) -> float:  # seconds of load per fault
        return 2.5 if self.quick else 6.0

    @property
    def lead(self) -> float:
        if self.lead_s is not None:
            return self.lead_s
        return 0.8 if self.quick else 2.0

    @property
    def slow_levels(self) -> tuple[int, ...]:  # how many slow clients at once
        return (8, 64) if self.quick else (8, 64, 256)

    def slow_levels_for(self, mode: Mode) -> tuple[int, ...]:
        # A quick run spares a mode that needs a good part of a second per request (cgi) the 64 slow
        # clients: each one costs it an interpreter start before any measurement.
        if self.quick and mode.placement.min_duration_s >= 1.0:
            return self.slow_levels[:1]
        return self.slow_levels

    @property
    def slow_duration(self) -> float:  # seconds of normal load beside each level
        return 1.0 if self.quick else 3.0

    @property
    def recycle_duration(self) -> float:  # seconds of full-speed load per server, with or without recycling
        return 2.0 if self.quick else 4.0

    @property
    def recycle_rounds(self) -> int:  # each round: one server without recycling, one with
        return 1 if self.quick else 2

    @property
    def hang_timeout(self) -> int:  # the worker timeout given to modes that have one
        return 2 if self.quick else 5

    @property
    def leak_requests(self) -> int:
        return 1_500 if self.quick else 10_000

    @property
    def leak_max_s(self) -> float:  # a slow mode gets this long, and serves fewer requests
        return 3.5 if self.quick else 12.5

    def leak_rate(self, mode: Mode) -> float:
        # Pools take 2x (quick) or 4x the usual rate, to reach 10,000 requests in 12.5 s in the default
        # run; a process per request is near its limit already.
        return self.rate(mode) * (1 if mode.process.fork_per_request else 2 if self.quick else 4)

    @property
    def max_requests(self) -> int:
        return 300 if self.quick else 1_000

    @property
    def rss_growth_mb(self) -> int:
        """Memory-triggered recycling's limit, above a fresh worker's RSS: the leak's 16 KiB per request reaches it
        after about 500 requests a worker (quick) or 1,000, as often as request-count recycling recycles."""
        return 8 if self.quick else 16

    @property
    def blocking_ms(self) -> int:  # how long each of the blocking fault's slow requests takes
        return 300

    def rate(self, mode: Mode) -> float:
        """A moderate offered rate the mode serves comfortably (so a fault, not overload, makes failures)."""
        if mode.placement.min_duration_s >= 1.0:
            return 2.0  # a fresh interpreter per request (cgi): ~0.2 s of CPU each
        if mode.process.fork_per_request:
            return 100.0
        return 200.0

    def request_timeout(self, mode: Mode) -> float:
        # Short, so a request stuck behind a hung or dead process counts as failed within the run.
        return 4.0 if mode.placement.min_duration_s >= 1.0 else 1.0


def server_env(db_path: Path) -> dict[str, str]:
    from apps import db

    env = {**os.environ, app_faults.ENV: "1", db.ENV_PATH: str(db_path), "PYTHONPATH": str(ROOT),
           "PYTHONUNBUFFERED": "1"}
    env.pop(db.ENV_URL, None)
    return env


@dataclass(frozen=True, kw_only=True, slots=True)
class Case:
    """Everything one fault against one mode needs: settings, mode, where its files go, the server's env."""

    settings: Settings
    mode: Mode
    workdir: Path
    env: dict[str, str]

    @property
    def log(self) -> Path:
        return self.workdir / "server.log"


Fault = Callable[[Case], FaultRecord]


# What each fault that cannot run on a user's app needs of the sample app (apps.faults); the others send only the
# load's request and signals, so they run on any app: recycle, reload, shutdown, slow (its slowloris half).
NEEDS_SAMPLE_APP = {
    "crash": "/fault/crash, a request that calls os._exit",
    "segv": "/fault/crash?how=segv, a request that dies of SIGSEGV",
    "hang": "/fault/hang, a request that blocks for an hour",
    "error": "/fault/error, a request that raises",
    "state": "/fault/state, a request that stores and reads a module-level value",
    "leak": "/fault/leak, a request that keeps 16 KiB",
    "leak+recycle": "/fault/leak, a request that keeps 16 KiB",
    "leak+rss": "/fault/leak, a request that keeps 16 KiB",
    "spin": "/fault/spin, a request that computes for the rest of the run",
    "blocking": "/io and /fault/sqlite, requests that wait or query SQLite for 300 ms",
    "cleanup": "/db and the sample app's PostgreSQL connection settings",
    "slow: nonreader": "/fault/big, a 2 MiB answer",
}
