"""What a reader needs to judge a run's numbers: the machine, the software, the commit, how busy it was."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

from scripts.common.cpus import format_cpus
from scripts.modes import MODES
from scripts.plan.plan import Plan

ROOT = Path(__file__).resolve().parents[2]
# The harness's and the apps' packages; each mode adds the server packages it runs (Mode.packages).
PACKAGES = ("locust", "starlette", "httptools", "uvloop", "psutil", "psycopg", "matplotlib")


def packages() -> tuple[str, ...]:
    return tuple(dict.fromkeys([*(pkg for mode in MODES.values() for pkg in mode.process.packages), *PACKAGES]))


def cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {}
    for pkg in packages():
        try:
            versions[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            versions[pkg] = None
    return versions


def git_state() -> tuple[str | None, bool | None]:
    """The commit the harness runs from and whether tracked files differ from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=5,
                                check=False).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                                    capture_output=True, text=True, timeout=5, check=False).stdout.strip())
    except OSError:
        return None, None
    return commit, dirty


def wrk_version(exe: str | None) -> str | None:
    if not exe:
        return None
    out = subprocess.run([exe, "-v"], capture_output=True, text=True, timeout=5, check=False)
    text = out.stdout or out.stderr
    return text.splitlines()[0].strip() if text else None


BUSY_SAMPLE_S = 0.5
BUSY_PERCENT = 25.0  # of all CPUs, over BUSY_SAMPLE_S: a quarter of this 2-core machine is half a core


def cpu_busy_percent(seconds: float = BUSY_SAMPLE_S) -> float:
    """How busy all the CPUs are right now (this process is idle while it samples). The load average alone misses
    a machine that has just gone quiet: its one-minute figure decays for minutes after a previous run ends."""
    return float(psutil.cpu_percent(interval=seconds))


def environment(plan: Plan | None = None) -> dict[str, Any]:
    load = os.getloadavg()
    cpus = os.cpu_count() or 1
    busy_now = cpu_busy_percent()
    commit, dirty = git_state()
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "kernel": platform.release(),
        "cpu_model": cpu_model(),
        "cpu_count": cpus,
        "server_cpus": format_cpus(plan.server_cpus) if plan else None,
        "client_cpus": format_cpus(plan.client_cpus) if plan else None,
        "load_average": load,
        "cpu_busy_percent": busy_now,
        "busy": busy_now > BUSY_PERCENT,
        "packages": package_versions(),
        "wrk": wrk_version(plan.wrk if plan else None),
        "git_commit": commit,
        "git_dirty": dirty,
    }
