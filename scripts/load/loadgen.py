"""What every load generator shares: its error type and the percentiles it reports.

Kept apart from :mod:`scripts.generators` so that a generator's engine (such as
:mod:`scripts.openloop`, which runs as a subprocess of its own) can raise :class:`LoadError`
without importing the registry that imports it.
"""

from __future__ import annotations

PERCENTILES = {"p50": 0.50, "p75": 0.75, "p90": 0.90, "p99": 0.99, "p999": 0.999}


class LoadError(Exception):
    """A generator did not run to completion or its report could not be read; the message says why."""
