"""An open-loop HTTP load generator that measures latency against offered load.

Why: a closed-loop generator (each connection sends its next request only after
the previous answer, as locust's users and plain wrk do) stops sending while the
server stalls, so only the few requests in flight see the stall and the
percentiles hide it. This is "coordinated omission" (Gil Tene): the generator
coordinates with the server and omits exactly the samples that would show the
queue.

Method: ``python -m scripts.load.engine_process --url http://127.0.0.1:PORT/path --rate R
--duration S --out result.json``. Request ``i`` is due at ``t0 + i/R`` whatever
the server does. A scheduler puts each request in a FIFO queue at its due time;
a pool of ``--connections`` HTTP/1.1 keep-alive connections takes them in order.
Each request's latency is measured from its *due* time to the last byte of its
answer, so time spent waiting for a free connection (because the server has not
answered the earlier ones) counts, exactly as it would for a user who arrived at
that moment. This is the correction wrk2 applies and HdrHistogram's
``recordValueWithExpectedInterval`` approximates. The uncorrected latency, from
the moment a connection took the request (connect, if any, plus send and
answer), is reported beside it: the gap between the two is the queueing a
closed-loop measurement leaves out.

``--closed-loop`` runs the classic closed loop instead (N connections back to
back, no schedule, as wrk does): the project's native generator for throughput,
as fast as wrk from one core (``python -m scripts.genbench`` measures the ratio),
for machines without wrk. Both loops are one engine (:mod:`scripts.load.engine`) with
two schedules, and the result carries wrk's report fields too (``requests``,
``measured_s``, ``throughput_rps``, ``errors`` by kind, ``non_2xx``,
``latency_ms``). ``--close`` sends ``Connection: close``: a new connection per
request, in either loop.

What to trust and what not:

* The scheduler wakes on a Linux ``timerfd`` set to the next due time
  (``CLOCK_MONOTONIC``, the clock of ``time.monotonic``), which the event loop
  polls beside the sockets: wake-ups are accurate to tens of microseconds
  without spinning, where the loop's own timers round to whole milliseconds.
  It enqueues every request due when it wakes. Its lateness is part of the
  corrected latency, so it is reported: ``scheduler_lag_ms`` and
  ``generator_behind_s`` (the largest lag); a p99 lag over 5 ms sets
  ``generator_kept_up`` false, with a warning. An overloaded event loop
  handles the timer late just as it reads sockets late, so the lag tracks the
  generator's own delay. It is a lower bound, though: a generator that runs
  intermittently (sharing its core) also releases requests in bursts, and the
  queueing for connections that follows looks exactly like server queueing.
  Pin the generator to a core of its own. The lag also misses a generator that
  is out of CPU: the pool caps the work per loop turn at one answer per
  connection, so the loop keeps waking on time while requests pile up in the
  queue. So the run also reports ``queue_wait_ms`` (due time to a connection
  taking the request), ``generator_cpu_util`` (CPU seconds per second of run)
  and ``generator_runqueue_frac`` (share of the run the generator was runnable
  but waiting for its CPU, from ``/proc/self/schedstat``: other processes on
  its core). Requests waiting over 5 ms at p99 while the generator's demand
  (the sum of those two shares) exceeded 80% of a CPU set
  ``generator_kept_up`` false with a warning. High CPU alone is no proof: a
  busy loop handles more events per wake-up and may keep up.
* Latencies go into log-linear histograms (:mod:`scripts.load.histogram`): exact to
  the microsecond below 2.048 ms, within 0.1% above; max and mean are exact.
  Percentiles are nearest rank over *completed* requests: connect, read and
  write errors and timeouts are counted in ``errors``, not in the percentiles.
  A non-2xx answer is completed and counted in ``errors["status"]``. The
  result holds each histogram (``latency_histogram``: its buckets, to merge
  runs, and its percentile spectrum), not the list of every latency, so a
  minute at 100,000 requests/s costs no memory to speak of.
* Every run is bounded: the schedule ends after ``--duration``; what is still
  queued or in flight then gets ``--timeout`` more seconds, and anything left is
  a timeout. A request also times out ``--timeout`` after its connection took it
  (found by a sweep every 50 ms, or a tenth of the timeout if shorter, so up to
  that much late: a timer per request would cost more than the request).
* Loopback only: any host but 127.0.0.1, ::1 and localhost is refused (exit 2).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import MISSING, dataclass, field, fields
from pathlib import Path
from time import monotonic, process_time
from typing import Any, cast
from urllib.parse import urlsplit

import uvloop

from scripts.common.procs import log_tail, running, schedstat_wait_s
from scripts.load import LoadError
from scripts.load.engine import ClosedSchedule, Engine, OpenSchedule
from scripts.load.histogram import PERCENTILES, Histogram, percentile
from scripts.load.hosts import address_of, allowed

ROOT = Path(__file__).resolve().parents[2]

LOOPBACK_HOSTS = {"127.0.0.1": "127.0.0.1", "::1": "::1", "localhost": "127.0.0.1"}
EXIT_REFUSED = 2
DEFAULT_CONNECTIONS = 64
DEFAULT_TIMEOUT_S = 10.0
# run_openloop allows the process this long beyond duration + timeout to start and write its file.
MARGIN_S = 30.0
# A p99 scheduler lag past this means the generator itself delays requests (an unloaded loop on its
# own core wakes within ~0.1 ms), and the warning says so.
BEHIND_WARN_S = 0.005
# Requests waiting for connections while the generator wanted more CPU than this (used, plus waited
# for on the run queue; share of one core) suggest the generator, not the server, held them.
BUSY_CPU = 0.8


# --- statistics -----------------------------------------------------------------------------------------------------


def summarize_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50 ... p999, max and mean of latencies given in seconds, in milliseconds; {} for none."""
    if not seconds:
        return {}
    ordered = sorted(seconds)
    out = {key: round(percentile(ordered, fraction) * 1000.0, 3) for key, fraction in PERCENTILES.items()}
    out["max"] = round(ordered[-1] * 1000.0, 3)
    out["mean"] = round(math.fsum(ordered) / len(ordered) * 1000.0, 3)
    return out


