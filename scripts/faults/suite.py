"""What each server model costs when things go wrong: the same faults injected into every mode.

    python -m scripts.faults [--quick] [--modes a,b] [--faults crash,hang] [--out DIR]

For every (fault, mode): start the mode as the bench does (its own process group, ``/health``
polled), with ``WORKERBENCH_FAULTS=1`` so the app serves its fault endpoints (:mod:`apps.faults`);
run steady open-loop load on ``/plaintext`` at a fixed, moderate rate (the project's engine, so a
stall shows as failures and latency, not as a generator that politely waits); inject the fault a
moment in; keep loading; read the engine's per-0.1 s outcome timeline and the process count
sampled beside it. Every fault becomes a :class:`scripts.records.records.FaultRecord`;
:mod:`scripts.faults.faults_report` turns the records into ``faults.md``, ``report.html`` and charts.

Everything is driven by :data:`MODES`. The facts a fault needs beyond starting a mode are
declared on each :class:`Mode` (``worker_timeout_flag``, ``max_requests_flag``,
``reload_signal``); a mode without one lacks that capability, so a mode added later runs every
fault that needs nothing more, and shows "not offered" for the others ("not applicable" is kept for a
fault the process model makes meaningless, as recycling a process that serves one request anyway).

A user's own app (``--app``/``--asgi-app`` and the bench's other options for it, :mod:`scripts.plan.userapp`) runs
the faults that send nothing but the load and signals (recycle, reload, shutdown, the slowloris half of slow)
under every mode of its interface, loading one request of the user's (:func:`scripts.plan.userapp.load_request`,
verified before each fault); the faults that are requests to the sample app's fault endpoints are listed as
needing the sample app (:data:`NEEDS_SAMPLE_APP`), the modes of the other interface as not applicable.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg

from loadtests.scenario_file import ScenarioFileError
from loadtests.scenarios import Scenario
from scripts.common.files import run_folder, write_text_atomic
from scripts.common.procs import StartError, log_tail
from scripts.faults import faults_html, faults_report
from scripts.faults.cases import FAULTS
from scripts.faults.settings import NEEDS_SAMPLE_APP, ROOT, Case, Settings, server_env
from scripts.load import LoadError
from scripts.modes import MODE_SETS, MODES, Mode
from scripts.plan import environment, plan, userapp
from scripts.records.records import FAULTS_NAME, FaultRecord, faults_to_json, load_faults
from scripts.render import completeness
from scripts.run.verify import VerifyError


def run_case(fault: str, case: Case) -> FaultRecord:
    """One fault against one mode; a harness failure becomes a failed record, never a stopped run."""
    case.workdir.mkdir(parents=True, exist_ok=True)
    try:
        return FAULTS[fault](case)
    except (RuntimeError, OSError, ValueError, KeyError, subprocess.TimeoutExpired, psycopg.Error, LoadError,
            StartError, VerifyError) as exc:
        tail = log_tail(case.log)
        app = case.settings.app
        if app and (note := userapp.failure_note(app, case.log)):
            tail += "\n" + note
        return FaultRecord(fault=fault, mode=case.mode.name, status="failed",
                           error=f"{type(exc).__name__}: {exc}".splitlines()[0], log_tail=tail)


def write_records(path: Path, records: Sequence[FaultRecord], meta: dict[str, Any]) -> None:
    write_text_atomic(path, json.dumps(faults_to_json(records, meta)))


@contextmanager
def postgres_if(wanted: bool) -> Iterator[str | None]:
    """A throwaway, seeded PostgreSQL server when ``wanted`` and installed; else None (cleanup is then n/a)."""
    from apps import db
    from scripts.run import pg

    if not wanted:
        yield None
        return
    try:
        pg.find_binaries()
    except pg.PostgresUnavailable as exc:
        print(f"faults: no PostgreSQL, the cleanup fault is not applicable: {exc}", flush=True)
        yield None
        return
    with pg.postgres() as url:
        db.seed_postgres(url)
        yield url


def run(settings: Settings, modes: Sequence[str], faults: Sequence[str], *,
        registry: Mapping[str, Mode] = MODES, meta: Mapping[str, Any] | None = None
        ) -> list[FaultRecord]:
    """Every fault against every mode (``registry`` names them: a user's app may add MODE+a2wsgi entries);
    ``meta`` goes into faults.json beside what the run records itself."""
    with postgres_if("cleanup" in faults) as url:
        return _run(dataclasses.replace(settings, pg_url=url), modes, faults, registry, meta or {})


def _run(settings: Settings, modes: Sequence[str], faults: Sequence[str], registry: Mapping[str, Mode],
         extra: Mapping[str, Any]) -> list[FaultRecord]:
    from apps import db

    settings.out.mkdir(parents=True, exist_ok=True)
    db_path = db.create(settings.out / "world.sqlite")
    env = server_env(db_path)
    if settings.app:
        env = userapp.server_env(settings.app, env, ROOT)
    records: list[FaultRecord] = []
    started = time.monotonic()
    meta = {"quick": settings.quick, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "modes": list(modes), "faults": list(faults), "workers": settings.workers,
            "environment": environment.environment(), **extra, "state": "running"}
    write_records(settings.out / FAULTS_NAME, records, meta)  # a faults run from its start, every case planned
    try:
        for fault in faults:
            for name in modes:
                records.append(_case(settings, registry[name], env, fault))
                write_records(settings.out / FAULTS_NAME, records, meta)
        meta["state"] = "finished"
    except KeyboardInterrupt:
        meta["state"] = "interrupted"
        raise
    finally:
        db_path.unlink(missing_ok=True)
        write_records(settings.out / FAULTS_NAME, records, meta)
    print(f"faults: {len(records)} cases in {time.monotonic() - started:.0f} s", flush=True)
    return records


def _case(settings: Settings, mode: Mode, env: dict[str, str], fault: str) -> FaultRecord:
    case = Case(settings=settings, mode=mode, env=env, workdir=settings.out / "logs" / f"{fault}-{mode.name}")
    t0 = time.monotonic()
    record = run_case(fault, case)
    print(f"faults: {fault:<13} {mode.name:<14} {time.monotonic() - t0:5.1f} s  {record.verdict or record.error}",
          flush=True)
    return record


def _fault_names(text: str) -> list[str]:
    """--faults: known names only; a usage error (exit 2) listing the valid ones otherwise."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    wrong = [n for n in names if n not in FAULTS]
    if wrong or not names:
        raise argparse.ArgumentTypeError(f"unknown fault {', '.join(wrong) or repr(text)}; valid: {', '.join(FAULTS)}")
    return names


def for_user_app(app: userapp.UserApp, request: Scenario, modes: Sequence[str], faults: Sequence[str]
                 ) -> tuple[list[str], dict[str, Mode], list[str], dict[str, Any]]:
    """The modes that can serve the user's app (as the bench names them), the registry that holds them, the faults
    that run on any app, and what faults.json records of the rest; raises ValueError when nothing would run."""
    asked = [(m, app.not_applicable(MODES[m])) for m in modes]
    serving = userapp.adapted_modes(app, MODES, tuple(m for m, why in asked if why is None))
    runnable = [f for f in faults if f not in NEEDS_SAMPLE_APP]
    if not serving:
        raise ValueError("no mode asked for can serve your app: " + "; ".join(f"{m} {why}" for m, why in asked))
    if not runnable:
        anywhere = ", ".join(f for f in FAULTS if f not in NEEDS_SAMPLE_APP)
        raise ValueError(f"{', '.join(faults)}: need the sample app's fault endpoints; the faults that run on your "
                         f"app: {anywhere}")
    needs = {f: NEEDS_SAMPLE_APP[f] for f in faults if f in NEEDS_SAMPLE_APP}
    if "slow" in faults:
        needs["slow: nonreader"] = NEEDS_SAMPLE_APP["slow: nonreader"]
    meta = {"app": app.describe(), "request": request.summary, "needs_sample_app": needs,
            "not_applicable": {m: why for m, why in asked if why is not None}}
    return list(serving), {**MODES, **serving}, runnable, meta


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scripts.faults", description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="short loads (about 4 minutes for everything)")
    p.add_argument("--modes", type=plan.modes_argument(MODES), default=MODE_SETS["default"],
                   help="modes and mode sets (default, all, wsgi, asgi), comma-separated; default: "
                        f"{', '.join(MODE_SETS['default'])}")
    p.add_argument("--faults", type=_fault_names, help=f"comma-separated, default all: {', '.join(FAULTS)}")
    p.add_argument("--out", type=run_folder, help="run folder (default results/faults-<UTC time>)")
    userapp.add_arguments(p, open_loop_help="the faults' steady load sends GET PATH (default: the first request of "
                          "--scenario-file, else of --paths)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the suite; the exit status: 0, or 130 when interrupted (the finished cases are still reported)."""
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started in the background without it
    p = build_parser()
    args = p.parse_args(argv)
    modes = list(args.modes)
    faults = args.faults or list(FAULTS)
    out = args.out or ROOT / "results" / time.strftime("faults-%Y%m%dT%H%M%SZ", time.gmtime())
    settings = Settings(quick=args.quick, out=out)
    registry: Mapping[str, Mode] = MODES
    meta: dict[str, Any] = {}
    try:
        user = userapp.from_args(args)
        if user is not None:
            request = userapp.load_request(user[1])
            modes, registry, faults, meta = for_user_app(user[0], request, modes, faults)
            settings = dataclasses.replace(settings, app=user[0], request=request)
    except (ScenarioFileError, ValueError) as exc:
        p.error(str(exc))
    for mode, why in meta.get("not_applicable", {}).items():
        print(f"faults: {mode}: not applicable: {why}", flush=True)
    for fault, needs in meta.get("needs_sample_app", {}).items():
        print(f"faults: {fault}: needs the sample app ({needs})", flush=True)
    code = 0
    try:
        run(settings, modes, faults, registry=registry, meta=meta)
    except KeyboardInterrupt:
        print("faults: interrupted: writing the reports of the finished cases", flush=True)
        code = 130
    if not (out / FAULTS_NAME).exists():  # stopped before the first case was set up
        print("faults: interrupted before any case ran; nothing to report", flush=True)
        return code
    faults_report.render_run(out)
    print(f"faults: wrote {out / 'faults.md'} and {out / faults_html.PAGE_NAME}")
    if code:
        ran, stored = load_faults(out)
        print(f"faults: {completeness.faults_banner(stored, ran)}", flush=True)
    return code


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM takes the Ctrl-C path: every server stopped, the finished cases reported


if __name__ == "__main__":
    sys.exit(main())
