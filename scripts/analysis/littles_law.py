"""Little's law as a check on the figures of a scenario whose requests wait a known time.

A server that serves at most N requests at once, each taking at least W seconds, completes at most N / W
requests per second (Little's law: N = throughput x W). On ``io`` every request waits 20 ms (``/io?ms=20``),
so the ceiling of each mode is what it can hold at once divided by 20 ms: workers x threads for a pool
(gunicorn-sync with 2 workers: 100 req/s), the users for an event loop (every connection is in flight at
once: 32 users, 1,600 req/s), a fixed number where the server has one (a cap on children). The users bound
every mode: a closed loop never has more requests in flight than users. A figure below its ceiling is the
server's CPU, parsing or scheduling; a figure above it cannot happen, so it is a measurement error (a window
that counted requests begun before it, a wait the app did not make) and is flagged as one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

from loadtests.scenarios import SCENARIOS
from scripts.analysis.stats import FoldedCell
from scripts.modes import MODES, Mode

# A figure more than this share above its ceiling is flagged: the edges of a measured window can count a
# request or two that began before it, and a short window makes that a few percent.
TOLERANCE = 0.05
# The sample app's waiting endpoint, and the scenarios that request only it.
_WAIT_PATH = "/io"


@dataclass(frozen=True, kw_only=True, slots=True)
class Ceiling:
    """One figure beside the most its mode could have completed."""

    mode: str
    scenario: str
    users: int
    holds: int  # requests in service at once: the smaller of what the mode holds and the users
    how: str  # why that many: "2 workers x 1 thread", "an event loop: every connection", "at most 64 children"
    wait_ms: float
    ceiling_rps: float
    rps: float | None

    @property
    def share(self) -> float | None:
        return None if self.rps is None else self.rps / self.ceiling_rps

    @property
    def above(self) -> bool:
        """Above its ceiling: not a server's speed but a measurement error."""
        return self.share is not None and self.share > 1 + TOLERANCE


def wait_ms(path: str) -> float | None:
    """The wait a request of the sample app makes: ``/io?ms=20`` waits 20 ms; None for any other path."""
    parts = urlsplit(path)
    if parts.path != _WAIT_PATH:
        return None
    try:
        value = float(parse_qs(parts.query).get("ms", ["20"])[0])
    except ValueError:
        return None
    return value if value > 0 else None


def scenario_waits(paths: Mapping[str, Sequence[str]]) -> dict[str, float]:
    """Per scenario of the sample app, its known wait: every request of it the same ``/io`` wait."""
    found: dict[str, float] = {}
    for scenario, requests in paths.items():
        waits = {wait_ms(p) for p in requests}
        if len(waits) == 1 and None not in waits:
            found[scenario] = next(w for w in waits if w is not None)
    return found


def holds(mode: Mode, workers: int, threads: int | None = None) -> tuple[int, str]:
    """What ``mode`` serves at once with ``workers`` (and ``threads`` per worker, when the run set them)."""
    process = mode.process
    if process.holds is not None:
        what = "children" if process.fork_per_request else "threads"
        return process.holds, f"at most {process.holds} {what}"
    if mode.interface == "asgi":
        return 0, "an event loop: every connection"  # 0: as many as the users
    if mode.placement.green_threads:
        return 0, "green threads: every connection"  # a greenlet per connection, up to 1000 a worker
    pool = workers if process.uses_workers else 1
    per = threads or process.threads or 1
    return pool * per, f"{pool} {_plural(pool, 'worker')} x {per} {_plural(per, 'thread')}"


def _plural(n: int, word: str) -> str:
    return word if n == 1 else word + "s"


def ceilings(figures: Sequence[FoldedCell], waits: Mapping[str, float], *, threads: Mapping[str, int] | None = None,
             registry: Mapping[str, Mode] = MODES) -> list[Ceiling]:
    """Every figure of a scenario with a known wait, beside its ceiling; modes the registry lacks are left out."""
    out = []
    for f in figures:
        base = f.base_scenario or f.scenario.split("/")[0]
        wait = waits.get(base)
        mode = registry.get(f.mode)
        if wait is None or mode is None or not f.concurrency or not f.ok:
            continue
        held, how = holds(mode, f.workers or 1, (threads or {}).get(f.mode))
        at_once = min(held, f.concurrency) if held else f.concurrency
        if held and held >= f.concurrency:
            how += f", more than the {f.concurrency} users"
        out.append(Ceiling(mode=f.mode, scenario=f.scenario, users=f.concurrency, holds=at_once, how=how,
                           wait_ms=wait, ceiling_rps=at_once / (wait / 1000), rps=f.throughput_rps))
    return out


def sample_waits(plan: Mapping[str, Any] | None) -> dict[str, float]:
    """The known waits of a run's scenarios: the sample app's only (a user's app has its own ``/io``, if any)."""
    if plan is not None and plan.get("app"):
        return {}
    return scenario_waits({name: [p.path for p in sc.probes] for name, sc in SCENARIOS.items()})
