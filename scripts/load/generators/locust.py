"""locust: the generator for user scenarios (a weighted mix of requests, think times), run as a subprocess.

Importing locust would monkey-patch the standard library through gevent, so harness code never does:
:meth:`Locust.run` builds a command line, bounds it in time, and parses the file that ``--json-file``
writes at the end of the run. That file holds the final counts and each endpoint's latency histogram.
(The ``--csv`` stats file is a periodic snapshot and can miss the last second of a run, which on a
short run is most of it.) One locust process tops out near 4,400 requests/s on one core, so it is
the default only for scenarios the single-request generators cannot express.

Distributed (``--locust-workers N``, ``--locust-expect-workers M``): the run becomes a master plus N worker
processes on this host (in the master's process group, so the CPU trace sees them all: :meth:`Distribution.command`)
and M workers started by hand on other hosts (``locust --worker --master-host ...``, see the README's "Two
machines"). The master waits for all N + M to join, at most ``--locust-join-wait`` seconds;
past that it gives up, and the cell fails naming how many joined. Results come from the master's JSON, which
sums every worker's counts and histograms.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import math
import re
import shlex
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from loadtests.locust_cpu import ENV_FILE as WORKER_CPU_FILE
from loadtests.locust_cpu import SAMPLE_S
from loadtests.scenarios import Scenario
from scripts.common.procs import free_port, get, log_tail
from scripts.load.generators.base import Generator, Load, LoadError, LoadResult
from scripts.load.histogram import PERCENTILES
from scripts.load.resources import run_tracing
from scripts.records import distribution
from scripts.records.records import GENERATOR_BOUND, wanted_more

ROOT = Path(__file__).resolve().parents[3]
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
# locust needs a moment to import and spawn before its run time starts, and a
# moment to write its JSON after; past this margin the run is cut off.
LOCUST_MARGIN_S = 30.0
DEFAULT_MASTER_PORT = 5557  # locust's own default: remote workers find the master there without --master-port
DEFAULT_JOIN_WAIT_S = 30


@dataclass(frozen=True, kw_only=True, slots=True)
class Distribution:
    """A locust master with ``local`` forked workers and ``remote`` workers it waits for."""

    local: int = 0
    remote: int = 0
    bind: str = "127.0.0.1"  # where the master listens for workers
    port: int = 0  # 0: a free port for every run (only local workers need to find it)
    join_wait_s: int = DEFAULT_JOIN_WAIT_S

    @property
    def expected(self) -> int:
        return self.local + self.remote

    def command(self, master: list[str], port: int) -> list[str]:
        """``master`` (a one-process locust command line) as a master on ``port``, and its local workers.

        The local workers are one ``locust --worker --processes N`` started by a shell that then becomes the
        master (exec), so all of them share one process group: the CPU trace sees every one and stopping the
        group stops them all. (The master's own ``--processes`` cannot wait for remote workers: it sets
        ``--expect-workers`` to the processes it forks.)"""
        master = [*master[:-1], "--master", "--expect-workers", str(self.expected),
                  "--expect-workers-max-wait", str(self.join_wait_s), "--master-bind-host", self.bind,
                  "--master-bind-port", str(port), "--loglevel", "INFO", master[-1]]
        if not self.local:
            return master
        # The workers dial the master's address; a wildcard bind is reached on loopback.
        dial = {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "::": "::1"}.get(self.bind, self.bind)
        worker = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--worker", "--master-host", dial,
                  "--master-port", str(port), "--loglevel", "INFO"]
        if self.local > 1:
            worker += ["--processes", str(self.local)]
        return ["sh", "-c", f"{shlex.join(worker)} & exec {shlex.join(master)}"]


def joined(log_text: str) -> int:
    """How many workers the master's log last said had joined ("N workers connected", "N of M connected")."""
    counts = [int(a or b) for a, b in re.findall(r"(\d+) workers connected|(\d+) of \d+ connected", log_text)]
    return counts[-1] if counts else 0


