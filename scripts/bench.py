"""``python -m scripts.bench``: run the comparison matrix and write results, charts and a summary.

The stages, each a module of its own::

    scripts.plan.plan         the command line -> one frozen Plan -> cells
    scripts.run.cell         one cell: start, ready, verify, warm up, load (scripts.load.generators), record
    scripts.run.ladder       the open-loop ladder (latency against offered load)
    scripts.records.records      what lands on disk (typed, versioned), and the loader
    scripts.report       render_run: records -> scripts.analysis.analysis -> charts and summary.md

This module runs them in order and owns the run folder: a new or empty one (a folder that holds anything is
refused, so a run's outputs hold exactly the cells its plan measured), with ``progress.json`` saying what the plan
set out to measure and how far it got. An interrupted run keeps every finished cell and ladder step and still
renders the summary and charts from them, which say it was interrupted and what was not measured.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console

from apps import db
from scripts import report
from scripts.analysis import analysis
from scripts.common.files import write_json_atomic
from scripts.common.formatting import count, minutes
from scripts.common.procs import StartError
from scripts.load import wrk_process
from scripts.load.generators.base import single_request
from scripts.plan.environment import environment
from scripts.plan.plan import FORK_LOOP_S, FORK_REF_S, RESULTS, Plan, plan_from_args
from scripts.plan.plan import build_parser as plan_parser
from scripts.plan.tuned import TUNE_FILE
from scripts.records import records
from scripts.records.records import PROGRESS_NAME, ProgressState, RunInfo, RunProgress, references_to_json, to_json
from scripts.render import completeness
from scripts.render import console as out
from scripts.run import reference
from scripts.run.cell import run_cell
from scripts.run.ladder import run_ladders
from scripts.run.remote import run_remote_cell

DB_NAME = "world.sqlite"  # the run's own database, removed when the run ends


class RunFolderInUse(ValueError):
    """``--out`` names a folder that already holds something: a run never mixes its records with another's."""


def check_out(run_dir: Path) -> None:
    """Refuse a run folder that exists and is not empty (RunFolderInUse, which says what it holds)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderInUse(f"--out {run_dir} is a file, not a folder")
    held = sorted(p.name + ("/" if p.is_dir() else "") for p in run_dir.iterdir()) if run_dir.is_dir() else []
    if held:
        shown = ", ".join(held[:6]) + (f" and {len(held) - 6} more" if len(held) > 6 else "")
        raise RunFolderInUse(f"--out {run_dir} is not empty ({shown}): a run writes into a new or empty folder, so "
                             "its reports hold only its own cells; name another --out, or remove this folder first")


class Progress:
    """``progress.json``: the plan's cells and ladders, and how far the run got; rewritten as the run goes."""

    def __init__(self, plan: Plan) -> None:
        self.path = plan.out / PROGRESS_NAME
        self.record = RunProgress(cells=tuple(f"{c.mode} {c.label} c={c.concurrency} r{c.repeat}"
                                              for c in plan.cells()), ladder_modes=plan.open_loop_modes())
        self._write()

    def ladder_done(self, mode: str) -> None:
        self.record = dataclasses.replace(self.record, ladder_done=(*self.record.ladder_done, mode))
        self._write()

    def end(self, state: ProgressState) -> None:
        self.record = dataclasses.replace(self.record, state=state)
        self._write()

    def _write(self) -> None:
        write_json_atomic(self.path, to_json(self.record))


def point_latest(run_dir: Path) -> None:
    """Make ``results/latest`` point at ``run_dir`` when the run lives under ``results/``."""
    if run_dir.parent != RESULTS:
        return
    link = RESULTS / "latest"
    tmp = RESULTS / f".latest-{os.getpid()}"
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(run_dir.name)
    os.replace(tmp, link)


def measure_references(plan: Plan, run_dir: Path, console: Console) -> None:
    """The ceiling of every fork-per-request model on these CPUs, measured now, in this run."""
    refs: dict[str, Any] = {}
    try:
        refs["fork"] = reference.measure_fork_rate(FORK_REF_S, plan.server_cpus)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        console.print(f"[yellow]warning: fork reference not measured: {exc}[/yellow]")
    if plan.wrk:
        try:  # the least a Python fork server can do, driven like the modes
            refs["fork_loop"] = reference.measure_fork_loop_rate(
                FORK_LOOP_S, plan.server_cpus, plan.client_cpus, run_dir / "reference")
        except (OSError, RuntimeError, StartError, wrk_process.WrkError) as exc:
            console.print(f"[yellow]warning: fork-loop reference not measured: {exc}[/yellow]")
        try:  # what the standard library's fork server does with the same app: the fork mode's bar
            refs["stdlib_fork"] = reference.measure_fork_loop_rate(
                FORK_LOOP_S, plan.server_cpus, plan.client_cpus, run_dir / "reference", what="stdlib-fork")
        except (OSError, RuntimeError, StartError, wrk_process.WrkError) as exc:
            console.print(f"[yellow]warning: stdlib-fork reference not measured: {exc}[/yellow]")
    if refs:
        write_json_atomic(run_dir / "reference.json", references_to_json(refs))


