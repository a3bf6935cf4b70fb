"""The search, free of servers: the capacity of one setting by bracketing and bisection on the offered rate, and
the climb along a mode's axes that decides which settings to measure.

Capacity is the highest offered rate that passes (achieved at least 99% of offered, p99 under the target). A rate
passes when most of its repeats do; repeats stop as soon as the majority is decided.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

Setting = Mapping[str, int]

MIN_RATE = 5.0  # below this a setting is said to have no capacity
MAX_RATE = 12800.0  # the open-loop engine's reach on one generator CPU, roughly
IMPROVES = 1.05  # a step along an axis must add this much capacity to be taken
# Steps in a row that add less before an axis stops: capacity over workers is not always monotonic (measured on one
# server CPU, cpu scenario, medians of three interleaved rounds: gunicorn-sync 1,261 / 1,108 / 1,436 per second with
# 1 / 2 / 3 workers), and one step past a dip finds what lies behind it.
PATIENCE = 2
THREADS_CEILING = 256


def axis_values(kind: str, server_cpus: int, given: tuple[int, int] | None = None) -> tuple[int, ...]:
    """The values of an axis: workers 1..2n+1 for n server CPUs, powers of two up to 256 (or the range given)."""
    if kind == "count":
        lo, hi = given or (1, 2 * server_cpus + 1)
        return tuple(range(lo, hi + 1))
    lo, hi = given or (1, THREADS_CEILING)
    values = [v for v in (2 ** i for i in range(0, 20)) if lo <= v <= hi]
    return tuple(sorted({lo, *values, hi}))


def passes_majority(trial: Callable[[float], bool], repeats: int) -> Callable[[float], bool]:
    """A rate's verdict from up to ``repeats`` trials: it passes when more than half pass; stops once decided."""
    def verdict(rate: float) -> bool:
        ok = bad = 0
        need = repeats // 2 + 1
        while ok < need and bad < repeats - need + 1:
            if trial(rate):
                ok += 1
            else:
                bad += 1
        return ok >= need
    return verdict


def find_capacity(passes: Callable[[float], bool], start: float, *, precision: float = 0.05,
                  floor: float = MIN_RATE, ceiling: float = MAX_RATE) -> float:
    """The highest passing rate to within ``precision``: double from ``start`` until a rate fails (or halve until
    one passes), then bisect (geometrically) between the last pass and the first failure. 0: not even ``floor``."""
    lo, hi = 0.0, math.inf
    rate = min(max(start, floor), ceiling)
    while math.isinf(hi) or lo == 0.0:
        if passes(rate):
            lo = rate
            if rate >= ceiling or not math.isinf(hi):
                break
            rate = min(rate * 2, ceiling)
        else:
            hi = rate
            if lo > 0.0:
                break
            if rate <= floor:
                return 0.0
            rate = max(rate / 2, floor)
    while hi / lo > 1 + precision and not math.isinf(hi):
        mid = round(math.sqrt(lo * hi), 1)
        if mid <= lo or mid >= hi:
            break
        if passes(mid):
            lo = mid
        else:
            hi = mid
    return lo


@dataclass(frozen=True, kw_only=True, slots=True)
class Outcome:
    """What the climb needs of one measured setting."""

    capacity: float | None  # None: the setting failed (the server refused it, the app did not start)
    memory_mb: float | None = None


def setting_key(setting: Setting) -> tuple[tuple[str, int], ...]:
    return tuple(sorted(setting.items()))


def climb(axes: Sequence[tuple[str, Sequence[int]]], measure: Callable[[dict[str, int]], Outcome], *,
          memory_budget_mb: float | None = None, improves: float = IMPROVES, patience: int = PATIENCE,
          start: Setting | None = None) -> tuple[dict[str, int] | None, list[dict[str, int]]]:
    """Rise along each axis in turn from the lowest values (or ``start``), keeping the best so far, and stop an axis
    when ``patience`` steps in a row each add less than ``improves`` over the best, or the memory budget is exceeded;
    a failed setting is skipped (two in a row end the axis). Returns the best setting (None when every one failed)
    and the settings measured, in order. ``measure`` is called once per setting."""
    seen: dict[tuple[tuple[str, int], ...], Outcome] = {}
    order: list[dict[str, int]] = []

    def get(setting: dict[str, int]) -> Outcome:
        if setting_key(setting) not in seen:
            seen[setting_key(setting)] = measure(setting)
            order.append(setting)
        return seen[setting_key(setting)]

    def fits(o: Outcome) -> bool:
        return o.capacity is not None and (memory_budget_mb is None or o.memory_mb is None
                                           or o.memory_mb <= memory_budget_mb)

    current = dict(start) if start else {name: values[0] for name, values in axes}
    best: dict[str, int] | None = current if fits(get(current)) else None
    for name, values in axes:
        base = best or current
        failures = flat = 0
        for value in (v for v in values if v > base[name]):
            candidate = {**base, name: value}
            outcome = get(candidate)
            if outcome.capacity is None:
                failures += 1
                if failures >= 2:
                    break
                continue
            failures = 0
            if not fits(outcome):
                break  # over the memory budget: more of this axis only costs more
            best_capacity = seen[setting_key(best)].capacity if best else None
            if best is None or best_capacity is None or outcome.capacity >= best_capacity * improves:
                best = base = candidate
                flat = 0
            else:
                flat += 1
                if flat >= patience:
                    break
    return best, order
