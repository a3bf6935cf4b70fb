"""wrk as the native load generator, run as a subprocess and read back from one JSON line.

locust's single process tops out near 4,400 requests/s on one core, below what the
fastest modes serve; wrk (C, event loop per thread) drives about 100,000 on one core,
so it is the generator for throughput and latency sweeps. wrk has no machine-readable
output of its own: ``loadtests/wrk_report.lua`` prints the totals and latency
percentiles as ``WORKERBENCH_WRK_JSON {...}`` from wrk's ``done()`` hook, and the
request's method, body and ``Connection: close`` come in through environment
variables, so one script serves every scenario. Load only ever goes to loopback.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from scripts.common.procs import running, tail
from scripts.load import hosts
from scripts.load.resources import run_tracing

ROOT = Path(__file__).resolve().parents[2]
LUA_SCRIPT = ROOT / "loadtests" / "wrk_report.lua"
MARKER = "WORKERBENCH_WRK_JSON "
# wrk starts at once and stops itself after -d; past this margin it is cut off.
WRK_MARGIN_S = 30.0
MISSING = "wrk not found: apt-get install wrk (Debian/Ubuntu)"
INSTALL_HINT = f"{MISSING}; using the native generator (scripts/load/engine_process.py, closed loop) instead"
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
LATENCY_KEYS = ("p50", "p75", "p90", "p99", "p999", "mean", "max")
ERROR_KEYS = ("connect", "read", "write", "status", "timeout")
BODY_FILE_NAME = "wrk-body.bin"
_METHOD = re.compile(r"[A-Z]{1,20}")

_warned = False


class WrkError(Exception):
    """wrk did not run to completion or its report could not be read; the message says why."""


@dataclass(frozen=True, kw_only=True, slots=True)
class WrkResult:
    requests: int
    duration_s: float
    throughput_rps: float
    errors: dict[str, int]  # wrk's own counters: connect, read, write, status (> 399), timeout
    non_2xx: int  # responses with status > 399 (wrk does not count 3xx as errors)
    socket_errors: int  # connect + read + write + timeout
    latency_ms: dict[str, float]  # p50, p75, p90, p99, p999, mean, max; empty when no request completed
    # (percentile, ms) from the minimum to the maximum (scripts.records.distribution's levels); () from older scripts
    spectrum_ms: tuple[tuple[float, float], ...] = ()
    cpu_utilization: float | None = None  # share of its CPUs wrk used (set by run_wrk)
    cpu_waiting: float | None = None  # share of its CPUs' time wrk spent waiting for one (set by run_wrk)


def find_wrk() -> str | None:
    """The wrk executable's path, or None: wrk is a system package, so it may be absent."""
    return shutil.which("wrk")


def warn_missing_once() -> None:
    """Print :data:`INSTALL_HINT` to stderr, once per process, so a sweep does not repeat it per cell."""
    global _warned
    if not _warned:
        _warned = True
        print(INSTALL_HINT, file=sys.stderr)


def check_loopback(host: str) -> None:
    """Refuse any host but loopback and the one the user named with ``--target``: the harness must never load a
    machine it does not own."""
    if host not in LOOPBACK_HOSTS and not hosts.allowed(host):
        raise ValueError(f"wrk only targets loopback ({', '.join(sorted(LOOPBACK_HOSTS))}) or the bench's --target, "
                         f"not {host!r}")


def url_for(host: str, port: int, path: str) -> str:
    """``http://host:port/path``, with an IPv6 literal in brackets."""
    if not path.startswith("/"):
        raise ValueError(f"path must start with '/': {path!r}")
    netloc = f"[{host}]" if ":" in host else host
    return f"http://{netloc}:{port}{path}"


def wrk_command(*, url: str, connections: int, duration: int, threads: int = 1, timeout_s: float = 10) -> list[str]:
    """wrk's argv. Percentiles come from the Lua script's done(), so ``--latency`` is not needed.

    wrk refuses fewer connections than threads, hence ``threads = min(threads, connections)``.
    """
    if connections < 1 or duration < 1 or threads < 1:
        raise ValueError(f"connections, duration and threads must be >= 1: {connections}, {duration}, {threads}")
    return [
        find_wrk() or "wrk",
        "--threads", str(min(threads, connections)),
        "--connections", str(connections),
        "--duration", f"{duration}s",
        "--timeout", f"{timeout_s:g}s",
        "--script", str(LUA_SCRIPT),
        url,
    ]


def wrk_env(*, method: str, body: bytes, close: bool, workdir: Path,
            headers: Sequence[tuple[str, str]] = ()) -> dict[str, str]:
    """The ``WB_*`` variables the Lua script reads (every one always set, so none leaks in from outside).

    The body goes through a file in ``workdir`` because environment values cannot hold
    arbitrary bytes and are limited in size.
    """
    if not _METHOD.fullmatch(method):
        raise ValueError(f"method must be an upper-case token: {method!r}")
    body_file = ""
    if body:
        workdir.mkdir(parents=True, exist_ok=True)
        path = workdir / BODY_FILE_NAME
        path.write_bytes(body)
        body_file = str(path.resolve())
    return {"WB_METHOD": method, "WB_BODY_FILE": body_file, "WB_CLOSE": "1" if close else "0",
            "WB_HEADERS": "\n".join(f"{name}: {value}" for name, value in headers)}


