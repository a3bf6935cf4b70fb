"""The orchestrator: command line, plan, cells on disk, failures, interruption, and a real short run."""

from __future__ import annotations

import html
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from loadtests.scenarios import SCENARIOS
from scripts import bench
from scripts.common.cpus import parse_cpus
from scripts.common.files import write_json_atomic
from scripts.common.procs import running
from scripts.load.generators import GENERATORS
from scripts.load.generators import locust as locust_gen
from scripts.load.wrk_process import find_wrk
from scripts.modes import MODE_SETS, MODES, Launch, Mode, mode_sets
from scripts.plan.environment import BUSY_PERCENT, cpu_busy_percent
from scripts.plan.plan import plan_from_args
from scripts.records import distribution
from scripts.render.web import runs_index
from scripts.run.verify import VerifyError, verify
from tests.conftest import ROOT, StartServer

DATA = Path(__file__).parent / "data"


def bench_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scripts.bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.mark.slow
def test_unknown_mode_lists_the_valid_ones() -> None:
    result = bench_cli("--modes", "prefork,nginx")
    assert result.returncode == 2
    assert "unknown mode or mode set 'nginx'" in result.stderr
    assert f"valid: {', '.join([*MODE_SETS, *MODES])}" in result.stderr


def test_named_mode_sets_mix_with_names_in_family_order(tmp_path: Path) -> None:
    def modes(value: str) -> tuple[str, ...]:
        plan = plan_from_args(["--modes", value, "--out", str(tmp_path)])
        assert plan is not None
        return plan.modes

    assert modes("all") == tuple(MODES)
    assert modes("asgi") == tuple(m for m in MODES if MODES[m].interface == "asgi") and len(modes("asgi")) >= 4
    assert set(modes("wsgi")) == {m for m in MODES if MODES[m].interface == "wsgi"}
    # A set and a name it already holds, in any order: each mode once, hand-written first.
    assert modes("asgi,uvicorn,prefork") == ("prefork", *modes("asgi"))
    assert modes("default") == ("cgi", "fork", "prefork", "gunicorn-sync", "uvicorn")
    default = plan_from_args(["--out", str(tmp_path)])
    assert default is not None and default.modes == MODE_SETS["default"]


def test_threads_option_sizes_the_threaded_modes_only(tmp_path: Path) -> None:
    plan = plan_from_args(["--modes", "all", "--threads", "3", "--out", str(tmp_path)])
    assert plan is not None
    argv = {name: plan.registry[name].argv(host="127.0.0.1", port=1, workers=2) for name in plan.modes}
    assert argv["gunicorn-gthread"][-2:] == ["--threads", "3"]
    assert "--threads=3" in argv["waitress"]
    assert not any("thread" in arg for arg in argv["gunicorn-sync"] + argv["prefork"])


@pytest.mark.slow
def test_unknown_scenario_lists_the_valid_ones() -> None:
    result = bench_cli("--scenarios", "hello")
    assert result.returncode == 2
    assert f"valid: {', '.join(SCENARIOS)}" in result.stderr


@pytest.mark.slow
def test_list_names_every_mode_and_scenario() -> None:
    result = bench_cli("--list")
    assert result.returncode == 0
    for name in [*MODES, *SCENARIOS]:
        assert name in result.stdout
    for name, modes in MODE_SETS.items():
        assert f"mode set  {name:<16} {','.join(modes)}" in result.stdout
    assert result.stdout.count("settings: ") == len(MODES)  # every mode states its keep-alive, threads, backlog


def test_plan_puts_modes_side_by_side_and_sweeps_where_asked(tmp_path: Path) -> None:
    plan = plan_from_args(["--modes", "fork,uvicorn", "--scenarios", "plaintext,json", "--concurrency", "32",
                                 "--sweep", "plaintext", "--sweep-levels", "1,8", "--repeats", "1", "--no-close",
                                 "--out", str(tmp_path)])
    assert plan is not None
    cells = [(c.scenario, c.concurrency, c.mode) for c in plan.cells()]
    assert cells == [
        ("plaintext", 1, "fork"), ("plaintext", 1, "uvicorn"),
        ("plaintext", 8, "fork"), ("plaintext", 8, "uvicorn"),
        ("plaintext", 32, "fork"), ("plaintext", 32, "uvicorn"),
        ("json", 32, "fork"), ("json", 32, "uvicorn"),
    ]
    assert [c.index for c in plan.cells()] == list(range(8))


