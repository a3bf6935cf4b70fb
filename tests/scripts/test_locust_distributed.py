"""locust as a master and workers (``--locust-workers``, ``--locust-expect-workers``) against real servers."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from loadtests.scenarios import SCENARIOS
from scripts.analysis import stats
from scripts.common.procs import free_port
from scripts.load.generators.base import Load, LoadError, LoadResult
from scripts.load.generators.locust import LOCUST, Distribution, Locust, hot_workers, joined, locust_command
from scripts.load.resources import run_tracing
from scripts.plan.plan import plan_from_args
from scripts.records.records import CellRecord, Flag, cell_from_json, load_cells, to_json
from tests.conftest import ROOT, SharedServer, StartServer

PREFORK = [sys.executable, "-m", "servers.prefork", "apps.wsgi:app", "--workers", "2"]


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scripts.bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=180, check=False)


def test_the_join_count_is_read_from_the_masters_log() -> None:
    log = ("vm/INFO/root: Waiting for workers to be ready, 0 of 3 connected\n"
           "vm/INFO/locust.runners: w1 (index 0) reported as ready. 1 workers connected.\n"
           "vm/INFO/locust.runners: w2 (index 1) reported as ready. 2 workers connected.\n"
           "vm/INFO/root: Waiting for workers to be ready, 2 of 3 connected\n"
           "vm/ERROR/locust.main: Gave up waiting for workers to connect\n")
    assert joined(log) == 2
    assert joined("") == 0


@pytest.mark.slow
def test_the_options_are_checked_and_recorded(tmp_path: Path) -> None:
    plan = plan_from_args(["--locust-workers", "2", "--locust-expect-workers", "1", "--out", str(tmp_path)])
    assert plan is not None and plan.locust == Distribution(local=2, remote=1, port=5557)
    assert plan.describe()["locust"]["local"] == 2
    chosen = plan.generators["locust"]
    assert isinstance(chosen, Locust) and chosen.distribution == plan.locust
    refused = bench("--locust-master-bind", "0.0.0.0:5557")
    assert refused.returncode == 2 and "--locust-master-bind needs --locust-workers" in refused.stderr
    refused = bench("--locust-workers", "-1")
    assert refused.returncode == 2 and "--locust-workers must be at least 0" in refused.stderr


@pytest.mark.slow
@pytest.mark.alone  # two rates compared
def test_two_workers_send_at_the_rate_of_one_process(shared_server: SharedServer, tmp_path: Path) -> None:
    """The same users against the same server at the same time, as one process and as a master with two workers.

    Their counts are not comparable as such: each starts its measured interval when its last user is running
    (--reset-stats), which the master learns only from its workers' reports. So the comparison is per-user
    request rate over each one's own interval: the users of the mixed scenario wait 0-20 ms between requests and
    get answers in about a millisecond, so the rate is the users' own, whichever process runs them. Run side by
    side, both see the same server and the same noise of a shared machine; within 20% (repeated runs here
    differed by 2-6%).
    """
    users, seconds = 8, 5.0
    results: dict[str, LoadResult] = {}

    srv = shared_server(lambda host, port: [*PREFORK, "--bind", f"{host}:{port}"])

    def run(name: str, distribution: Distribution | None) -> None:
        generator = dataclasses.replace(LOCUST, distribution=distribution)
        results[name] = generator.run(Load(scenario=SCENARIOS["mixed"], host=srv.host, port=srv.port,
                                           connections=users, duration=seconds, workdir=tmp_path / name))

    threads = [threading.Thread(target=run, args=("one", None)),
               threading.Thread(target=run, args=("two", Distribution(local=2)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    one, two = results["one"], results["two"]
    assert one.failures == 0 and two.failures == 0
    assert one.requests > 500 and two.requests > 500
    assert 0.8 < two.throughput_rps / one.throughput_rps < 1.25, (one, two)
    # The headroom figure counts the master and its workers: three processes' CPU, not one's.
    assert two.generator_cpu is not None and two.generator_cpu > 0
    assert "2 workers connected" in (tmp_path / "two" / "locust.log").read_text()


@pytest.mark.slow
def test_a_worker_that_never_joins_fails_the_cell_naming_how_many_joined(shared_server: SharedServer,
                                                                         tmp_path: Path) -> None:
    srv = shared_server(lambda host, port: [*PREFORK, "--bind", f"{host}:{port}"])
    generator = dataclasses.replace(
        LOCUST, distribution=Distribution(local=1, remote=1, port=free_port(), join_wait_s=2))
    with pytest.raises(LoadError, match=r"locust: 1 of 2 workers joined the master within 2s \(1 started here, "
                                        r"1 expected from other hosts; master at 127\.0\.0\.1:\d+\)"):
        generator.run(Load(scenario=SCENARIOS["mixed"], host=srv.host, port=srv.port, connections=4,
                           duration=1, workdir=tmp_path / "gen"))

    # In a run: that cell fails with the reason, the others are measured.
    run = bench("--modes", "prefork", "--scenarios", "mixed,json", "--quick",
                "--locust-workers", "1", "--locust-expect-workers", "1", "--locust-join-wait", "2",
                "--locust-master-bind", f"127.0.0.1:{free_port()}", "--out", str(tmp_path / "run"))
    assert run.returncode == 1, run.stderr
    cells = {c.scenario: c for c in load_cells(tmp_path / "run")}
    assert cells["json"].ok and cells["json"].requests
    assert not cells["mixed"].ok and cells["mixed"].error is not None
    assert "1 of 2 workers joined the master within 2s" in cells["mixed"].error


@pytest.mark.slow
def test_the_cpu_trace_reads_a_wall_clock_window(tmp_path: Path) -> None:
    """A process busy for its first 1.5 s and idle for the next 1.5 s: the trace tells the halves apart by the
    wall-clock times the process itself wrote, as locust's JSON gives its measured interval."""
    marks = tmp_path / "marks"
    code = ("import time, sys\nt0 = time.time()\nwhile time.time() < t0 + 1.5: pass\nt1 = time.time()\n"
            "time.sleep(1.5)\nopen(sys.argv[1], 'w').write(f'{t0} {t1} {time.time()}')\n")
    exit_code, trace = run_tracing([sys.executable, "-c", code, str(marks)], log=tmp_path / "log", timeout=30,
                                   cpus=None, cwd=ROOT)
    assert exit_code == 0
    t0, t1, t2 = map(float, marks.read_text().split())
    busy, idle = trace.utilization_between(t0, t1), trace.utilization_between(t1, t2)
    assert busy is not None and idle is not None
    # Relative, not absolute: on a busy shared machine the loop may get a fifth of a core.
    assert idle * trace.cpus < 0.1 and busy > max(0.05, 5 * idle), (busy, idle)
    assert trace.utilization_between(t2 + 10, t2 + 20) is None


