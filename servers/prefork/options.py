"""The pool's options and tunables: what the command line sets and the constants behind the process model."""

from __future__ import annotations

import errno
import logging
import random
from dataclasses import dataclass

log = logging.getLogger("workerbench.prefork")

IDLE_BEAT_S = 1.0  # a worker's idle loop turns at least this often, and beats each time
MAX_SLOTS = 1024
ACCEPT_BATCH = 16  # connections a worker accepts per wake-up at most, before it serves what it has
MAX_PARKED = 1000  # connections one worker keeps in its epoll set; lowered to fit RLIMIT_NOFILE
# Descriptors a worker keeps free beside its parked connections: a batch of fresh accepts, the
# connection being served, and the app's own files (a database, a log).
FD_HEADROOM = ACCEPT_BATCH + 8
ACCEPT_PAUSE_S = 0.5  # no accept for this long after EMFILE/ENFILE: retrying at once only spins
LOG_EVERY_S = 10.0  # a repeated condition (accept failing, parked connections dropped) is logged this often
OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
FIRST_BYTES_WAIT_S = 0.002  # a just-accepted connection is parked only if silent this long
# With this many connections parked while a request is due (not idle between requests), a worker parks a new
# one at once rather than wait FIRST_BYTES_WAIT_S for its bytes: a flood of silent connections (1,000 a second)
# cost 2 ms of a worker each, and a fresh client's median rose to 0.45 s. A count of timed-out waits would not
# do: under a new connection per request many waits time out on clients that are merely busy (+17% CPU).
SILENT_PARKED = 64
FRESH_GRACE_S = 0.2  # at shutdown, how long a just-accepted connection may take to send its request
STUCK_S = 0.25  # a worker this long inside one request is not offered more connections by the others
REBALANCE_SLACK = 1  # rule 2 leaves a worker this many connections over its share
REBALANCE_CLOSE_FRACTION = 8  # rule 3 leaves it this share of its share over, and at least REBALANCE_SLACK
REBALANCE_AFTER_S = 0.5  # rule 3 waits this long: an imbalance that rules 1 and 2 undo by themselves passes
REBALANCE_POLL_S = 0.05  # a worker out of the accept rotation looks again this often
TCP_INFO_LEN = 104
TCPI_UNACKED = 24  # offset of tcpi_unacked in struct tcp_info: the accept queue's length on a listener


@dataclass(kw_only=True)
class Options:
    app: str
    workers: int = 1
    preload: bool = False
    gc_freeze: bool = True  # after a preload: gc.collect() and gc.freeze() before the first fork
    max_requests: int = 0
    max_requests_jitter: int = 0
    graceful_timeout: float = 30.0
    max_boot_failures: int = 5
    timeout: float = 30.0
    kill_grace: float = 2.0
    status_file: str | None = None



def request_quota(opts: Options) -> int:
    """Requests a worker serves before it is recycled (0: never); the jitter keeps workers from recycling together."""
    if opts.max_requests <= 0:
        return 0
    return opts.max_requests + random.randint(0, max(0, opts.max_requests_jitter))

