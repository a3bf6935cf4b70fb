"""Folding repeats into one figure: median, interval, spread and flags, on known inputs."""

from __future__ import annotations

import math

import pytest

from scripts.analysis import stats
from scripts.records.records import CellRecord, Flag, cell_from_json, wanted_more


def rec(rate: float, *, mode: str = "prefork", repeat: int = 0, gen: float = 0.5, failures: int = 0,
        requests: int = 10_000, status: str = "ok") -> CellRecord:
    return cell_from_json({"schema": 2, "mode": mode, "scenario": "plaintext", "concurrency": 32, "repeat": repeat,
                           "index": repeat,
            "status": status, "throughput_rps": rate, "requests": requests, "failures": failures,
            "latency_ms": {"p50": rate / 1000, "p99": rate / 100}, "generator_cpu": gen,
            "resources": {"cpu_ms_per_request": 0.1 * (repeat + 1)}})


def test_median_interval_and_no_flags_for_steady_repeats() -> None:
    folded = stats.fold([rec(1000), rec(1020, repeat=1), rec(990, repeat=2)])
    assert folded.throughput_rps == 1000
    assert folded.throughput_samples == (1000.0, 1020.0, 990.0)
    mean, sd = 1003.333, 15.275
    half = 4.303 * sd / math.sqrt(3)
    assert folded.throughput_ci95 is not None
    assert list(folded.throughput_ci95) == pytest.approx([mean - half, mean + half], abs=0.05)
    assert folded.spread == pytest.approx(0.03)
    assert folded.latency_ms["p50"] == 1.0  # medians of the repeats' percentiles
    assert folded.resources is not None and folded.resources.cpu_ms_per_request == pytest.approx(0.2)
    assert folded.flags == () and folded.repeats == 3 and folded.index == 0


def test_spread_over_ten_percent_is_flagged() -> None:
    assert Flag.SPREAD in stats.fold([rec(1000), rec(1200, repeat=1), rec(950, repeat=2)]).flags


def test_generator_over_85_percent_is_flagged_generator_bound() -> None:
    folded = stats.fold([rec(4000, gen=0.97), rec(4010, repeat=1, gen=0.6)])
    assert Flag.GENERATOR_BOUND in folded.flags
    assert folded.generator_cpu == 0.97


def test_errors_over_a_tenth_of_a_percent_are_flagged() -> None:
    assert Flag.ERRORS not in stats.fold([rec(1000, failures=10)]).flags  # exactly 0.1%
    assert Flag.ERRORS in stats.fold([rec(1000, failures=11)]).flags


def test_all_repeats_failed_is_a_failed_figure() -> None:
    failed = {"schema": 2, "mode": "cgi", "scenario": "plaintext", "concurrency": 32, "status": "failed",
              "error": "boom", "index": 4, "log_tail": "tail"}
    folded = stats.fold([cell_from_json(failed), cell_from_json({**failed, "index": 5})])
    assert folded.status == "failed" and folded.error == "boom" and folded.flags == (Flag.FAILED,)
    assert folded.log_tail == "tail" and folded.index == 4


def test_a_failed_repeat_is_flagged_and_left_out() -> None:
    folded = stats.fold([rec(1000), rec(2000, repeat=1, status="failed"), rec(1010, repeat=2)])
    assert folded.throughput_samples == (1000.0, 1010.0) and folded.repeats_ok == 2
    assert Flag.FAILED_REPEATS in folded.flags


def test_fold_all_groups_by_mode_scenario_and_concurrency_in_order() -> None:
    records = [rec(1, mode="a"), rec(2, mode="b"), rec(3, mode="b", repeat=1), rec(4, mode="a", repeat=1)]
    folded = stats.fold_all(records)
    assert [f.mode for f in folded] == ["a", "b"]
    assert [f.throughput_rps for f in folded] == [2.5, 2.5]


def test_t_quantiles() -> None:
    assert stats.t975(2) == 4.303 and stats.t975(1000) == 1.96
    assert stats.interval([5.0]) is None


def test_a_generator_that_used_and_waited_for_more_than_the_bound_is_named_with_both() -> None:
    assert wanted_more("wrk", 0.45, 0.53) == ("wrk wanted 98% of its CPUs while measuring (45% used, 53% "
                                                    "waiting for a CPU)")
    assert wanted_more("wrk", 0.45, 0.2) is None  # it had room
    assert wanted_more("wrk", 0.95, 0.04) is None  # its CPU alone flags it: nothing to add
    assert wanted_more("wrk", 0.5, None) is None and wanted_more("wrk", None, 0.9) is None