def hot_workers(samples: Sequence[Sequence[Any]], window: tuple[float, float] | None, expected: int,
                bound: float = GENERATOR_BOUND) -> str | None:
    """The workers that wanted more than ``bound`` of a CPU while locust measured (``window``, the master's wall
    clock; None: the whole run), in words. ``samples`` are ``loadtests.locust_cpu``'s reports: [arrival, worker,
    percent of one CPU used, percent of the time waiting for one (None where unknown)]."""
    used: dict[str, list[float]] = {}
    waited: dict[str, list[float]] = {}
    for at, node, cpu, wait in samples:
        # A report covers the SAMPLE_S before it arrived: the first whole one inside the window counts.
        if window is None or window[0] + SAMPLE_S <= float(at) <= window[1] + SAMPLE_S:
            used.setdefault(str(node), []).append(float(cpu) / 100)
            waited.setdefault(str(node), []).append(float(wait or 0.0) / 100)
    demand = {node: (sum(used[node]) / len(used[node]), sum(waited[node]) / len(waited[node])) for node in used}
    hot = sorted((u + w, u, w) for u, w in demand.values() if u + w > bound)
    if not hot:
        return None
    _, u, w = hot[-1]
    return (f"locust: {len(hot)} of {expected} workers wanted over {bound:.0%} of a CPU while measuring (busiest: "
            f"{u:.0%} used, {w:.0%} waiting for a CPU)")


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
    latency = ({key: distribution.percentile_of(histogram, fraction) for key, fraction in PERCENTILES.items()}
               if requests else {})
    if requests:
        latency.update(mean=round(total_ms / requests, 3), max=round(max_ms, 3))
    return LoadResult(generator="locust", requests=requests, failures=failures,
                      throughput_rps=requests / elapsed if elapsed > 0 else 0.0, latency_ms=latency,
                      latency_histogram=histogram)


def measured_window(path: Path) -> tuple[float, float] | None:
    """The wall-clock interval of locust's counted requests (first start to last request), from its JSON."""
    entries = json.loads(path.read_text())
    spans = [(float(e["start_time"]), float(e["last_request_timestamp"])) for e in entries
             if isinstance(e, dict) and e.get("num_requests") and e.get("last_request_timestamp")]
    if not spans:
        return None
    return min(s for s, _ in spans), max(e for _, e in spans)


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
    distribution: Distribution | None = None  # None: one process

    def available(self) -> bool:
        return importlib.util.find_spec("locust") is not None

    def can_drive(self, scenario: Scenario) -> bool:
        return True

    def run(self, load: Load) -> LoadResult:
        load.workdir.mkdir(parents=True, exist_ok=True)
        prefix, log = load.workdir / "locust", load.workdir / "locust.log"
        argv = locust_command(load.scenario, f"http://{load.host}:{load.port}", load.connections, load.duration,
                              prefix)
        dist, timeout, port = self.distribution, load.duration + LOCUST_MARGIN_S, 0
        if dist is not None:
            port = dist.port or free_port(dist.bind if dist.bind != "*" else "0.0.0.0")
            argv = dist.command(argv, port)
            timeout += dist.join_wait_s
        env = {"WB_CLOSE": "0" if load.keepalive else "1", "WB_SCENARIO_SOURCE": load.scenario.source}
        cpu_file = load.workdir / "workers-cpu.json"  # the master writes its workers' CPU reports there
        cpu_file.unlink(missing_ok=True)
        if dist is not None:
            env[WORKER_CPU_FILE] = str(cpu_file)
        try:
            code, trace = run_tracing(argv, log=log, timeout=timeout, cpus=set(load.cpus) if load.cpus else None,
                                      cwd=ROOT, env=env)
        except TimeoutError as exc:
            raise LoadError(str(exc)) from None
        stats = Path(f"{prefix}.json")
        if not stats.exists():
            raise LoadError(self._no_stats(code, log, port))
        # Over the interval locust measured: a master waiting for its workers, and every process importing and
        # spawning users, are idle or busy in ways the measured interval is not.
        window = measured_window(stats)
        util = trace.utilization_between(*window) if window else None
        if util is None:
            util = trace.utilization()
        hot = None
        if dist is not None and cpu_file.exists():
            hot = hot_workers(json.loads(cpu_file.read_text()), window, dist.expected)
        waited = trace.waiting_between(*window) if window else trace.waiting()
        hot = hot or wanted_more("locust", util, waited)
        return dataclasses.replace(parse_locust_json(stats), generator_cpu=util, generator_warning=hot)

    def _no_stats(self, code: int, log: Path, port: int) -> str:
        dist = self.distribution
        text = log.read_text(errors="replace") if log.exists() else ""
        if dist is not None and "Gave up waiting for workers" in text:
            return (f"locust: {joined(text)} of {dist.expected} workers joined the master within {dist.join_wait_s}s "
                    f"({dist.local} started here, {dist.remote} expected from other hosts; "
                    f"master at {dist.bind}:{port}); no load was sent\n{log_tail(log)}")
        return f"locust wrote no statistics (exit {code})\n{log_tail(log)}"

    def warm_up(self, load: Load) -> None:
        warm_up_threads(load.scenario, load.host, load.port, load.duration, threads=min(load.connections, 4))


