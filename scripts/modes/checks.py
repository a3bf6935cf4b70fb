"""The speed checks a mode is held to: ratios of its requests/s to another mode's or to a machine rate, and the
ratio of one database connection per worker to one per request."""

from __future__ import annotations

from dataclasses import dataclass

# Machine rates a ratio can be measured against: the bench measures them in the run when a fork-per-request mode
# takes part (scripts/run/reference.py).
FORK_RATE = "fork-rate"  # fork() + _exit() + waitpid() of a bare process
FORK_LOOP = "fork-loop"  # the least a Python fork-per-request server can do: accept, fork, read, canned reply
STDLIB_FORK = "stdlib-fork"  # the standard library's fork server (socketserver.ForkingMixIn + wsgiref), same app


@dataclass(frozen=True, kw_only=True, slots=True)
class SpeedRatio:
    """A ratio of this mode's requests/s to another mode's (or to a machine rate) in one scenario, checked in every
    run that measures both; ``ratio`` 0 reports it without holding the mode to a figure."""

    check: str  # how the summary names it
    scenario: str  # as reports label it: "plaintext", "plaintext/close"
    against: str  # a mode's name, FORK_RATE, FORK_LOOP or STDLIB_FORK
    ratio: float = 0.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Checks:
    speed: tuple[SpeedRatio, ...] = ()  # the speed checks this mode is held to
    # Database backends on which the ratio of one connection per worker to one per request is checked for this
    # mode, with the least ratio (0: reported only).
    reuse: tuple[tuple[str, float], ...] = ()
