"""Reference rates of the machine itself, measured in the same run as the servers.

``fork``: how many ``fork()`` + ``_exit()`` + ``waitpid()`` a bare Python process
completes per second on the server's CPUs. No fork-per-request server can beat it,
so the fork mode's throughput is read against it (a ratio in one run, not a number
carried over from another day).

Run as ``python -m scripts.reference fork --seconds 1``: it prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


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


def measure_fork_rate(seconds: float = 1.0, cpus: frozenset[int] | set[int] | None = None) -> dict[str, float]:
    """The fork reference, from a fresh interpreter pinned to ``cpus``."""
    argv = [sys.executable, "-m", "scripts.reference", "fork", "--seconds", str(seconds)]
    if cpus:
        argv = ["taskset", "-c", ",".join(map(str, sorted(cpus))), *argv]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    return dict(json.loads(out.stdout))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.reference")
    p.add_argument("what", choices=["fork"])
    p.add_argument("--seconds", type=float, default=1.0)
    args = p.parse_args(argv)
    print(json.dumps(fork_loop(args.seconds)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