LOCUST = Locust()


# command line (scripts.plan.plan adds these to the bench's) ----------------------------------------------------------


def _bind(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep:
        return value.strip("[]"), 0
    if not host or not port.isdigit():
        raise argparse.ArgumentTypeError(f"expected ADDRESS or ADDRESS:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("locust distributed (user scenarios; see the README's \"Two machines\")")
    g.add_argument("--locust-workers", type=int, default=0,
                   help="run locust as a master plus this many worker processes on this host (default: one process)")
    g.add_argument("--locust-expect-workers", type=int, default=0,
                   help="also wait for this many workers started on other hosts (locust --worker --master-host ...)")
    g.add_argument("--locust-master-bind", type=_bind,
                   help="ADDRESS[:PORT] the master listens on for workers (default 127.0.0.1 and a free port; "
                   f"{DEFAULT_MASTER_PORT} when workers come from other hosts)")
    g.add_argument("--locust-join-wait", type=int, default=DEFAULT_JOIN_WAIT_S,
                   help="seconds the master waits for its workers before the cell fails (default %(default)s)")


def distribution_from_args(parser: argparse.ArgumentParser, args: argparse.Namespace) -> Distribution | None:
    """The distribution the command line asks for, None for one process; refuses what cannot run."""
    for option, value, least in (("--locust-workers", args.locust_workers, 0),
                                 ("--locust-expect-workers", args.locust_expect_workers, 0),
                                 ("--locust-join-wait", args.locust_join_wait, 1)):
        if value < least:
            parser.error(f"{option} must be at least {least}")
    if not (args.locust_workers or args.locust_expect_workers):
        if args.locust_master_bind:
            parser.error("--locust-master-bind needs --locust-workers or --locust-expect-workers")
        return None
    host, port = args.locust_master_bind or ("127.0.0.1", 0)
    if args.locust_expect_workers and not port:
        port = DEFAULT_MASTER_PORT
    return Distribution(local=args.locust_workers, remote=args.locust_expect_workers, bind=host, port=port,
                        join_wait_s=args.locust_join_wait)


def distributed(gens: dict[str, Generator], dist: Distribution | None) -> dict[str, Generator]:
    """``gens`` with its locust entry running as ``dist`` says (unchanged when there is none)."""
    current = gens.get(LOCUST.name)
    if dist is None or not isinstance(current, Locust):
        return gens
    return {**gens, LOCUST.name: dataclasses.replace(current, distribution=dist)}
