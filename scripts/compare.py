"""``python -m scripts.compare RUN_A RUN_B`` (``nox -s compare -- A B``): what changed from run A to run B.

Cells are matched by mode, scenario, concurrency, keep-alive and database strategy; per cell the change in
throughput and p99 with its 95% interval and Welch's t-test over the repeats (:mod:`scripts.analysis.comparison` says
how and why). Output: a Markdown table on stdout and ``compare.html`` (self-contained, like report.html) in
``--out`` (default: run B's folder). Exit status: 0 compared, 1 nothing in common, 2 a run that cannot be read
or a usage error; with ``--fail-on-regression`` (a CI gate, ``nox -s gate``), 3 when any matched cell's throughput or
p99 is a regression (significant after Holm's correction and at least ``--min-change``), those cells listed on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from scripts.analysis.comparison import (
    MIN_CHANGE,
    RunUnreadable,
    compare,
    gate_lines,
    load_side,
    markdown,
)
from scripts.analysis.significance import ALPHA
from scripts.render import compare_html


def _share(text: str) -> float:
    """--alpha: a probability strictly between 0 and 1."""
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"{text} is not between 0 and 1 (exclusive)")
    return value


def _percent(text: str) -> float:
    """--min-change: a percentage, 0 or more."""
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a percentage of 0 or more")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.compare",
                                     description="Compare two workerbench runs cell by cell, with the noise stated.")
    parser.add_argument("run_a", type=Path, help="the baseline run folder")
    parser.add_argument("run_b", type=Path, help="the run compared with it")
    parser.add_argument("--out", type=Path, help="folder for compare.html (default: run B's)")
    parser.add_argument("--alpha", type=_share, default=ALPHA, help="significance level (default 0.05)")
    parser.add_argument("--min-change", type=_percent, default=MIN_CHANGE * 100,
                        help="smallest change in percent that counts (default 5)")
    parser.add_argument("--fail-on-regression", action="store_true",
                        help="a CI gate: exit 3 when any cell's throughput or p99 is a regression (significant and "
                             "at least --min-change), listing those cells; 0 otherwise (1 and 2 keep their meaning)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        a, b = load_side(args.run_a), load_side(args.run_b)
    except RunUnreadable as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    result = compare(a, b, alpha=args.alpha, min_change=args.min_change / 100)
    print(markdown(result), end="")
    page = compare_html.write(result, (args.out or args.run_b) / "compare.html")
    print(f"\n{page}")
    if not result.cells:
        return 1
    if args.fail_on_regression:
        print("\n".join(gate_lines(result)), file=sys.stderr)
        return 3 if result.regressions() else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
