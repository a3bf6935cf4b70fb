"""How a mode is launched: the interface it serves, where and how big one start is (:class:`Launch`), and the
facts of its process model (:class:`Process`) that the bench sizes, times and records it by."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Interface = Literal["wsgi", "asgi"]

APPS: dict[Interface, str] = {"wsgi": "apps.wsgi:app", "asgi": "apps.asgi:app"}


@dataclass(frozen=True, kw_only=True, slots=True)
class Launch:
    """Where and how big one server start is: the same for every mode in a run, but for the threads (the mode's)."""

    app: str
    host: str
    port: int
    workers: int
    threads: int = 8  # threads per worker, for the modes that have them
    python: str = sys.executable


Command = Callable[[Launch], list[str]]


@dataclass(frozen=True, kw_only=True, slots=True)
class Process:
    """The mode's process model, as far as the bench needs it to start, size and time it."""

    uses_workers: bool = True  # False: --workers does not apply (there is no pool to size)
    # A process forked per request (or per connection): the bench then measures the machine's own fork
    # rates as references for it (scripts/run/reference.py).
    fork_per_request: bool = False
    threads: int | None = None  # threads per worker (None: the mode has no thread pool to size)
    start_s: float = 0.3  # rough start-up and shut-down time, for the run's time estimate only
    packages: tuple[str, ...] = ()  # the distributions it runs, whose versions every run records
    # A statement of fact about a mode's own defaults (keep-alive, backlog, threads), for --list and the README.
    defaults: str = ""
    # How many requests it serves at once when that is a fixed number (a cap on children, a thread pool of its
    # own); None: workers x threads for a WSGI pool, every connection for an ASGI event loop. Little's law
    # (scripts/analysis/littles_law.py) turns it into the throughput ceiling of a scenario that waits.
    holds: int | None = None
