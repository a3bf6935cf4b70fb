"""How fast is the native closed-loop generator next to wrk? One run, same servers, alternating rounds.

``python -m scripts.genbench`` starts each target server pinned to one CPU (nginx with a
throwaway config, if ``/usr/sbin/nginx`` or ``nginx`` is installed; and this project's prefork
with 2 workers), then for ``--rounds`` rounds runs wrk and the native generator
(:mod:`scripts.load.engine_process` ``--closed-loop``, on :mod:`scripts.load.engine`) pinned to another CPU,
with keep-alive and with a new connection per request. The order inside a round alternates
(wrk first in odd rounds, native first in even ones), so a drift in the machine's load
favours neither. It prints, per server and connection mode, the median rate of each and the
ratio native / wrk (the target is 0.8 or more), and writes every run to
``results/genbench-<UTC time>.json``.

Why medians of alternated rounds and not one long run each: on a shared 2-core machine the
rate of either generator swings 10-40% with what else runs; a ratio of medians over
interleaved runs is what stays put. Each run reports the generator's own CPU use, so a run
where the generator was starved shows it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from scripts.common.procs import free_port, running, wait_ready
from scripts.load import engine_process, wrk_process
from scripts.modes import MODES

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
TARGET_RATIO = 0.8
SERVERS = ("nginx", "prefork")
CONN_MODES = {"keep-alive": False, "close": True}  # name -> send Connection: close

NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    # Without this nginx closes a kept-alive connection every 1,000 requests, and the
    # keep-alive runs would measure reconnects too.
    keepalive_requests 100000000;
    server {{
        listen {host}:{port} backlog=4096;
        location / {{
            default_type text/plain;
            return 200 "Hello, World!";
        }}
    }}
}}
"""


@dataclass(frozen=True, kw_only=True, slots=True)
class Run:
    server: str
    conn_mode: str
    generator: str  # "wrk" or "native"
    round: int
    requests: int
    throughput_rps: float
    errors: dict[str, int]
    latency_ms: dict[str, float]
    generator_cpu: float | None  # CPU seconds per second of run
    # The machine's 1-minute load average after the run: on a shared machine, what else ran.
    load_after: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class Loaded:
    """A server the generators load: its name, port and the path of its "Hello, World!"."""

    name: str
    port: int
    path: str


def find_nginx() -> str | None:
    return shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


@contextmanager
def nginx_server(exe: str, cpus: set[int], tmp: Path) -> Iterator[Loaded]:
    """nginx, one worker, answering "Hello, World!" with ``return 200`` on a free loopback port."""
    port = free_port(HOST)
    conf = tmp / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=tmp, host=HOST, port=port))
    log = tmp / "nginx.log"
    # -e: the error log before the config is read, so nothing is written outside tmp.
    with running([exe, "-p", str(tmp), "-e", str(tmp / "error.log"), "-c", str(conf)], log_path=log,
                 cpus=cpus) as proc:
        wait_ready(proc, HOST, port, log_path=log, path="/")
        yield Loaded(name="nginx", port=port, path="/")


@contextmanager
def prefork_server(cpus: set[int], tmp: Path, workers: int) -> Iterator[Loaded]:
    """This project's prefork server on ``apps.wsgi:app``, started as the bench starts it (its registry entry);
    ``/plaintext`` is its "Hello, World!"."""
    port = free_port(HOST)
    log = tmp / "prefork.log"
    argv = MODES["prefork"].argv(host=HOST, port=port, workers=workers)
    with running(argv, log_path=log, cwd=ROOT, cpus=cpus) as proc:
        wait_ready(proc, HOST, port, log_path=log)
        yield Loaded(name="prefork", port=port, path="/plaintext")


@dataclass(frozen=True, kw_only=True, slots=True)
class Sample:
    requests: int
    throughput_rps: float
    errors: dict[str, int]
    latency_ms: dict[str, float]
    cpu: float | None


def run_wrk(target: Loaded, *, close: bool, args: argparse.Namespace, workdir: Path) -> Sample:
    r = wrk_process.run_wrk(host=HOST, port=target.port, path=target.path, close=close, connections=args.connections,
                            duration=args.duration, workdir=workdir, cpus={args.generator_cpu})
    return Sample(requests=r.requests, throughput_rps=r.throughput_rps, errors=r.errors, latency_ms=r.latency_ms,
                  cpu=r.cpu_utilization)


def run_native(target: Loaded, *, close: bool, args: argparse.Namespace, workdir: Path) -> Sample:
    r = engine_process.run_openloop(f"http://{HOST}:{target.port}{target.path}", duration=args.duration,
                                    workdir=workdir, connections=args.connections, close=close, closed_loop=True,
                                    cpus={args.generator_cpu})
    return Sample(requests=r.requests, throughput_rps=r.throughput_rps, errors=r.errors, latency_ms=r.latency_ms,
                  cpu=r.generator_cpu_util)


GENERATORS: dict[str, Callable[..., Sample]] = {"wrk": run_wrk, "native": run_native}


