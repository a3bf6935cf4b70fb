"""scripts.records.distribution (histograms and percentile spectra), the significance test of
scripts.analysis.significance, and wrk's percentile spectrum from a real run, through the wrk generator into a record
and back."""

from __future__ import annotations

import math
import random
import sys
from pathlib import Path

import pytest

from loadtests.scenarios import SCENARIOS
from scripts.analysis import significance, stats
from scripts.load import wrk_process
from scripts.load.generators.base import Load
from scripts.load.generators.wrk import WRK
from scripts.records import distribution, records
from tests.conftest import StartServer


def nearest_rank(values: list[float], level: float) -> float:
    ordered = sorted(values)
    return ordered[max(1, math.ceil(round(level / 100 * len(ordered), 9))) - 1]


def test_spectrum_is_the_nearest_rank_percentile_at_every_level() -> None:
    rng = random.Random(7)
    values = [round(rng.lognormvariate(0, 1), 3) for _ in range(5000)]
    histogram = distribution.merge([{v: 1} for v in values])
    points = distribution.spectrum(histogram)
    assert points[0] == (0.0, min(values)) and points[-1] == (100.0, max(values))
    assert all(value == nearest_rank(values, level) for level, value in points)
    levels = [level for level, _ in points]
    assert levels == sorted(levels) and 99.9 in levels and 99.99 not in levels[:-1]  # 5000 values: no 99.99


def test_levels_stop_one_value_from_the_top() -> None:
    assert distribution.levels(0) == []
    assert distribution.levels(1) == [0.0, 10.0, 20.0, 30.0, 40.0, 100.0]
    assert distribution.levels(10)[-2] == 92.5 and distribution.levels(10)[-1] == 100.0
    assert {50.0, 90.0} <= set(distribution.levels(10)) and 95.0 not in distribution.levels(10)


def test_a_histogram_from_a_spectrum_gives_the_spectrum_back() -> None:
    rng = random.Random(3)
    values = [rng.expovariate(2.0) for _ in range(20000)]
    original = distribution.spectrum(distribution.merge([{round(v, 4): 1} for v in values]))
    rebuilt = distribution.histogram_from_spectrum(original, len(values))
    assert sum(rebuilt.values()) == len(values)
    assert distribution.spectrum(rebuilt) == original


def test_histograms_read_from_every_shape_they_come_in() -> None:
    pairs = distribution.from_json([[0.5, 3], [0.25, 1], [0.5, 2]])
    assert pairs == {0.25: 1, 0.5: 5}
    assert distribution.from_json({"0.25": 1, "0.5": 5}) == pairs
    native = {"format": "workerbench-histogram/1", "unit": "us", "count": 4,
              "spectrum": [[0.0, 250], [50.0, 500], [100.0, 900]]}
    assert distribution.from_json(native) == {0.25: 1, 0.5: 1, 0.9: 2}
    for bad in ([[1.0]], "x", [[1.0, -2]], {"a": "b"}):
        with pytest.raises(ValueError):
            distribution.from_json(bad)


def test_a_generators_histogram_in_any_shape_becomes_the_records_shape() -> None:
    doc = {"format": "workerbench-histogram/1", "unit": "us", "count": 2, "spectrum": [[0.0, 100], [100.0, 300]]}
    assert distribution.of_generator(doc) == {0.1: 1, 0.3: 1}  # the native engine's document
    assert distribution.of_generator({0.5: 2}) == {0.5: 2}
    assert distribution.of_generator(None) == {}
    assert distribution.of_generator({"format": "something else", "x": 1}) == {}  # dropped, the cell is kept


def test_a_cell_record_keeps_its_histogram_through_json() -> None:
    record = records.CellRecord(mode="prefork", scenario="plaintext", status="ok", throughput_rps=1.0,
                                latency_histogram={0.1: 5, 2.5: 1})
    data = records.to_json(record)
    assert data["latency_histogram"] == [[0.1, 5], [2.5, 1]]
    assert records.cell_from_json(data).latency_histogram == {0.1: 5, 2.5: 1}
    with pytest.raises(records.RecordError, match="latency_histogram"):
        records.cell_from_json({**data, "latency_histogram": "garbage"})


