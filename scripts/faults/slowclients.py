"""Slow clients: the one way this project opens them (:func:`open_slow`: a slowloris that sends half a request,
or a non-reader that never reads its answer), the faults suite's ``slow`` fault over them (:func:`slow_clients`),
and the standalone tool ``python -m scripts.faults.slowclients`` against the pool modes.

The tool measures two cells per mode, every mode started the way the bench starts it (the registry in
:mod:`scripts.modes`, a process group of its own through :func:`scripts.common.procs.running`):

* **slowloris**: K connections each send a request line and a header and a half (:func:`open_slow`), then
  nothing; meanwhile N normal requests (each on a fresh connection, all at once)
  are timed. Reported: how many failed (error, timeout or not 200), their max and
  p99 latency. A server that holds a worker per unfinished request (gunicorn sync)
  fails them; one that parks unfinished requests (uvicorn, prefork) does not.
* **fairness**: wrk, 32 keep-alive connections on ``/io?ms=20`` (a 20 ms wait per
  request) for a few seconds: throughput, p99 and max latency. With connections
  pinned unevenly to sync workers, the p99 is the fuller worker's queue.
* **plaintext**: wrk, 32 keep-alive connections on ``/plaintext``: throughput, to
  see that fairness did not cost the fast path.

Prefork's ratios against gunicorn-sync and uvicorn come from the same run, so the
machine's noise is shared. The JSON goes to ``results/slowclients-<timestamp>.json``.
Load only ever goes to loopback; every wait is bounded.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from apps import faults as app_faults
from scripts.common.procs import free_port, get, running, wait_ready
from scripts.faults.observe import Server, load_probe, serve, under_load
from scripts.faults.settings import NEEDS_SAMPLE_APP, Case
from scripts.load.histogram import percentile
from scripts.load.wrk_process import WrkResult, find_wrk, run_wrk
from scripts.modes import MODES
from scripts.records.records import FaultRecord

ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
DEFAULT_MODES = ("prefork", "gunicorn-sync", "uvicorn", "fork")
FAIRNESS_PATH = "/io?ms=20"
SCHEMA = 1


# --- slow clients: the one way this project opens them, for the tool and the faults suite alike ---


SLOW_KINDS = ("slowloris", "nonreader")
# Non-readers ask for this much and take none of it; their receive buffer is kept tiny, so the
# server's send blocks (or queues) once its own send buffer is full.
NONREADER_KB = 2048


def open_slow(kind: str, host: str, port: int, path: str = "/plaintext") -> socket.socket | None:
    """One slow client: half a request line and headers (slowloris), or a full request it never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if kind == "nonreader":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(1.0)
        sock.connect((host, port))
        if kind == "slowloris":
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nX-Slow: ".encode())
        else:
            sock.sendall(f"GET /fault/big?kb={NONREADER_KB} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        return sock
    except OSError:
        # A server that stops accepting (its backlog full) is the measurement, not a harness failure.
        sock.close()
        return None


# --- the tool: python -m scripts.faults.slowclients ---


@dataclass(frozen=True, kw_only=True, slots=True)
class Options:
    modes: tuple[str, ...]
    half_sent: tuple[int, ...]
    normal: int
    request_timeout_s: float
    duration_s: int
    connections: int
    workers: int
    out_dir: Path


@dataclass(frozen=True, kw_only=True, slots=True)
class Slowloris:
    half_sent: int
    opened: int  # half-sent connections the server accepted into its backlog (some may be refused)
    normal: int
    failed: int
    max_s: float | None
    p99_s: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class WrkCell:
    path: str
    connections: int
    duration_s: float
    rps: float
    p99_ms: float
    max_ms: float
    socket_errors: int
    non_2xx: int


@contextmanager
def serving(mode: str, plan: Options, log_dir: Path, cpus: set[int] | None) -> Iterator[int]:
    """Start ``mode`` as the bench does, wait until it answers, yield its port; the group is stopped on exit."""
    port = free_port(HOST)
    argv = MODES[mode].argv(host=HOST, port=port, workers=plan.workers, python=sys.executable)
    log = log_dir / f"{mode}-{port}.log"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(app_faults.ENV, None)  # only the faults suite opens /fault/... (see scripts.run.cell.server_env)
    with running(argv, log_path=log, env=env, cwd=ROOT, cpus=cpus) as proc:
        wait_ready(proc, HOST, port, log_path=log, deadline_s=30)
        yield port


def _timed_get(port: int, timeout: float, latencies: list[float], failures: list[str]) -> None:
    start = time.monotonic()
    try:
        status, _, _ = get(HOST, port, "/plaintext", timeout=timeout)
    except Exception as exc:  # any failure of this one request is counted, none ends the run
        failures.append(type(exc).__name__)
        return
    if status != 200:
        failures.append(f"status {status}")
        return
    latencies.append(time.monotonic() - start)


def _open_half_sent(port: int, count: int, stack: ExitStack) -> int:
    opened = 0
    for _ in range(count):
        sock = open_slow("slowloris", HOST, port)
        if sock is not None:
            stack.callback(sock.close)
            opened += 1
    return opened


def slowloris(port: int, half_sent: int, plan: Options) -> Slowloris:
    """K half-sent requests held open while ``plan.normal`` normal requests run at once."""
    latencies: list[float] = []
    failures: list[str] = []
    with ExitStack() as stack:
        opened = _open_half_sent(port, half_sent, stack)
        time.sleep(0.2)  # the server has taken them in: accepted, and a worker has seen the bytes
        threads = [threading.Thread(target=_timed_get, args=(port, plan.request_timeout_s, latencies, failures))
                   for _ in range(plan.normal)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(plan.request_timeout_s + 5.0)
    done = len(latencies)
    return Slowloris(
        half_sent=half_sent, opened=opened, normal=plan.normal, failed=plan.normal - done,
        max_s=round(max(latencies), 4) if latencies else None,
        p99_s=round(percentile(sorted(latencies), 0.99), 4) if latencies else None,
    )


def wrk_cell(result: WrkResult, *, path: str, connections: int) -> WrkCell:
    """What this tool keeps of one of the pipeline's wrk runs."""
    return WrkCell(
        path=path, connections=connections, duration_s=result.duration_s, rps=result.throughput_rps,
        p99_ms=result.latency_ms.get("p99", 0.0), max_ms=result.latency_ms.get("max", 0.0),
        socket_errors=result.socket_errors, non_2xx=result.non_2xx,
    )


def measure_wrk(port: int, path: str, plan: Options, log_dir: Path, cpus: set[int] | None) -> WrkCell:
    """One keep-alive wrk cell through the pipeline's wrk runner (a process group of its own, bounded)."""
    workdir = log_dir / f"wrk-{port}-{path.strip('/').replace('?', '_').replace('=', '')}"
    workdir.mkdir(parents=True, exist_ok=True)
    result = run_wrk(host=HOST, port=port, path=path, connections=plan.connections, duration=plan.duration_s,
                     workdir=workdir, cpus=cpus)
    return wrk_cell(result, path=path, connections=plan.connections)


def measure_mode(mode: str, plan: Options, log_dir: Path, wrk: str | None) -> dict[str, object]:
    server_cpus, load_cpus = ({0}, {1}) if (os.cpu_count() or 1) >= 2 else (None, None)
    result: dict[str, object] = {}
    loris: dict[str, object] = {}
    for k in plan.half_sent:
        # A fresh server per K: half-sent connections still held by the last one would skew the next.
        with serving(mode, plan, log_dir, server_cpus) as port:
            loris[str(k)] = asdict(slowloris(port, k, plan))
    result["slowloris"] = loris
    if wrk is None:
        result["wrk"] = "wrk not found (apt-get install wrk): fairness and plaintext cells not measured"
        return result
    with serving(mode, plan, log_dir, server_cpus) as port:
        get(HOST, port, "/plaintext")  # warm the workers' code before the timed cells
        result["fairness"] = asdict(measure_wrk(port, FAIRNESS_PATH, plan, log_dir, load_cpus))
        result["plaintext"] = asdict(measure_wrk(port, "/plaintext", plan, log_dir, load_cpus))
    return result


def _cell(results: dict[str, dict[str, object]], mode: str, cell: str, key: str) -> float | None:
    value = results.get(mode, {}).get(cell)
    if isinstance(value, dict) and isinstance(value.get(key), (int, float)):
        return float(value[key])
    return None


def ratios(results: dict[str, dict[str, object]]) -> dict[str, float | None]:
    """prefork / other for the fairness p99 (lower is better) and the plaintext throughput (higher is better)."""
    out: dict[str, float | None] = {}
    for other in ("gunicorn-sync", "uvicorn"):
        for cell, key in (("fairness", "p99_ms"), ("fairness", "rps"), ("plaintext", "rps")):
            mine, theirs = _cell(results, "prefork", cell, key), _cell(results, other, cell, key)
            name = f"prefork/{other} {cell} {key}"
            out[name] = round(mine / theirs, 3) if mine is not None and theirs else None
    return out


def table(results: dict[str, dict[str, object]], plan: Options) -> str:
    lines = []
    head = ["mode"] + [f"K={k} failed/max s" for k in plan.half_sent]
    head += ["io rps", "io p99 ms", "io max ms", "plain rps"]
    lines.append(" | ".join(head))
    for mode, res in results.items():
        row = [mode]
        loris = res.get("slowloris", {})
        for k in plan.half_sent:
            cell = loris.get(str(k), {}) if isinstance(loris, dict) else {}
            row.append(f"{cell.get('failed')}/{plan.normal} {cell.get('max_s')}")
        for cell, key in (("fairness", "rps"), ("fairness", "p99_ms"), ("fairness", "max_ms"), ("plaintext", "rps")):
            value = _cell(results, mode, cell, key)
            row.append("-" if value is None else f"{value:.1f}")
        lines.append(" | ".join(row))
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> Options:
    p = argparse.ArgumentParser(prog="python -m scripts.faults.slowclients", description=__doc__.split("\n\n")[0])
    p.add_argument("--modes", default=",".join(DEFAULT_MODES), help="comma-separated modes (default %(default)s)")
    p.add_argument("--half-sent", default="8,64", help="half-sent connections per slowloris cell (default %(default)s)")
    p.add_argument("--normal", type=int, default=20, help="normal requests timed per slowloris cell")
    p.add_argument("--request-timeout", type=float, default=5.0, help="seconds before a normal request counts failed")
    p.add_argument("--duration", type=int, default=6, help="whole seconds of each wrk cell (default %(default)s)")
    p.add_argument("--connections", type=int, default=32, help="wrk's keep-alive connections (default %(default)s)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out", type=Path, default=ROOT / "results", help="directory for the JSON (default results/)")
    args = p.parse_args(argv)
    modes = tuple(m for m in args.modes.split(",") if m)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        p.error(f"unknown modes {unknown}; choose from {', '.join(MODES)}")
    if not 0 < args.duration <= 120 or not 0 < args.request_timeout <= 60:
        p.error("--duration must be in (0, 120] s and --request-timeout in (0, 60] s")
    half_sent = tuple(int(k) for k in args.half_sent.split(",") if k)
    if any(not 0 <= k <= 1000 for k in half_sent):
        p.error("--half-sent values must be in 0..1000")
    return Options(modes=modes, half_sent=half_sent, normal=args.normal, request_timeout_s=args.request_timeout,
                duration_s=args.duration, connections=args.connections, workers=args.workers, out_dir=args.out)


def main(argv: Sequence[str] | None = None) -> int:
    plan = parse_args(argv)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    log_dir = plan.out_dir / f"slowclients-{stamp}-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    wrk = find_wrk()
    results: dict[str, dict[str, object]] = {}
    for mode in plan.modes:
        print(f"{mode} ...", flush=True)
        try:
            results[mode] = measure_mode(mode, plan, log_dir, wrk)
        except Exception as exc:  # one mode failing to start must not lose the others' figures
            results[mode] = {"error": f"{type(exc).__name__}: {exc}"}
            print(f"{mode} failed: {exc}", file=sys.stderr)
    prefork_ratios = ratios(results)
    document = {"schema": SCHEMA, "started": stamp, "plan": {**asdict(plan), "out_dir": str(plan.out_dir)},
                "results": results, "ratios": prefork_ratios}
    out = plan.out_dir / f"slowclients-{stamp}.json"
    tmp = out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(document, indent=2))
    os.replace(tmp, out)
    print(table(results, plan))
    for name, value in prefork_ratios.items():
        print(f"{name}: {value}")
    print(f"wrote {out}")
    return 0



# --- the faults suite's slow clients: slowloris and non-readers beside steady load ---


def slow_level(case: Case, target: Server, kind: str, k: int, held: list[socket.socket]) -> dict[str, Any]:
    """Bring the slow clients up to ``k`` and measure normal requests beside them."""
    s = case.settings
    opened = 0
    while len(held) < k:
        sock = open_slow(kind, target.host, target.port, load_probe(s).path)
        if sock is None:
            break
        held.append(sock)
        opened += 1
    observed = under_load(s, case.mode, target, lambda t: None, case.workdir / f"{kind}-{k}",
                          duration=s.slow_duration)
    r = observed.result
    return {"k": k, "held": len(held), "success_pct": round(100.0 * r.ok / max(1, r.scheduled), 1),
            "p99_ms": r.latency_ms.get("p99"), "errors": r.errors}


def slow_clients(case: Case) -> FaultRecord:
    s = case.settings
    results: dict[str, list[dict[str, Any]]] = {}
    argv: tuple[str, ...] = ()
    # Non-readers ask for the sample app's 2 MiB answer: a user's page may fit in the socket buffers, and then a
    # client that never reads ties up nothing.
    skipped = {"nonreader": NEEDS_SAMPLE_APP["slow: nonreader"]} if s.request else {}
    for kind in (k for k in SLOW_KINDS if k not in skipped):
        held: list[socket.socket] = []
        try:
            with serve(s, case.mode, (), case.log, case.env) as (target, argv):
                target_lead = dataclasses.replace(s, lead_s=0.3)
                sub = dataclasses.replace(case, settings=target_lead)
                results[kind] = [slow_level(sub, target, kind, k, held) for k in s.slow_levels_for(case.mode)]
                # Workers stuck on slow clients would hold a graceful stop for its whole grace period.
                os.killpg(target.proc.pid, signal.SIGKILL)
        finally:
            for sock in held:
                sock.close()
    worst = {kind: min(r["success_pct"] for r in levels) for kind, levels in results.items()}
    verdict = "; ".join(f"{kind}: " + ", ".join(f"K={r['k']} {r['success_pct']:g}%" for r in levels)
                        for kind, levels in results.items())
    needs = "".join(f"; {kind} not run: needs the sample app ({why})" for kind, why in skipped.items())
    return FaultRecord(fault="slow", mode=case.mode.name, status="ok", verdict=f"served {verdict}{needs}",
                       offered_rate=s.rate(case.mode), command=argv,
                       details={"levels": results, "worst_success_pct": worst, "needs_sample_app": skipped})


if __name__ == "__main__":
    sys.exit(main())
