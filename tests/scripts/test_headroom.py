"""Generator headroom and CPU placement, measured for real on loopback.

locust's single process tops out near 4,400 requests/s on one core while uvicorn
serves far more, so locust against uvicorn's plaintext is generator-bound; wrk
against the fork-per-request server (a few hundred requests/s) is not.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scripts import bench
from scripts.analysis import stats
from scripts.plan.plan import plan_from_args
from scripts.records.records import GENERATOR_BOUND, Flag, cell_from_json


def measure(tmp_path: Path, *args: str) -> dict[str, Any]:
    plan = plan_from_args(["--repeats", "1", "--no-close", "--no-sweep", "--warmup", "0.5",
                                 "--out", str(tmp_path), *args])
    assert plan is not None
    assert bench.run(plan) == 0
    records: list[dict[str, Any]] = [json.loads(p.read_text()) for p in sorted((tmp_path / "cells").glob("*.json"))]
    assert len(records) == 1
    return records[0]


@pytest.mark.slow
@pytest.mark.alone  # the generator's share of its CPU: tests beside it would take some
def test_locust_against_uvicorn_is_flagged_generator_bound(tmp_path: Path) -> None:
    record = measure(tmp_path, "--modes", "uvicorn", "--scenarios", "plaintext", "--generator", "locust",
                     "--concurrency", "32", "--duration", "3")
    assert record["generator"] == "locust"
    # Its CPU alone, or (on a busy machine, where it gets less of its CPU) what it used and waited for.
    assert record["generator_cpu"] > GENERATOR_BOUND or record["generator_warning"].startswith(
        "locust wanted"), record
    assert Flag.GENERATOR_BOUND in stats.fold([cell_from_json(record)]).flags
    summary = (tmp_path / "summary.md").read_text()
    assert "generator-bound" in summary
    if record["generator_warning"]:  # and where it is the time it waited that flags it, the reader is told
        assert f"uvicorn plaintext @ 32: {record['generator_warning']}" in summary
        assert "Generators that wanted more CPU than they got" in (tmp_path / "report.html").read_text()


@pytest.mark.alone  # wrk's share of its CPU: tests beside it would take some
def test_wrk_against_the_fork_server_has_headroom(wrk_exe: str, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # A fork mode brings the run's fork references (3 x 3 s of loops); none is asserted on here: the shortest.
    monkeypatch.setattr(bench, "FORK_REF_S", 0.2)
    monkeypatch.setattr(bench, "FORK_LOOP_S", 1)  # wrk's shortest run
    record = measure(tmp_path, "--modes", "fork", "--scenarios", "plaintext", "--concurrency", "8",
                     "--duration", "2")
    assert record["generator"] == "wrk"
    assert record["generator_cpu"] < GENERATOR_BOUND, record
    assert Flag.GENERATOR_BOUND not in stats.fold([cell_from_json(record)]).flags


@pytest.mark.slow
def test_server_and_generator_run_on_their_own_cpus(tmp_path: Path) -> None:
    record = measure(tmp_path, "--modes", "prefork", "--scenarios", "plaintext", "--duration", "1",
                     "--concurrency", "4")
    plan = json.loads((tmp_path / "plan.json").read_text())
    assert record["server_cpus"] == plan["environment"]["server_cpus"]
    assert record["client_cpus"] == plan["environment"]["client_cpus"]
    assert set(record["server_cpus"].split(",")).isdisjoint(record["client_cpus"].split(","))
    # Every process of the server really ran on the server's CPUs only.
    assert record["server_affinity"] == record["server_cpus"]
    assert plan["environment"]["cpu_model"] and plan["environment"]["kernel"]
