"""CPU sets: the server on one part of the machine, the load generator on the rest, never sharing one."""

from __future__ import annotations

import argparse
import os


def parse_cpus(text: str) -> frozenset[int]:
    """``"0"``, ``"0-3"`` or ``"0,2,4-5"`` as a set of CPU numbers."""
    cpus: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        low, sep, high = part.partition("-")
        if not low.isdigit() or (sep and not high.isdigit()):
            raise argparse.ArgumentTypeError(f"CPU list must look like 0,2-3; got {text!r}")
        cpus.update(range(int(low), int(high) + 1) if sep else (int(low),))
    if not cpus:
        raise argparse.ArgumentTypeError("empty CPU list")
    return frozenset(cpus)


def default_cpus() -> tuple[frozenset[int], frozenset[int]]:
    """Server on the first half of the CPUs we may use, generator on the rest (CPU 0 and CPU 1 on 2 cores)."""
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return frozenset(allowed), frozenset(allowed)
    half = len(allowed) // 2
    return frozenset(allowed[:half]), frozenset(allowed[half:])


def format_cpus(cpus: frozenset[int] | set[int]) -> str:
    return ",".join(map(str, sorted(cpus)))


def available() -> frozenset[int]:
    return frozenset(os.sched_getaffinity(0))
