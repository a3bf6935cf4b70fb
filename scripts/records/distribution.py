"""Latency distributions: the one shape records keep (latency in ms -> count) and the percentile spectrum drawn.

Generators resolve latency differently: the native engine keeps a log-linear histogram in microseconds
(``scripts/load/histogram.py``), wrk keeps one internally but hands its script only percentiles, so
``loadtests/wrk_report.lua`` prints a percentile spectrum. Both become a :data:`Histogram` here, the
generic shape ``LoadResult.latency_histogram`` and ``CellRecord.latency_histogram`` hold: repeats of a cell
merge by adding counts, and the spectrum of any histogram is computed the same way. A histogram made from a
spectrum (:func:`histogram_from_spectrum`) is only as fine as the spectrum, but gives back exactly its values
at the spectrum's levels.

The spectrum's levels are HdrHistogram's: each halving of the distance to 100% gets :data:`TICKS_PER_HALF`
points (0, 10, 20, 30, 40, 50, 55, 60, ... 98.9, 99.06, ...) until the next point would be less than one
request away, plus the named percentiles (p50 ... p99.999) as far as they are a request from the top, then 100%
(the maximum). Values are nearest-rank percentiles.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from itertools import accumulate
from typing import Any

from scripts.common.formatting import MISSING

Histogram = Mapping[float, int]
Spectrum = tuple[tuple[float, float], ...]  # (percentile 0..100, latency ms)
TICKS_PER_HALF = 5
# The percentiles people quote are points of every spectrum too (the ladder alone passes 99 at 98.9 and 99.06).
NAMED_LEVELS = (50.0, 75.0, 90.0, 95.0, 99.0, 99.9, 99.99, 99.999)
MAX_LEVELS = 400
HDR_FORMAT = "workerbench-histogram/1"  # scripts/load/histogram.py's JSON document
# The spectrum's x axis: 1 / (1 - percentile), so 90%, 99%, 99.9% sit one decade apart (HdrHistogram's plot).
SPECTRUM_TICKS = (1.0, 2.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6)


def percentile_of(histogram: Histogram, fraction: float) -> float:
    """The smallest recorded latency at or below which ``fraction`` of the requests fall."""
    total = sum(histogram.values())
    if total == 0:
        return math.nan
    rank = max(1, math.ceil(fraction * total))
    seen = 0
    for value in sorted(histogram):
        seen += histogram[value]
        if seen >= rank:
            return value
    return max(histogram)


def levels(count: int, ticks_per_half: int = TICKS_PER_HALF) -> list[float]:
    """The spectrum's percentile levels for ``count`` values (empty for none)."""
    if count <= 0:
        return []
    out: list[float] = []
    remaining = 100.0
    while remaining * count / 100.0 >= 1.0 and len(out) < MAX_LEVELS:
        base = 100.0 - remaining
        out += [round(base + remaining / 2.0 * i / ticks_per_half, 9) for i in range(ticks_per_half)]
        remaining /= 2.0
    out += [level for level in NAMED_LEVELS if (100.0 - level) * count / 100.0 >= 1.0]
    return [*sorted(set(out)), 100.0]


def rank(level: float, count: int) -> int:
    """The 1-based nearest rank of percentile ``level`` among ``count`` values."""
    # round() first: 0.99 * 800 is 792.0000000000001 in floating point, whose ceil would skip a rank.
    return min(count, max(1, math.ceil(round(level / 100.0 * count, 9))))


def merge(histograms: Iterable[Histogram]) -> dict[float, int]:
    merged: dict[float, int] = {}
    for histogram in histograms:
        for value, n in histogram.items():
            merged[value] = merged.get(value, 0) + n
    return dict(sorted(merged.items()))


def spectrum(histogram: Histogram) -> Spectrum:
    """The percentile spectrum of ``histogram``: (percentile, latency ms) from the minimum to the maximum."""
    items = sorted((v, n) for v, n in histogram.items() if n > 0)
    if not items:
        return ()
    values = [v for v, _ in items]
    cumulative = list(accumulate(n for _, n in items))
    count = cumulative[-1]
    return tuple((level, values[bisect_left(cumulative, rank(level, count))]) for level in levels(count))


