"""``python -m scripts.index [FOLDER]``: rebuild ``results/index.html`` (or FOLDER's), every run in it newest first.

A thin command over :mod:`scripts.render.web.runs_index`, which the bench and the faults suite also call after each run.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from scripts.render.web import runs_index


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.index",
                                     description=(runs_index.__doc__ or "").split("\n\n")[0])
    parser.add_argument("folder", type=Path, nargs="?", default=runs_index.RESULTS,
                        help="a folder of runs (default results/)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.folder.is_dir():
        parser.error(f"{args.folder}: no such folder")
    print(runs_index.write_index(args.folder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
