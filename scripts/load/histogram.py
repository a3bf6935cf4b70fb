"""A log-linear latency histogram in whole microseconds (the layout of HdrHistogram).

Why not a list of every latency: a closed loop at 100,000 requests/s for a minute keeps six
million floats (~200 MB with their list) and sorts them; a histogram is one fixed list of
counters, recording is one index computation and one increment, and two runs merge by adding
counters. Why not fixed millisecond buckets: a keep-alive request on loopback takes 50-500 µs,
all of which would fall in one bucket.

Layout (``sub_bits`` = S, 11 by default): values below 2**S µs (2.048 ms) each have a bucket of
their own, so they are exact to the microsecond. Above, every power-of-two range
[2**k, 2**(k+1)) is split into 2**(S-1) equal buckets, so a value is known to within 1/2**(S-1)
of itself (0.1%, HdrHistogram's "3 significant digits"). A percentile is the nearest rank over
the counters, reported as the highest value its bucket can hold (HdrHistogram's "highest
equivalent value"), clamped to the largest value recorded, which is kept exactly, as are the
count and the sum (so the mean is exact).
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from typing import Any

DEFAULT_SUB_BITS = 11
# 2**36 µs is 19 hours: anything slower is recorded in the last bucket (its max stays exact).
HIGHEST_BITS = 36
PERCENTILES = {"p50": 0.50, "p75": 0.75, "p90": 0.90, "p99": 0.99, "p999": 0.999}
# The spectrum's resolution: points per halving of the distance to 100% (HdrHistogram's default is 5).
TICKS_PER_HALF = 5
FORMAT = "workerbench-histogram/1"


def nearest_rank(count: int, fraction: float) -> int:
    """The 1-based rank of the ``fraction`` percentile among ``count`` values (nearest-rank definition)."""
    if count <= 0:
        raise ValueError("percentile of no values")
    if not 0.0 < fraction <= 1.0:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    # round() first: 0.99 * 800 is 792.0000000000001 in floating point, whose ceil would skip a rank.
    return max(1, math.ceil(round(fraction * count, 9)))


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest rank: the smallest value such that at least ``fraction`` of ``sorted_values`` are <= it."""
    return sorted_values[nearest_rank(len(sorted_values), fraction) - 1]