def test_a_worker_over_its_cpu_while_measuring_flags_the_figure() -> None:
    # [arrival on the master's clock, worker, percent of one CPU used and waiting for one over the SAMPLE_S
    # before]: worker a was busy spawning its users before the measured interval (100 to 110), then calm; worker
    # b shared its CPU with other work: it used 60% of it and waited the rest of the time.
    samples = [[99.6, "a", 100.0, 0.0], [100.1, "a", 100.0, 0.0], *([t, "a", 30.0, 1.0] for t in range(101, 111)),
               *([t + 0.5, "b", 60.0, 38.0] for t in range(100, 111))]
    assert hot_workers(samples, (100.0, 110.0), 2) == ("locust: 1 of 2 workers wanted over 85% of a CPU while "
                                                       "measuring (busiest: 60% used, 38% waiting for a CPU)")
    assert hot_workers([s for s in samples if s[1] == "a"], (100.0, 110.0), 2) is None
    assert hot_workers([[105, "c", 97.0, None]], None, 1) is not None  # a kernel that does not say how long it waited
    assert hot_workers([], None, 1) is None
    # In the figure: a cell whose own CPU trace read little is still generator-bound on a worker's report.
    calm = CellRecord(mode="across", scenario="mixed", status="ok", requests=100, failures=0, throughput_rps=50.0,
                      generator_cpu=0.2)
    assert Flag.GENERATOR_BOUND not in stats.fold([calm]).flags
    hot = dataclasses.replace(calm, generator_warning=hot_workers(samples, None, 2))
    assert Flag.GENERATOR_BOUND in stats.fold([hot]).flags
    assert cell_from_json(json.loads(json.dumps(to_json(hot)))).generator_warning == hot.generator_warning


