"""Where a mode takes part: its family (where reports show it), the named sets of ``--modes`` it is in, and the
cells of a run it is measured in."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Family = Literal["hand-written", "wsgi", "green", "asgi"]
# The order families are shown in (charts, tables, --list): this project's servers, then the production
# servers of each interface, the green-thread servers (WSGI apps on a gevent loop) between the two.
FAMILIES: dict[Family, str] = {"hand-written": "hand-written", "wsgi": "WSGI servers", "green": "green threads",
                               "asgi": "ASGI servers"}


@dataclass(frozen=True, kw_only=True, slots=True)
class Placement:
    hand_written: bool = False  # this project's own server (servers/), not a production one
    # A WSGI server whose workers run the app on green threads (gevent, the standard library monkey-patched):
    # its own family, between the threads and the event loops.
    green_threads: bool = False
    # In the run without --modes: the process-model comparison. The other modes are in the named sets.
    in_default_set: bool = True
    # A mode that needs a good part of a second per request needs a longer measured interval to
    # complete enough requests to measure, and has no place in a sweep to hundreds of connections.
    min_duration_s: float = 0.0
    in_sweeps: bool = True
    only_scenarios: tuple[str, ...] = ()  # measured in these scenarios only (empty: all)
