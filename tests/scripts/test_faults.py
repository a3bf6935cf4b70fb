"""scripts.faults against real servers: each fault against prefork and a third-party mode, for real.

Short settings (the harness's --quick): about 4-8 s per case. Everything the harness starts is in a
process group it stops (scripts.common.procs.running); the assertions are on what the faults really did:
a process gone, PSS grown, a token seen by the next request, a worker replaced.
"""

from __future__ import annotations

import dataclasses
import html
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.common.procs import free_port, running
from scripts.faults import faults_report, observe, suite, timeline
from scripts.faults.settings import Case, Settings, server_env
from scripts.load import engine_process
from scripts.load.engine_process import OpenLoopResult
from scripts.modes import MODES
from scripts.records import records
from scripts.records.records import FaultRecord
from tests.conftest import HOST, ROOT, StartServer


@pytest.fixture(scope="module")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(quick=True, out=tmp_path_factory.mktemp("faults"))


@pytest.fixture(scope="module")
def env(world_db: Path) -> Iterator[dict[str, str]]:
    yield server_env(world_db)


# A case several tests assert on runs once: test_report_from_real_records reads the crash and state runs the tests
# above it made. Keyed by the module's settings too (the cleanup tests add a PostgreSQL URL); emptied with them.
_RUNS: dict[tuple[str, str, Settings], FaultRecord] = {}


@pytest.fixture(scope="module", autouse=True)
def _forget_runs() -> Iterator[None]:
    yield
    _RUNS.clear()


def run(fault: str, mode: str, settings: Settings, env: dict[str, str]) -> FaultRecord:
    key = (fault, mode, settings)
    if key not in _RUNS:
        case = Case(settings=settings, mode=MODES[mode], env=env, workdir=settings.out / f"{fault}-{mode}")
        record = suite.run_case(fault, case)
        assert record.status != "failed", (record.error, record.log_tail)
        _RUNS[key] = record
    return _RUNS[key]


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["prefork", "gunicorn-sync"])
def test_crash_kills_a_worker_and_the_pool_replaces_it(mode: str, settings: Settings, env: dict[str, str]) -> None:
    record = run("crash", mode, settings, env)
    assert record.details["/fault/crash?how=exit"] == "closed without an answer"
    # The pool is whole again by the end: as many processes as before the crash.
    assert record.processes[-1][1] == record.details["processes_before"] == 3
    assert record.recovery_s is not None and record.requests_lost is not None
    assert sum(record.timeline["ok"]) > 0 and record.verdict
    # The replacement is a new pid, whether or not a 0.1 s sample caught the pool one short.
    assert record.details["new_processes"] >= 1


@pytest.mark.slow
def test_hang_is_killed_by_the_prefork_timeout_but_not_by_uvicorn(settings: Settings, env: dict[str, str]) -> None:
    prefork = run("hang", "prefork", settings, env)
    uvicorn = run("hang", "uvicorn", settings, env)
    gone = prefork.details["hung_process_gone_s"]
    # The timeout, then SIGTERM, then SIGKILL after prefork's 2 s kill grace (time.sleep ignores nothing,
    # but the worker's SIGTERM handler only records it).
    assert gone is not None and settings.hang_timeout <= gone < settings.hang_timeout + 5
    # uvicorn's supervisor pings a thread of the worker, which answers while the event loop is blocked.
    assert uvicorn.details["hung_process_gone_s"] is None
    assert "never killed (the mode offers no worker timeout)" in uvicorn.verdict
    # Requests queued behind the hung process end as timeouts (the clients give up after 1 s), or are cut when
    # the timeout kills it: never refused, since the listener stays open.
    for record in (prefork, uvicorn):
        split = record.details["failures"]
        assert sum(split.values()) == record.requests_lost and split["refused"] == 0


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["prefork", "uvicorn"])
def test_app_error_is_a_500_and_the_process_survives(mode: str, settings: Settings, env: dict[str, str]) -> None:
    record = run("error", mode, settings, env)
    assert record.details["statuses"] == ["500"] * 5
    assert record.details["survived"] is True
    assert record.requests_lost == 0