# --- the endpoint ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Endpoint:
    url: str
    address: str  # the IP connected to
    port: int
    host_header: str
    path: str  # path and query string


def parse_endpoint(url: str) -> Endpoint:
    """Split ``url``; raises ValueError unless it is http:// on a loopback host."""
    parts = urlsplit(url)
    if parts.scheme != "http":
        raise ValueError(f"only http:// URLs are supported, not {url!r}")
    host = (parts.hostname or "").lower()
    if host not in LOOPBACK_HOSTS and not allowed(host):
        # Checked on the literal name, before any resolution: nothing leaves the machine.
        raise ValueError(f"refusing host {host!r}: the generator only loads loopback "
                         f"({', '.join(LOOPBACK_HOSTS)})")
    try:
        port = parts.port or 80
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}") from exc
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    bracketed = f"[{host}]" if ":" in host else host
    # localhost is pinned to 127.0.0.1 rather than resolved, so a hosts file cannot send us elsewhere.
    address = LOOPBACK_HOSTS.get(host) or address_of(host)
    return Endpoint(url=url, address=address, port=port, host_header=f"{bracketed}:{port}", path=path)


def build_request(target: Endpoint, method: str, body: bytes, close: bool,
                  headers: Sequence[tuple[str, str]] = ()) -> bytes:
    """The request's bytes, built once: every request of a run is identical. ``headers`` (a user's scenario)
    replace the defaults of the same name."""
    lines = [f"{method} {target.path} HTTP/1.1", f"Host: {target.host_header}", "User-Agent: workerbench-openloop",
             "Accept: */*"]
    if close:
        lines.append("Connection: close")
    if body or method not in ("GET", "HEAD"):
        lines += ["Content-Type: application/octet-stream", f"Content-Length: {len(body)}"]
    given = {name.lower() for name, _ in headers} - {"host", "content-length", "connection"}
    lines = [ln for ln in lines if ln.split(":", 1)[0].lower() not in given]
    lines += [f"{name}: {value}" for name, value in headers if name.lower() in given]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --- the generator --------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Config:
    target: Endpoint
    rate: float | None  # None: closed loop
    duration: float
    connections: int
    method: str
    body: bytes
    close: bool
    timeout: float
    headers: tuple[tuple[str, str], ...] = ()


