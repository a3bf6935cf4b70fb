"""``python -m scripts.compare RUN_A RUN_B`` (``nox -s compare -- A B``): what changed from run A to run B.

Cells are matched by mode, scenario, concurrency, keep-alive and database strategy; per cell the change in
throughput and p99 with its 95% interval and Welch's t-test over the repeats (:mod:`scripts.analysis.comparison` says
how and why). Output: a Markdown table on stdout and ``compare.html`` (self-contained, like report.html) in
``--out`` (default: run B's folder). Exit status: 0 compared, 1 nothing in common, 2 a run that cannot be read.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from scripts.analysis.comparison import MIN_CHANGE, RunUnreadable, compare, load_side, markdown
from scripts.analysis.significance import ALPHA
from scripts.render import compare_html


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.compare",
                                     description="Compare two workerbench runs cell by cell, with the noise stated.")
    parser.add_argument("run_a", type=Path, help="the baseline run folder")
    parser.add_argument("run_b", type=Path, help="the run compared with it")
    parser.add_argument("--out", type=Path, help="folder for compare.html (default: run B's)")
    parser.add_argument("--alpha", type=float, default=ALPHA, help="significance level (default 0.05)")
    parser.add_argument("--min-change", type=float, default=MIN_CHANGE * 100,
                        help="smallest change in percent that counts (default 5)")
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
    return 0 if result.cells else 1


if __name__ == "__main__":
    sys.exit(main())
