"""scripts.load.histogram: exact below 2**sub_bits µs, bounded relative error above, nearest-rank percentiles."""

from __future__ import annotations

import json
import random

import pytest

from scripts.load.engine_process import summarize_ms
from scripts.load.histogram import Histogram, nearest_rank, percentile


def filled(values: list[int], sub_bits: int = 11) -> Histogram:
    hist = Histogram(sub_bits)
    for v in values:
        hist.record(v)
    return hist


def test_small_values_are_exact_to_the_microsecond() -> None:
    hist = filled([15, 20, 35, 40, 50])  # the textbook nearest-rank example
    assert [hist.value_at(f) for f in (0.05, 0.30, 0.40, 0.50, 1.0)] == [15, 20, 20, 35, 50]
    hundred = filled(list(range(1, 101)))
    assert (hundred.value_at(0.5), hundred.value_at(0.99), hundred.value_at(0.999)) == (50, 99, 100)
    # 0.99 * 800 is 792.0000000000001 in floating point: the rank must still be 792.
    assert filled(list(range(1, 801))).value_at(0.99) == 792
    assert hundred.min() == 1 and hundred.max == 100 and hundred.count == 100


def test_agrees_with_the_exact_percentiles_in_the_exact_range() -> None:
    rng = random.Random(7)
    values = [rng.randrange(0, 2048) for _ in range(5000)]
    hist = filled(values)
    ordered = sorted(values)
    for fraction in (0.001, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999, 1.0):
        assert hist.value_at(fraction) == percentile(ordered, fraction)
    exact = summarize_ms([v / 1e6 for v in values])
    assert hist.summary_ms() == exact  # p50 ... p999, max and the mean, all in ms to the microsecond


def test_large_values_within_the_bucket_precision() -> None:
    rng = random.Random(11)
    values = [int(rng.lognormvariate(10, 2)) for _ in range(20000)]  # ~20 ms median, tail to minutes
    hist = filled(values)
    ordered = sorted(values)
    for fraction in (0.1, 0.5, 0.9, 0.99, 0.999):
        exact = percentile(ordered, fraction)
        got = hist.value_at(fraction)
        # The highest value of the exact value's bucket: never below it, at most 1/1024 above.
        assert exact <= got <= exact * (1 + 1 / 1024) + 1
    assert hist.value_at(1.0) == hist.max == max(values)
    assert hist.total == sum(values)


def test_buckets_are_contiguous_and_increasing() -> None:
    hist = Histogram(4)  # 16 exact values, then 8 buckets per power of two
    assert [hist.index(v) for v in range(16)] == list(range(16))
    assert [hist.index(v) for v in (16, 17, 18, 31, 32, 35, 36, 63, 64)] == [16, 16, 17, 23, 24, 24, 25, 31, 32]
    previous = -1
    for index in range(200):
        top = hist.highest_equivalent(index)
        assert top > previous and hist.index(top) == index and hist.index(previous + 1) == index
        previous = top


def test_merge_equals_recording_everything_in_one() -> None:
    a, b = filled([1, 5, 5000, 90_000]), filled([2, 3000, 7_000_000])
    a.merge(b)
    both = filled([1, 5, 5000, 90_000, 2, 3000, 7_000_000])
    assert a.counts == both.counts and (a.count, a.total, a.max) == (both.count, both.total, both.max)
    with pytest.raises(ValueError):
        a.merge(Histogram(8))


def test_json_round_trip_and_spectrum() -> None:
    hist = filled([100] * 90 + [1000] * 9 + [50_000])
    doc = json.loads(json.dumps(hist.to_json()))
    back = Histogram.from_json(doc)
    assert back.counts == hist.counts and back.summary_ms() == hist.summary_ms()
    spectrum = doc["spectrum"]
    assert spectrum[0] == [0.0, 100] and spectrum[-1] == [100.0, 50_000]
    assert [p for p, _ in spectrum] == sorted(p for p, _ in spectrum)
    assert [v for _, v in spectrum] == sorted(v for _, v in spectrum)
    assert [90.0, 100] in spectrum and [93.75, 1000] in spectrum
    doc["count"] = 3
    with pytest.raises(ValueError, match="count"):
        Histogram.from_json(doc)


def test_edge_cases() -> None:
    empty = Histogram()
    assert empty.summary_ms() == {} and empty.spectrum() == []
    with pytest.raises(ValueError):
        empty.value_at(0.5)
    with pytest.raises(ValueError):
        filled([1]).value_at(0.0)
    clamped = filled([-3, 1 << 40])
    assert clamped.value_at(0.5) == 0 and clamped.max == 1 << 40 and clamped.value_at(1.0) == 1 << 40
    assert nearest_rank(800, 0.99) == 792
    hist = Histogram()
    hist.record_seconds(0.0012344)
    hist.record_seconds(0.0012346)
    assert hist.counts[1234] == 1 and hist.counts[1235] == 1
