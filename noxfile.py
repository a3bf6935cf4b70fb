"""workerbench sessions: ``nox -s bench``, ``tune``, ``faults``, ``compare``, ``gate``, ``tests``, ``lint``,
``typecheck`` and ``docs``."""

from __future__ import annotations

import os

import nox

nox.options.sessions = ["lint", "typecheck", "tests"]
# Reuse the virtualenv between runs; `pip install -e .` still brings it up to date.
nox.options.reuse_venv = "yes"


@nox.session
def bench(session: nox.Session) -> None:
    """Run the comparison; arguments after `--` go to scripts.bench (try `-- --help`)."""
    # The README's "Benchmark your own app": its Flask example and --adapt's a2wsgi run in this environment.
    session.install("-e", ".[examples,adapters]")
    session.run("python", "-m", "scripts.bench", *session.posargs)


@nox.session
def tune(session: nox.Session) -> None:
    """Find each mode's best setting on this machine; arguments after `--` go to scripts.tune (`-- --quick`)."""
    # A user's app is tuned as the bench runs it: the Flask example and --adapt's a2wsgi run in this environment.
    session.install("-e", ".[examples,adapters]")
    session.run("python", "-m", "scripts.tune", *session.posargs)


@nox.session
def faults(session: nox.Session) -> None:
    """Inject the same faults into every mode; arguments after `--` go to scripts.faults (`-- --quick`, `-- --help`)."""
    # The README's faults on your own app: its Flask example and --adapt's a2wsgi run in this environment.
    session.install("-e", ".[examples,adapters]")
    session.run("python", "-m", "scripts.faults", *session.posargs)


@nox.session
def compare(session: nox.Session) -> None:
    """Compare two runs: `nox -s compare -- RUN_A RUN_B` (a Markdown table here, compare.html in RUN_B)."""
    session.install("-e", ".")
    if len(session.posargs) < 2:
        session.error("usage: nox -s compare -- RUN_A RUN_B [--out FOLDER] [--min-change PERCENT]")
    session.run("python", "-m", "scripts.compare", *session.posargs)


@nox.session
def gate(session: nox.Session) -> None:
    """A CI gate: `nox -s gate -- BASELINE CANDIDATE` fails on a significant regression (docs/how-to/ci-gate.md)."""
    session.install("-e", ".")
    if len(session.posargs) < 2:
        session.error("usage: nox -s gate -- BASELINE_RUN CANDIDATE_RUN [--min-change PERCENT] [--alpha ALPHA]")
    # scripts.compare exits 3 on a regression (listed on stderr), 1 when the runs share no cell, 2 when one cannot be
    # read; any of them fails this session, and nox then exits 1.
    session.run("python", "-m", "scripts.compare", *session.posargs, "--fail-on-regression")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite against real server processes; arguments after `--` go to pytest.

    `nox -s tests -- -m "not slow"` runs the fast tier alone: every test that starts no process (no server, load
    generator, browser or database server), in well under a minute. `-m slow` runs the rest.

    The tests run on pytest-xdist workers, two per CPU (at most 8): most slow tests wait for a timeout, a sleep or a
    server's start more than they compute, and a test whose assertion is a timing carries the `alone` marker, which
    keeps every other slow test off the machine while it runs (tests/conftest.py). `-- -n 0` runs them in one process.
    """
    session.install("-e", ".[test]")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    workers = min(2 * cpus, 8)
    # --dist load hands tests out in collection order, and tests/conftest.py puts the alone ones last.
    session.run("python", "-m", "pytest", "-n", str(workers), "--dist", "load", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole tree."""
    session.install("ruff>=0.6")
    session.run("ruff", "check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    """mypy --strict over scripts/, servers/, apps/ and loadtests/ (configured in pyproject.toml)."""
    session.install("-e", ".[typecheck]")
    session.run("mypy", *session.posargs)


@nox.session
def docs(session: nox.Session) -> None:
    """Build the documentation site into site/ (mkdocs build --strict); `-- --serve` serves it instead."""
    # The project itself too: the reference pages are generated from its registry and parsers (docs/hooks/).
    session.install("-e", ".[docs]")
    # mkdocs-material prints a notice about its successor at every build; the build log should show only the build.
    session.env["NO_MKDOCS_2_WARNING"] = "1"
    if "--serve" in session.posargs:
        session.run("mkdocs", "serve", "--strict", "--dev-addr", "127.0.0.1:8000")
    else:
        session.run("mkdocs", "build", "--strict", "--site-dir", "site", *session.posargs)