async def generate(cfg: Config) -> dict[str, Any]:
    """Run the load described by ``cfg`` on the running event loop; returns the result document."""
    # No collections while measuring: a pause would show up as server latency. Reference counting
    # frees what the run discards (closing a connection drops its parser, which held the slot), and
    # the process exits right after.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        return await _run(cfg)
    finally:
        gc.enable()


async def _run(cfg: Config) -> dict[str, Any]:
    cpu0, runq0, wall0 = process_time(), schedstat_wait_s(), monotonic()
    # Open loop: a moment to arm the timer before the first due time.
    t0 = monotonic() + (0.01 if cfg.rate is not None else 0.0)
    end = t0 + cfg.duration
    schedule: OpenSchedule | ClosedSchedule
    if cfg.rate is not None:
        # i/R < S for i = 0 .. count-1 (round: 200 * 2.0 must give 400, not 401).
        count = math.ceil(round(cfg.rate * cfg.duration, 9))
        schedule = OpenSchedule(t0, count, 1.0 / cfg.rate)
    else:
        schedule = ClosedSchedule(end)
    engine = Engine(address=cfg.target.address, port=cfg.target.port,
                    payload=build_request(cfg.target, cfg.method, cfg.body, cfg.close, cfg.headers),
                    connections=cfg.connections, close=cfg.close, timeout=cfg.timeout, schedule=schedule,
                    open_loop=cfg.rate is not None, origin=t0)
    loop = asyncio.get_running_loop()
    handler = loop.get_exception_handler()
    loop.set_exception_handler(engine.on_loop_error)
    try:
        # Outstanding requests get `timeout` beyond the end of the schedule, then are cut off.
        await engine.run(end + cfg.timeout)
    finally:
        loop.set_exception_handler(handler)
    ended = monotonic()
    wall = max(1e-9, ended - wall0)
    cpu_util = (process_time() - cpu0) / wall
    runq1 = schedstat_wait_s()
    runq_frac = None if runq0 is None or runq1 is None else (runq1 - runq0) / wall
    if cfg.rate is None:
        count = engine.taken
    errors = engine.errors
    # Whatever was scheduled and neither answered nor failed was still queued or in flight at the cut-off.
    errors["timeout"] += count - engine.completed - sum(errors[k] for k in ("connect", "read", "write", "timeout"))
    lags = schedule.lags if isinstance(schedule, OpenSchedule) else None
    return _report(cfg, engine, lags, count, t0=t0, measured=max(1e-9, ended - t0), cpu_util=cpu_util,
                   runq_frac=runq_frac)


def _generator_warnings(cfg: Config, lag: dict[str, float], wait: dict[str, float], cpu_util: float,
                        runq_frac: float | None) -> tuple[list[str], bool | None]:
    """Warnings about the generator itself, and whether it kept up (None in closed loop)."""
    if cfg.rate is None:
        return [], None
    warnings: list[str] = []
    on_time = bool(lag) and lag["p99"] / 1000.0 <= BEHIND_WARN_S
    if not on_time:
        warnings.append(
            f"the generator fell behind its schedule (scheduler lag p99 {lag.get('p99')} ms, "
            f"max {lag.get('max')} ms): it offered the load late and in bursts, and the corrected "
            "latency includes that delay")
    demand = cpu_util + (runq_frac or 0.0)
    busy = bool(wait) and wait["p99"] / 1000.0 > BEHIND_WARN_S and demand > BUSY_CPU
    if busy:
        warnings.append(
            f"requests waited for connections (p99 {wait['p99']} ms) while the generator used "
            f"{cpu_util:.0%} of a CPU and waited {runq_frac or 0.0:.0%} of the time for one: the "
            "generator, not only the server, may have held them")
    return warnings, on_time and not busy