def test_repeats_interleave_modes_and_keepalive_doubles_where_asked(tmp_path: Path) -> None:
    plan = plan_from_args(["--modes", "fork,prefork,uvicorn", "--scenarios", "plaintext", "--no-sweep",
                                 "--repeats", "3", "--close", "plaintext", "--out", str(tmp_path)])
    assert plan is not None
    order = [(c.label, c.repeat, c.mode) for c in plan.cells()]
    assert order[:9] == [
        ("plaintext", 0, "fork"), ("plaintext", 0, "prefork"), ("plaintext", 0, "uvicorn"),
        ("plaintext", 1, "uvicorn"), ("plaintext", 1, "prefork"), ("plaintext", 1, "fork"),
        ("plaintext", 2, "fork"), ("plaintext", 2, "prefork"), ("plaintext", 2, "uvicorn"),
    ]
    assert {label for label, _, _ in order[9:]} == {"plaintext/close"}
    assert len({c.slug for c in plan.cells()}) == len(plan.cells())


def test_each_scenario_gets_its_generator(tmp_path: Path) -> None:
    plan = plan_from_args(["--out", str(tmp_path)])
    assert plan is not None
    if plan.wrk:
        assert plan.generator_for("plaintext") == "wrk"
    assert plan.generator_for("mixed") == "locust"
    forced = plan_from_args(["--generator", "locust", "--out", str(tmp_path)])
    assert forced is not None and forced.generator_for("plaintext") == "locust"
    native = plan_from_args(["--generator", "native", "--out", str(tmp_path)])
    assert native is not None and native.generator_for("plaintext") == "native"
    assert native.generator_for("mixed") == "locust"  # a user scenario stays with the generator that can drive it


def test_without_wrk_the_native_generator_drives_single_request_scenarios(tmp_path: Path) -> None:
    no_wrk = {name: g for name, g in GENERATORS.items() if name != "wrk"}
    plan = plan_from_args(["--out", str(tmp_path)], gens=no_wrk)
    assert plan is not None
    assert {plan.generator_for(s) for s in SCENARIOS if s != "mixed"} == {"native"}
    assert plan.generator_for("mixed") == "locust"


@pytest.mark.slow
def test_cpu_lists_are_parsed_and_overlap_refused(tmp_path: Path) -> None:
    assert parse_cpus("0,2-4") == frozenset({0, 2, 3, 4})
    result = bench_cli("--server-cpus", "0", "--client-cpus", "0")
    assert result.returncode == 2 and "overlap" in result.stderr
    result = bench_cli("--server-cpus", "0", "--client-cpus", "999")
    assert result.returncode == 2 and "not available" in result.stderr


def test_quick_plan_covers_every_mode_and_scenario_briefly(tmp_path: Path) -> None:
    plan = plan_from_args(["--quick", "--out", str(tmp_path)])
    assert plan is not None
    default = MODE_SETS["default"]
    assert plan.modes == default and plan.scenarios == tuple(SCENARIOS)
    assert plan.sweep_scenarios == () and plan.repeats == 1 and plan.close_scenarios == ()
    expected = sum(len(MODES[m].placement.only_scenarios) or len(SCENARIOS) for m in default)
    assert len(plan.cells()) == expected
    assert {c.mode for c in plan.cells()} == set(default) and {c.scenario for c in plan.cells()} == set(SCENARIOS)
    assert plan.estimate_s() < 140  # leaves room for nox to build its environment within 3 minutes


def test_default_plan_fits_in_fifteen_minutes(tmp_path: Path) -> None:
    plan = plan_from_args(["--out", str(tmp_path)])
    assert plan is not None
    assert plan.repeats == 3
    assert plan.estimate_s() < 13.5 * 60  # the target is 15 minutes; the estimate runs a little short


