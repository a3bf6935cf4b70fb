"""``--tuned RUN``: the bench runs each mode at the setting a tune run (``python -m scripts.tune``) found best,
best against best. A tuned mode is an entry of its own, MODE+tuned, whose summary names the setting, so every table
and chart says it is not the mode's default; modes the tune run found no best for run as registered.

This module reads the tune run's ``tune.json`` itself (the tune is a later stage than the plan): its ``modes``
list, each with ``mode``, ``scenario`` and ``best`` (axis name -> value)."""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from scripts.modes import Launch, Mode
from scripts.modes.tuning import THREADS, WORKERS

SUFFIX = "+tuned"
TUNE_FILE = "tune.json"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tuned", type=Path, metavar="RUN", help="run each mode at the best setting the tune run RUN "
                   "found (python -m scripts.tune), named MODE+tuned in every table and chart")
    p.add_argument("--tuned-scenario", metavar="NAME", help="with --tuned: the tune run's scenario whose best "
                   "settings to use (default: the first it tuned)")


def best_settings(run_dir: Path, scenario: str | None = None) -> dict[str, dict[str, int]]:
    """Mode -> best setting of one scenario of a tune run; raises ValueError for a folder that holds none."""
    try:
        data = json.loads((run_dir / TUNE_FILE).read_text())
    except (OSError, ValueError) as exc:
        raise ValueError(f"--tuned {run_dir}: no tune run there ({exc})") from None
    entries = [m for m in data.get("modes", []) if m.get("best") is not None]
    chosen = scenario or next((m["scenario"] for m in entries), None)
    found = {m["mode"]: {str(k): int(v) for k, v in m["best"].items()} for m in entries if m["scenario"] == chosen}
    if not found:
        raise ValueError(f"--tuned {run_dir}: no best setting" + (f" for scenario {scenario!r}" if scenario else ""))
    return found


def label(setting: dict[str, int]) -> str:
    return " ".join(f"{k}={v}" for k, v in setting.items())


def tuned_mode(mode: Mode, setting: dict[str, int]) -> Mode:
    """``mode`` at ``setting``, named MODE+tuned."""
    def command(launch: Launch) -> list[str]:
        at = replace(launch, workers=setting.get(WORKERS, launch.workers), threads=setting.get(THREADS, launch.threads))
        return [*mode.command(at), *mode.tuning.extra_args(mode.process, setting)]

    threads = setting.get(THREADS, mode.process.threads) if mode.process.threads is not None else None
    return replace(mode, name=mode.name + SUFFIX, summary=f"{mode.summary}; tuned: {label(setting)}",
                   command=command, process=replace(mode.process, threads=threads))


def apply(registry: dict[str, Mode], modes: tuple[str, ...], run_dir: Path,
          scenario: str | None = None) -> tuple[dict[str, Mode], tuple[str, ...]]:
    """The registry with a MODE+tuned entry for each mode the tune run has a best for, and the run's modes renamed."""
    best = best_settings(run_dir, scenario)
    tuned = {m: tuned_mode(registry[m], best[m]) for m in modes if m in best}
    return ({**registry, **{t.name: t for t in tuned.values()}},
            tuple(tuned[m].name if m in tuned else m for m in modes))
