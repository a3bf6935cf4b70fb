"""Generators behind one interface: the registry's choices, a toy generator added in one module and one entry,
and the native closed-loop generator against a real server."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from loadtests.scenarios import SCENARIOS
from scripts import bench
from scripts.load.generators import GENERATORS, Generator, Load, choose
from scripts.plan.plan import plan_from_args
from tests.conftest import StartServer
from tests.scripts.toy_generator import TOY


def test_every_entry_implements_the_interface() -> None:
    for name, generator in GENERATORS.items():
        assert isinstance(generator.name, str) and generator.name == name
        assert generator.cell_overhead_s > 0 and generator.summary and generator.reports and generator.install_hint
        assert callable(generator.run) and callable(generator.warm_up) and callable(generator.available)


def test_auto_picks_the_best_available_generator_that_can_drive_the_scenario() -> None:
    plaintext, mixed = SCENARIOS["plaintext"], SCENARIOS["mixed"]
    registry: dict[str, Generator] = dict(GENERATORS)
    assert choose(mixed, "auto", registry) == "locust"
    assert choose(mixed, "native", registry) == "locust"  # native cannot express a user scenario
    assert choose(plaintext, "locust", registry) == "locust"
    assert choose(plaintext, "openloop", registry) != "openloop"  # the ladder's generator needs a rate
    without_wrk = {k: v for k, v in registry.items() if k != "wrk"}
    assert choose(plaintext, "auto", without_wrk) == "native"


@pytest.mark.slow
def test_a_toy_generator_in_one_module_and_one_entry_runs_a_cell(tmp_path: Path) -> None:
    gens: dict[str, Generator] = {**GENERATORS, TOY.name: TOY}
    plan = plan_from_args(["--modes", "prefork", "--scenarios", "plaintext,mixed", "--generator", "toy",
                           "--concurrency", "2", "--no-sweep", "--no-close", "--repeats", "1", "--duration", "1",
                           "--warmup", "0.2", "--no-open-loop", "--out", str(tmp_path)], gens=gens)
    assert plan is not None
    assert plan.generator_for("plaintext") == "toy" and plan.generator_for("mixed") == "locust"
    assert bench.run(plan) == 0
    records = {r["scenario"]: r for r in (json.loads(p.read_text()) for p in (tmp_path / "cells").glob("*.json"))}
    assert records["plaintext"]["generator"] == "toy" and records["plaintext"]["requests"] > 0
    assert records["plaintext"]["latency_ms"]["p50"] <= records["plaintext"]["latency_ms"]["p99"]
    assert "| prefork | 2 |" in (tmp_path / "summary.md").read_text()


@pytest.mark.parametrize("keepalive", [True, False], ids=["keepalive", "close"])
def test_native_closed_loop_measures_a_real_server(start_server: StartServer, tmp_path: Path,
                                                   keepalive: bool) -> None:
    def build(host: str, port: int) -> list[str]:
        return [sys.executable, "-m", "servers.prefork", "apps.wsgi:app", "--bind", f"{host}:{port}", "--workers", "1",
                "--keepalive", "5"]

    with start_server(build) as srv:
        result = GENERATORS["native"].run(Load(scenario=SCENARIOS["plaintext"], host=srv.host, port=srv.port,
                                               connections=4, duration=1.0, workdir=tmp_path, keepalive=keepalive))
    assert result.generator == "native" and result.requests > 100 and result.failures == 0
    assert result.throughput_rps > 100
    assert 0 < result.latency_ms["p50"] <= result.latency_ms["p99"]
    assert result.generator_cpu is not None and 0 < result.generator_cpu <= 1.05
    # The engine's microsecond histogram arrives as {upper bound in ms: count}, one count per request.
    assert result.latency_histogram is not None
    assert sum(result.latency_histogram.values()) == result.requests
    assert min(result.latency_histogram) <= result.latency_ms["p50"] <= max(result.latency_histogram)
