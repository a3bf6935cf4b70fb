"""``python -m scripts.serve MODE --bind ADDR:PORT``: one mode, started exactly as the bench starts it, for a
bench on another host (``--target``).

The same command line from the registry, the same environment and a fresh database file, the server in a
process group of its own that is stopped whole on SIGINT, SIGTERM and any exit. A port something already
listens on is refused before the server starts; once the server answers ``/health`` and is seen listening on the
port itself (alive, and ours: not another server that took the port first), one JSON line on stdout says so
(``{"event": "ready", "pid": ..., "url": ..., "status": ...}``), followed by a line for people. A read-only
status endpoint on a port of its own (or a file rewritten twice a second) reports the server group's CPU seconds
and memory, which the bench reads at both ends of every measured interval (``--target-status``). It answers GET
and HEAD only: nothing on it changes the server.

The status tells whoever reaches it the server's pids, command line, CPU and memory, so it listens on loopback
whatever ``--bind`` says; a bench on another host needs ``--expose-status`` (the server's address) or
``--status-bind ADDR``. It is polled a few times a second by one bench: a client gets STATUS_READ_TIMEOUT_S to
send its request, and at most STATUS_MAX_CONNECTIONS are served at once (more are closed at once), so silent
clients cannot pile up threads.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import asdict
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psutil

from apps import db
from scripts.common.cpus import parse_cpus
from scripts.common.files import write_json_atomic
from scripts.common.procs import (
    StartError,
    group_affinity,
    group_members,
    log_tail,
    pin_group,
    running,
    wait_ready,
)
from scripts.load.resources import snapshot
from scripts.modes import MODES
from scripts.plan.plan import ROOT, Plan, plan_from_args
from scripts.run.cell import server_env
from servers.netio import parse_bind

STATUS_SCHEMA = 1
STATUS_FILE_INTERVAL_S = 0.5
STATUS_HOST = "127.0.0.1"
STATUS_READ_TIMEOUT_S = 5.0
STATUS_MAX_CONNECTIONS = 16
# Exit codes.
OK, SERVER_DIED, NOT_READY, USAGE = 0, 1, 3, 2


def bind_address(value: str) -> tuple[str, int]:
    """``--bind``, read by the servers' own rule (:func:`servers.netio.parse_bind`)."""
    try:
        return parse_bind(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _mode(value: str) -> str:
    if value not in MODES:
        raise argparse.ArgumentTypeError(f"unknown mode {value!r}; valid: {', '.join(MODES)}")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scripts.serve",
                                description="Serve one mode as the bench would, for a bench on another host.")
    p.add_argument("mode", type=_mode, help=f"one of: {', '.join(MODES)}")
    p.add_argument("--bind", type=bind_address, required=True, help="HOST:PORT the server listens on")
    p.add_argument("--workers", type=int, default=2, help="workers for a pool-based mode (default %(default)s)")
    p.add_argument("--threads", type=int, help="threads per worker for a threaded mode (default: the mode's own)")
    p.add_argument("--db-strategy", choices=db.STRATEGIES, default=db.REUSE,
                   help="database connection strategy of the db scenarios (default %(default)s)")
    p.add_argument("--db-url", default=os.environ.get(db.ENV_URL),
                   help=f"a postgresql:// URL instead of a fresh SQLite file (default: ${db.ENV_URL})")
    p.add_argument("--cpus", type=parse_cpus,
                   help="pin the server's process group to these CPUs, e.g. 0 or 0-3 (default: unpinned)")
    status = p.add_mutually_exclusive_group()
    status.add_argument("--status-port", type=int, default=0,
                        help="port of the read-only status endpoint (default: a free one, printed when ready)")
    status.add_argument("--status-file", type=Path, help="write the status to this file instead of serving it")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--status-bind",
                       help=f"address of the status endpoint (default {STATUS_HOST}, whatever --bind says: it shows "
                            "the server's pids, command line, CPU and memory)")
    where.add_argument("--expose-status", action="store_true",
                       help="serve the status endpoint on the server's own address (--bind), for a bench on another "
                            "host to read (--target-status)")
    p.add_argument("--log", type=Path, help="the server's output (default: a file in a temporary folder)")
    p.add_argument("--start-timeout", type=float, default=30.0, help="seconds the server gets to become ready")
    return p


