"""``python -m scripts.tune``: each mode's best setting on this machine, by capacity at a latency target.

:mod:`~scripts.tuning.search` the search (bracketing and bisection on the rate, a climb along each axis),
pure; :mod:`~scripts.tuning.measure` one setting against a real server with the open-loop engine;
:mod:`~scripts.tuning.results` what lands in the run folder; :mod:`~scripts.tuning.command` the production
command line; :mod:`~scripts.tuning.estimate` the estimate past this machine; :mod:`~scripts.tuning.tune_report`
summary.md and report.html; :mod:`~scripts.tuning.tune_run` the whole run.
"""
