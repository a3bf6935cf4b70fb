"""How numbers read in the summary and on the charts, one set of rules for both."""

from __future__ import annotations

import math

MISSING = "\u2014"  # an em dash: visibly "no value", unlike 0 or an empty cell


def count(n: int, word: str, plural: str | None = None) -> str:
    """``n`` and the noun that goes with it: "1 cell", "2 cells", "0 cells"."""
    return f"{n:,} {word if n == 1 else (plural or word + 's')}"


def minutes(seconds: float) -> str:
    """A time estimate: "about 40 s" under a minute, "about 2.5 min" above."""
    return f"about {seconds:.0f} s" if seconds < 60 else f"about {seconds / 60:.1f} min"


def as_number(value: object) -> float | None:
    """``value`` as a finite float, or None for missing, non-numeric (including bool) and NaN/inf values."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def format_rps(value: object) -> str:
    """Requests per second: ``1,235`` from 100 up, ``56.8`` below, where the decimal still carries information."""
    number = as_number(value)
    if number is None:
        return MISSING
    # Decide on the rounded value so that 99.96 becomes "100", not "100.0".
    if round(abs(number), 1) >= 100:
        return f"{number:,.0f}"
    return f"{number:.1f}"


def format_sig(value: object, digits: int = 3) -> str:
    """Up to ``digits`` significant digits (``1.23``, ``12.3``, ``0.0456``); whole numbers as they are."""
    number = as_number(value)
    if number is None:
        return MISSING
    if number == int(number):
        # locust reports whole milliseconds: "3" says what was measured, "3.00" would claim more.
        return f"{int(number):,}"
    rounded = float(f"{number:.{digits}g}")
    if abs(rounded) >= 10 ** (digits - 1):
        # Dropping integer digits (1234 -> "1,230") would make a latency look rounder than it is.
        return f"{number:,.0f}"
    decimals = digits - 1 - math.floor(math.log10(abs(rounded)))
    return f"{rounded:.{decimals}f}"


def format_percent(value: float) -> str:
    """A share in percent, precise enough that a rare error does not round away to 0."""
    if value >= 10:
        return f"{value:.0f}%"
    return f"{value:.2g}%"


def format_mb(value: object) -> str:
    number = as_number(value)
    return MISSING if number is None else f"{number:,.1f}"
