"""locust: the generator for user scenarios (a weighted mix of requests, think times), run as a subprocess.

Importing locust would monkey-patch the standard library through gevent, so harness code never does:
:meth:`Locust.run` builds a command line, bounds it in time, and parses the file that ``--json-file``
writes at the end of the run. That file holds the final counts and each endpoint's latency histogram.
(The ``--csv`` stats file is a periodic snapshot and can miss the last second of a run, which on a
short run is most of it.) One locust process tops out near 4,400 requests/s on one core, so it is
the default only for scenarios the single-request generators cannot express.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loadtests.scenarios import Scenario
from scripts.generators.base import Load, LoadError, LoadResult
from scripts.loadgen import PERCENTILES
from scripts.procs import get, log_tail
from scripts.resources import run_traced

ROOT = Path(__file__).resolve().parent.parent.parent
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
# locust needs a moment to import and spawn before its run time starts, and a
# moment to write its JSON after; past this margin the run is cut off.
LOCUST_MARGIN_S = 30.0


def locust_command(scenario: Scenario, url: str, users: int, duration: float, json_prefix: Path) -> list[str]:
    return [
        sys.executable, "-m", "locust",
        "-f", str(LOCUSTFILE),
        "--headless",
        "--users", str(users),
        # Start every user at once: locust spaces spawns 1/rate apart, and --reset-stats
        # only starts the measured interval once the last user runs.
        "--spawn-rate", str(max(users, 1000)),
        "--run-time", f"{max(1, round(duration))}s",
        "--stop-timeout", "5",
        "--host", url,
        "--json-file", str(json_prefix),
        "--only-summary",
        "--reset-stats",
        "--loglevel", "WARNING",
        scenario.user_class,
    ]


def percentile(histogram: dict[float, int], fraction: float) -> float:
    """The smallest recorded latency at or below which ``fraction`` of the requests fall."""
    total = sum(histogram.values())
    if total == 0:
        return math.nan
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def parse_locust_json(path: Path) -> LoadResult:
    """Totals over every endpoint of locust's ``--json-file`` output.

    locust keeps latencies in buckets (whole ms below 100 ms, then 10 ms, then 100 ms),
    so percentiles here have that resolution, the same as locust's own report.
    """
    entries = json.loads(path.read_text())
    if not isinstance(entries, list):
        raise LoadError(f"unexpected locust JSON in {path}")
    histogram: dict[float, int] = {}
    requests = failures = 0
    total_ms = max_ms = 0.0
    start, end = math.inf, -math.inf
    for entry in entries:
        requests += int(entry["num_requests"])
        failures += int(entry["num_failures"])
        total_ms += float(entry["total_response_time"])
        max_ms = max(max_ms, float(entry["max_response_time"] or 0.0))
        for bucket, count in entry["response_times"].items():
            histogram[float(bucket)] = histogram.get(float(bucket), 0) + int(count)
        if entry["num_requests"]:
            start = min(start, float(entry["start_time"]))
            end = max(end, float(entry["last_request_timestamp"]))
    elapsed = end - start if requests else 0.0
    latency = {key: percentile(histogram, fraction) for key, fraction in PERCENTILES.items()} if requests else {}
    if requests:
        latency.update(mean=round(total_ms / requests, 3), max=round(max_ms, 3))
    return LoadResult(generator="locust", requests=requests, failures=failures,
                      throughput_rps=requests / elapsed if elapsed > 0 else 0.0, latency_ms=latency,
                      latency_histogram=histogram)


def warm_up_threads(scenario: Scenario, host: str, port: int, seconds: float, threads: int = 4,
                    request: Callable[..., object] = get) -> int:
    """Send the scenario's requests from a few threads for ``seconds``; returns how many were sent.

    Cheaper than starting locust a second time per cell, and any request warms the server alike.
    """
    deadline = time.monotonic() + seconds
    counts = [0] * threads

    def loop(i: int) -> None:
        while time.monotonic() < deadline:
            for probe in scenario.probes:
                try:
                    request(host, port, probe.path, method=probe.method, body=probe.body or None, timeout=5.0)
                except Exception:
                    pass
                counts[i] += 1

    workers = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(seconds + 10)
    return sum(counts)


@dataclass(frozen=True, slots=True)
class Locust:
    name: str = "locust"
    summary: str = "locust (FastHttpUser) as a subprocess: every scenario, user mixes and think times"
    reports: str = "latency percentiles in whole milliseconds (locust's buckets)"
    install_hint: str = "pip install locust"
    cell_overhead_s: float = 2.5
    rank: int = 10
    closed_loop: bool = True

    def available(self) -> bool:
        return importlib.util.find_spec("locust") is not None

    def can_drive(self, scenario: Scenario) -> bool:
        return True

    def run(self, load: Load) -> LoadResult:
        load.workdir.mkdir(parents=True, exist_ok=True)
        prefix, log = load.workdir / "locust", load.workdir / "locust.log"
        argv = locust_command(load.scenario, f"http://{load.host}:{load.port}", load.connections, load.duration,
                              prefix)
        env = {"WB_CLOSE": "0" if load.keepalive else "1", "WB_SCENARIO_SOURCE": load.scenario.source}
        try:
            code, util = run_traced(argv, log=log, timeout=load.duration + LOCUST_MARGIN_S,
                                    cpus=set(load.cpus) if load.cpus else None, cwd=ROOT, env=env)
        except TimeoutError as exc:
            raise LoadError(str(exc)) from None
        stats = Path(f"{prefix}.json")
        if not stats.exists():
            raise LoadError(f"locust wrote no statistics (exit {code})\n{log_tail(log)}")
        return dataclasses.replace(parse_locust_json(stats), generator_cpu=util)

    def warm_up(self, load: Load) -> None:
        warm_up_threads(load.scenario, load.host, load.port, load.duration, threads=min(load.connections, 4))


LOCUST = Locust()
