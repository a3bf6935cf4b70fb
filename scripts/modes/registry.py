"""The registry of server modes: HOW an app is served, one :class:`~scripts.modes.mode.Mode` entry each.

An entry is declarative: the interface it serves (WSGI or ASGI) and a function that turns a
:class:`~scripts.modes.launch.Launch` (app, address, worker and thread count) into a command line, plus its
parts: the process model (:mod:`~scripts.modes.launch`), where it takes part (:mod:`~scripts.modes.placement`),
the speed checks it is held to (:mod:`~scripts.modes.checks`) and what the faults suite may use of it
(:mod:`~scripts.modes.fault_support`). The harness starts that command in a process group of its own and stops
the whole group, so a mode needs no wrapper class, a production server included. To add a mode, add one entry
here (and its command function): its family (this project's servers, WSGI servers, green threads, ASGI servers)
decides where reports show it, and the named sets of ``--modes`` (:func:`~scripts.modes.mode.mode_sets`) take it
in by its parts.
"""

from __future__ import annotations

import signal
from pathlib import Path

from scripts.modes.checks import FORK_LOOP, FORK_RATE, STDLIB_FORK, Checks, SpeedRatio
from scripts.modes.fault_support import FaultSupport
from scripts.modes.launch import Interface, Launch, Process
from scripts.modes.mode import Mode, mode_sets
from scripts.modes.placement import Placement
from scripts.modes.tuning import Tuning


def _cgi(l: Launch) -> list[str]:  # noqa: E741
    return [l.python, "-m", "servers.cgi", l.app, "--bind", f"{l.host}:{l.port}", "--max-children", "64"]


# Persistent connections are kept 5 s, as uvicorn does by default; whether a cell uses them is
# the client's choice (the keep-alive-off cells send "Connection: close").
KEEPALIVE_S = "5"


def _fork(l: Launch) -> list[str]:  # noqa: E741
    # No keep-alive: a child per request is this mode's point. (With it, the child cap would also cap
    # the connections served at once, and clients beyond it would wait for a child's idle timeout.)
    return [l.python, "-m", "servers.fork", l.app, "--bind", f"{l.host}:{l.port}", "--max-children", "64"]


def _prefork(l: Launch) -> list[str]:  # noqa: E741
    return [l.python, "-m", "servers.prefork", l.app, "--bind", f"{l.host}:{l.port}", "--workers", str(l.workers),
            "--keepalive", KEEPALIVE_S]


def _gunicorn_sync(l: Launch) -> list[str]:  # noqa: E741
    # gunicorn writes no access log unless --access-logfile is given.
    return [
        l.python, "-m", "gunicorn", l.app,
        "--bind", f"{l.host}:{l.port}",
        "--workers", str(l.workers),
        "--worker-class", "sync",
        "--log-level", "warning",
    ]


def _uvicorn(l: Launch) -> list[str]:  # noqa: E741
    return [
        l.python, "-m", "uvicorn", l.app,
        "--host", l.host,
        "--port", str(l.port),
        "--workers", str(l.workers),
        "--http", "httptools",
        "--loop", "uvloop",
        "--no-access-log",
        "--log-level", "warning",
    ]


def _gunicorn(l: Launch, worker_class: str) -> list[str]:  # noqa: E741
    # gunicorn's own keep-alive default is 2 s; its sync workers ignore it.
    return [
        l.python, "-m", "gunicorn", l.app,
        "--bind", f"{l.host}:{l.port}",
        "--workers", str(l.workers),
        "--worker-class", worker_class,
        "--keep-alive", KEEPALIVE_S,
        "--log-level", "warning",
    ]


def _gunicorn_gthread(l: Launch) -> list[str]:  # noqa: E741
    return [*_gunicorn(l, "gthread"), "--threads", str(l.threads)]


def _gunicorn_uvicorn(l: Launch) -> list[str]:  # noqa: E741
    # uvicorn.workers is deprecated in favour of the uvicorn-worker package; the worker takes its keep-alive
    # from gunicorn's --keep-alive and picks httptools and uvloop itself (loop and http "auto").
    return _gunicorn(l, "uvicorn_worker.UvicornWorker")