def test_write_json_atomic_leaves_only_the_file(tmp_path: Path) -> None:
    write_json_atomic(tmp_path / "cells" / "a.json", {"x": 1})
    assert json.loads((tmp_path / "cells" / "a.json").read_text()) == {"x": 1}
    assert [p.name for p in (tmp_path / "cells").iterdir()] == ["a.json"]


def test_parse_locust_json_totals_and_percentiles() -> None:
    # A real file written by locust 2.47 (`--json-file`) for 2 s of /plaintext.
    result = locust_gen.parse_locust_json(DATA / "locust.json")
    assert result.requests == 5370 and result.failures == 0
    assert result.throughput_rps == pytest.approx(5370 / (1795901864.6936412 - 1795901862.88794))
    # Histogram {0: 172, 1: 5185, 2: 11, 3: 2}: p50 and p99 fall in the 1 ms bucket, the maximum in 3 ms.
    assert result.latency_ms["p50"] == 1 and result.latency_ms["p99"] == 1 and result.latency_ms["p999"] == 2
    assert result.latency_ms["max"] == pytest.approx(3.303, abs=1e-3)


def test_percentile_on_known_histograms() -> None:
    assert distribution.percentile_of({1.0: 50, 2.0: 49, 10.0: 1}, 0.5) == 1.0
    assert distribution.percentile_of({1.0: 50, 2.0: 49, 10.0: 1}, 0.99) == 2.0
    assert distribution.percentile_of({1.0: 50, 2.0: 49, 10.0: 1}, 0.999) == 10.0
    assert distribution.percentile_of({5.0: 1}, 0.5) == 5.0


def test_verify_rejects_a_server_that_answers_wrongly(start_server: StartServer) -> None:
    def build(host: str, port: int) -> list[str]:
        return [sys.executable, "-m", "servers.prefork", "tests.scripts.wrong_app:app", "--bind", f"{host}:{port}"]

    with start_server(build) as srv:
        verify(srv.host, srv.port, SCENARIOS["json"])  # the other endpoints are right
        with pytest.raises(VerifyError, match="Hello, Wrong!"):
            verify(srv.host, srv.port, SCENARIOS["plaintext"])


def _broken(launch: Launch) -> list[str]:
    return [launch.python, "-c", "import sys; print('cannot start: on purpose', flush=True); sys.exit(3)"]


@pytest.mark.slow
def test_a_mode_that_fails_to_start_fails_its_cell_and_the_run_goes_on(tmp_path: Path) -> None:
    registry = {"broken": Mode(name="broken", interface="wsgi", summary="exits at once", command=_broken),
                "prefork": MODES["prefork"]}
    plan = plan_from_args(["--modes", "broken,prefork", "--scenarios", "plaintext", "--concurrency", "2",
                                 "--no-sweep", "--no-close", "--repeats", "1", "--duration", "1", "--warmup", "0",
                                 "--out", str(tmp_path)],
                                registry=registry)
    assert plan is not None
    assert bench.run(plan) == 1
    cells = {json.loads(p.read_text())["mode"]: json.loads(p.read_text()) for p in (tmp_path / "cells").glob("*.json")}
    assert cells["broken"]["status"] == "failed"
    assert "exited with code 3" in cells["broken"]["error"]
    assert "cannot start: on purpose" in cells["broken"]["log_tail"]
    assert cells["prefork"]["status"] == "ok" and cells["prefork"]["requests"] > 0
    summary = (tmp_path / "summary.md").read_text()
    assert "cannot start: on purpose" in summary
    assert not (tmp_path / "world.sqlite").exists()