@pytest.mark.slow
def test_a_local_worker_out_of_cpu_is_reported_by_the_master(start_server: StartServer, tmp_path: Path) -> None:
    """One worker on one CPU with 64 users against uvicorn's plaintext: locust's ceiling, as the headroom tests
    show for one process; here the master's log says so and the result carries it."""
    # The server on CPU 0, the master and its worker on CPU 1, as the bench places them.
    uvicorn = ["taskset", "-c", "0", sys.executable, "-m", "uvicorn", "apps.asgi:app", "--no-access-log",
               "--log-level", "warning"]
    with start_server(lambda host, port: [*uvicorn, "--host", host, "--port", str(port)]) as srv:
        generator = dataclasses.replace(LOCUST, distribution=Distribution(local=1, port=free_port()))
        result = generator.run(Load(scenario=SCENARIOS["plaintext"], host=srv.host, port=srv.port, connections=64,
                                    duration=4, workdir=tmp_path / "gen", cpus=frozenset({1})))
    assert result.requests > 0
    samples = json.loads((tmp_path / "gen" / "workers-cpu.json").read_text())
    assert result.generator_warning and result.generator_warning.startswith(
        "locust: 1 of 1 workers wanted over 85% of a CPU while measuring"), samples


@pytest.mark.slow
def test_the_cpu_trace_counts_time_spent_waiting_for_a_cpu(tmp_path: Path) -> None:
    """Two busy loops pinned to one CPU: each gets about half of it and waits the other half."""
    code = "import time\nt0 = time.time()\nwhile time.time() < t0 + 2: pass\n"
    hog = subprocess.Popen(["taskset", "-c", "0", sys.executable, "-c", code])
    try:
        t0 = time.time()
        exit_code, trace = run_tracing([sys.executable, "-c", code], log=tmp_path / "log", timeout=30, cpus={0},
                                       cwd=ROOT)
        t1 = time.time()
    finally:
        hog.wait()
    assert exit_code == 0
    used, waited = trace.utilization_between(t0 + 0.3, t1 - 0.3), trace.waiting_between(t0 + 0.3, t1 - 0.3)
    assert used is not None and waited is not None
    assert used < 0.8 and waited > 0.2 and used + waited > 0.85, (used, waited)


@pytest.mark.slow
def test_a_master_the_bench_did_not_start_takes_the_workers_cpu_reports_quietly(shared_server: SharedServer,
                                                                                 tmp_path: Path) -> None:
    """Without WB_WORKER_CPU_FILE (a user's own distributed locust) the reports are taken, not logged as unknown
    messages every half second, and no file is written."""
    srv = shared_server(lambda host, port: [*PREFORK, "--bind", f"{host}:{port}"])
    master = locust_command(SCENARIOS["json"], f"http://{srv.host}:{srv.port}", 4, 3, tmp_path / "locust")
    argv = Distribution(local=1).command(master, free_port())
    code, _ = run_tracing(argv, log=tmp_path / "locust.log", timeout=40, cpus=None, cwd=ROOT)
    log = (tmp_path / "locust.log").read_text()
    assert code == 0 and "1 workers connected" in log, log
    assert "Unknown message type" not in log, log
    assert not list(tmp_path.glob("workers-cpu.json"))