@pytest.mark.slow
def test_state_leaks_in_workers_and_not_in_a_fork_per_request(settings: Settings, env: dict[str, str]) -> None:
    prefork, uvicorn, fork = (run("state", m, settings, env) for m in ("prefork", "uvicorn", "fork"))
    assert prefork.details["saw_earlier_state"] >= 10 and prefork.verdict.startswith("leaks state")
    assert uvicorn.details["saw_earlier_state"] >= 10
    assert fork.details["saw_earlier_state"] == 0 and fork.verdict.startswith("isolated")
    assert fork.details["processes"] == 20  # a process per request


@pytest.mark.slow
def test_leak_grows_pss_and_recycling_bounds_it(settings: Settings, env: dict[str, str]) -> None:
    leak = run("leak", "prefork", settings, env)
    recycled = run("leak+recycle", "prefork", settings, env)
    grown = leak.details["pss"][-1][1] - leak.details["pss"][0][1]
    # 1,500 requests x 16 KiB = 23 MiB kept across the workers; PSS counts it nearly all.
    assert grown > 15
    assert max(m for _, m in recycled.details["pss"]) < leak.details["pss"][-1][1] - 8
    assert not_applicable_for_fork(settings, env)


def test_a_feature_the_server_lacks_is_not_offered(settings: Settings, env: dict[str, str]) -> None:
    for fault in ("leak+recycle", "recycle", "reload"):
        record = run(fault, "waitress", settings, env)
        assert record.status == "not offered" and "waitress has no" in record.verdict, fault
    assert run("recycle", "fork", settings, env).status == "n/a"


def not_applicable_for_fork(settings: Settings, env: dict[str, str]) -> bool:
    record = run("leak+recycle", "fork", settings, env)
    return record.status == "n/a" and "nothing to recycle" in record.verdict


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["prefork", "gunicorn-sync"])
def test_reload_renews_every_worker(mode: str, settings: Settings, env: dict[str, str]) -> None:
    record = run("reload", mode, settings, env)
    assert record.details["workers_replaced"] == record.details["workers_before"] == 2
    assert record.verdict.startswith("every worker new after")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["prefork", "uvicorn"])
def test_shutdown_exits_and_leaves_nothing(mode: str, settings: Settings, env: dict[str, str]) -> None:
    record = run("shutdown", mode, settings, env)
    assert record.details["exit_s"] is not None and record.details["exit_s"] < 30
    assert record.details["left_behind"] == 0
    assert record.details["refused_after"] > 0  # the schedule went on against a closed port
    split = record.details["failures"]
    assert split["refused"] > 0 and record.details["cut"] == sum(split[k] for k in ("reset", "timeout", "5xx",
                                                                                     "wrong"))
    # One meaning of "lost" in the table: the refused requests are shown apart from the cut ones, as no loss.
    row = next(line for line in faults_report.markdown([record], {}).splitlines() if line.startswith(f"| {mode} |"))
    assert row.startswith(f"| {mode} | {record.requests_lost} | ")
    assert f"not lost: {split['refused']} refused after the listener closed" in row


@pytest.mark.slow
def test_report_from_real_records(settings: Settings, env: dict[str, str], tmp_path: Path) -> None:
    written = [run("crash", "prefork", settings, env), run("state", "fork", settings, env),
               run("reload", "fork", settings, env)]
    suite.write_records(tmp_path / "faults.json", written, {"quick": True})
    loaded = records.load(tmp_path).faults
    assert list(loaded) == written
    md = faults_report.render(tmp_path, loaded).read_text()
    assert "| prefork |" in md and "isolated" in md and "not applicable" in md
    # The caution x mode matrix: one row per fault, one column per mode, a few words per cell.
    assert "| caution | fault | prefork | fork |" in md
    assert "| state | state |  | isolated |" in md and "| lifecycle | reload |  | n/a |" in md
    assert (tmp_path / "charts" / "availability-crash.png").stat().st_size > 10_000


