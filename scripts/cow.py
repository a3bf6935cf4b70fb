"""The memory side of the worker model: how much a pre-fork pool shares, with and without the app preloaded.

    python -m scripts.cow [--app examples.djangoapp.wsgi:application] [--path /fortunes] [--workers 4] [--out DIR]

A pre-fork server that imports the app in its master before forking (``--preload``) hands every worker the same
pages, shared copy-on-write until someone writes to them. CPython writes to them more than the app does: every
reference count change and every garbage collection that walks an object (its GC header lives in the object) dirties
its page. ``gc.freeze()`` after the preload moves everything allocated so far into a permanent generation that
the collector never walks again, so those pages stay shared until the app itself touches them.

For each variant this starts the server, loads it for a few seconds (wrk on ``--path`` and the other paths, so
every worker has served, compiled its templates and run its collector), and reads each process's PSS
(proportional set size: a page shared by N processes counts 1/N to each), USS (pages of its own) and RSS from
``/proc/PID/smaps_rollup`` through psutil. The whole server's PSS is what it costs the machine; a worker's USS is
what one more worker would cost. The run folder gets ``cow.md``, ``cow.json`` and ``report.html`` (the server's
PSS per variant, stacked by process role, and the table).

| mode | variants |
| --- | --- |
| gunicorn-sync | each worker imports the app; ``--preload``; ``--preload`` with ``gc.freeze()`` (``on_starting``) |
| prefork | each worker imports the app; ``--preload --no-gc-freeze``; ``--preload`` (``gc.collect(); gc.freeze()``) |
| uwsgi | ``--lazy-apps`` (each worker imports the app); its default, the app loaded in the master |
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import plotly.graph_objects as go
import psutil

from scripts.common.files import write_text_atomic
from scripts.common.procs import free_port, group_members, running, wait_ready
from scripts.modes import MODES
from scripts.render import html as h

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
DJANGO_WSGI = "examples.djangoapp.wsgi:application"
DJANGO_PATHS = ("/fortunes", "/api/queries?n=20", "/api/worlds/42")
# gunicorn's hook that runs in the master after --preload has imported the app and before the first fork.
FREEZE_HOOK = '''import gc


def on_starting(server):
    gc.collect()
    gc.freeze()
'''


@dataclass(frozen=True, kw_only=True, slots=True)
class Variant:
    mode: str
    name: str  # "no preload", "preload", "preload + gc.freeze"
    extra: tuple[str, ...]  # options after the mode's own command line


@dataclass(frozen=True, kw_only=True, slots=True)
class Process:
    pid: int
    role: str  # "master", "worker" or "router" (uWSGI's HTTP router)
    pss_mb: float
    uss_mb: float
    rss_mb: float


@dataclass(frozen=True, kw_only=True, slots=True)
class Measured:
    mode: str
    variant: str
    command: tuple[str, ...]
    requests: int
    processes: tuple[Process, ...]

    @property
    def workers(self) -> list[Process]:
        return [p for p in self.processes if p.role == "worker"]

    @property
    def total_pss_mb(self) -> float:
        return round(sum(p.pss_mb for p in self.processes), 1)

    def worker_median(self, field: str) -> float:
        return round(statistics.median(getattr(p, field) for p in self.workers), 1) if self.workers else 0.0


def variants(modes: Sequence[str], hook: Path) -> list[Variant]:
    table = {
        "gunicorn-sync": [Variant(mode="gunicorn-sync", name="no preload", extra=()),
                          Variant(mode="gunicorn-sync", name="preload", extra=("--preload",)),
                          Variant(mode="gunicorn-sync", name="preload + gc.freeze",
                                  extra=("--preload", "--config", str(hook)))],
        "prefork": [Variant(mode="prefork", name="no preload", extra=()),
                    Variant(mode="prefork", name="preload", extra=("--preload", "--no-gc-freeze")),
                    Variant(mode="prefork", name="preload + gc.freeze", extra=("--preload",))],
        "uwsgi": [Variant(mode="uwsgi", name="no preload", extra=("--lazy-apps",)),
                  Variant(mode="uwsgi", name="preload", extra=())],
    }
    return [v for mode in modes for v in table[mode]]


def _routers(log: Path) -> set[int]:
    """uWSGI's HTTP router processes, as its log names them: their command line is the master's."""
    return {int(pid) for pid in re.findall(r"spawned uWSGI http \d+ \(pid: (\d+)\)", log.read_text(errors="replace"))}


def _role(pid: int, leader: int, routers: set[int]) -> str:
    return "master" if pid == leader else "router" if pid in routers else "worker"


def _load(port: int, paths: Sequence[str], seconds: float, connections: int) -> int:
    """Requests answered: wrk on each path in turn (a blocking HTTP client in Python where there is no wrk)."""
    wrk = shutil.which("wrk")
    done = 0
    for path in paths:
        if wrk:
            out = subprocess.run([wrk, "-t1", f"-c{connections}", f"-d{max(1, round(seconds / len(paths)))}s",
                                  f"http://{HOST}:{port}{path}"], capture_output=True, text=True, timeout=120,
                                 check=False).stdout
            for line in out.splitlines():
                if "requests in" in line:
                    done += int(line.split()[0])
        else:
            import http.client

            deadline = time.monotonic() + seconds / len(paths)
            while time.monotonic() < deadline:
                conn = http.client.HTTPConnection(HOST, port, timeout=10)
                conn.request("GET", path)
                conn.getresponse().read()
                conn.close()
                done += 1
    return done


def measure(variant: Variant, *, app: str, paths: Sequence[str], workers: int, seconds: float, connections: int,
            logs: Path) -> Measured:
    port = free_port(HOST)
    argv = [*MODES[variant.mode].argv(host=HOST, port=port, workers=workers, app=app), *variant.extra]
    log = logs / f"{variant.mode}-{variant.name.replace(' ', '').replace('+', '-')}.log"
    with running(argv, log_path=log, cwd=ROOT) as proc:
        wait_ready(proc, HOST, port, log_path=log, path=paths[0])
        requests = _load(port, paths, seconds, connections)
        time.sleep(0.5)  # let the workers finish what they were doing
        found = []
        routers = _routers(log)
        for pid in group_members(proc.pid):
            try:
                p = psutil.Process(pid)
                info = p.memory_full_info()
                found.append(Process(pid=pid, role=_role(pid, proc.pid, routers), pss_mb=round(info.pss / 2**20, 1),
                                     uss_mb=round(info.uss / 2**20, 1), rss_mb=round(info.rss / 2**20, 1)))
            except psutil.Error:
                continue
    return Measured(mode=variant.mode, variant=variant.name, command=tuple(argv), requests=requests,
                    processes=tuple(sorted(found, key=lambda p: (p.role != "master", p.pid))))


def table(results: Sequence[Measured]) -> str:
    lines = ["| mode | variant | server PSS (MB) | master PSS | worker PSS (median) | worker USS (median) | "
             "worker RSS (median) | workers | requests |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        master = next((p.pss_mb for p in r.processes if p.role == "master"), 0.0)
        lines.append(f"| {r.mode} | {r.variant} | {r.total_pss_mb:.1f} | {master:.1f} "
                     f"| {r.worker_median('pss_mb'):.1f} | {r.worker_median('uss_mb'):.1f} "
                     f"| {r.worker_median('rss_mb'):.1f} | {len(r.workers)} "
                     f"| {r.requests:,} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scripts.cow", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--app", default=DJANGO_WSGI, help="WSGI app, MODULE:CALLABLE (default %(default)s)")
    p.add_argument("--path", action="append", help="paths to load, repeatable (default: the Django example's)")
    p.add_argument("--modes", default="gunicorn-sync,prefork,uwsgi", help="comma-separated (default %(default)s)")
    p.add_argument("--workers", type=int, default=4, help="workers per server (default %(default)s)")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds of load before measuring (default %(default)s)")
    p.add_argument("--connections", type=int, default=8)
    p.add_argument("--out", type=Path, help="run folder (default results/cow-DATE-TIME)")
    return p


def report(results: Sequence[Measured], *, app: str, workers: int) -> h.Page:
    """report.html: the server's PSS per variant, stacked by role (master, workers, router), and the table."""
    labels = [f"{r.mode}<br>{r.variant}" for r in results]
    figure = go.Figure(layout={"barmode": "stack", "title": f"PSS of the whole server: {app}, {workers} workers",
                               "yaxis_title": "PSS (MB)", "height": 460, "margin": {"t": 60, "b": 90}})
    for role, colour in (("master", "#8c564b"), ("worker", "#2ca02c"), ("router", "#7f7f7f")):
        ys = [round(sum(p.pss_mb for p in r.processes if p.role == role), 1) for r in results]
        if any(ys):
            figure.add_trace(go.Bar(name=f"{role}s" if role == "worker" else role, x=labels, y=ys,
                                    marker_color=colour, meta=f"{role} PSS (MB)"))
    rows = [[h.Cell(r.mode), h.Cell(r.variant), h.num(f"{r.total_pss_mb:.1f}", r.total_pss_mb),
             h.num(f"{r.worker_median('pss_mb'):.1f}", r.worker_median("pss_mb")),
             h.num(f"{r.worker_median('uss_mb'):.1f}", r.worker_median("uss_mb")),
             h.num(f"{r.worker_median('rss_mb'):.1f}", r.worker_median("rss_mb")),
             h.num(str(len(r.workers)), len(r.workers)), h.num(f"{r.requests:,}", r.requests)] for r in results]
    page = h.Page(title="Copy-on-write: what preloading and gc.freeze() save",
                  subtitle=h.esc(f"{app}, {workers} workers; PSS counts a page shared by N processes 1/N to each, "
                                 "USS is a process's own pages"), charts=True)
    page.add(h.chart(figure, "chart-cow", "The server's PSS by variant: its master, its workers, and uWSGI's HTTP "
                     "router. Preloading shares the app's pages with every worker; gc.freeze() keeps them shared."),
             h.table(("mode", "variant", "server PSS MB", "worker PSS MB (median)", "worker USS MB (median)",
                      "worker RSS MB (median)", "workers", "requests"), rows,
                     numeric=(False, False, True, True, True, True, True, True)),
             "<p>The commands, per variant, are in cow.json.</p>")
    return page


