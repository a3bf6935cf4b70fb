"""Each locust worker's CPU, sent to the master while it runs, so the bench can tell a worker that ran out of CPU.

A worker on another host is invisible to this host's CPU trace, and locust's own figure comes every 10 s (its
``CPU_MONITOR_INTERVAL``), too seldom for cells of a few seconds. So every worker running this locustfile
samples its own process every :data:`SAMPLE_S` and sends the figure as a custom message (locust's
``send_message``/``register_message``); every master takes them, and one started by the bench
(``WB_WORKER_CPU_FILE`` set) stamps each on arrival with its own clock and writes them all to that file when
it quits, for :func:`scripts.load.generators.locust.hot_workers` to read over the measured interval.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psutil

from scripts.common.procs import schedstat_wait_s

if TYPE_CHECKING:  # the harness imports this module's names, and must never import locust (gevent patches)
    from locust.env import Environment
    from locust.runners import MasterRunner, WorkerRunner

MESSAGE = "workerbench-cpu"
SAMPLE_S = 0.5
ENV_FILE = "WB_WORKER_CPU_FILE"  # where a master writes [[arrival time, worker id, CPU %, waiting %], ...]


def install(environment: Environment) -> None:
    from locust.runners import MasterRunner, WorkerRunner

    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.greenlet.spawn(_report, runner)
    elif isinstance(runner, MasterRunner):
        # Registered by every master, so one started without the bench (locust's web UI) does not log each
        # worker's reports as unknown messages; only the bench's master writes them down.
        file = os.environ.get(ENV_FILE)
        _collect(runner, Path(file) if file else None)


def _report(runner: WorkerRunner) -> None:
    """Every SAMPLE_S: the percent of one CPU the worker used, and the percent of the time it waited for one (a
    worker sharing its CPU with other work uses less of it, yet is still what limits the load)."""
    process = psutil.Process()
    process.cpu_percent(None)
    # The main thread's wait: gevent runs every user there.
    last_wait, last_t = schedstat_wait_s("/proc/thread-self/schedstat"), time.monotonic()
    while True:
        time.sleep(SAMPLE_S)  # gevent's, as locust patches the standard library
        wait, now = schedstat_wait_s("/proc/thread-self/schedstat"), time.monotonic()
        waited = None if wait is None or last_wait is None else 100 * (wait - last_wait) / (now - last_t)
        runner.send_message(MESSAGE, {"cpu": process.cpu_percent(None), "wait": waited})
        last_wait, last_t = wait, now


def _collect(runner: MasterRunner, path: Path | None) -> None:
    from locust import events

    samples: list[tuple[float, str, float, float | None]] = []

    def received(environment: Environment, msg: Any, **_: Any) -> None:
        wait = msg.data.get("wait")
        samples.append((time.time(), str(msg.node_id), float(msg.data["cpu"]), None if wait is None else float(wait)))

    def quitting(environment: Environment, **_: Any) -> None:
        if path is not None:
            path.write_text(json.dumps(samples))

    runner.register_message(MESSAGE, received)
    events.quitting.add_listener(quitting)  # type: ignore[no-untyped-call]  # locust's EventHook is untyped
