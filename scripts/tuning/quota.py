"""A CPU quota for the server (Linux cgroup v1 ``cpu`` controller, or v2's ``cpu.max``): the server's process group
gets ``fraction`` of one CPU's time, whatever CPUs it is pinned to. ``--cpu-quota 0.5`` measures a server on half a
CPU, which is how the estimate past this machine is checked here: predict the capacity at one CPU from a measurement
at half a CPU, then measure at one CPU (needs root, or a delegated cgroup)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from scripts.common.procs import group_members

V1 = Path("/sys/fs/cgroup/cpu")
V2 = Path("/sys/fs/cgroup")
PERIOD_US = 100_000


class QuotaError(OSError):
    pass


def _make(fraction: float) -> tuple[Path, Path]:
    """The new cgroup and the cgroup.procs to move processes back to."""
    name = f"workerbench-tune-{os.getpid()}"
    quota = max(1000, int(fraction * PERIOD_US))
    if (V1 / "cpu.cfs_quota_us").exists():
        group = V1 / name
        group.mkdir()
        (group / "cpu.cfs_period_us").write_text(str(PERIOD_US))
        (group / "cpu.cfs_quota_us").write_text(str(quota))
        return group, V1 / "cgroup.procs"
    if (V2 / "cgroup.controllers").exists():
        group = V2 / name
        group.mkdir()
        (group / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        return group, V2 / "cgroup.procs"
    raise QuotaError("no cgroup cpu controller to set a quota with")


def _move(pids: list[int], procs: Path) -> None:
    for pid in pids:
        try:
            procs.write_text(str(pid))
        except OSError:
            continue  # gone meanwhile


@contextmanager
def cpu_quota(fraction: float) -> Iterator[Callable[[int], None]]:
    """Yields ``add(pgid)``, which puts a process group under the quota (its later children inherit it); on exit,
    whatever is left goes back to the root group and the cgroup is removed."""
    try:
        group, root = _make(fraction)
    except OSError as exc:
        raise QuotaError(f"cannot set a CPU quota: {exc}") from None

    def add(pgid: int) -> None:
        _move(group_members(pgid), group / "cgroup.procs")

    try:
        yield add
    finally:
        try:
            _move([int(p) for p in (group / "cgroup.procs").read_text().split()], root)
            group.rmdir()
        except OSError:
            pass