def main(argv: Sequence[str] | None = None) -> int:
    p = build_parser()
    args = p.parse_args(argv)
    args.out = args.out or Path("results") / time.strftime("cow-%Y%m%d-%H%M%S")
    modes = [m for m in args.modes.split(",") if m]
    known = {"gunicorn-sync", "prefork", "uwsgi"}
    if unknown := [m for m in modes if m not in known]:
        p.error(f"no preload variants for {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    args.out.mkdir(parents=True, exist_ok=True)
    hook = args.out / "gc_freeze_hook.py"
    hook.write_text(FREEZE_HOOK)
    paths = tuple(args.path or DJANGO_PATHS)
    results = []
    for variant in variants(modes, hook):
        r = measure(variant, app=args.app, paths=paths, workers=args.workers, seconds=args.seconds,
                    connections=args.connections, logs=args.out / "logs")
        results.append(r)
        print(f"cow: {r.mode:<14} {r.variant:<20} server PSS {r.total_pss_mb:6.1f} MB, worker PSS "
              f"{r.worker_median('pss_mb'):5.1f} MB, USS {r.worker_median('uss_mb'):5.1f} MB", flush=True)
    md = table(results)
    write_text_atomic(args.out / "cow.md", f"# Copy-on-write sharing: {args.app}, {args.workers} workers\n\n{md}\n")
    write_text_atomic(args.out / "cow.json", json.dumps(
        {"app": args.app, "paths": paths, "workers": args.workers,
         "results": [{**asdict(r), "total_pss_mb": r.total_pss_mb} for r in results]}, indent=1))
    report(results, app=args.app, workers=args.workers).write(args.out / "report.html")
    print(md)
    print(f"cow: wrote {args.out / 'cow.md'} and {args.out / 'report.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
