"""Stage faults: inject the same faults into every mode and render what they cost.

:mod:`~scripts.faults.settings` (how long, how hard; what one case needs), :mod:`~scripts.faults.observe` (a
server under steady load, a fault injected a moment in), :mod:`~scripts.faults.timeline` (what was lost, when it
recovered), :mod:`~scripts.faults.cases` (the faults and their registry), :mod:`~scripts.faults.slowclients`
(slowloris and non-readers), :mod:`~scripts.faults.suite` (the run and its command line, ``python -m
scripts.faults``), and the report: :mod:`~scripts.faults.faults_summary`, :mod:`~scripts.faults.faults_html`,
:mod:`~scripts.faults.faults_report`.
"""

from scripts.faults.suite import build_parser, main

__all__ = ["build_parser", "main"]