def parse_wrk_output(stdout: str) -> WrkResult:
    """Read the report line that ``wrk_report.lua`` prints; wrk's human-readable text around it is ignored."""
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith(MARKER)), None)
    if line is None:
        raise WrkError(f"wrk printed no {MARKER.strip()} line; output ends with:\n{tail(stdout)}")
    try:
        data = json.loads(line[len(MARKER):])
        requests = int(data["requests"])
        duration_s = int(data["duration_us"]) / 1e6
        errors = {key: int(data["errors"][key]) for key in ERROR_KEYS}
        raw_latency = data["latency_us"]
        latency_ms = {key: float(raw_latency[key]) / 1000.0 for key in LATENCY_KEYS} if requests else {}
        spectrum = tuple((float(level), float(us) / 1000.0) for level, us in raw_latency.get("spectrum") or ())
    except (ValueError, KeyError, TypeError) as exc:
        raise WrkError(f"unreadable wrk report ({exc!r}): {line}") from None
    if any(not math.isfinite(v) for v in latency_ms.values()):
        raise WrkError(f"non-finite latency in wrk report: {line}")
    return WrkResult(
        requests=requests,
        duration_s=duration_s,
        throughput_rps=requests / duration_s if duration_s > 0 else 0.0,
        errors=errors,
        non_2xx=errors["status"],
        socket_errors=errors["connect"] + errors["read"] + errors["write"] + errors["timeout"],
        latency_ms=latency_ms,
        spectrum_ms=spectrum,
    )


def _prepare(*, host: str, port: int, path: str, method: str, body: bytes, close: bool, connections: int,
             duration: int, workdir: Path, threads: int, headers: Sequence[tuple[str, str]] = ()
             ) -> tuple[list[str], dict[str, str], Path]:
    """wrk's command line, its ``WB_*`` environment and its log's path, after the checks every run makes."""
    check_loopback(host)
    if find_wrk() is None:
        raise WrkError(MISSING)
    workdir.mkdir(parents=True, exist_ok=True)
    argv = wrk_command(url=url_for(host, port, path), connections=connections, duration=duration, threads=threads)
    env = wrk_env(method=method, body=body, close=close, workdir=workdir, headers=headers)
    return argv, env, workdir / "wrk.log"


def warm_up(*, host: str, port: int, path: str, method: str = "GET", body: bytes = b"", close: bool = False,
            connections: int, seconds: float, workdir: Path, cpus: set[int] | None = None,
            headers: Sequence[tuple[str, str]] = ()) -> None:
    """Load the server as :func:`run_wrk` would for ``seconds``, which may be under wrk's shortest run of one
    second: wrk is stopped then, since a warm-up's figures are not read. (Rounding a 0.5 s warm-up up to
    wrk's second cost half a second a cell, a minute and a half of a default run.)"""
    argv, env, log = _prepare(host=host, port=port, path=path, method=method, body=body, close=close,
                              connections=connections, duration=max(1, math.ceil(seconds)), workdir=workdir,
                              threads=1, headers=headers)
    with running(argv, log_path=log, cwd=ROOT, cpus=cpus, env={**os.environ, **env}) as proc:
        try:
            code = proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return  # still loading when the warm-up ends: as it should be
    if code != 0:
        raise WrkError(f"wrk exited with code {code} during the warm-up\n{tail(log.read_text(errors='replace'))}")


def run_wrk(*, host: str, port: int, path: str, method: str = "GET", body: bytes = b"", close: bool = False,
            connections: int, duration: int, workdir: Path, cpus: set[int] | None = None,
            threads: int = 1, headers: Sequence[tuple[str, str]] = ()) -> WrkResult:
    """Run wrk against ``host:port`` for ``duration`` s with ``connections`` closed-loop connections.

    wrk runs in a process group of its own (:func:`scripts.common.procs.running`), bounded to
    ``duration`` + 30 s, and is read back from ``workdir/wrk.log``.
    """
    argv, env, log = _prepare(host=host, port=port, path=path, method=method, body=body, close=close,
                              connections=connections, duration=duration, workdir=workdir, threads=threads,
                              headers=headers)
    limit = duration + WRK_MARGIN_S
    try:
        code, trace = run_tracing(argv, log=log, timeout=limit, cpus=cpus, cwd=ROOT, env=env)
    except TimeoutError as exc:
        raise WrkError(str(exc)) from None
    text = log.read_text(errors="replace")
    if code != 0:
        raise WrkError(f"wrk exited with code {code}\n{tail(text)}")
    return dataclasses.replace(parse_wrk_output(text), cpu_utilization=trace.utilization(),
                               cpu_waiting=trace.waiting())
