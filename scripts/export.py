"""``python -m scripts.export RUN [--format csv]``: write every cell record of a run as one flat table.

A thin command over :mod:`scripts.render.csv_export` (``python -m scripts.report RUN --export csv`` does the same).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from scripts.render import csv_export


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.export",
                                     description=(csv_export.__doc__ or "").split("\n\n")[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--format", choices=csv_export.FORMATS, default="csv")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not (args.run_dir / "cells").is_dir():
        parser.error(f"no cell records under {args.run_dir / 'cells'}")
    print(csv_export.export(args.run_dir, args.format))
    return 0


if __name__ == "__main__":
    sys.exit(main())
