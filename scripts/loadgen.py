"""Load generators. locust runs as a subprocess and is read back from its CSV.

Importing locust would monkey-patch the standard library through gevent, so
harness code never does; :func:`run_locust` builds a command line, bounds it in
time, and parses ``<prefix>_stats.csv``.
"""

from __future__ import annotations

import csv
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from loadtests.scenarios import Scenario
from scripts.procs import get, log_tail, running

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
# locust needs a moment to import and spawn before its run time starts, and a
# moment to write its CSV after; past this margin the run is cut off.
LOCUST_MARGIN_S = 30.0

PERCENTILES = {"p50": "50%", "p75": "75%", "p90": "90%", "p99": "99%", "p999": "99.9%"}


class LoadError(Exception):
    pass


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadResult:
    generator: str
    requests: int
    failures: int
    throughput_rps: float
    latency_ms: dict[str, float]


def locust_command(scenario: Scenario, url: str, users: int, duration: float, csv_prefix: Path) -> list[str]:
    return [
        sys.executable, "-m", "locust",
        "-f", str(LOCUSTFILE),
        "--headless",
        "--users", str(users),
        "--spawn-rate", str(users),  # all users within the first second
        "--run-time", f"{max(1, round(duration))}s",
        "--stop-timeout", "5",
        "--host", url,
        "--csv", str(csv_prefix),
        "--only-summary",
        "--reset-stats",  # measure from the moment every user is running
        "--loglevel", "WARNING",
        scenario.user_class,
    ]


def parse_locust_stats(path: Path) -> LoadResult:
    """The ``Aggregated`` row of locust's ``_stats.csv``."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row.get("Name") == "Aggregated":
            return LoadResult(
                generator="locust",
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                throughput_rps=float(row["Requests/s"]),
                latency_ms={
                    **{key: float(row[col]) for key, col in PERCENTILES.items() if row.get(col) not in (None, "N/A")},
                    "mean": float(row["Average Response Time"]),
                    "max": float(row["Max Response Time"]),
                },
            )
    raise LoadError(f"no Aggregated row in {path}")


def run_locust(scenario: Scenario, host: str, port: int, users: int, duration: float, workdir: Path,
               cpus: set[int] | None = None) -> LoadResult:
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = workdir / "locust"
    log = workdir / "locust.log"
    argv = locust_command(scenario, f"http://{host}:{port}", users, duration, prefix)
    with running(argv, log_path=log, cwd=ROOT, cpus=cpus) as proc:
        try:
            proc.wait(timeout=duration + LOCUST_MARGIN_S)
        except subprocess.TimeoutExpired:
            raise LoadError(f"locust did not finish within {duration + LOCUST_MARGIN_S:.0f}s") from None
    stats = Path(f"{prefix}_stats.csv")
    if not stats.exists():
        raise LoadError(f"locust wrote no statistics (exit {proc.returncode})\n{log_tail(log)}")
    return parse_locust_stats(stats)


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