def _gunicorn_asgi(l: Launch) -> list[str]:  # noqa: E741
    # gunicorn's own asyncio ASGI worker (gunicorn >= 24). The parser and loop are named rather than left to
    # "auto", which would pick the C parser (gunicorn_h1c) where it happens to be installed and change what is
    # measured and what the malformed corpus gets; lifespan stays "auto", as uvicorn's. Keep-alive from gunicorn's
    # --keep-alive. No access log unless --access-logfile is given.
    return [*_gunicorn(l, "asgi"), "--asgi-loop", "uvloop", "--http-parser", "python"]


def _granian(l: Launch, interface: Interface) -> list[str]:  # noqa: E741
    # Granian's default interface is rsgi, its own: the interface is always given. An idle keep-alive
    # connection is closed when its next request's head does not arrive within the header read timeout (30 s
    # by default, in ms): that timeout is granian's keep-alive, and is set to KEEPALIVE_S.
    return [
        l.python, "-m", "granian", l.app,
        "--interface", interface,
        "--host", l.host,
        "--port", str(l.port),
        "--workers", str(l.workers),
        "--http", "1",
        "--http1-header-read-timeout", str(int(KEEPALIVE_S) * 1000),
        "--no-access-log",
        "--log-level", "warning",
    ]


def _hypercorn(l: Launch) -> list[str]:  # noqa: E741
    # No --access-logfile: hypercorn then writes no access log.
    return [
        l.python, "-m", "hypercorn", l.app,
        "--bind", f"{l.host}:{l.port}",
        "--workers", str(l.workers),
        "--worker-class", "uvloop",
        "--keep-alive", KEEPALIVE_S,
        "--log-level", "warning",
    ]


def _waitress(l: Launch) -> list[str]:  # noqa: E741
    # One process: --workers does not apply. waitress closes idle connections only when its cleanup pass runs
    # (every --cleanup-interval s, default 30), so the pass runs as often as the timeout is long.
    return [
        l.python, "-m", "waitress", f"--listen={l.host}:{l.port}",
        f"--threads={l.threads}",
        f"--channel-timeout={KEEPALIVE_S}",
        f"--cleanup-interval={KEEPALIVE_S}",
        l.app,
    ]


# gevent's pool size per worker (--worker-connections): gunicorn's default, spelt out, as it is this model's size.
GEVENT_CONNECTIONS = "1000"


def _gunicorn_gevent(l: Launch) -> list[str]:  # noqa: E741
    # The worker monkey-patches the standard library before it imports the app, then serves each connection on
    # a greenlet of a pool of --worker-connections.
    return [*_gunicorn(l, "gevent"), "--worker-connections", GEVENT_CONNECTIONS]


def _uwsgi(l: Launch) -> list[str]:  # noqa: E741
    # The uwsgi binary beside the interpreter (pip installs it into the environment's bin/). It embeds the
    # Python it was built with, not the environment: --home points it at the environment's site-packages.
    # --http: uWSGI's HTTP router, an event-driven C process that holds the clients' connections (keep-alive with
    # --http-keepalive, idle ones closed after --http-timeout) and passes each request to a free worker over the
    # uwsgi protocol; what uWSGI's documentation gives for serving HTTP without a proxy in front. Not
    # --http11-socket, where a worker keeps a keep-alive connection until it goes idle: with 32 connections on 2
    # workers, 30 would wait in the backlog. uWSGI's defaults that would make it the odd one out: SIGTERM means
    # "reload" (--die-on-term: stop), an app that fails to import leaves workers answering 500 (--need-app:
    # exit), every request is logged (--disable-logging), and a worker is recycled (--max-requests, --reload-on-rss)
    # only once it has lived 10 s (--min-worker-lifetime 1: the faults suite recycles within seconds, as gunicorn
    # and prefork do). It loads the app in the master and forks (its default, kept: no --lazy-apps).
    environment = Path(l.python).parent
    return [
        str(environment / "uwsgi"),
        "--master",
        "--processes", str(l.workers),
        "--http", f"{l.host}:{l.port}",
        "--http-keepalive",
        "--http-timeout", KEEPALIVE_S,
        "--module", l.app,
        "--home", str(environment.parent),
        "--pythonpath", ".",
        "--disable-logging",
        "--die-on-term",
        "--need-app",
        "--min-worker-lifetime", "1",
    ]


