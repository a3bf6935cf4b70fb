"""Load generators. locust runs as a subprocess and is read back from its JSON.

Importing locust would monkey-patch the standard library through gevent, so
harness code never does; :func:`run_locust` builds a command line, bounds it in
time, and parses the file that ``--json-file`` writes at the end of the run.
That file holds the final counts and each endpoint's latency histogram. (The
``--csv`` stats file is a periodic snapshot and can miss the last second of a
run, which on a short run is most of it.)
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loadtests.scenarios import Scenario
from scripts import wrk
from scripts.procs import get, log_tail
from scripts.resources import run_traced

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
# locust needs a moment to import and spawn before its run time starts, and a
# moment to write its CSV after; past this margin the run is cut off.
LOCUST_MARGIN_S = 30.0

PERCENTILES = {"p50": 0.50, "p75": 0.75, "p90": 0.90, "p99": 0.99, "p999": 0.999}


class LoadError(Exception):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadResult:
    generator: str
    requests: int
    failures: int
    throughput_rps: float
    latency_ms: dict[str, float]
    generator_cpu: float | None = None  # share of its CPUs the generator used while measuring


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
    total_ms = 0.0
    max_ms = 0.0
    start = math.inf
    end = -math.inf
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
    return LoadResult(
        generator="locust",
        requests=requests,
        failures=failures,
        throughput_rps=requests / elapsed if elapsed > 0 else 0.0,
        latency_ms=latency,
    )


def run_locust(scenario: Scenario, host: str, port: int, users: int, duration: float, workdir: Path,
               cpus: set[int] | None = None, keepalive: bool = True) -> LoadResult:
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = workdir / "locust"
    log = workdir / "locust.log"
    argv = locust_command(scenario, f"http://{host}:{port}", users, duration, prefix)
    env = {"WB_CLOSE": "0" if keepalive else "1"}
    try:
        code, util = run_traced(argv, log=log, timeout=duration + LOCUST_MARGIN_S, cpus=cpus, cwd=ROOT, env=env)
    except TimeoutError as exc:
        raise LoadError(str(exc)) from None
    stats = Path(f"{prefix}.json")
    if not stats.exists():
        raise LoadError(f"locust wrote no statistics (exit {code})\n{log_tail(log)}")
    return dataclasses.replace(parse_locust_json(stats), generator_cpu=util)


def run_wrk(scenario: Scenario, host: str, port: int, connections: int, duration: float, workdir: Path,
            cpus: set[int] | None = None, keepalive: bool = True) -> LoadResult:
    """One wrk run of the scenario's request (wrk scenarios have exactly one)."""
    (probe,) = scenario.probes
    try:
        result = wrk.run_wrk(host=host, port=port, path=probe.path, method=probe.method, body=probe.body,
                             close=not keepalive, connections=connections, duration=max(1, round(duration)),
                             workdir=workdir, cpus=cpus)
    except wrk.WrkError as exc:
        raise LoadError(str(exc)) from None
    return LoadResult(
        generator="wrk",
        requests=result.requests,
        failures=result.non_2xx + result.socket_errors,
        throughput_rps=result.throughput_rps,
        latency_ms=dict(result.latency_ms),
        generator_cpu=result.cpu_utilization,
    )


def measure(generator: str, scenario: Scenario, host: str, port: int, users: int, duration: float, workdir: Path,
            cpus: set[int] | None = None, keepalive: bool = True) -> LoadResult:
    run = run_wrk if generator == "wrk" else run_locust
    return run(scenario, host, port, users, duration, workdir, cpus=cpus, keepalive=keepalive)


def warm_up(scenario: Scenario, host: str, port: int, seconds: float, threads: int = 4,
            request: Callable[..., object] = get) -> int:
    """Send the scenario's requests from a few threads for ``seconds``; returns how many were sent."""
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
