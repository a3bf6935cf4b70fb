"""A WSGI app that stalls on a fixed wall-clock beat, to make coordinated omission visible.

Every ``PERIOD_S`` seconds of ``time.monotonic()`` the first ``STALL_S`` seconds are a
stall: a request that arrives inside the window blocks (``time.sleep``) until the
window ends, then is answered by :mod:`apps.wsgi` as usual. ``CLOCK_MONOTONIC`` is one
clock for the whole machine, so every worker process stalls in the same window, like a
server-wide pause (a GC, a lock, a full disk). ``/health`` stalls too; the harness's
readiness poll waits with a deadline much longer than a stall.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from apps.wsgi import app as real_app

PERIOD_S = 1.0
STALL_S = 0.25


def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
    phase = time.monotonic() % PERIOD_S
    if phase < STALL_S:
        time.sleep(STALL_S - phase)
    return real_app(environ, start_response)