def test_recovery_from_a_timeline() -> None:
    # 200/s in 0.1 s steps: 20 per step; nothing for 1 s after a fault at 1.0 s, then full service.
    ok = [20] * 10 + [0] * 10 + [40] + [20] * 19
    failed = [0] * 10 + [0] * 9 + [5] + [0] * 20
    result = OpenLoopResult(
        mode="open", url="", method="GET", connections=1, close=False, offered_rate=200, duration_s=4.0,
        timeout_s=1, scheduled=800, sent=800, completed=795, ok=795, unsent=0, retries=0, connects=1,
        errors={}, achieved_rate=0, elapsed_s=0, generator_behind_s=None, generator_kept_up=None,
        generator_cpu_util=0, generator_runqueue_frac=None, scheduler_lag_ms={}, queue_wait_ms={},
        latency_ms={}, latency_uncorrected_ms={}, warnings=(),
        timeline={"origin_monotonic": 0.0, "step_s": 0.1, "ok": ok, "failed": failed})
    observed = observe.Observed(result=result, fault_at_s=1.0, samples=[], notes={})
    assert timeline.recovery_s(observed, 200.0) == pytest.approx(1.0)
    # Still down at the end: never recovers.
    down = dataclasses.replace(result, timeline={"origin_monotonic": 0.0, "step_s": 0.1,
                                                 "ok": [20] * 10 + [0] * 30, "failed": [0] * 40})
    assert timeline.recovery_s(observe.Observed(result=down, fault_at_s=1.0, samples=[], notes={}), 200.0) is None


def test_openloop_timeline_counts_every_outcome(start_server: StartServer, tmp_path: Path) -> None:
    def build(host: str, port: int) -> list[str]:
        return MODES["prefork"].argv(host=host, port=port, workers=2)

    with start_server(build) as srv:
        r = engine_process.run_openloop(f"http://{HOST}:{srv.port}/plaintext", rate=200, duration=2,
                                        workdir=tmp_path / "a")
        missing = engine_process.run_openloop(f"http://{HOST}:{srv.port}/nope", rate=50, duration=1,
                                              workdir=tmp_path / "b")
    assert r.timeline["step_s"] == 0.1 and len(r.timeline["ok"]) == len(r.timeline["failed"])
    assert sum(r.timeline["ok"]) == r.ok == 400 and sum(r.timeline["failed"]) == 0
    # About 20 per 0.1 s step over the 2 s schedule: the answers are spread, not lumped.
    assert 18 <= len(r.timeline["ok"]) <= 22 and max(r.timeline["ok"]) <= 40
    assert sum(missing.timeline["failed"]) == missing.errors["status"] == 50  # a 404 is a failure
    # ... of its own kind: an answer, neither 2xx nor the server's 5xx.
    assert sum(missing.timeline["failed_by"]["wrong"]) == 50
    assert not any(sum(missing.timeline["failed_by"][k]) for k in ("refused", "reset", "timeout", "5xx"))


@pytest.mark.slow
def test_openloop_timeline_counts_connect_errors(tmp_path: Path) -> None:
    port = free_port(HOST)
    r = engine_process.run_openloop(f"http://{HOST}:{port}/", rate=50, duration=1, connections=4, timeout=2,
                              workdir=tmp_path)
    assert sum(r.timeline["failed"]) == r.errors["connect"] == 50 and sum(r.timeline["ok"]) == 0
    assert sum(r.timeline["failed_by"]["refused"]) == 50


@pytest.mark.parametrize("mode", ["prefork", "uvicorn"])
def test_cleanup_counts_postgres_connections(mode: str, settings: Settings, env: dict[str, str],
                                             pg_url: str) -> None:
    record = run("cleanup", mode, dataclasses.replace(settings, pg_url=pg_url), env)
    d = record.details
    assert d["before"] == 0 and 1 <= d["peak"] <= 4  # one connection per worker (reuse), a reload's overlap
    assert d["zero_after_exit_s"] is not None  # every exiting process closed its connection
    # Recycling every 100 requests and a reload open new connections; far fewer than one per request.
    assert 2 <= d["opened"] < record.details["scheduled"] / 4
    assert record.requests_lost == 0


def test_cleanup_is_not_applicable_without_postgres(settings: Settings, env: dict[str, str]) -> None:
    record = run("cleanup", "prefork", settings, env)
    assert record.status == "n/a" and "PostgreSQL" in record.verdict


@pytest.mark.slow
def test_slow_clients_are_held_and_uvicorn_serves_beside_them(settings: Settings, env: dict[str, str]) -> None:
    prefork = run("slow", "prefork", settings, env)
    uvicorn = run("slow", "uvicorn", settings, env)
    for record in (prefork, uvicorn):
        for kind in ("slowloris", "nonreader"):
            levels = record.details["levels"][kind]
            assert [lv["k"] for lv in levels] == list(settings.slow_levels)
            assert all(lv["held"] == lv["k"] and 0 <= lv["success_pct"] <= 100 for lv in levels)
    # One event loop per worker multiplexes the slow clients beside the normal ones.
    assert all(lv["success_pct"] >= 90 for kind in ("slowloris", "nonreader")
               for lv in uvicorn.details["levels"][kind][:1])


