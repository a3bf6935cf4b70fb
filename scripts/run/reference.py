"""Reference rates of the machine itself, measured in the same run as the servers.

``fork``: how many ``fork()`` + ``_exit()`` + ``waitpid()`` a bare Python process
completes per second on the server's CPUs. No fork-per-request server can beat it,
so the fork mode's throughput is read against it (a ratio in one run, not a number
carried over from another day).

``fork-loop``: the least a Python fork-per-request server can do, driven by wrk like
the modes (a new connection per request, 32 connections, server and wrk on their
own CPUs): accept, fork, and a child that reads once, writes a canned response
and exits, reaped by the kernel (SIGCHLD ignored). No HTTP parsing, no WSGI, no
Python objects per connection. It shows how much of the fork mode's cost is the
process model on this machine and how much is the server's own work.

``stdlib-fork``: the standard library's own fork-per-request server,
``socketserver.ForkingMixIn`` + ``wsgiref``, serving the same WSGI app (``apps.wsgi:app``)
and driven exactly like ``fork-loop``. It is what a Python developer gets for free, so the
fork mode is held against it: a hand-written fork server that cannot beat it has no reason
to exist. (The older target, fork at 0.8x of the bare ``fork()`` rate, is retired: the
``fork-loop`` reference, which does no HTTP at all, reaches only about 0.85x here.)

Run as ``python -m scripts.run.reference fork --seconds 1`` (prints one JSON object),
``python -m scripts.run.reference fork-loop --port PORT`` or
``python -m scripts.run.reference stdlib-fork --port PORT`` (serve until killed).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

CANNED = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nConnection: close\r\n\r\nHello, World!"
ROOT = Path(__file__).resolve().parents[2]


def fork_loop(seconds: float) -> dict[str, float]:
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while time.perf_counter() < deadline:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        done += 1
    elapsed = time.perf_counter() - start
    return {"forks": done, "seconds": round(elapsed, 4), "rate": round(done / elapsed, 1)}


def fork_loop_server(port: int, host: str = "127.0.0.1") -> None:
    """The minimal fork-per-request server (see the module's header); never returns."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(2048)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps: no waitpid in the loop
    while True:
        fd, _ = listener._accept()  # type: ignore[attr-defined]  # a bare descriptor: no socket object per connection
        if os.fork() == 0:
            try:
                os.read(fd, 65536)
                os.write(fd, CANNED)
            finally:
                os._exit(0)
        os.close(fd)


def stdlib_fork_server(port: int, host: str = "127.0.0.1", app_spec: str = "apps.wsgi:app") -> None:
    """socketserver.ForkingMixIn + wsgiref serving ``app_spec``: the standard library's fork server; never returns."""
    import importlib
    import socketserver
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

    class Quiet(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:  # the parameter names are the base class's
            pass  # one line per request on stderr would measure the terminal, not the server

    class ForkingWSGIServer(socketserver.ForkingMixIn, WSGIServer):
        request_queue_size = 2048  # the modes' backlog; socketserver's default of 5 refuses bursts
        max_children = 64  # fork mode's default cap
        block_on_close = False

    module, _, attr = app_spec.partition(":")
    server = ForkingWSGIServer((host, port), Quiet)
    server.set_app(getattr(importlib.import_module(module), attr))
    server.serve_forever()


def measure_fork_loop_rate(seconds: int, server_cpus: set[int] | frozenset[int] | None,
                           client_cpus: set[int] | frozenset[int] | None, workdir: Path,
                           connections: int = 32, what: str = "fork-loop") -> dict[str, Any]:
    """Drive a reference server (``fork-loop`` or ``stdlib-fork``) with wrk, a new connection per request,
    as the bench drives a mode."""
    from scripts.common import procs
    from scripts.load import wrk_process

    host, port = "127.0.0.1", procs.free_port()
    argv = [sys.executable, "-m", "scripts.run.reference", what, "--port", str(port)]
    path = "/plaintext" if what == "stdlib-fork" else "/"
    log = workdir / f"{what}.log"
    with procs.running(argv, log_path=log, cwd=ROOT, cpus=set(server_cpus) if server_cpus else None) as proc:
        procs.wait_ready(proc, host, port, log_path=log, deadline_s=10.0, path=path)
        result = wrk_process.run_wrk(host=host, port=port, path=path, close=True, connections=connections,
                             duration=seconds, workdir=workdir / what,
                             cpus=set(client_cpus) if client_cpus else None)
    return {"rate": round(result.throughput_rps, 1), "connections": connections, "seconds": seconds,
            "errors": result.socket_errors + result.non_2xx,
            "generator_cpu": round(result.cpu_utilization, 3) if result.cpu_utilization is not None else None}


def measure_fork_rate(seconds: float = 1.0, cpus: frozenset[int] | set[int] | None = None,
                      repeats: int = 3) -> dict[str, Any]:
    """The fork reference, from a fresh interpreter pinned to ``cpus``: the median of ``repeats`` runs."""
    argv = [sys.executable, "-m", "scripts.run.reference", "fork", "--seconds", str(seconds)]
    if cpus:
        argv = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *argv]
    runs = []
    for _ in range(max(1, repeats)):
        out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True, cwd=ROOT)
        runs.append(json.loads(out.stdout))
    rates = sorted(float(r["rate"]) for r in runs)
    return {"rate": statistics.median(rates), "rates": rates, "seconds": seconds,
            "forks": sum(int(r["forks"]) for r in runs)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.run.reference")
    p.add_argument("what", choices=["fork", "fork-loop", "stdlib-fork"])
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--port", type=int, default=0, help="fork-loop: the loopback port to serve on")
    args = p.parse_args(argv)
    if args.what == "fork-loop":
        fork_loop_server(args.port)
    if args.what == "stdlib-fork":
        stdlib_fork_server(args.port)
    print(json.dumps(fork_loop(args.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