def _plan(args: argparse.Namespace, out: Path) -> Plan:
    """The bench's own plan for this one mode, so the command line and environment are the bench's."""
    argv = ["--modes", args.mode, "--workers", str(args.workers), "--out", str(out), "--quick"]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    if args.db_url:
        argv += ["--db-url", args.db_url]
    plan = plan_from_args(argv)
    assert plan is not None, "no --list given"
    return plan


def status_of(mode: str, pgid: int, extra: dict[str, Any]) -> dict[str, Any]:
    """What the status endpoint serves: the server group's totals now (see scripts.load.resources.snapshot)."""
    return {"schema": STATUS_SCHEMA, "mode": mode, "pid": pgid, "time": time.time(),
            **asdict(snapshot(pgid)), "cpus": len(group_affinity(pgid)), **extra}


def _handler(report: Callable[[], dict[str, Any]]) -> type[BaseHTTPRequestHandler]:
    class Status(BaseHTTPRequestHandler):
        timeout = STATUS_READ_TIMEOUT_S  # a client that sends nothing is dropped, its thread freed

        def do_GET(self) -> None:
            body = json.dumps(report()).encode() + b"\n"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        do_HEAD = do_GET

        def log_message(self, format: str, *args: Any) -> None:
            pass  # polled every quarter second: a line each would drown the server's own log

    return Status


class _Server(ThreadingHTTPServer):
    """A thread per connection, at most STATUS_MAX_CONNECTIONS at once: one more is closed unanswered."""

    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self.slots = threading.BoundedSemaphore(STATUS_MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self.slots.release()  # no thread started to release it
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


@contextmanager
def status_endpoint(host: str, port: int, report: Callable[[], dict[str, Any]]) -> Iterator[str]:
    """Serve ``report()`` as JSON on ``host:port`` from a thread; yields its URL."""
    server = _Server((host, port), _handler(report))
    thread = threading.Thread(target=server.serve_forever, name="status", daemon=True)
    thread.start()
    try:
        bound = server.server_address[1]
        yield f"http://{f'[{host}]' if ':' in host else host}:{bound}/"
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def status_file(path: Path, report: Callable[[], dict[str, Any]], stop: threading.Event) -> Iterator[str]:
    """Rewrite ``path`` with ``report()`` every half second (atomically) from a thread; yields its path."""
    def loop() -> None:
        while not stop.is_set():
            write_json_atomic(path, report())
            stop.wait(STATUS_FILE_INTERVAL_S)

    write_json_atomic(path, report())
    thread = threading.Thread(target=loop, name="status-file", daemon=True)
    thread.start()
    try:
        yield str(path.resolve())
    finally:
        stop.set()
        thread.join()
        path.unlink(missing_ok=True)


def _poll_host(host: str) -> str:
    """Where this host reaches a server bound to ``host`` (a wildcard address is reached on loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


def check_port_free(host: str, port: int) -> None:
    """StartError when something already listens on ``host:port``: its answers to /health would pass for ours."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # what a lingering TIME_WAIT allows a server
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartError(f"{host}:{port} is taken ({exc.strerror}): another server listens there; stop it or "
                             "choose another --bind") from None


def group_listens(pgid: int, port: int) -> bool:
    """Whether a process of group ``pgid`` holds a listening socket on ``port``."""
    for pid in group_members(pgid):
        try:
            sockets = psutil.Process(pid).net_connections(kind="inet")
        except psutil.Error:
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in sockets):
            return True
    return False


