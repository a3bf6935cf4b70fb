"""Stage load: making load. The native engine and its process, the wrk process, the latency histogram, the
CPU and memory sampling of a process group, the hosts they may load, and the generators (one interface, one
registry) over them.

:class:`LoadError` lives here, not in :mod:`scripts.load.generators`, so that a generator's engine (such as
:mod:`scripts.load.engine_process`, which runs as a subprocess of its own) can raise it without importing the
registry that imports it.
"""


class LoadError(Exception):
    """A generator did not run to completion or its report could not be read; the message says why."""