@pytest.mark.slow
def test_an_interrupted_faults_run_reports_the_cases_that_ran(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "scripts.faults", "--quick", "--modes", "prefork,uvicorn", "--faults",
           "error,crash,state", "--out", str(out)]

    def ran() -> int:
        try:
            return len(json.loads((out / "faults.json").read_text())["records"])
        except (OSError, ValueError, KeyError):
            return 0

    log = tmp_path / "faults.log"
    with running(cmd, log_path=log, cwd=ROOT) as proc:
        deadline = time.monotonic() + 90
        while not ran() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert ran(), log.read_text()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        code = proc.wait(timeout=60)
    text = log.read_text()
    assert code == 130 and "Traceback" not in text, text
    assert "faults: interrupted: writing the reports of the finished cases" in text
    doc = json.loads((out / "faults.json").read_text())
    assert doc["state"] == "interrupted" and 1 <= len(doc["records"]) < 6
    banner = f"interrupted: {len(doc['records'])} of 6 cases ran; not run: "
    assert banner in (out / "faults.md").read_text() and "state against uvicorn" in (out / "faults.md").read_text()
    assert banner in html.unescape((out / "report.html").read_text())
    assert f"faults: {banner}" in text  # and on the console


# The three modes of issue 22: uWSGI's settings as the worker-model cautions, and what green threads cannot yield.


@pytest.mark.slow
def test_uwsgi_harakiri_kills_a_hung_worker_and_a_sleeping_greenlet_never_hangs_gevent(
        settings: Settings, env: dict[str, str]) -> None:
    uwsgi = run("hang", "uwsgi", settings, env)
    gone = uwsgi.details["hung_process_gone_s"]
    assert uwsgi.details["timeout_offered"] and gone is not None and gone < settings.hang_timeout + 4
    assert uwsgi.command[uwsgi.command.index("--harakiri") + 1] == str(settings.hang_timeout)
    # /fault/hang sleeps: monkey-patched, the sleep is a yield, so the worker goes on serving and heartbeating.
    gevent = run("hang", "gunicorn-gevent", settings, env)
    assert gevent.requests_lost == 0 and gevent.details["hung_process_gone_s"] is None


@pytest.mark.slow
def test_a_computation_that_never_yields_stalls_a_gevent_worker(settings: Settings, env: dict[str, str]) -> None:
    gevent = run("spin", "gunicorn-gevent", settings, env)
    # Every connection on the spinning worker waits: the clients' 1 s timeouts are the lost requests.
    assert gevent.requests_lost and gevent.details["failures"].get("timeout"), gevent.verdict


@pytest.mark.alone  # a thread pool must lose nothing to 1 s client timeouts: tests beside it could make it
@pytest.mark.slow
def test_a_computation_that_never_yields_does_not_stall_a_thread_pool(settings: Settings, env: dict[str, str]) -> None:
    gthread = run("spin", "gunicorn-gthread", settings, env)
    assert gthread.requests_lost == 0, gthread.verdict


@pytest.mark.alone  # compares p99s with 150 ms
@pytest.mark.slow
def test_a_blocking_sqlite_query_stalls_green_threads_where_a_sleep_does_not(
        settings: Settings, env: dict[str, str]) -> None:
    record = run("blocking", "gunicorn-gevent", settings, env)
    p99, slow = record.details["p99_ms"], record.details["slow_ms"]
    assert record.details["slow_requests"]["sqlite"] >= 1 and record.details["slow_requests"]["wait"] >= 1
    # Under a 300 ms sleep the other requests of the worker go on; under a 300 ms query they wait for it.
    assert p99["sqlite"] >= slow / 2 > p99["wait"], record.verdict


@pytest.mark.slow
def test_uwsgi_recycles_a_leaking_worker_by_its_rss(settings: Settings, env: dict[str, str]) -> None:
    record = run("leak+rss", "uwsgi", settings, env)
    flag, limit = record.details["recycle_option"]
    assert flag == "--reload-on-rss" and int(limit) > settings.rss_growth_mb
    assert record.details["new_processes"] >= 1, record.verdict
    assert run("leak+rss", "prefork", settings, env).status == "not offered"
