"""Is a change between two runs more than noise? Welch's t-test on the logarithms of the repeats.

Why Welch's t and not Mann-Whitney U: a bench cell has 1 to 5 repeats. With 3 repeats on each side the
smallest two-sided p-value Mann-Whitney U can reach is 2/20 = 0.1, so a rank test could never call any
change significant at 5%; the t-test can, at the price of assuming the repeats are roughly normal. Welch's
form, because two runs on a shared machine do not have the same variance. Why logarithms: throughput and
latency are positive and their noise is multiplicative (a busier machine slows everything by a share), so
the test is on the ratio of geometric means, and its interval reads as "+12% (+3% to +22%)".

Nothing here is specific to the bench: :func:`welch_log` takes two samples and returns the change, its
95% confidence interval and the p-value; :func:`holm` adjusts the p-values of many such tests at once.
scipy is not a dependency, so Student's t distribution is computed here from the regularized incomplete beta
function (the continued fraction of Numerical Recipes, 6.4); ``tests/scripts/test_distribution.py`` checks it
against the t table in :mod:`scripts.analysis.stats`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05
_EPS = 1e-14
_TINY = 1e-300
_MAX_ITER = 300


def _beta_fraction(a: float, b: float, x: float) -> float:
    """The continued fraction of the incomplete beta function (modified Lentz's method)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _TINY else _TINY)
    h = d
    for m in range(1, _MAX_ITER + 1):
        m2 = 2 * m
        even = m * (b - m) * x / ((qam + m2) * (a + m2))
        odd = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        for numerator in (even, odd):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _TINY else _TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _TINY else _TINY
            h *= d * c
        if abs(d * c - 1.0) < _EPS:
            return h
    return h  # converged to double precision long before for the arguments a t-test produces


def incomplete_beta(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b) for a, b > 0 and 0 <= x <= 1."""
    if not 0.0 <= x <= 1.0:
        raise ValueError(f"x must be in [0, 1], not {x}")
    if x in (0.0, 1.0):
        return x
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x)
    front = math.exp(log_front)
    # The fraction converges fast only on one side of the mean; use the symmetry I_x(a,b) = 1 - I_(1-x)(b,a).
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_fraction(a, b, x) / a
    return 1.0 - front * _beta_fraction(b, a, 1.0 - x) / b


def t_two_sided_p(t: float, dof: float) -> float:
    """P(|T| >= |t|) for Student's t with ``dof`` (not necessarily whole) degrees of freedom."""
    if dof <= 0:
        raise ValueError(f"degrees of freedom must be positive, not {dof}")
    if math.isinf(t):
        return 0.0
    return incomplete_beta(dof / 2.0, 0.5, dof / (dof + t * t))


def t_quantile(p_two_sided: float, dof: float) -> float:
    """The t such that P(|T| >= t) = ``p_two_sided`` (bisection: the p-value falls monotonically in t)."""
    if not 0.0 < p_two_sided < 1.0:
        raise ValueError(f"p must be in (0, 1), not {p_two_sided}")
    low, high = 0.0, 1.0
    while t_two_sided_p(high, dof) > p_two_sided:
        high *= 2.0
    for _ in range(200):
        mid = (low + high) / 2.0
        if t_two_sided_p(mid, dof) > p_two_sided:
            low = mid
        else:
            high = mid
        if high - low < 1e-12 * high:
            break
    return (low + high) / 2.0


@dataclass(frozen=True, kw_only=True, slots=True)
class Change:
    """B against A: the change of the geometric mean as a share (0.12 = +12%), its 95% CI and p-value.

    ``p`` and ``interval`` are None when either side has fewer than two values (no variance to test with).
    """

    change: float
    interval: tuple[float, float] | None
    p: float | None
    dof: float | None
    n_a: int
    n_b: int

    @property
    def tested(self) -> bool:
        return self.p is not None

    def significant(self, alpha: float = ALPHA) -> bool:
        return self.p is not None and self.p < alpha


def welch_log(a: Sequence[float], b: Sequence[float], alpha: float = ALPHA) -> Change:
    """Welch's t-test of log(b) against log(a); every value must be positive."""
    if not a or not b:
        raise ValueError("both samples need at least one value")
    if min(*a, *b) <= 0:
        raise ValueError("values must be positive (the test is on their logarithms)")
    la, lb = [math.log(v) for v in a], [math.log(v) for v in b]
    diff = statistics.fmean(lb) - statistics.fmean(la)
    if len(la) < 2 or len(lb) < 2:
        return Change(change=math.expm1(diff), interval=None, p=None, dof=None, n_a=len(a), n_b=len(b))
    va, vb = statistics.variance(la) / len(la), statistics.variance(lb) / len(lb)
    se = math.sqrt(va + vb)
    if se == 0.0:
        # Identical repeats on both sides (possible with integer counts): no noise at all to weigh against.
        p = 1.0 if diff == 0.0 else 0.0
        return Change(change=math.expm1(diff), interval=(math.expm1(diff), math.expm1(diff)), p=p, dof=None,
                      n_a=len(a), n_b=len(b))
    # Welch-Satterthwaite degrees of freedom.
    dof = (va + vb) ** 2 / (va**2 / (len(la) - 1) + vb**2 / (len(lb) - 1))
    p = t_two_sided_p(diff / se, dof)
    half = t_quantile(alpha, dof) * se
    return Change(change=math.expm1(diff), interval=(math.expm1(diff - half), math.expm1(diff + half)), p=p,
                  dof=dof, n_a=len(a), n_b=len(b))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values, in the order given.

    A comparison tests two metrics of every matched cell at once: 24 tests at 5% raise at least one false alarm
    in 71% of comparisons of identical runs. Holm's step-down keeps the chance of any false alarm in the whole
    comparison at alpha, and never rejects less than Bonferroni would.
    """
    order = sorted(range(len(p_values)), key=lambda i: p_values[i])
    adjusted = [1.0] * len(p_values)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(p_values) - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
