"""Options given but not applied are said, once on the console and in plan.json, and the plan records only what it
applies (item 8 of issue 24): the open-loop options without a ladder, --close and --sweep for scenarios not run,
--db-strategies without a database scenario, --locust-workers without a locust scenario."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from scripts.plan.plan import plan_from_args
from tests.conftest import ROOT


def described(tmp_path: Path, *args: str) -> dict[str, object]:
    plan = plan_from_args(["--modes", "prefork", "--out", str(tmp_path / "run"), *args])
    assert plan is not None
    return plan.describe()


@pytest.mark.parametrize(("args", "not_applied"), [
    (["--quick", "--open-loop-rates", "10,20"], {"--open-loop-rates": "--quick skips the open-loop ladder"}),
    (["--scenarios", "plaintext", "--open-loop-rates", "10", "--open-loop-duration", "3"],
     {"--open-loop-rates": "the ladder runs on io, which --scenarios leaves out",
      "--open-loop-duration": "the ladder runs on io, which --scenarios leaves out"}),
    (["--scenarios", "plaintext", "--close", "plaintext,db", "--sweep", "io"],
     {"--close db": "not in --scenarios", "--sweep io": "not in --scenarios"}),
    (["--scenarios", "plaintext", "--no-close", "--close", "plaintext"],
     {"--close plaintext": "--no-close is given too"}),
    (["--scenarios", "plaintext", "--db-strategies", "reuse"],
     {"--db-strategies": "no database scenario (db) in --scenarios"}),
    (["--scenarios", "plaintext", "--locust-workers", "2"],
     {"--locust-workers": "no scenario of this run is driven by locust (mixed and a scenario file's user mixes are)"}),
    (["--scenarios", "io,db,mixed", "--locust-workers", "2", "--open-loop-rates", "10"], {}),
])
def test_what_is_not_applied_is_named_with_why(tmp_path: Path, args: list[str], not_applied: dict[str, str]) -> None:
    assert described(tmp_path, *args)["not_applied"] == not_applied


def test_the_plan_records_what_it_applies_not_what_was_asked(tmp_path: Path) -> None:
    plan = described(tmp_path, "--scenarios", "plaintext", "--sweep", "plaintext,io")
    assert (plan["open_loop"], plan["sweep_scenarios"], plan["db_strategies"]) == (False, ("plaintext",), ())
    plan = described(tmp_path, "--scenarios", "io,db", "--open-loop-duration", "1.5")
    assert (plan["open_loop"], plan["db_strategies"], plan["open_loop_duration"]) == (True, ("reuse", "per-request"),
                                                                                      1.5)


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--warmup", "-1", "-1 is not at least 0"), ("--start-timeout", "0", "0 is not more than 0"),
    ("--open-loop-duration", "-2", "-2 is not more than 0"), ("--warmup", "nan", "nan is not at least 0"),
])
@pytest.mark.slow
def test_negative_seconds_are_usage_errors(option: str, value: str, message: str) -> None:
    done = subprocess.run([sys.executable, "-m", "scripts.bench", option, value], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2 and f"argument {option}: {message}" in done.stderr


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scripts.bench", "--modes", "prefork", "--repeats", "1",
                           "--duration", "1", "--warmup", "0.2", "--concurrency", "4", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=240, check=False)


@pytest.mark.slow
def test_a_run_says_once_what_it_did_not_apply(tmp_path: Path) -> None:
    done = bench("--scenarios", "plaintext", "--no-close", "--no-sweep", "--open-loop-rates", "10",
                 "--locust-workers", "2", "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stdout + done.stderr
    said = [line for line in done.stderr.splitlines() if line.startswith("not applied:")]  # the console: stderr
    assert said == ["not applied: --open-loop-rates: the ladder runs on io, which --scenarios leaves out",
                    "not applied: --locust-workers: no scenario of this run is driven by locust (mixed and a "
                    "scenario file's user mixes are)"]
    plan = json.loads((tmp_path / "run" / "plan.json").read_text())["plan"]
    assert plan["open_loop"] is False and set(plan["not_applied"]) == {"--open-loop-rates", "--locust-workers"}


@pytest.mark.slow
def test_the_ladder_on_your_app_names_the_path_and_step_it_used(tmp_path: Path) -> None:
    done = bench("--app", "examples.flaskapp:app", "--paths", "/", "--open-loop-path", "/api/items",
                 "--open-loop-rates", "20", "--open-loop-duration", "1", "--no-sweep", "--out", str(tmp_path / "run"))
    assert done.returncode == 0, done.stdout + done.stderr
    summary = (tmp_path / "run" / "summary.md").read_text()
    assert "doubling ladder of rates on `/api/items`, 1 s per step" in summary and "/io?ms=20" not in summary


@pytest.mark.slow
@pytest.mark.parametrize("command", ["scripts.bench", "scripts.faults"])
def test_out_naming_a_file_is_a_usage_error(tmp_path: Path, command: str) -> None:
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    for out, message in ((afile, "is a file; --out names a folder"), (afile / "run", "is a file, so no folder")):
        done = subprocess.run([sys.executable, "-m", command, "--out", str(out)], cwd=ROOT, capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr
        assert done.stderr.splitlines()[-1].startswith(f"python -m {command}: error: argument --out:")
    assert afile.read_text() == "keep me"


@pytest.mark.slow
def test_an_unknown_fault_is_a_usage_error_listing_the_valid_ones() -> None:
    done = subprocess.run([sys.executable, "-m", "scripts.faults", "--faults", "crash,nope"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "argument --faults: unknown fault nope; valid: crash, segv, hang" in done.stderr


@pytest.mark.slow
def test_errors_of_the_user_app_options_carry_the_bench_prefix() -> None:
    done = subprocess.run([sys.executable, "-m", "scripts.bench", "--app", "flaskapp"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].startswith("python -m scripts.bench: error: argument --app: expected")


@pytest.mark.slow
def test_list_names_each_family_once() -> None:
    done = subprocess.run([sys.executable, "-m", "scripts.bench", "--list"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0 and "hand-written hand-written" not in done.stdout
    assert "mode      fork             hand-written fork-per-request server" in done.stdout