def test_folding_merges_the_repeats_histograms() -> None:
    def rec(repeat: int, histogram: dict[float, int]) -> records.CellRecord:
        return records.CellRecord(mode="m", scenario="s", status="ok", repeat=repeat, throughput_rps=10.0,
                                  latency_histogram=histogram)

    folded = stats.fold([rec(0, {1.0: 2}), rec(1, {1.0: 1, 3.0: 1})])
    assert folded.latency_histogram == {1.0: 3, 3.0: 1}


# --- the significance test -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("dof", range(1, 31))
def test_t_distribution_matches_the_t_table(dof: int) -> None:
    table = stats.t975(dof)  # two-sided 5% quantiles, three decimals
    assert significance.t_two_sided_p(table, dof) == pytest.approx(0.05, abs=3e-4)
    assert significance.t_quantile(0.05, dof) == pytest.approx(table, abs=1.5e-3)


def test_t_distribution_known_values() -> None:
    assert significance.t_two_sided_p(0.0, 4.5) == 1.0
    assert significance.t_two_sided_p(2.0, 10) == pytest.approx(0.07339, abs=1e-5)
    assert significance.t_two_sided_p(1.0, 1) == pytest.approx(0.5, abs=1e-12)  # Cauchy: P(|T| > 1) = 1/2
    assert significance.t_quantile(0.05, 1e7) == pytest.approx(1.95996, abs=1e-4)  # the normal's 1.96


def test_welch_on_logs() -> None:
    same = significance.welch_log([100.0, 102.0, 98.0], [99.0, 103.0, 98.5])
    assert not same.significant() and same.interval is not None and same.interval[0] < 0 < same.interval[1]
    faster = significance.welch_log([100.0, 102.0, 98.0], [110.0, 112.0, 108.0])
    assert faster.significant() and faster.change == pytest.approx(0.1, abs=0.002)
    assert faster.interval is not None and 0 < faster.interval[0] < 0.1 < faster.interval[1]
    assert faster.dof is not None and 3 < faster.dof < 4
    single = significance.welch_log([100.0], [150.0, 151.0])
    assert not single.tested and single.interval is None and single.change == pytest.approx(0.50499, abs=1e-4)
    with pytest.raises(ValueError):
        significance.welch_log([0.0, 1.0], [1.0, 2.0])


def test_holm_adjusts_in_steps_and_keeps_the_order() -> None:
    assert significance.holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    assert significance.holm([0.3, 0.001]) == pytest.approx([0.3, 0.002])
    assert significance.holm([]) == []


def test_welch_false_alarm_rate_is_about_alpha() -> None:
    """Samples of one distribution: about 5% of tests may call a difference significant, not more."""
    rng = random.Random(11)
    trials = 2000
    alarms = sum(significance.welch_log([rng.lognormvariate(8, 0.05) for _ in range(3)],
                                        [rng.lognormvariate(8, 0.05) for _ in range(3)]).significant()
                 for _ in range(trials))
    assert 0.03 < alarms / trials < 0.07


# --- wrk's spectrum, for real -----------------------------------------------------------------------------------------


def test_wrk_reports_a_spectrum_the_record_keeps(wrk_exe: str, start_server: StartServer, tmp_path: Path) -> None:
    def prefork(host: str, port: int) -> list[str]:
        return [sys.executable, "-m", "servers.prefork", "apps.wsgi:app", "--bind", f"{host}:{port}", "--workers", "2"]

    with start_server(prefork) as srv:
        result = WRK.run(Load(scenario=SCENARIOS["plaintext"], host=srv.host, port=srv.port, connections=4,
                              duration=1, workdir=tmp_path))
    parsed = wrk_process.parse_wrk_output((tmp_path / "wrk.log").read_text())
    assert parsed.spectrum_ms[0][0] == 0.0 and parsed.spectrum_ms[-1] == (100.0, result.latency_ms["max"])
    assert result.latency_histogram is not None and sum(result.latency_histogram.values()) == result.requests
    back = dict(distribution.spectrum(result.latency_histogram))
    # wrk's own p50 and p99 are points of its spectrum, and the histogram made from it gives them back.
    assert back[50.0] == result.latency_ms["p50"] and back[99.0] == result.latency_ms["p99"]