def prepare(plan: Plan, console: Console) -> Path:
    """The run folder with plan.json, the database and the references; returns the database's path."""
    run_dir = plan.out
    run_dir.mkdir(parents=True, exist_ok=True)
    point_latest(run_dir)
    env = environment(plan)
    write_json_atomic(run_dir / "plan.json", to_json(RunInfo(plan=plan.describe(), environment=env)))
    if plan.tuned_run is not None:  # the tune run's figures travel with the run: its report shows them
        shutil.copyfile(plan.tuned_run / TUNE_FILE, run_dir / TUNE_FILE)
    if env["busy"]:
        console.print(f"[yellow]warning: the machine is busy before the run (its CPUs {env['cpu_busy_percent']:.0f}% "
                      f"busy; load average {env['load_average'][0]:.2f} on {env['cpu_count']} CPUs); figures will be "
                      "noisier[/yellow]")
    if not plan.wrk and any(single_request(plan.scenario_registry[s]) for s in plan.scenarios):
        wrk_process.warn_missing_once()
    db_path = db.create(run_dir / DB_NAME)
    if plan.db_url:
        db.seed_postgres(plan.db_url)
    if plan.measures_fork_references():
        measure_references(plan, run_dir, console)
    return db_path


def measure_cells(plan: Plan, db_path: Path, console: Console) -> int:
    """Every cell of the plan, each written as soon as it is measured; returns how many failed."""
    cells = plan.cells()
    console.print(f"workerbench: {count(len(cells), 'cell')}, {minutes(plan.estimate_s())} -> {plan.out}")
    for mode, why in plan.not_applicable:
        console.print(f"[yellow]{mode}: not applicable: {why}[/yellow]", highlight=False)
    for option, why in plan.not_applied:
        console.print(f"[yellow]not applied: {option}: {why}[/yellow]", highlight=False, soft_wrap=True)
    failed = 0
    with out.progress(console) as progress:
        task = progress.add_task("starting", total=len(cells))
        for cell in cells:
            progress.update(task, description=f"{cell.mode} {cell.label} c={cell.concurrency}")
            record = (run_remote_cell if plan.target else run_cell)(plan, cell, plan.out, db_path)
            write_json_atomic(plan.out / "cells" / f"{cell.slug}.json", to_json(record))
            failed += not record.ok
            progress.console.print(f"[{cell.index + 1}/{len(cells)}] {out.cell_line(record)}", highlight=False,
                                   soft_wrap=True)
            progress.advance(task)
    return failed


def run(plan: Plan, console: Console | None = None) -> int:
    """Measure the plan into its run folder (refused with RunFolderInUse when that holds anything); the exit
    status: 0, 1 when cells failed, 130 when interrupted."""
    console = console or Console(stderr=True)
    check_out(plan.out)
    progress = Progress(plan)
    failed = 0
    state: ProgressState = "interrupted"
    try:
        db_path = prepare(plan, console)  # a Ctrl-C while the references are measured is an interruption too
        failed = measure_cells(plan, db_path, console)
        if plan.open_loop_modes():
            console.print("open loop: latency against offered load")
            run_ladders(plan, plan.out, db_path,
                        lambda r: console.print(out.ladder_line(r), highlight=False, soft_wrap=True),
                        progress.ladder_done)
        state = "finished"
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: writing the summary of the finished cells and ladder steps[/yellow]")
    finally:
        (plan.out / DB_NAME).unlink(missing_ok=True)
        progress.end(state)
        console.print(f"summary: {report.render_run(plan.out)}")
    if state == "interrupted":
        console.print(f"[yellow]{completeness.banner(analysis.completeness(records.load(plan.out)))}[/yellow]",
                      highlight=False, soft_wrap=True)
        return 130
    if failed:
        console.print(f"[yellow]{failed} of {count(len(plan.cells()), 'cell')} failed; see summary.md[/yellow]")
        return 1
    return 0


def _terminate(signum: int, frame: object) -> None:
    # Turn SIGTERM into the Ctrl-C path, so every server and generator still running
    # is stopped by its context manager and the finished cells are summarised.
    raise KeyboardInterrupt


def build_parser() -> argparse.ArgumentParser:
    """The bench's command line, over the registered modes and generators (:func:`scripts.plan.plan.build_parser`)."""
    return plan_parser()


def main(argv: Sequence[str] | None = None) -> int:
    plan = plan_from_args(argv)
    if plan is None:
        return 0
    try:
        check_out(plan.out)
    except RunFolderInUse as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    # A shell without job control starts a background job (`cmd &` in a script, CI) with SIGINT ignored, and
    # Python then keeps it ignored: Ctrl-C's signal, sent on purpose, would not stop the run.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    started = time.monotonic()
    if plan.postgres:
        from scripts.run import pg

        try:
            with pg.postgres() as url:
                code = run(dataclasses.replace(plan, db_url=url))
        except pg.PostgresUnavailable as exc:
            print(f"error: --postgres: {exc} (apt-get install postgresql)", file=sys.stderr)
            return 2
    else:
        code = run(plan)
    print(f"finished in {time.monotonic() - started:.0f}s: {plan.out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
