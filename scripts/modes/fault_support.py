"""What the faults suite (:mod:`scripts.faults`) may use of a mode; None where the server has no such thing (or
where it is not known to work)."""

from __future__ import annotations

import signal
from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True, slots=True)
class FaultSupport:
    worker_timeout_flag: str | None = None  # the option that kills a worker stuck in one request after N seconds
    max_requests_flag: str | None = None  # the option that recycles a worker after N requests
    # The signal that replaces every worker while the listening socket stays open.
    reload_signal: signal.Signals | None = None
    max_rss_flag: str | None = None  # the option that recycles a worker whose RSS passes N MB (uWSGI's --reload-on-rss)
