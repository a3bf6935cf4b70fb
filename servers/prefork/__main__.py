"""``python -m servers.prefork APP --bind HOST:PORT --workers N``: the command line, then the arbiter."""

from __future__ import annotations

import dataclasses
import sys

from servers import _cli
from servers._startup import EXIT_APP_LOAD_FAILED, EXIT_BIND_FAILED, open_listener, preload_app, setup_logging
from servers.parse import Limits
from servers.prefork.arbiter import Arbiter
from servers.prefork.options import Options
from servers.wsgi import ServerInfo, WSGIApp


def main(argv: list[str] | None = None) -> int:
    p = _cli.parser("python -m servers.prefork", "Pre-fork WSGI server: a master and a pool of workers.")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default %(default)s)")
    p.add_argument("--preload", action="store_true", help="import the app in the master before forking")
    p.add_argument("--no-gc-freeze", dest="gc_freeze", action="store_false",
                   help="after --preload, fork without gc.collect() and gc.freeze() first (to measure what the "
                        "freeze saves: the collector's writes to the preloaded objects then copy their pages)")
    p.add_argument("--max-requests", type=int, default=0, help="recycle a worker after this many requests")
    p.add_argument("--max-requests-jitter", type=int, default=0, help="random extra requests per worker quota")
    p.add_argument("--graceful-timeout", type=float, default=30.0,
                   help="seconds workers get to finish after SIGTERM")
    p.add_argument("--max-boot-failures", type=int, default=5,
                   help="give up after this many workers in a row failed to load the app")
    p.add_argument("--timeout", type=float, default=30.0,
                   help="kill a worker whose heartbeat is older than this, idle or inside a request")
    p.add_argument("--kill-grace", type=float, default=2.0,
                   help="seconds between the SIGTERM and the SIGKILL for a timed-out worker")
    p.add_argument("--status-file", help="path of a JSON status document the master rewrites every second")
    p.add_argument("--body-timeout", type=float, default=Limits().body_timeout,
                   help="seconds to receive a request's body once its headers are in (default %(default)s)")
    args = p.parse_args(argv)
    setup_logging(args.log_level, "prefork")
    host, port = _cli.bind(args, p)
    opts = Options(
        app=args.app,
        workers=args.workers,
        preload=args.preload,
        gc_freeze=args.gc_freeze,
        max_requests=args.max_requests,
        max_requests_jitter=args.max_requests_jitter,
        graceful_timeout=args.graceful_timeout,
        max_boot_failures=args.max_boot_failures,
        timeout=args.timeout,
        kill_grace=args.kill_grace,
        status_file=args.status_file,
    )
    app: WSGIApp | None = None
    if opts.preload:
        app = preload_app(opts.app)  # once: the workers inherit this very object
        if app is None:
            return EXIT_APP_LOAD_FAILED
    listener = open_listener(host, port, args.backlog)
    if listener is None:
        return EXIT_BIND_FAILED
    info = ServerInfo(software="workerbench-prefork", host=host, port=listener.getsockname()[1])
    limits = dataclasses.replace(_cli.limits(args), body_timeout=args.body_timeout)
    return Arbiter(listener, opts, info, limits, app).run()


if __name__ == "__main__":
    sys.exit(main())