class Histogram:
    """Counts of non-negative integer values (microseconds) in log-linear buckets; see the module docstring."""

    __slots__ = ("_exact", "_half", "_last", "counts", "max", "sub_bits", "total")

    def __init__(self, sub_bits: int = DEFAULT_SUB_BITS) -> None:
        if not 2 <= sub_bits <= 20:
            raise ValueError(f"sub_bits must be in 2..20, not {sub_bits}")
        self.sub_bits = sub_bits
        self._exact = 1 << sub_bits
        self._half = sub_bits - 1
        self._last = self.index(1 << HIGHEST_BITS)
        self.counts = [0] * (self._last + 1)
        self.total = 0
        self.max = 0

    def index(self, value: int) -> int:
        """The bucket of ``value``; increasing with the value."""
        if value < self._exact:
            return value
        shift = value.bit_length() - self.sub_bits
        return (value >> shift) + (shift << self._half)

    def highest_equivalent(self, index: int) -> int:
        """The largest value that falls into bucket ``index``."""
        if index < self._exact:
            return index
        shift = (index >> self._half) - 1
        sub = index - (shift << self._half)
        return ((sub + 1) << shift) - 1

    def record(self, value: int) -> None:
        """Count one value; negative values count as 0 (a clock cannot run backwards, rounding can)."""
        if value < self._exact:
            if value < 0:
                value = 0
            self.counts[value] += 1
        else:
            shift = value.bit_length() - self.sub_bits
            self.counts[min(self._last, (value >> shift) + (shift << self._half))] += 1
        self.total += value
        if value > self.max:
            self.max = value

    @property
    def count(self) -> int:
        """How many values were recorded (summed on demand: one less store per record)."""
        return sum(self.counts)

    def record_seconds(self, seconds: float) -> None:
        self.record(int(seconds * 1e6 + 0.5))

    def merge(self, other: Histogram) -> None:
        """Add ``other``'s counts to this one (same layout only)."""
        if other.sub_bits != self.sub_bits:
            raise ValueError(f"cannot merge histograms of {other.sub_bits} and {self.sub_bits} sub-bucket bits")
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.total += other.total
        self.max = max(self.max, other.max)

    def value_at(self, fraction: float) -> int:
        """The ``fraction`` percentile (nearest rank), in the recorded unit."""
        return self._values_at([fraction])[0]

    def _values_at(self, fractions: Iterable[float]) -> list[int]:
        cumulative = list(accumulate(self.counts))
        count = cumulative[-1]
        out = []
        for fraction in fractions:
            index = bisect_left(cumulative, nearest_rank(count, fraction))
            # The last bucket also holds everything beyond the range: only the exact max bounds it.
            out.append(self.max if index == self._last else min(self.max, self.highest_equivalent(index)))
        return out

    def min(self) -> int:
        if not self.count:
            raise ValueError("min of no values")
        first = next(i for i, n in enumerate(self.counts) if n)
        # The lowest value of the first bucket: the exact minimum below 2**sub_bits.
        return first if first < self._exact else self.highest_equivalent(first - 1) + 1

    def summary_ms(self) -> dict[str, float]:
        """p50 ... p999, max and mean in milliseconds (3 decimals: microseconds); {} for no values."""
        count = self.count
        if not count:
            return {}
        values = self._values_at(PERCENTILES.values())
        out = {key: round(v / 1000.0, 3) for key, v in zip(PERCENTILES, values, strict=True)}
        out["max"] = round(self.max / 1000.0, 3)
        out["mean"] = round(self.total / count / 1000.0, 3)
        return out

    def spectrum(self, ticks_per_half: int = TICKS_PER_HALF) -> list[tuple[float, int]]:
        """(percentile, value) pairs from 0 to 100%, denser towards the tail (HdrHistogram's percentile output)."""
        count = self.count
        if not count:
            return []
        levels: list[float] = []
        remaining = 100.0
        # Each halving of the distance to 100% gets `ticks_per_half` points, until one rank apart.
        while remaining * count / 100.0 >= 1.0 and len(levels) < 400:
            base = 100.0 - remaining
            levels += [base + remaining / 2.0 * i / ticks_per_half for i in range(ticks_per_half)]
            remaining /= 2.0
        levels.append(100.0)
        values = self._values_at([max(level, 1e-12) / 100.0 for level in levels])
        return [(round(level, 6), value) for level, value in zip(levels, values, strict=True)]

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready document: the spectrum to read, the non-empty buckets to merge or reload losslessly."""
        return {
            "format": FORMAT,
            "unit": "us",
            "sub_bits": self.sub_bits,
            "count": self.count,
            "total": self.total,
            "max": self.max,
            "buckets": self._runs(),
            "spectrum": [list(point) for point in self.spectrum()],
        }

    def _runs(self) -> list[list[Any]]:
        """The non-empty buckets as [first index, [counts of consecutive buckets]]: latencies cluster,
        so this is about half the size of [index, count] pairs."""
        runs: list[list[Any]] = []
        counts = self.counts
        i, end = 0, len(counts)
        while i < end:
            if not counts[i]:
                i += 1
                continue
            start = i
            while i < end and counts[i]:
                i += 1
            runs.append([start, counts[start:i]])
        return runs

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Histogram:
        if doc.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} document: format {doc.get('format')!r}")
        hist = cls(int(doc["sub_bits"]))
        for start, run in doc["buckets"]:
            for offset, n in enumerate(run):
                hist.counts[int(start) + offset] += int(n)
        hist.total = int(doc["total"])
        hist.max = int(doc["max"])
        if hist.count != int(doc["count"]):
            raise ValueError(f"histogram buckets hold {hist.count} values, its count says {doc['count']}")
        return hist