def _answered_on_schedule(engine: Engine, duration: float) -> int:
    """Answers (any status) that came while the schedule ran: what an open-loop server served at the offered
    rate. The backlog a server that fell behind answers in the drain after it is not counted over the
    schedule's seconds (a 100 req/s pool offered 200 would read about 180), and a server that keeps up loses
    only its last requests' latency (20 ms of 2 s on io: 1%)."""
    timeline = engine.timeline()
    steps = round(duration / timeline["step_s"])  # the timeline's origin is the schedule's start
    answered = timeline["ok"][:steps] + timeline["failed_by"]["5xx"][:steps] + timeline["failed_by"]["wrong"][:steps]
    return int(sum(answered))


def _report(cfg: Config, engine: Engine, lags: Histogram | None, count: int, *, t0: float, measured: float,
            cpu_util: float, runq_frac: float | None) -> dict[str, Any]:
    lag = lags.summary_ms() if lags is not None else {}
    wait = engine.wait.summary_ms()
    warnings, kept_up = _generator_warnings(cfg, lag, wait, cpu_util, runq_frac)
    errors = engine.errors
    failed = sum(errors[k] for k in ("connect", "read", "write", "timeout"))
    if failed:
        warnings.append(f"{failed} of {count} requests failed: percentiles cover completed requests only")
    # No schedule in closed loop: latency is from the actual send, and there is one histogram.
    latency = engine.corrected if cfg.rate is not None else engine.uncorrected
    return {
        "mode": "open" if cfg.rate is not None else "closed",
        "url": cfg.target.url,
        "method": cfg.method,
        "connections": cfg.connections,
        "close": cfg.close,
        "offered_rate": cfg.rate,
        "duration_s": cfg.duration,
        "timeout_s": cfg.timeout,
        "scheduled": count,
        "sent": engine.sent,
        "completed": engine.completed,
        "ok": engine.ok,
        "unsent": count - engine.taken,
        "retries": engine.retries,
        "connects": engine.connects,
        "errors": errors,
        "achieved_rate": round(_answered_on_schedule(engine, cfg.duration) / cfg.duration if cfg.rate is not None
                               else engine.completed / cfg.duration, 3),
        "elapsed_s": round(max(0.0, engine.last_done - t0), 6),
        "generator_behind_s": None if lags is None or not lags.count else lags.max / 1e6,
        "generator_kept_up": kept_up,
        "generator_cpu_util": round(cpu_util, 3),
        "generator_runqueue_frac": None if runq_frac is None else round(runq_frac, 3),
        "scheduler_lag_ms": lag,
        "queue_wait_ms": wait if cfg.rate is not None else {},
        "latency_ms": latency.summary_ms(),
        "latency_uncorrected_ms": engine.uncorrected.summary_ms(),
        "warnings": warnings,
        # wrk's report fields, so either generator's result reads the same.
        "requests": engine.completed,
        "measured_s": round(measured, 6),
        "throughput_rps": round(engine.completed / measured, 3),
        "non_2xx": errors["status"],
        "socket_errors": failed,
        "latency_histogram": latency.to_json(),
        "latency_uncorrected_histogram": engine.uncorrected.to_json() if cfg.rate is not None else {},
        # Per-0.1 s counts of 2xx answers and of failures, from the schedule's start (engine.timeline()).
        "timeline": engine.timeline(),
    }


# --- command line ---------------------------------------------------------------------------------------------------


def _positive(kind: type[int] | type[float]) -> Callable[[str], Any]:
    def parse(text: str) -> int | float:
        value = kind(text)
        if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"must be a positive number, not {text!r}")
        return value

    return parse


