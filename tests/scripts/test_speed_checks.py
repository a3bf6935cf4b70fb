"""The speed checks of the summary: ratios within one run, on known records."""

from __future__ import annotations

from typing import Any

from scripts.analysis.analysis import SpeedCheck, speed_checks
from scripts.analysis.stats import FoldedCell
from scripts.modes import FORK_RATE, MODES, Checks, Launch, Mode, SpeedRatio
from scripts.records.records import References, references_from_json
from scripts.render.summary import summary_markdown
from tests.scripts.figures import figure_from, run_of


def checks_of(records: list[dict[str, Any]], refs: dict[str, Any] | None = None) -> list[SpeedCheck]:
    return speed_checks(figures(records), references_from_json(refs or {}))


def figures(records: list[dict[str, Any]]) -> list[FoldedCell]:
    return [figure_from(r) for r in records]


def markdown(records: list[dict[str, Any]], refs: dict[str, Any] | None = None) -> str:
    references: References = references_from_json(refs or {})
    return summary_markdown(run_of(records, references=references))


def cell(mode: str, scenario: str, rps: float, *, users: int = 32, flags: list[str] | None = None,
         **extra: Any) -> dict[str, Any]:
    return {"mode": mode, "scenario": scenario, "concurrency": users, "status": "ok", "throughput_rps": rps,
            "flags": flags or [], **extra}


def test_ratios_targets_and_verdicts() -> None:
    records = [
        cell("prefork", "plaintext/close", 9000), cell("gunicorn-sync", "plaintext/close", 2500),
        cell("prefork", "plaintext", 14000), cell("uvicorn", "plaintext", 15000),
        cell("fork", "plaintext/close", 400),
        cell("prefork", "db/reuse", 3000, base_scenario="db", db_strategy="reuse", db_backend="postgresql"),
        cell("prefork", "db/per-request", 200, base_scenario="db", db_strategy="per-request",
             db_backend="postgresql"),
    ]
    checks = {c.check.split(",")[0]: c for c in checks_of(records, {"fork": {"rate": 640.0}})}
    assert checks["prefork / gunicorn-sync"].ratio == 3.6 and checks["prefork / gunicorn-sync"].met
    assert not checks["prefork / uvicorn"].met
    fork = checks["fork (new connection per request) / fork()+_exit+waitpid of a bare process"]
    assert fork.ratio == 400 / 640 and fork.target == 0.0  # reported only: the 0.8x target is retired
    assert checks["db (postgresql) reuse / per-request"].ratio == 15.0
    text = markdown(records, {"fork": {"rate": 640.0}})
    assert "## Speed checks" in text and "**not met**" in text and "3.60x" in text


def test_a_generator_bound_figure_is_said_to_be_no_capacity() -> None:
    records = [cell("prefork", "plaintext", 4000, flags=["generator-bound"]), cell("uvicorn", "plaintext", 3900)]
    (check,) = checks_of(records)
    assert check.generator_bound
    assert "generator-bound: not a capacity" in markdown(records)


def test_a_generator_bound_numerator_is_a_floor_and_a_bound_denominator_a_ceiling() -> None:
    floor_met = [cell("prefork", "plaintext/close", 15000, flags=["generator-bound"]),
                 cell("gunicorn-sync", "plaintext/close", 4000)]
    (check,) = checks_of(floor_met)
    assert check.met is True and check.bound == "floor"
    assert "met (generator-bound: not a capacity; the ratio is a floor)" in markdown(floor_met)

    floor_short = [cell("prefork", "plaintext/close", 10000, flags=["generator-bound"]),
                   cell("gunicorn-sync", "plaintext/close", 4000)]
    assert checks_of(floor_short)[0].met is None
    assert "cannot tell" in markdown(floor_short)

    ceiling_short = [cell("prefork", "plaintext", 3000), cell("uvicorn", "plaintext", 4000, flags=["generator-bound"])]
    (check,) = checks_of(ceiling_short)
    assert check.met is False and check.bound == "ceiling"

    ceiling_over = [cell("prefork", "plaintext", 5000), cell("uvicorn", "plaintext", 4000, flags=["generator-bound"])]
    assert checks_of(ceiling_over)[0].met is None


def test_the_minimal_fork_loop_is_reported_beside_the_fork_target() -> None:
    records = [cell("fork", "plaintext/close", 400)]
    refs = {"fork": {"rate": 1000.0}, "fork_loop": {"rate": 750.0, "connections": 32}}
    checks = {c.check: c for c in checks_of(records, refs)}
    assert checks["minimal Python fork loop (canned reply) / fork()+_exit+waitpid"].ratio == 0.75
    assert checks["fork / minimal Python fork loop (canned reply)"].ratio == 400 / 750
    text = markdown(records, refs)
    assert "0.75x" in text and "0.53x" in text


def test_checks_come_from_the_registry_entries() -> None:
    def serve(_: Launch) -> list[str]:
        return ["true"]

    registry = {
        "a": Mode(name="a", interface="wsgi", summary="a", command=serve,
                  checks=Checks(speed=(
                      SpeedRatio(check="a / b, keep-alive", scenario="plaintext", against="b", ratio=2.0),
                      SpeedRatio(check="a / fork()", scenario="plaintext/close", against=FORK_RATE, ratio=0.5)))),
        "b": Mode(name="b", interface="asgi", summary="b", command=serve, checks=Checks(reuse=(("sqlite", 1.5),))),
    }
    records = [cell("a", "plaintext", 3000), cell("b", "plaintext", 1000), cell("a", "plaintext/close", 100),
               cell("b", "db/reuse", 300, base_scenario="db", db_strategy="reuse", db_backend="sqlite"),
               cell("b", "db/per-request", 100, base_scenario="db", db_strategy="per-request", db_backend="sqlite")]
    checks = speed_checks(figures(records), references_from_json({"fork": {"rate": 400.0}}), registry)
    assert [(c.check, c.ratio, c.target, c.met) for c in checks] == [
        ("a / b, keep-alive", 3.0, 2.0, True), ("a / fork()", 0.25, 0.5, False),
        ("db (sqlite) reuse / per-request, b", 3.0, 1.5, True)]
    # The shipped registry holds the hand-written servers to their targets, and only them.
    assert {name for name, mode in MODES.items() if mode.checks.speed} == {"cgi", "fork", "prefork"}


def test_fork_is_held_against_the_standard_library_fork_server() -> None:
    records = [cell("fork", "plaintext/close", 400)]
    check = "fork / the standard library's fork server (ForkingMixIn + wsgiref)"
    beats = {c.check: c for c in checks_of(records, {"stdlib_fork": {"rate": 300.0, "connections": 32}})}[check]
    assert beats.ratio == 400 / 300 and beats.target == 1.0 and beats.met is True
    loses = {c.check: c for c in checks_of(records, {"stdlib_fork": {"rate": 500.0, "connections": 32}})}[check]
    assert loses.ratio == 400 / 500 and loses.met is False
    assert check not in {c.check for c in checks_of(records)}  # no reference measured: no check
    assert "1.33x | >= 1x | met" in markdown(records, {"stdlib_fork": {"rate": 300.0}})