@pytest.mark.slow
@pytest.mark.timeout(420)  # fourteen modes, three cells each, on a busy 2-core machine
def test_short_bench_writes_cells_summary_and_charts(tmp_path: Path) -> None:
    """A real run of every mode: a smoke test of the whole path, seconds per cell."""
    out = tmp_path / "run"
    result = bench_cli("--quick", "--modes", "all", "--scenarios", "plaintext,db", "--concurrency", "8", "--sweep",
                       "plaintext", "--sweep-levels", "2", "--duration", "1", "--warmup", "0.2", "--out", str(out),
                       timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    records = [json.loads(p.read_text()) for p in sorted((out / "cells").glob("*.json"))]
    swept = [m for m in MODES if MODES[m].placement.in_sweeps]
    in_db = [m for m in MODES if not MODES[m].placement.only_scenarios or "db" in MODES[m].placement.only_scenarios]
    assert len(records) == len(MODES) + len(in_db) + len(swept)  # plaintext and db at 8 users, plaintext at 2
    assert {r["mode"] for r in records} == set(MODES)
    for r in records:
        assert r["status"] == "ok", r
        assert r["requests"] > 0 and r["throughput_rps"] > 0
        assert r["latency_ms"]["p50"] <= r["latency_ms"]["p99"]
        assert r["resources"]["cpu_seconds"] > 0
        assert r["generator"] == ("wrk" if find_wrk() else "native")
        assert 0 <= r["generator_cpu"] <= 1.05
        assert r["server_affinity"] == r["server_cpus"]
    for name in ("summary.md", "throughput.png", "latency.png", "concurrency.png", "plan.json"):
        assert (out / name).stat().st_size > 0, name
    assert (out / "throughput.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    plan = json.loads((out / "plan.json").read_text())
    assert plan["environment"]["python"] and plan["plan"]["modes"] == list(MODES)
    summary = (out / "summary.md").read_text()
    for mode in MODES:
        assert mode in summary


def _interrupt_when(cmd: list[str], log: Path, ready: Callable[[], bool], timeout: float = 90) -> int:
    """Run ``cmd`` until ``ready()``, then Ctrl-C it as a terminal does (SIGINT to its process group)."""
    with running(cmd, log_path=log, cwd=ROOT) as proc:
        deadline = time.monotonic() + timeout
        while not ready() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert ready(), log.read_text()
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        return proc.wait(timeout=60)


@pytest.mark.slow
def test_an_interrupted_run_keeps_finished_cells_and_says_what_it_did_not_measure(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "scripts.bench", "--modes", "prefork", "--scenarios", "plaintext,json",
           "--concurrency", "2", "--no-sweep", "--no-close", "--repeats", "2", "--duration", "2", "--warmup", "0",
           "--no-open-loop", "--out", str(out)]
    runs_index.write_index(tmp_path)  # a folder with an index of ours gets it rebuilt, as results/ does
    code = _interrupt_when(cmd, tmp_path / "bench.log", lambda: bool(list((out / "cells").glob("*.json"))))
    assert code == 130, (tmp_path / "bench.log").read_text()
    cells = list((out / "cells").glob("*.json"))
    assert 1 <= len(cells) < 4
    summary = (out / "summary.md").read_text()
    banner = f"interrupted: {len(cells)} of 4 planned cells measured; not measured: "
    assert banner in summary and "prefork json c=2 r1" in summary
    assert "--repeats 3 gives one" not in summary  # the plan asked for 2: it says they were not all measured
    assert "the plan's 2 repeats were not all measured" in summary
    assert banner in html.unescape((out / "report.html").read_text())
    assert banner in html.unescape((tmp_path / "index.html").read_text())
    assert banner in " ".join((tmp_path / "bench.log").read_text().split())  # and on the console
    assert json.loads((out / "progress.json").read_text())["state"] == "interrupted"


@pytest.mark.slow
def test_an_interrupted_ladder_keeps_and_shows_every_finished_step(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "scripts.bench", "--modes", "prefork,uvicorn", "--scenarios", "io",
           "--concurrency", "2", "--no-sweep", "--no-close", "--repeats", "1", "--duration", "1", "--warmup", "0",
           "--open-loop-rates", "50,100,200,400", "--out", str(out)]
    code = _interrupt_when(cmd, tmp_path / "bench.log", lambda: len(list((out / "openloop").glob("*.json"))) >= 2)
    assert code == 130, (tmp_path / "bench.log").read_text()
    steps = [json.loads(p.read_text()) for p in sorted((out / "openloop").glob("*.json"))]
    assert [s["offered_rate"] for s in steps][:2] == [50, 100] and all(s["mode"] == "prefork" for s in steps[:2])
    summary = (out / "summary.md").read_text()
    assert "## Latency against offered load (open loop)" in summary and "| prefork | 100 |" in summary
    assert f"interrupted: 2 of 2 planned cells and {len(steps)} open-loop ladder steps measured" in summary
    assert "the open-loop ladder of uvicorn" in summary
    assert (out / "openloop.png").stat().st_size > 0


@pytest.mark.slow
def test_a_used_out_folder_is_refused_and_left_as_it_was(tmp_path: Path) -> None:
    (tmp_path / "cells").mkdir()
    (tmp_path / "cells" / "000-prefork-plaintext-c32-r1.json").write_text("{}")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    result = bench_cli("--modes", "prefork", "--scenarios", "plaintext", "--repeats", "1", "--out", str(tmp_path))
    assert result.returncode == 2
    assert f"--out {tmp_path} is not empty (cells/)" in result.stderr and "name another --out" in result.stderr
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    plan = plan_from_args(["--modes", "prefork", "--scenarios", "plaintext", "--out", str(tmp_path)])
    assert plan is not None
    with pytest.raises(bench.RunFolderInUse):
        bench.run(plan)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


@pytest.mark.alone  # uvicorn keeps up with 800/s, a queue's p99 10x: failed once beside other tests (6 workers)
@pytest.mark.slow
def test_open_loop_ladder_records_latency_against_offered_load(tmp_path: Path) -> None:
    """A real ladder on /io: the sync pre-fork pool (2 workers x 20 ms = 100 requests/s) falls behind at 400/s
    and leaves the ladder there; uvicorn's event loop keeps up."""
    plan = plan_from_args(["--modes", "prefork,uvicorn", "--scenarios", "io", "--repeats", "1", "--no-close",
                                 "--no-sweep", "--duration", "1", "--warmup", "0", "--open-loop-rates", "50,400,800",
                                 "--out", str(tmp_path)])
    assert plan is not None and plan.open_loop_modes() == ("prefork", "uvicorn")
    assert bench.run(plan) == 0
    points = [json.loads(p.read_text()) for p in sorted((tmp_path / "openloop").glob("*.json"))]
    prefork = [p for p in points if p["mode"] == "prefork"]
    uvicorn = [p for p in points if p["mode"] == "uvicorn"]
    assert [p["offered_rate"] for p in prefork] == [50, 400]  # left the ladder past its knee
    assert [p["offered_rate"] for p in uvicorn] == [50, 400, 800]
    assert prefork[1]["achieved_rate"] < 0.5 * 400
    # What it served, over the time it took (the drain included): at most the pool's 100/s, not its backlog
    # answered after the schedule counted over the schedule's second.
    assert prefork[1]["achieved_rate"] < 1.3 * 100, prefork[1]
    assert prefork[1]["latency_ms"]["p99"] > 10 * prefork[0]["latency_ms"]["p99"]  # the queue shows
    assert all(p["achieved_rate"] > 0.9 * p["offered_rate"] for p in uvicorn)
    assert (tmp_path / "openloop.png").stat().st_size > 10_000
    summary = (tmp_path / "summary.md").read_text()
    assert "## Latency against offered load (open loop)" in summary
    assert "- prefork: knee at 400 req/s offered" in summary
    assert "- uvicorn: kept up at every rate" in summary


def test_per_request_cells_run_under_the_default_set_unless_named(tmp_path: Path) -> None:
    def per_request_modes(*args: str) -> set[str]:
        plan = plan_from_args(["--modes", "all", "--scenarios", "db", "--out", str(tmp_path), *args])
        assert plan is not None
        return {c.mode for c in plan.cells() if c.db_strategy == "per-request"}

    default = set(mode_sets(MODES)["default"]) - {"cgi"}  # cgi serves plaintext only
    assert per_request_modes() == default
    assert per_request_modes("--db-strategies", "reuse,per-request") == set(mode_sets(MODES)["all"]) - {"cgi"}


@pytest.mark.slow
def test_the_busy_warning_looks_at_the_cpus_now_not_the_lagging_load_average() -> None:
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        time.sleep(0.3)
        assert cpu_busy_percent() > BUSY_PERCENT
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