def _header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c in text for c in "\r\n\0"):
        raise argparse.ArgumentTypeError(f"expected 'NAME: VALUE', not {text!r}")
    return name.strip(), value.strip()


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scripts.load.engine_process",
                                description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--url", required=True, help="http://127.0.0.1:PORT/path (loopback only)")
    p.add_argument("--rate", type=_positive(float), help="requests per second on a fixed schedule (open loop)")
    p.add_argument("--duration", type=_positive(float), required=True, help="seconds of schedule")
    p.add_argument("--connections", type=_positive(int), default=DEFAULT_CONNECTIONS,
                   help="connection pool size (default %(default)s)")
    p.add_argument("--method", choices=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], default="GET")
    p.add_argument("--header", action="append", default=[], type=_header, metavar="'NAME: VALUE'",
                   help="an extra header field (repeatable); replaces a default of the same name")
    p.add_argument("--body-file", type=Path, help="request body, sent as application/octet-stream")
    p.add_argument("--close", action="store_true", help="send Connection: close: a new connection per request")
    p.add_argument("--timeout", type=_positive(float), default=DEFAULT_TIMEOUT_S,
                   help="seconds a request may take, and outstanding requests get after the schedule "
                        "(default %(default)s)")
    p.add_argument("--closed-loop", action="store_true",
                   help="no schedule: each connection sends back to back, as wrk does (the native generator)")
    p.add_argument("--out", type=Path, required=True, help="where to write the result JSON")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    try:
        target = parse_endpoint(args.url)
    except ValueError as exc:
        print(f"openloop: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    if args.closed_loop == (args.rate is not None):
        p.error("give either --rate (open loop) or --closed-loop")
    body = args.body_file.read_bytes() if args.body_file else b""
    cfg = Config(target=target, rate=args.rate, duration=args.duration, connections=args.connections,
                 method=args.method, body=body, close=args.close, timeout=args.timeout, headers=tuple(args.header))
    # Last-resort bound: if the loop ever wedges, SIGALRM's default action ends the process.
    signal.alarm(math.ceil(cfg.duration + 2 * cfg.timeout + 10))
    result = uvloop.run(generate(cfg))
    signal.alarm(0)
    out: Path = args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    # One field per line, each on one line: indent=2 would put every histogram bucket on lines of its own.
    tmp.write_text("{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in result.items()) + "\n}\n")
    os.replace(tmp, out)  # atomic: a reader never sees half a file
    summary = result["latency_ms"]
    print(f"openloop: {result['mode']} loop, {result['completed']}/{result['scheduled']} completed, "
          f"{result['achieved_rate']} req/s, p50 {summary.get('p50')} ms, p99 {summary.get('p99')} ms, "
          f"errors {result['errors']}")
    for warning in result["warnings"]:
        print(f"openloop: warning: {warning}")
    return 0


# --- harness API ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class OpenLoopResult:
    mode: str  # "open" or "closed"
    url: str
    method: str
    connections: int
    close: bool
    offered_rate: float | None  # None in closed loop
    duration_s: float
    timeout_s: float
    scheduled: int  # requests due in the schedule (closed loop: requests started)
    sent: int
    completed: int  # full answers, any status
    ok: int  # 2xx answers
    unsent: int  # still queued at the cut-off (counted as timeouts too)
    retries: int
    connects: int
    errors: dict[str, int]  # connect, read, timeout, status (non-2xx)
    achieved_rate: float  # completed / duration_s (open loop: answers that came while the schedule ran)
    elapsed_s: float
    generator_behind_s: float | None  # largest scheduler lag; None in closed loop
    generator_kept_up: bool | None  # no warning about the generator itself; None in closed loop
    generator_cpu_util: float  # CPU seconds the generator used per second of run
    generator_runqueue_frac: float | None  # share of the run spent waiting for a CPU; None off Linux
    scheduler_lag_ms: dict[str, float]
    queue_wait_ms: dict[str, float]  # due time to a connection taking the request; {} in closed loop
    # From the due time (closed loop: from when the connection took the request). Either way a
    # connect, if any, is included: wrk starts its clock after connecting, so with a new connection
    # per request its latencies leave out the handshake that these include.
    latency_ms: dict[str, float]
    latency_uncorrected_ms: dict[str, float]  # from when a connection took the request
    warnings: tuple[str, ...]
    # The fields of wrk's report (scripts.load.wrk_process.WrkResult), so the two read alike.
    requests: int = 0  # completed requests
    measured_s: float = 0.0  # from the start to the end of the run, as measured
    throughput_rps: float = 0.0  # requests / measured_s
    non_2xx: int = 0  # same as errors["status"]
    socket_errors: int = 0  # connect + read + write + timeout
    # scripts.load.histogram.Histogram.to_json() of latency_ms (microseconds, with its percentile spectrum),
    # and of latency_uncorrected_ms in open loop ({} in closed loop, where the two are one).
    latency_histogram: dict[str, Any] = field(default_factory=dict)
    latency_uncorrected_histogram: dict[str, Any] = field(default_factory=dict)
    # {"origin_monotonic", "step_s", "ok": [...], "failed": [...]}: outcomes over time (scripts.load.engine).
    timeline: dict[str, Any] = field(default_factory=dict)

    def histogram(self) -> Histogram | None:
        """The latency histogram, to merge with other runs' or to read other percentiles; None if empty."""
        return Histogram.from_json(self.latency_histogram) if self.latency_histogram else None


def parse_result(path: Path) -> OpenLoopResult:
    """Read the JSON that ``python -m scripts.load.engine_process --out`` wrote."""
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise LoadError(f"cannot read open-loop result {path}: {exc}") from exc
    names = [f.name for f in fields(OpenLoopResult)]
    # Fields with a default were added later: a result written before them still loads.
    required = [f.name for f in fields(OpenLoopResult) if f.default is MISSING and f.default_factory is MISSING]
    if not isinstance(doc, dict) or (missing := [n for n in required if n not in doc]):
        raise LoadError(f"unexpected open-loop result in {path}: "
                        f"missing {missing if isinstance(doc, dict) else required}")
    values = {n: doc[n] for n in names if n in doc}
    values["warnings"] = tuple(values["warnings"])
    return OpenLoopResult(**values)


def openloop_command(url: str, *, duration: float, out: Path, rate: float | None = None,
                     connections: int = DEFAULT_CONNECTIONS, method: str = "GET", body_file: Path | None = None,
                     close: bool = False, timeout: float = DEFAULT_TIMEOUT_S, closed_loop: bool = False,
                     python: str = sys.executable, headers: Sequence[tuple[str, str]] = ()) -> list[str]:
    if closed_loop == (rate is not None):
        raise ValueError("give either rate (open loop) or closed_loop=True")
    argv = [python, "-m", "scripts.load.engine_process", "--url", url, "--duration", repr(float(duration)),
            "--connections", str(connections), "--method", method, "--timeout", repr(float(timeout)),
            "--out", str(out)]
    argv += ["--closed-loop"] if closed_loop else ["--rate", repr(float(cast(float, rate)))]
    if body_file is not None:
        argv += ["--body-file", str(body_file)]
    for name, value in headers:
        argv += ["--header", f"{name}: {value}"]
    if close:
        argv.append("--close")
    return argv


def run_openloop(url: str, *, duration: float, workdir: Path, rate: float | None = None,
                 connections: int = DEFAULT_CONNECTIONS, method: str = "GET", body: bytes = b"",
                 close: bool = False, timeout: float = DEFAULT_TIMEOUT_S, closed_loop: bool = False,
                 cpus: set[int] | None = None, headers: Sequence[tuple[str, str]] = ()) -> OpenLoopResult:
    """Run the generator as a subprocess (own process group, optionally pinned to ``cpus``) and parse its result.

    Files go to ``workdir``: ``openloop.json``, ``openloop.log`` and the body, if any.
    Raises ValueError for a non-loopback URL (before starting anything) and LoadError if the run fails.
    """
    parse_endpoint(url)
    workdir.mkdir(parents=True, exist_ok=True)
    out = workdir / "openloop.json"
    log = workdir / "openloop.log"
    out.unlink(missing_ok=True)  # never parse a previous run's file
    body_file = None
    if body:
        body_file = workdir / "openloop-body.bin"
        body_file.write_bytes(body)
    argv = openloop_command(url, duration=duration, out=out, rate=rate, connections=connections, method=method,
                            body_file=body_file, close=close, timeout=timeout, closed_loop=closed_loop,
                            headers=headers)
    limit = duration + timeout + MARGIN_S
    with running(argv, log_path=log, cwd=ROOT, cpus=cpus) as proc:
        try:
            code = proc.wait(timeout=limit)
        except subprocess.TimeoutExpired:
            raise LoadError(f"openloop did not finish within {limit:.0f}s\n{log_tail(log)}") from None
    if code != 0 or not out.exists():
        raise LoadError(f"openloop failed (exit {code})\n{log_tail(log)}")
    return parse_result(out)


if __name__ == "__main__":
    sys.exit(main())
