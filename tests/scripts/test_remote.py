"""A server the bench does not start: ``python -m scripts.serve`` and ``bench --target``, on loopback and across
two network namespaces joined by a veth pair (tests/scripts/netns.py)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from scripts.common.procs import free_port, group_members, running
from scripts.modes import MODES
from scripts.plan.plan import plan_from_args
from scripts.records.records import load_cells
from tests.conftest import ROOT
from tests.scripts.netns import NetnsPair

HOST = "127.0.0.1"


def ready_line(log: Path, proc: subprocess.Popen[bytes], deadline_s: float = 30.0) -> dict[str, Any]:
    """The machine-readable line ``scripts.serve`` prints once the server answers."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        for line in log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                info: dict[str, Any] = json.loads(line)
                return info
        if proc.poll() is not None:
            raise AssertionError(f"serve exited with {proc.returncode}:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    raise AssertionError(f"serve not ready after {deadline_s}s:\n{log.read_text(errors='replace')}")


@contextmanager
def serve(tmp_path: Path, *args: str, prefix: tuple[str, ...] = ()) -> Iterator[tuple[dict[str, Any],
                                                                                        subprocess.Popen[bytes]]]:
    log = tmp_path / f"serve-{len(list(tmp_path.glob('serve-*')))}.log"
    with running([*prefix, sys.executable, "-m", "scripts.serve", *args], log_path=log, cwd=ROOT) as proc:
        yield ready_line(log, proc), proc


def bench(*args: str, prefix: tuple[str, ...] = (), timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*prefix, sys.executable, "-m", "scripts.bench", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, check=False)


def fetch_json(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=5) as resp:
        data: dict[str, Any] = json.loads(resp.read())
        return data


@pytest.mark.slow
def test_serve_refuses_an_unknown_mode_naming_the_valid_ones() -> None:
    result = subprocess.run([sys.executable, "-m", "scripts.serve", "nginx", "--bind", f"{HOST}:8000"], cwd=ROOT,
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 2
    assert f"unknown mode 'nginx'; valid: {', '.join(MODES)}" in result.stderr


@pytest.mark.slow
def test_serve_reports_the_group_read_only_and_stops_it_on_sigterm(tmp_path: Path) -> None:
    port = free_port(HOST)
    with serve(tmp_path, "prefork", "--bind", f"{HOST}:{port}", "--workers", "2") as (info, proc):
        assert info["event"] == "ready" and info["url"] == f"http://{HOST}:{port}"
        server_pid = info["pid"]
        with urllib.request.urlopen(f"{info['url']}/plaintext", timeout=5) as resp:
            assert resp.read() == b"Hello, World!"
        status = fetch_json(info["status"])
        # The prefork master and its two workers, measured as the bench measures a local server.
        assert status["mode"] == "prefork" and status["pid"] == server_pid and status["processes"] == 3
        assert status["memory_mb"] > 1 and status["cpu_seconds"] > 0 and status["db_strategy"] == "reuse"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(info["status"], data=b"x", method="POST"), timeout=5)
        assert refused.value.code == 501
        refused.value.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert not group_members(server_pid)  # the server's own group went with it
        assert not psutil.pid_exists(server_pid) or psutil.Process(server_pid).status() == psutil.STATUS_ZOMBIE


@pytest.mark.slow
def test_serve_writes_a_status_file_instead_when_asked(tmp_path: Path) -> None:
    port, path = free_port(HOST), tmp_path / "status.json"
    with serve(tmp_path, "uvicorn", "--bind", f"{HOST}:{port}", "--status-file", str(path)) as (info, _):
        assert info["status"] == str(path)
        status = json.loads(path.read_text())
        assert status["mode"] == "uvicorn" and status["processes"] >= 2
    assert not path.exists()


@pytest.mark.slow
def test_target_unreachable_and_wrong_answers_fail_their_cells_and_the_run_goes_on(tmp_path: Path) -> None:
    """Nothing listens on the first target; the second answers /plaintext wrongly but /json right."""
    dead = bench("--target", f"http://{HOST}:{free_port(HOST)}", "--label", "dead", "--quick", "--scenarios",
                 "plaintext,json", "--start-timeout", "1", "--out", str(tmp_path / "dead"))
    assert dead.returncode == 1, dead.stderr
    for cell in load_cells(tmp_path / "dead"):
        assert cell.status == "failed" and cell.error
        assert "did not answer GET /health with 200 (tried for" in cell.error and "ConnectionRefusedError" in cell.error

    port = free_port(HOST)
    argv = [sys.executable, "-m", "servers.prefork", "tests.scripts.wrong_app:app", "--bind", f"{HOST}:{port}"]
    with running(argv, log_path=tmp_path / "wrong.log", cwd=ROOT):
        wrong = bench("--target", f"http://{HOST}:{port}", "--label", "wrong", "--quick", "--scenarios",
                      "plaintext,json", "--out", str(tmp_path / "wrong"))
    assert wrong.returncode == 1, wrong.stderr
    cells = {c.scenario: c for c in load_cells(tmp_path / "wrong")}
    assert cells["plaintext"].status == "failed"
    assert cells["plaintext"].error is not None and "VerifyError: GET /plaintext: body" in cells["plaintext"].error
    assert cells["json"].ok and cells["json"].requests and cells["json"].resources is None
    summary = (tmp_path / "wrong" / "summary.md").read_text()
    assert "| not measured | not measured | not measured | not measured |" in summary


@pytest.mark.slow
def test_a_quick_run_goes_across_two_network_namespaces(netns: NetnsPair, tmp_path: Path) -> None:
    """The server in one namespace (its own host), the harness and its generators in the other."""
    bind = f"{netns.server_address}:8000"
    with serve(tmp_path, "prefork", "--bind", bind, "--status-port", "8001", "--expose-status",
               prefix=netns.exec_server) as (info, _):
        assert info["url"] == f"http://{bind}"
        run = bench("--target", info["url"], "--label", "across", "--target-status", info["status"], "--quick",
                    "--scenarios", "plaintext,json,mixed", "--out", str(tmp_path / "run"), prefix=netns.exec_client)
    assert run.returncode == 0, run.stdout + run.stderr
    cells = {c.scenario: c for c in load_cells(tmp_path / "run")}
    assert set(cells) == {"plaintext", "json", "mixed"}
    for cell in cells.values():
        assert cell.ok and cell.mode == "across" and cell.requests and cell.failures == 0
        assert cell.resources is not None and cell.resources.cpu_seconds and cell.resources.processes_peak == 3
        assert cell.workers == 2 and cell.interface == "wsgi"  # as the status endpoint reports the server
    assert cells["plaintext"].generator == "wrk" and cells["mixed"].generator == "locust"
    for name in ("summary.md", "report.html", "throughput.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    # From the client's namespace the server is reachable only through the veth pair, never on its loopback.
    assert netns.client_cannot_reach(f"{HOST}:8000")


@pytest.mark.slow
def test_the_open_loop_ladder_climbs_against_a_target_across_the_namespaces(netns: NetnsPair, tmp_path: Path) -> None:
    bind = f"{netns.server_address}:8000"
    with serve(tmp_path, "prefork", "--bind", bind, prefix=netns.exec_server) as (info, _):
        run = bench("--target", info["url"], "--label", "across", "--scenarios", "io", "--repeats", "1",
                    "--duration", "1", "--warmup", "0.2", "--no-sweep", "--no-close", "--open-loop-rates", "50,100",
                    "--out", str(tmp_path / "run"), prefix=netns.exec_client)
    assert run.returncode == 0, run.stdout + run.stderr
    steps = [json.loads(p.read_text()) for p in sorted((tmp_path / "run" / "openloop").glob("*.json"))]
    assert [(s["mode"], s["offered_rate"], s["status"]) for s in steps] == [("across", 50.0, "ok"),
                                                                              ("across", 100.0, "ok")], steps
    assert all(s["ok"] > 0 and s["server_cpus"] is None for s in steps), steps
    assert "across" in (tmp_path / "run" / "report.html").read_text()


@pytest.mark.slow
def test_the_open_loop_ladder_against_an_unreachable_target_fails_with_what_was_tried(tmp_path: Path) -> None:
    port = free_port(HOST)  # nothing listens there
    run = bench("--target", f"http://{HOST}:{port}", "--label", "gone", "--scenarios", "io", "--repeats", "1",
                "--duration", "1", "--warmup", "0", "--no-sweep", "--no-close", "--open-loop-rates", "50",
                "--start-timeout", "1", "--out", str(tmp_path / "run"))
    assert run.returncode == 1 and "open loop gone" in run.stderr and "FAILED StartError" in run.stderr, run.stderr
    (step,) = [json.loads(p.read_text()) for p in (tmp_path / "run" / "openloop").glob("*.json")]
    assert step["status"] == "failed" and "did not answer GET /health" in step["error"], step
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "- gone: no step measured (the ladder failed: see the table)" in summary


@pytest.mark.slow
def test_a_locust_worker_on_another_host_joins_the_benchs_master(netns: NetnsPair, tmp_path: Path) -> None:
    """The three-host recipe of docs/how-to/two-machines.md on two namespaces: the worker runs beside the
    server (a third host stands there), dials the master the bench starts on the client host, and its requests
    are counted in the cell."""
    bind = f"{netns.server_address}:8000"
    worker = [*netns.exec_server, sys.executable, "-m", "locust", "-f", "loadtests/locustfile.py", "--worker",
              "--master-host", netns.client_address, "--master-port", "5557"]
    with serve(tmp_path, "prefork", "--bind", bind, prefix=netns.exec_server) as (info, _), \
            running(worker, log_path=tmp_path / "worker.log", cwd=ROOT):
        run = bench("--target", info["url"], "--label", "across", "--quick", "--scenarios", "mixed",
                    "--locust-expect-workers", "1", "--locust-master-bind", f"{netns.client_address}:5557",
                    "--out", str(tmp_path / "run"), prefix=netns.exec_client)
    assert run.returncode == 0, run.stdout + run.stderr
    (cell,) = load_cells(tmp_path / "run")
    assert cell.ok and cell.requests and cell.failures == 0 and cell.resources is None
    master_log = next((tmp_path / "run" / "logs").glob("*mixed*/locust.log")).read_text()
    assert "1 workers connected" in master_log


@pytest.mark.parametrize(("argv", "message"), [
    (["--label", "x"], "--label needs --target"),
    (["--target", "http://127.0.0.1:8000"], "--target needs --label NAME"),
    (["--target", "https://127.0.0.1:8000", "--label", "x"], "expected http://HOST:PORT"),
    (["--target", "http://127.0.0.1:8000/app", "--label", "x"], "expected http://HOST:PORT"),
    (["--target", "http://127.0.0.1:8000", "--label", "a/b"], "a label is 1-64 letters"),
    (["--target", "http://127.0.0.1:8000", "--label", "x", "--modes", "prefork"], "--modes does not apply"),
    (["--target", "http://127.0.0.1:8000", "--label", "x", "--db-strategies", "reuse,per-request"],
     "one database strategy"),
])
def test_target_options_are_refused_with_the_reason(argv: list[str], message: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        plan_from_args(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_a_target_plan_measures_one_labelled_mode_without_references(tmp_path: Path) -> None:
    plan = plan_from_args(["--target", "http://198.18.0.1:8000", "--label", "far", "--scenarios", "plaintext,io",
                           "--out", str(tmp_path)])
    assert plan is not None
    assert plan.modes == ("far",) and plan.host == "198.18.0.1" and plan.target == "http://198.18.0.1:8000"
    assert not plan.measures_fork_references() and plan.open_loop_modes() == ("far",)
    assert {c.mode for c in plan.cells()} == {"far"}
    assert plan.describe()["target"] == "http://198.18.0.1:8000"


@pytest.mark.slow
def test_a_status_file_gives_the_resources_and_a_strategy_mismatch_fails_its_cell(tmp_path: Path) -> None:
    """The status read from a file (serve --status-file); the server runs per-request, the run asks for reuse."""
    port, path = free_port(HOST), tmp_path / "status.json"
    with serve(tmp_path, "prefork", "--bind", f"{HOST}:{port}", "--status-file", str(path), "--db-strategy",
               "per-request") as (info, _):
        run = bench("--target", info["url"], "--label", "filed", "--target-status", str(path), "--quick",
                    "--scenarios", "plaintext,db", "--out", str(tmp_path / "run"))
    assert run.returncode == 1, run.stderr
    cells = {c.scenario: c for c in load_cells(tmp_path / "run")}
    plaintext, database = cells["plaintext"], cells["db"]
    assert plaintext.ok and plaintext.resources is not None and plaintext.resources.processes_peak == 3
    assert plaintext.resources.cpu_seconds is not None and plaintext.resources.cpu_seconds > 0
    assert not database.ok and database.error is not None
    assert "the target serves database strategy 'per-request', the cell measures 'reuse'" in database.error


@pytest.mark.slow
def test_serve_with_its_status_port_taken_says_so_and_stops_the_server(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind((HOST, 0))
        taken.listen()
        status_port, port = taken.getsockname()[1], free_port(HOST)
        result = subprocess.run([sys.executable, "-m", "scripts.serve", "prefork", "--bind", f"{HOST}:{port}",
                                 "--status-port", str(status_port)], cwd=ROOT, capture_output=True, text=True,
                                timeout=60, check=False)
    assert result.returncode == 2
    assert f"error: status port {status_port}: [Errno 98]" in result.stderr
    with socket.socket() as probe:  # the server it had started is gone with it
        assert probe.connect_ex((HOST, port)) != 0


@pytest.mark.slow
def test_serve_on_a_port_another_server_answers_on_never_says_ready(tmp_path: Path) -> None:
    port = free_port(HOST)
    with serve(tmp_path, "prefork", "--bind", f"{HOST}:{port}") as (old, _):
        result = subprocess.run([sys.executable, "-m", "scripts.serve", "uvicorn", "--bind", f"{HOST}:{port}"],
                                cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 3, result.stderr
        events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
        assert [e["event"] for e in events] == ["failed"], result.stdout  # never "ready" under the new name
        assert f"{HOST}:{port} is taken" in result.stderr
        assert fetch_json(old["status"])["mode"] == "prefork"  # the old server is left alone


@pytest.mark.slow
def test_a_server_that_answers_but_is_not_the_one_listening_is_refused(tmp_path: Path) -> None:
    """The race the port check cannot close: another server takes the port between the check and the bind. The
    answer on the port is not enough: the server we started must be the one listening there."""
    from scripts import serve as serve_module
    from scripts.common.procs import StartError

    with socket.socket() as other:
        other.bind((HOST, 0))
        other.listen()
        port = other.getsockname()[1]
        with running([sys.executable, "-c", "import time; time.sleep(30)"], log_path=tmp_path / "ours.log") as ours:
            with pytest.raises(StartError, match=f"something answers on port {port}, but not this server"):
                serve_module.wait_ours(ours, port, tmp_path / "ours.log", deadline_s=1.0)
        with running([sys.executable, "-c", "raise SystemExit(1)"], log_path=tmp_path / "dead.log") as dead:
            dead.wait(timeout=10)
            with pytest.raises(StartError, match="server exited with code 1"):
                serve_module.wait_ours(dead, port, tmp_path / "dead.log", deadline_s=5.0)
        listening = [sys.executable, "-c", "import socket, time\ns = socket.create_server(('127.0.0.1', 0))\n"
                     "print(s.getsockname()[1], flush=True)\ntime.sleep(30)"]
        with running(listening, log_path=tmp_path / "server.log") as server:
            deadline = time.monotonic() + 10
            while not (tmp_path / "server.log").read_text().strip() and time.monotonic() < deadline:
                time.sleep(0.05)
            own_port = int((tmp_path / "server.log").read_text())
            serve_module.wait_ours(server, own_port, tmp_path / "server.log", deadline_s=5.0)  # ours: no error