def _daphne(l: Launch) -> list[str]:  # noqa: E741
    # One process (Twisted's reactor): --workers does not apply. Verbosity 0 writes no access log. Its idle
    # connections close after Twisted's HTTPFactory timeout, 60 s, which daphne offers no option to change.
    return [l.python, "-m", "daphne", "--bind", l.host, "--port", str(l.port), "--verbosity", "0", l.app]


MODES: dict[str, Mode] = {
    m.name: m
    for m in (
        Mode(
            name="cgi",
            interface="wsgi",
            summary="classic CGI: fork and exec a fresh Python per request, which imports the app (wsgiref)",
            command=_cgi,
            process=Process(
                defaults="no pool; at most 64 children; closes after every response",
                uses_workers=False,
                holds=64,
                fork_per_request=True,
            ),
            placement=Placement(
                hand_written=True,
                # A fresh interpreter per request costs about 0.2 s of CPU here: 32 clients at once need
                # several seconds for their first answers, so cgi is measured on plaintext only, for 8 s.
                min_duration_s=8.0,
                in_sweeps=False,
                only_scenarios=("plaintext",),
            ),
            checks=Checks(
                speed=(SpeedRatio(check="cgi / fork()+_exit+waitpid of a bare process", scenario="plaintext/close",
                                    against=FORK_RATE),),
            ),
        ),
        Mode(
            name="fork",
            interface="wsgi",
            summary="fork-per-request server: the app is preloaded, each request gets a child",
            command=_fork,
            process=Process(
                defaults="no pool; at most 64 children at once, clients beyond that wait in the listen backlog",
                uses_workers=False,
                holds=64,
                fork_per_request=True,
            ),
            placement=Placement(hand_written=True),
            checks=Checks(
                speed=(
                    # What the standard library gives for free with the same app: a hand-written fork
                    # server that cannot beat it has no reason to exist.
                    SpeedRatio(check="fork / the standard library's fork server (ForkingMixIn + wsgiref)",
                               scenario="plaintext/close", against=STDLIB_FORK, ratio=1.0),
                    # Reported, not held: the old 0.8x target is retired, since even the minimal fork
                    # loop, which does no HTTP, reaches only about 0.85x of this rate here.
                    SpeedRatio(check="fork (new connection per request) / fork()+_exit+waitpid of a bare process",
                               scenario="plaintext/close", against=FORK_RATE),
                    SpeedRatio(check="fork / minimal Python fork loop (canned reply)", scenario="plaintext/close",
                               against=FORK_LOOP),
                ),
            ),
        ),
        Mode(
            name="prefork",
            interface="wsgi",
            summary="pre-fork server: a master and a pool of long-lived workers on one socket",
            command=_prefork,
            process=Process(defaults="--workers; keep-alive 5 s"),
            placement=Placement(hand_written=True),
            checks=Checks(
                speed=(
                    SpeedRatio(check="prefork / gunicorn-sync, new connection per request", scenario="plaintext/close",
                               against="gunicorn-sync", ratio=3.0),
                    SpeedRatio(check="prefork / uvicorn, keep-alive", scenario="plaintext", against="uvicorn",
                               ratio=1.0),
                ),
                # A connection per request costs a PostgreSQL backend process each; SQLite's open is cheap.
                reuse=(("postgresql", 10.0), ("sqlite", 0.0)),
            ),
            faults=FaultSupport(
                worker_timeout_flag="--timeout",
                max_requests_flag="--max-requests",
                reload_signal=signal.SIGHUP,
            ),
        ),
        Mode(
            name="gunicorn-sync",
            interface="wsgi",
            summary="gunicorn with sync workers (one request at a time per worker, no keep-alive)",
            command=_gunicorn_sync,
            process=Process(
                packages=("gunicorn",),
                defaults="--workers; never keeps a connection alive; backlog 2048",
            ),
            faults=FaultSupport(
                worker_timeout_flag="--timeout",
                max_requests_flag="--max-requests",
                reload_signal=signal.SIGHUP,
            ),
        ),
        Mode(
            name="gunicorn-gthread",
            interface="wsgi",
            summary="gunicorn with gthread workers: a thread pool per worker, connections kept alive",
            command=_gunicorn_gthread,
            process=Process(
                packages=("gunicorn",),
                threads=8,
                defaults="8 threads per worker (`--threads`; gunicorn's default is 1); keep-alive 5 s "
                "(gunicorn's default 2 s); backlog 2048; at most 1000 connections per worker",
            ),
            placement=Placement(in_default_set=False),
            faults=FaultSupport(
                worker_timeout_flag="--timeout",
                max_requests_flag="--max-requests",
                reload_signal=signal.SIGHUP,
            ),
        ),
        Mode(
            name="waitress",
            interface="wsgi",
            summary="waitress: one process, an asyncore-style I/O thread and a pool of worker threads",
            command=_waitress,
            process=Process(
                packages=("waitress",),
                threads=8,
                uses_workers=False,
                defaults="one process whatever `--workers` says; 8 threads (`--threads`; waitress's default is 4); "
                "idle connections closed after 5-10 s (`--channel-timeout 5`, checked every 5 s; default 120 s, "
                "checked every 30 s); backlog 1024; at most 100 connections (`--connection-limit`)",
            ),
            placement=Placement(in_default_set=False),
        ),
        Mode(
            name="granian-wsgi",
            interface="wsgi",
            summary="granian (Rust, tokio + hyper) serving the WSGI app from a pool of blocking threads",
            command=lambda l: _granian(l, "wsgi"),  # noqa: E741
            process=Process(
                packages=("granian",),
                start_s=0.4,
                defaults="blocking threads per worker: its default, half of backlog / workers (256 with 2 workers); "
                "idle connections closed after 5 s (`--http1-header-read-timeout 5000`, the time to read a request's "
                "head; default 30 s); backlog 1024",
                holds=512,  # half the backlog of blocking threads, shared among the workers
            ),
            placement=Placement(in_default_set=False),
            # Its blocking threads are set by an option of its own; without it, granian's default (above).
            tuning=Tuning(threads_flag="--blocking-threads"),
        ),
        Mode(
            name="uwsgi",
            interface="wsgi",
            summary="uWSGI (C): a master, pre-forked workers and its event-driven HTTP router in front (--http)",
            command=_uwsgi,
            process=Process(
                packages=("uwsgi",),
                start_s=0.5,
                defaults="--workers as `--processes`, one thread each, plus the HTTP router process; the app loaded in "
                "the master, then forked (its default); keep-alive 5 s (`--http-keepalive`, off by default; "
                "`--http-timeout 5`, default 60 s, which also bounds a response's wait); backlog 100 (`--listen`); "
                "SIGTERM stops it (`--die-on-term`; uWSGI's default is to reload); recycling waits for a worker to "
                "have lived 1 s (`--min-worker-lifetime`, default 10 s)",
            ),
            placement=Placement(in_default_set=False),
            faults=FaultSupport(
                worker_timeout_flag="--harakiri",
                max_requests_flag="--max-requests",
                max_rss_flag="--reload-on-rss",
                reload_signal=signal.SIGHUP,
            ),
        ),
        Mode(
            name="gunicorn-gevent",
            interface="wsgi",
            summary="gunicorn with gevent workers: the standard library monkey-patched, a greenlet per connection",
            command=_gunicorn_gevent,
            process=Process(
                packages=("gunicorn", "gevent"),
                start_s=0.6,
                defaults="at most 1000 connections per worker (`--worker-connections`, its default); keep-alive 5 s "
                "(gunicorn's default 2 s); backlog 2048",
            ),
            placement=Placement(in_default_set=False, green_threads=True),
            faults=FaultSupport(
                worker_timeout_flag="--timeout",
                max_requests_flag="--max-requests",
                reload_signal=signal.SIGHUP,
            ),
        ),
        Mode(
            name="uvicorn",
            interface="asgi",
            summary="uvicorn with httptools and uvloop: one event loop per worker multiplexes connections",
            command=_uvicorn,
            process=Process(
                packages=("uvicorn",),
                defaults="--workers; keep-alive 5 s (its default); backlog 2048",
                start_s=1.3,  # --workers 2 runs a supervisor that spawns (not forks) its workers
            ),
            faults=FaultSupport(
                max_requests_flag="--limit-max-requests",  # its supervisor has no per-request timeout
                reload_signal=signal.SIGHUP,
            ),
        ),
        Mode(
            name="gunicorn-uvicorn",
            interface="asgi",
            summary="gunicorn's master with uvicorn workers (package uvicorn-worker): httptools and uvloop",
            command=_gunicorn_uvicorn,
            process=Process(
                packages=("gunicorn", "uvicorn-worker", "uvicorn"),
                start_s=0.8,
                defaults="keep-alive 5 s (from gunicorn's `--keep-alive`); backlog 2048; "
                "at most 1000 connections per worker",
            ),
            placement=Placement(in_default_set=False),
            faults=FaultSupport(
                worker_timeout_flag="--timeout",
                max_requests_flag="--max-requests",
                reload_signal=signal.SIGHUP,
            ),
        ),
        Mode(
            name="granian-asgi",
            interface="asgi",
            summary="granian (Rust, tokio + hyper) with a Python event loop per worker for the ASGI app",
            command=lambda l: _granian(l, "asgi"),  # noqa: E741
            process=Process(
                packages=("granian",),
                start_s=0.4,
                defaults="one runtime thread per worker; idle connections closed after 5 s (as granian-wsgi); "
                "backlog 1024",
            ),
            placement=Placement(in_default_set=False),
        ),
        Mode(
            name="hypercorn",
            interface="asgi",
            summary="hypercorn with uvloop workers (h11 for HTTP/1.1, pure Python parsing)",
            command=_hypercorn,
            process=Process(
                packages=("hypercorn",),
                start_s=1.0,  # spawns (not forks) its workers, and they poll for the shutdown signal
                defaults="keep-alive 5 s (its default too); backlog 100",
            ),
            placement=Placement(in_default_set=False),
        ),
        Mode(
            name="daphne",
            interface="asgi",
            summary="daphne, Django Channels' reference ASGI server: one process on Twisted's reactor",
            command=_daphne,
            process=Process(
                packages=("daphne", "twisted"),
                uses_workers=False,
                start_s=0.8,
                defaults="one process whatever `--workers` says; idle connections closed after 60 s (Twisted's "
                "`HTTPFactory` timeout: daphne has no option for it); backlog 50 (Twisted's)",
            ),
            placement=Placement(in_default_set=False),
        ),
        Mode(
            name="gunicorn-asgi",
            interface="asgi",
            summary="gunicorn's own asyncio ASGI worker (`-k asgi`, gunicorn >= 24): its HTTP parser on uvloop",
            command=_gunicorn_asgi,
            process=Process(
                packages=("gunicorn",),
                start_s=0.8,
                defaults="keep-alive 5 s (from gunicorn's `--keep-alive`; its default 2 s); uvloop; its "
                "pure-Python parser (`--http-parser python`, not the optional C one); backlog 2048; at most 1000 "
                "connections per worker",
            ),
            placement=Placement(in_default_set=False),
            faults=FaultSupport(
                worker_timeout_flag="--timeout",
                max_requests_flag="--max-requests",
                reload_signal=signal.SIGHUP,
            ),
        ),
    )
}


MODE_SETS = mode_sets(MODES)
