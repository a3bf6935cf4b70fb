"""locust as a master and workers (``--locust-workers``, ``--locust-expect-workers``) against real servers."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from loadtests.scenarios import SCENARIOS
from scripts.generators.base import Load, LoadError, LoadResult
from scripts.generators.locust import LOCUST, Distribution, Locust, joined
from scripts.plan import plan_from_args
from scripts.procs import free_port
from scripts.records import load_cells
from scripts.resources import run_tracing
from tests.conftest import ROOT, StartServer

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
def test_two_workers_send_at_the_rate_of_one_process(start_server: StartServer, tmp_path: Path) -> None:
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

    with start_server(lambda host, port: [*PREFORK, "--bind", f"{host}:{port}"]) as srv:
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
def test_a_worker_that_never_joins_fails_the_cell_naming_how_many_joined(start_server: StartServer,
                                                                         tmp_path: Path) -> None:
    with start_server(lambda host, port: [*PREFORK, "--bind", f"{host}:{port}"]) as srv:
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
