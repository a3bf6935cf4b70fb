"""The speed checks of the summary: ratios within one run, on known records."""

from __future__ import annotations

from typing import Any

from scripts import report


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
    checks = {c["check"].split(",")[0]: c for c in report.speed_checks(records, {"fork": {"rate": 640.0}})}
    assert checks["prefork / gunicorn-sync"]["ratio"] == 3.6 and checks["prefork / gunicorn-sync"]["met"]
    assert not checks["prefork / uvicorn"]["met"]
    fork = checks["fork (new connection per request) / fork()+_exit+waitpid of a bare process"]
    assert fork["ratio"] == 400 / 640 and not fork["met"]
    assert checks["db (postgresql) reuse / per-request"]["ratio"] == 15.0
    markdown = report.summary_markdown(records, reference={"fork": {"rate": 640.0}})
    assert "## Speed checks" in markdown and "**not met**" in markdown and "3.60x" in markdown


def test_a_generator_bound_figure_is_said_to_be_no_capacity() -> None:
    records = [cell("prefork", "plaintext", 4000, flags=["generator-bound"]), cell("uvicorn", "plaintext", 3900)]
    (check,) = report.speed_checks(records)
    assert check["generator_bound"]
    assert "generator-bound: not a capacity" in report.summary_markdown(records)