def wait_ours(proc: Any, port: int, log: Path, deadline_s: float) -> None:
    """Wait until the server that answered is ours: alive, and listening on ``port`` itself (another server that
    took the port first answers /health just as well). StartError when it exits or never listens."""
    deadline = time.monotonic() + deadline_s
    while not group_listens(proc.pid, port):
        if proc.poll() is not None:
            raise StartError(f"server exited with code {proc.returncode}: something else answers on port {port}\n"
                             f"{log_tail(log)}")
        if time.monotonic() > deadline:
            raise StartError(f"something answers on port {port}, but not this server (it does not listen there)\n"
                             f"{log_tail(log)}")
        time.sleep(0.1)


def _announce(info: dict[str, Any]) -> None:
    print(json.dumps(info), flush=True)
    print(f"serving {info['mode']} (pid {info['pid']}) at {info['url']} after {info['ready_s']:.2f}s; "
          f"status: {info['status']}; log: {info['log']}; Ctrl-C stops it", flush=True)


def serve(args: argparse.Namespace, stop: threading.Event) -> int:
    host, port = args.bind
    with tempfile.TemporaryDirectory(prefix="workerbench-serve-") as tmp:
        plan = _plan(args, Path(tmp))
        db_path = db.create(Path(tmp) / "world.sqlite")
        if plan.db_url:
            db.seed_postgres(plan.db_url)
        log = args.log or Path(tmp) / "server.log"
        argv = plan.registry[args.mode].argv(host=host, port=port, workers=plan.workers)
        cpus = set(args.cpus) if args.cpus else None
        try:
            check_port_free(host, port)
        except StartError as exc:
            return _failed(args.mode, exc)
        with running(argv, log_path=log, env=server_env(plan, db_path, args.db_strategy), cwd=ROOT,
                     cpus=cpus) as proc:
            try:
                ready = wait_ready(proc, _poll_host(host), port, log_path=log, deadline_s=args.start_timeout)
                wait_ours(proc, port, log, args.start_timeout)
            except StartError as exc:
                return _failed(args.mode, exc)
            if cpus:
                pin_group(proc.pid, args.cpus)
            extra = {"workers": plan.workers, "db_strategy": args.db_strategy, "command": argv}
            return _serve_ready(args, proc.pid, ready, log, lambda: status_of(args.mode, proc.pid, extra), stop,
                                proc.poll)


def _failed(mode: str, exc: StartError) -> int:
    print(json.dumps({"event": "failed", "mode": mode, "error": str(exc).splitlines()[0]}), flush=True)
    print(f"error: {exc}", file=sys.stderr)
    return NOT_READY


def _serve_ready(args: argparse.Namespace, pid: int, ready: float, log: Path,
                 report: Callable[[], dict[str, Any]], stop: threading.Event,
                 poll: Callable[[], int | None]) -> int:
    host, port = args.bind
    with ExitStack() as stack:
        try:
            status = stack.enter_context(
                status_file(args.status_file, report, threading.Event()) if args.status_file is not None
                else status_endpoint(host if args.expose_status else args.status_bind or STATUS_HOST, args.status_port,
                                     report))
        except OSError as exc:  # the port taken, the folder missing: say which; the caller stops the server
            print(f"error: status {args.status_file or f'port {args.status_port}'}: {exc}", file=sys.stderr)
            return USAGE
        url = f"http://{f'[{host}]' if ':' in host else host}:{port}"
        _announce({"event": "ready", "mode": args.mode, "pid": pid, "url": url, "status": status,
                   "ready_s": round(ready, 3), "log": str(log)})
        while not stop.wait(0.2):
            code = poll()
            if code is not None:
                print(f"error: the server exited with code {code}\n{log_tail(log)}", file=sys.stderr)
                return SERVER_DIED
    return OK


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()  # only recorded: the main loop notices and leaves, and running() stops the group

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    return serve(args, stop)


if __name__ == "__main__":
    sys.exit(main())
