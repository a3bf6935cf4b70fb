"""``python -m scripts.report RUN``: render a run folder (charts and ``summary.md``) from its records.

The pipeline's last stage, and the one entry point to it: :func:`render_run` loads the run's records
(:mod:`scripts.records.records`), analyses them (:mod:`scripts.analysis.analysis`) and hands the result to the renderers
(:mod:`scripts.render.plot`, :mod:`scripts.render.summary`). The bench calls it at the end of every run, finished or
interrupted; this command calls it on any run folder, for example an interrupted or an older one.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from scripts.analysis import analysis
from scripts.records import records
from scripts.render import csv_export, plot, summary, userapp_report
from scripts.render.web import report_html, runs_index
from scripts.tuning import results as tune_results
from scripts.tuning import tune_report


def render_run(run_dir: Path) -> Path:
    """Redraw ``run_dir``'s charts, summary and report.html from its records (and the results index, for a run
    under results/); returns the summary's path."""
    run = records.load(run_dir)
    analysed = analysis.analyse(run)
    charts = plot.write_charts(analysed, run_dir)
    # A --tuned run holds a copy of its tune run's tune.json: the settings its MODE+tuned modes ran at.
    tuned = tune_results.load(run_dir) if (run_dir / tune_results.FILE).exists() else None
    written = summary.write_summary(analysed, run_dir, charts=[c.name for c in charts],
                                    extra=[*userapp_report.section(run),
                                           *(tune_report.bench_summary(tuned) if tuned else [])])
    report_html.write_report(analysed, run_dir, started=min((c.started_at for c in run.cells if c.started_at),
                                                           default=None), extra=[userapp_report.html_section(run)],
                             later=[tune_report.bench_html(tuned)] if tuned else [])
    runs_index.rebuild_for(run_dir)
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.report",
                                     description="Redraw the charts, summary and report.html of a run from its "
                                     "records.")
    parser.add_argument("run_dir", type=Path, help="a run folder, e.g. results/latest")
    parser.add_argument("--export", choices=csv_export.FORMATS, help="also write every cell as one flat table "
                        "(cells.csv in the run folder)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.run_dir.is_dir():
        parser.error(f"no such folder: {args.run_dir}")
    if not list((args.run_dir / "cells").glob("*.json")):
        parser.error(f"no cell records under {args.run_dir / 'cells'}")
    print(render_run(args.run_dir))
    if args.export:
        print(csv_export.export(args.run_dir, args.export))
    return 0


if __name__ == "__main__":
    sys.exit(main())