def spectrum_x(level: float, count: int) -> float:
    """The x of a percentile on the spectrum's axis; 100% (the maximum) one halving past the highest level there
    can be (100% less one rank, at x = count), so it never lands on the last level's x."""
    return 2.0 * count if level >= 100.0 else 1.0 / (1.0 - level / 100.0)


def spectrum_label(x: float) -> str:
    """The percentile an x of the spectrum's axis stands for."""
    return f"{100.0 * (1.0 - 1.0 / x):.6g}%" if x > 0 else MISSING


def histogram_from_spectrum(points: Sequence[tuple[float, float]], count: int) -> dict[float, int]:
    """A histogram with ``count`` values whose spectrum at ``points``' levels gives back their latencies.

    The ranks between two levels go to the higher level's latency: what the spectrum says about them is that
    they are at most that.
    """
    if count <= 0 or not points:
        return {}
    out: dict[float, int] = {}
    done = 0
    for level, value in sorted(points):
        upto = count if level >= 100.0 else rank(level, count)
        if upto > done:
            out[float(value)] = out.get(float(value), 0) + upto - done
            done = upto
    if done < count:  # a spectrum that stops short of 100%: the rest is at least its last value
        last = float(max(v for _, v in points))
        out[last] = out.get(last, 0) + count - done
    return dict(sorted(out.items()))


def compact(histogram: Histogram) -> dict[float, int]:
    """``histogram`` cut down to its spectrum's points: the same count and the same spectrum (so the same chart and
    percentiles), in about a hundred pairs instead of one per microsecond bucket. Only for a histogram that is not
    merged later: merging two compacted ones is only as fine as their spectra."""
    return histogram_from_spectrum(spectrum(histogram), sum(histogram.values()))


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def from_json(value: Any) -> dict[float, int]:
    """A histogram from any shape a record or a generator has held; ValueError for anything else.

    ``{"0.412": 17, ...}`` (ms -> count), ``[[0.412, 17], ...]``, or the native histogram's document
    (``scripts/load/histogram.py``: ``{"format": "workerbench-histogram/1", "unit": "us", "count": N,
    "spectrum": [[percentile, us], ...], ...}``), read through its spectrum.
    """
    if value is None:
        return {}
    if isinstance(value, Mapping) and value.get("format") == HDR_FORMAT:
        scale = 1000.0 if value.get("unit", "us") == "us" else 1.0
        points = [(float(p), float(v) / scale) for p, v in value.get("spectrum") or ()]
        return histogram_from_spectrum(points, int(value.get("count") or 0))
    pairs = value.items() if isinstance(value, Mapping) else value if isinstance(value, list | tuple) else None
    if pairs is None:
        raise ValueError(f"not a latency histogram: {value!r:.80}")
    out: dict[float, int] = {}
    for pair in pairs:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError(f"not a (latency, count) pair: {pair!r:.80}")
        latency, n = _number(pair[0]), _number(pair[1])
        if latency is None or n is None or n < 0 or latency < 0:
            raise ValueError(f"not a (latency, count) pair: {pair!r:.80}")
        if n:
            out[latency] = out.get(latency, 0) + int(n)
    return dict(sorted(out.items()))


def of_generator(value: Any) -> dict[float, int]:
    """A generator's ``latency_histogram`` in the records' shape, whichever shape it came in; {} for one that
    cannot be read, so a measured cell is never lost over its distribution (its percentiles stay)."""
    try:
        return from_json(value)
    except (ValueError, TypeError, KeyError):
        return {}


def to_json(histogram: Histogram) -> list[list[float]]:
    """``[[latency ms, count], ...]`` in latency order (a list: JSON object keys would have to be strings)."""
    return [[value, n] for value, n in sorted(histogram.items())]