def rounds(target: Loaded, args: argparse.Namespace, workdir: Path) -> Iterator[Run]:
    # A short warm-up of each: the server's first connections and the page cache should not land in round 1.
    for name, generate in GENERATORS.items():
        quick = argparse.Namespace(**{**vars(args), "duration": 1})
        generate(target, close=False, args=quick, workdir=workdir / f"warmup-{name}")
    for i in range(1, args.rounds + 1):
        order = ["wrk", "native"] if i % 2 else ["native", "wrk"]
        for conn_mode in args.conn_modes:
            for name in order:
                got = GENERATORS[name](target, close=CONN_MODES[conn_mode], args=args,
                                       workdir=workdir / f"{target.name}-{conn_mode}-{name}-{i:02d}")
                run = Run(server=target.name, conn_mode=conn_mode, generator=name, round=i, requests=got.requests,
                          throughput_rps=round(got.throughput_rps, 1), errors=got.errors, latency_ms=got.latency_ms,
                          generator_cpu=None if got.cpu is None else round(got.cpu, 3),
                          load_after=round(os.getloadavg()[0], 2))
                print(f"  round {i} {target.name:8} {conn_mode:10} {name:6} {got.throughput_rps:>10,.0f} req/s  "
                      f"cpu {run.generator_cpu}  errors {sum(got.errors.values())}  load {run.load_after}",
                      flush=True)
                yield run


def summarize(runs: Sequence[Run]) -> list[dict[str, object]]:
    """Per server and connection mode: median rate of each generator, their ratio, and the paired ratios."""
    out: list[dict[str, object]] = []
    for server in dict.fromkeys(r.server for r in runs):
        for conn_mode in dict.fromkeys(r.conn_mode for r in runs if r.server == server):
            rates = {g: {r.round: r.throughput_rps for r in runs
                         if (r.server, r.conn_mode, r.generator) == (server, conn_mode, g)} for g in GENERATORS}
            wrk_med = statistics.median(rates["wrk"].values())
            native_med = statistics.median(rates["native"].values())
            paired = [rates["native"][i] / rates["wrk"][i] for i in sorted(rates["wrk"]) if rates["wrk"][i] > 0]
            ratio = native_med / wrk_med if wrk_med > 0 else 0.0
            out.append({"server": server, "conn_mode": conn_mode, "wrk_median_rps": round(wrk_med, 1),
                        "native_median_rps": round(native_med, 1), "ratio": round(ratio, 3),
                        "paired_ratios": [round(p, 3) for p in paired],
                        "meets_target": ratio >= TARGET_RATIO})
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scripts.genbench", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--servers", default=None,
                   help=f"comma-separated, of {', '.join(SERVERS)} (default: both, nginx only if installed)")
    p.add_argument("--rounds", type=int, default=5, help="rounds of wrk + native per case (default %(default)s)")
    p.add_argument("--duration", type=int, default=5, help="seconds per run (default %(default)s)")
    p.add_argument("--connections", type=int, default=32, help="connections (default %(default)s)")
    p.add_argument("--conn-modes", default=",".join(CONN_MODES), help="keep-alive,close (default both)")
    p.add_argument("--server-cpu", type=int, default=0, help="CPU the server is pinned to (default 0)")
    p.add_argument("--generator-cpu", type=int, default=1, help="CPU the generators are pinned to (default 1)")
    p.add_argument("--workers", type=int, default=2, help="prefork workers (default %(default)s)")
    p.add_argument("--out", type=Path, help="result JSON (default results/genbench-<UTC time>.json)")
    return p


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    nginx = find_nginx()
    args.servers = args.servers.split(",") if args.servers else [s for s in SERVERS if s != "nginx" or nginx]
    args.conn_modes = args.conn_modes.split(",")
    if bad := [s for s in args.servers if s not in SERVERS] + [m for m in args.conn_modes if m not in CONN_MODES]:
        p.error(f"unknown server or connection mode: {', '.join(bad)}")
    if "nginx" in args.servers and nginx is None:
        p.error("nginx is not installed (apt-get install nginx-light)")
    if wrk_process.find_wrk() is None:
        p.error(wrk_process.MISSING)
    if args.rounds < 1 or args.duration < 1 or args.connections < 1:
        p.error("--rounds, --duration and --connections must be >= 1")
    args.nginx = nginx
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out: Path = args.out or ROOT / "results" / f"genbench-{stamp}.json"
    runs: list[Run] = []
    with tempfile.TemporaryDirectory(prefix="genbench-") as tmpdir:
        tmp = Path(tmpdir)
        for server in args.servers:
            with ExitStack() as stack:
                home = tmp / server
                home.mkdir()
                cpus = {args.server_cpu}
                target = stack.enter_context(nginx_server(args.nginx, cpus, home) if server == "nginx"
                                             else prefork_server(cpus, home, args.workers))
                print(f"{server} on {HOST}:{target.port}{target.path}, pinned to CPU {args.server_cpu}; "
                      f"generators on CPU {args.generator_cpu}", flush=True)
                runs += rounds(target, args, home)
    summary = summarize(runs)
    print(f"\n{'server':8} {'connections':12} {'wrk req/s':>12} {'native req/s':>13} {'ratio':>6}  paired ratios")
    for s in summary:
        flag = "" if s["meets_target"] else f"  BELOW {TARGET_RATIO}"
        print(f"{s['server']:8} {s['conn_mode']:12} {s['wrk_median_rps']:>12,.0f} {s['native_median_rps']:>13,.0f} "
              f"{s['ratio']:>6.2f}  {s['paired_ratios']}{flag}")
    command = ["python", "-m", "scripts.genbench", *(sys.argv[1:] if argv is None else argv)]
    doc = {"kind": "genbench", "time_utc": stamp, "command": command,
           "settings": {k: v for k, v in vars(args).items() if k != "out"}, "target_ratio": TARGET_RATIO,
           "summary": summary, "runs": [asdict(r) for r in runs]}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = out.with_name(out.name + ".tmp")
    tmp_out.write_text(json.dumps(doc, indent=2) + "\n")
    os.replace(tmp_out, out)
    print(f"\nwritten: {out}")
    return 0 if all(s["meets_target"] for s in summary) else 1


if __name__ == "__main__":
    sys.exit(main())
