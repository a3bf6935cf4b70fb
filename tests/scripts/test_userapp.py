"""A user's own app under every mode (``--app``/``--asgi-app``), against real servers on loopback ports."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from loadtests.scenario_file import ScenarioFileError, load_scenario_file
from scripts import bench
from scripts.modes import MODE_SETS
from scripts.plan.plan import Plan, plan_from_args
from tests.conftest import ROOT

FLASK = ["--app", "examples.flaskapp:app"]
TOML = str(ROOT / "examples" / "flaskapp.toml")
SHORT = ["--concurrency", "4", "--no-sweep", "--no-close", "--repeats", "1", "--duration", "1", "--warmup", "0.2",
         "--no-open-loop"]


def _plan(tmp_path: Path, *args: str) -> Plan:
    plan = plan_from_args([*args, *SHORT, "--out", str(tmp_path / "run")])
    assert plan is not None
    return plan


def _cells(plan: Plan) -> dict[tuple[str, str], dict[str, Any]]:
    records = [json.loads(p.read_text()) for p in (plan.out / "cells").glob("*.json")]
    return {(r["mode"], r["scenario"]): r for r in records}


def _bench_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scripts.bench", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.mark.slow
def test_a_wsgi_app_runs_under_the_wsgi_modes_and_the_asgi_ones_are_not_applicable(tmp_path: Path) -> None:
    plan = _plan(tmp_path, *FLASK, "--scenario-file", TOML, "--modes", "prefork,gunicorn-sync,uvicorn",
                 "--scenarios", "home,create,browse")
    assert plan.modes == ("prefork", "gunicorn-sync")
    assert dict(plan.not_applicable).keys() == {"uvicorn"}
    assert bench.run(plan) == 0
    cells = _cells(plan)
    assert set(cells) == {(m, s) for m in plan.modes for s in ("home", "create", "browse")}
    for r in cells.values():
        assert r["status"] == "ok", r
        # The app answers 400 to a POST without its JSON content type: no failure means the header and the body
        # went out with every request, from wrk (create) and from locust (browse's "add").
        assert r["requests"] > 0 and r["failures"] == 0, r
        assert "examples.flaskapp:app" in r["command"]
    assert cells[("prefork", "create")]["answers"] == {"create": "201 application/json"}
    assert cells[("gunicorn-sync", "browse")]["generator"] == "locust"
    summary = (plan.out / "summary.md").read_text()
    assert "## Your app" in summary and "uvicorn: serves ASGI apps" in summary
    assert "Every mode answered all 6 requests alike." in summary
    assert "| create (POST /api/items) | 201 application/json | 201 application/json | yes |" in summary
    assert (plan.out / "report.html").stat().st_size > 0
    info = json.loads((plan.out / "plan.json").read_text())["plan"]
    assert info["app"]["wsgi"] == "examples.flaskapp:app" and "uvicorn" in info["not_applicable"]


@pytest.mark.slow
def test_an_asgi_app_runs_under_the_asgi_modes_only(tmp_path: Path) -> None:
    plan = _plan(tmp_path, "--asgi-app", "examples.asgiapp:app", "--paths", "/", "--modes", "prefork,uvicorn",
                 "--generator", "native")
    assert plan.modes == ("uvicorn",) and dict(plan.not_applicable).keys() == {"prefork"}
    assert bench.run(plan) == 0
    (record,) = _cells(plan).values()
    assert record["status"] == "ok" and record["generator"] == "native" and record["failures"] == 0
    assert record["answers"] == {"root": "200 application/json"}
    assert "prefork: serves WSGI apps" in (plan.out / "summary.md").read_text()


@pytest.mark.slow
def test_headers_and_bodies_reach_the_app_from_the_native_generator(tmp_path: Path) -> None:
    plan = _plan(tmp_path, *FLASK, "--scenario-file", TOML, "--modes", "prefork", "--scenarios", "create",
                 "--generator", "native")
    assert bench.run(plan) == 0
    (record,) = _cells(plan).values()
    assert record["generator"] == "native" and record["requests"] > 0 and record["failures"] == 0


NEEDS_ENV = """
import os

GREETING = os.environ["MYAPP_GREETING"]  # a setting the app cannot start without


def app(environ, start_response):
    body = GREETING.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


@pytest.mark.slow
def test_an_app_that_fails_to_import_fails_its_cells_with_the_traceback_and_a_hint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    app_dir = tmp_path / "src"
    app_dir.mkdir()
    (app_dir / "myapp.py").write_text(NEEDS_ENV)
    args = ("--app", "myapp:app", "--app-dir", str(app_dir), "--paths", "/", "--modes", "prefork,gunicorn-sync")
    plan = _plan(tmp_path, *args)
    # Said once on the console before any cell starts; the cells still run and record it.
    assert "warning: --app myapp:app fails to import: KeyError: 'MYAPP_GREETING'" in capsys.readouterr().err
    assert bench.run(plan) == 1
    for r in _cells(plan).values():
        assert r["status"] == "failed" and r["requests"] is None, r
        assert "KeyError: 'MYAPP_GREETING'" in r["log_tail"], r["log_tail"]
        assert "hint:" in r["log_tail"] and "--env" in r["log_tail"] and str(app_dir) in r["log_tail"]
    assert "MYAPP_GREETING" in (plan.out / "summary.md").read_text()
    # The same app with its setting: --env reaches every server, --app-dir its import path.
    fixed = plan_from_args([*args, "--env", "MYAPP_GREETING=hello", *SHORT, "--out", str(tmp_path / "fixed")])
    assert fixed is not None and bench.run(fixed) == 0
    assert all(r["status"] == "ok" and r["answers"] == {"root": "200 text/plain"} for r in _cells(fixed).values())


@pytest.mark.slow
def test_a_path_answering_404_fails_its_cell_and_is_not_measured(tmp_path: Path) -> None:
    plan = _plan(tmp_path, *FLASK, "--paths", "/,/no/such/page", "--modes", "prefork")
    assert [s for s in plan.scenarios] == ["root", "no-such-page"]
    assert bench.run(plan) == 1
    cells = _cells(plan)
    assert cells[("prefork", "root")]["status"] == "ok"
    missing = cells[("prefork", "no-such-page")]
    assert missing["status"] == "failed" and missing["requests"] is None
    assert "status 404, expected 200" in missing["error"] and "never measured" in missing["error"]
    assert missing["answers"] == {"no-such-page": "404 text/html; charset=utf-8"}


@pytest.mark.slow
def test_a_health_path_answering_404_says_which_path_answered_what(tmp_path: Path) -> None:
    plan = plan_from_args([*FLASK, "--paths", "/", "--health-path", "/no/health", "--modes", "prefork", *SHORT,
                           "--start-timeout", "2", "--out", str(tmp_path / "run")])
    assert plan is not None and bench.run(plan) == 1
    record = _cells(plan)[("prefork", "root")]
    assert record["error"].startswith("StartError: server not ready after 2s: GET /no/health on 127.0.0.1:")
    assert record["error"].endswith("wants 200, and it answered 404")
    assert "The server wrote nothing to its log" in (plan.out / "summary.md").read_text()


@pytest.mark.slow
def test_paths_make_one_get_scenario_each(tmp_path: Path) -> None:
    plan = _plan(tmp_path, *FLASK, "--paths", "/api/items?limit=2,/api/items/1", "--modes", "fork,gunicorn-sync")
    assert plan.scenarios == ("api-items-limit-2", "api-items-1")
    assert bench.run(plan) == 0
    cells = _cells(plan)
    assert len(cells) == 4 and all(r["status"] == "ok" and r["requests"] > 0 for r in cells.values())
    assert "Every mode answered all 2 requests alike." in (plan.out / "summary.md").read_text()


@pytest.mark.slow
def test_sample_only_parts_do_not_run_for_a_user_app(tmp_path: Path) -> None:
    plan = plan_from_args([*FLASK, "--scenario-file", TOML, "--modes", "cgi,fork,prefork", "--out",
                           str(tmp_path / "run")])
    assert plan is not None
    assert not plan.measures_fork_references() and not plan.open_loop_modes()
    assert plan.sweep_scenarios == () and plan.db_strategies == ()  # no database scenario of its own
    # cgi, held to the sample plaintext, runs the first of the user's scenarios only.
    assert {c.scenario for c in plan.cells() if c.mode == "cgi"} == {"home"}
    ladder = plan_from_args([*FLASK, "--paths", "/", "--open-loop-path", "/api/items", "--modes", "prefork",
                             "--out", str(tmp_path / "run2")])
    assert ladder is not None and ladder.open_loop_modes() == ("prefork",)
    assert ladder.scenarios == ("root",)


@pytest.mark.slow
def test_modes_all_lists_every_asgi_mode_as_not_applicable_for_a_wsgi_app(tmp_path: Path) -> None:
    plan = plan_from_args([*FLASK, "--paths", "/", "--modes", "all", "--out", str(tmp_path / "run")])
    assert plan is not None
    assert plan.modes == MODE_SETS["wsgi"]
    assert [m for m, _ in plan.not_applicable] == list(MODE_SETS["asgi"])
    both = plan_from_args([*FLASK, "--asgi-app", "examples.asgiapp:app", "--paths", "/", "--modes", "all",
                           "--out", str(tmp_path / "run2")])
    assert both is not None and both.modes == MODE_SETS["all"] and both.not_applicable == ()
    assert both.app_for("uvicorn") == "examples.asgiapp:app" and both.app_for("prefork") == "examples.flaskapp:app"


@pytest.mark.slow
def test_adapt_serves_the_app_under_the_other_interface_named_as_adapted(tmp_path: Path) -> None:
    plan = _plan(tmp_path, *FLASK, "--paths", "/api/items/1", "--adapt", "--modes", "prefork,uvicorn",
                 "--generator", "native")
    assert plan.modes == ("prefork", "uvicorn+a2wsgi") and plan.not_applicable == ()
    assert plan.app_for("uvicorn+a2wsgi") == "apps.adapted:asgi" and plan.app_for("prefork") == "examples.flaskapp:app"
    assert bench.run(plan) == 0
    cells = {mode: r for (mode, _), r in _cells(plan).items()}
    assert cells["uvicorn+a2wsgi"]["status"] == "ok" and cells["uvicorn+a2wsgi"]["failures"] == 0
    assert "apps.adapted:asgi" in cells["uvicorn+a2wsgi"]["command"]
    summary = (plan.out / "summary.md").read_text()
    assert "| uvicorn+a2wsgi | 4 |" in summary and "Every mode answered all 1 requests alike." in summary
    # The label is explained where it is read, in both reports.
    explained = "served your app through the a2wsgi adapter"
    assert f"{explained}" in summary and "Here: uvicorn+a2wsgi." in summary
    assert explained in (plan.out / "report.html").read_text()
    # The other way round: an ASGI app under a WSGI server.
    back = _plan(tmp_path / "back", "--asgi-app", "examples.asgiapp:app", "--paths", "/", "--adapt", "--modes",
                 "gunicorn-sync", "--generator", "native")
    assert back.modes == ("gunicorn-sync+a2wsgi",) and bench.run(back) == 0
    (record,) = _cells(back).values()
    assert record["status"] == "ok" and record["answers"] == {"root": "200 application/json"}


PER_SERVER = """
def app(environ, start_response):
    # A content type that depends on the server: what the modes' comparison is there to catch.
    kind = "text/plain" if environ.get("SERVER_SOFTWARE", "").startswith("gunicorn") else "text/html"
    start_response("200 OK", [("Content-Type", kind), ("Content-Length", "2")])
    return [b"ok"]
"""


@pytest.mark.slow
def test_modes_that_answer_differently_are_shown_in_the_summary(tmp_path: Path) -> None:
    (tmp_path / "perserver.py").write_text(PER_SERVER)
    plan = _plan(tmp_path, "--app", "perserver:app", "--app-dir", str(tmp_path), "--paths", "/",
                 "--modes", "prefork,gunicorn-sync")
    assert bench.run(plan) == 0
    answers = {r["mode"]: r["answers"]["root"] for r in _cells(plan).values()}
    assert answers == {"prefork": "200 text/html", "gunicorn-sync": "200 text/plain"}
    summary = (plan.out / "summary.md").read_text()
    assert "The modes disagree on 1 of 1 requests: root." in summary
    assert "| root (GET /) | 200 text/html | 200 text/plain | **differs** |" in summary


@pytest.mark.slow
def test_the_open_loop_ladder_climbs_on_the_path_the_user_names(tmp_path: Path) -> None:
    plan = plan_from_args([*FLASK, "--paths", "/", "--open-loop-path", "/api/items/1", "--open-loop-rates", "50,100",
                           "--modes", "prefork", "--concurrency", "4", "--no-sweep", "--repeats", "1", "--duration",
                           "1", "--warmup", "0", "--out", str(tmp_path / "run")])
    assert plan is not None and plan.open_loop_modes() == ("prefork",)
    assert bench.run(plan) == 0
    points = [json.loads(p.read_text()) for p in sorted((plan.out / "openloop").glob("*.json"))]
    assert [p["offered_rate"] for p in points] == [50, 100]
    assert all(p["status"] == "ok" and p["path"] == "/api/items/1" and p["ok"] > 0 for p in points), points
    assert "open-loop" in json.loads((plan.out / "plan.json").read_text())["plan"]["open_loop_scenario"]


BAD_FILES = {
    "unknown key": ("[scenarios.home]\npath = \"/\"\n\n[scenarios.item]\npath = \"/a\"\nexpekt = { status = 200 }\n",
                    "line 6", "unknown key 'expekt'", "valid keys: method, path, headers"),
    "bad value": ("health = \"/health\"\n[scenarios.home]\npath = \"/\"\nmethod = \"FETCH\"\n",
                  "line 4", "method 'FETCH'", "valid methods: GET, POST"),
    "bad expectation": ("[scenarios.home]\npath = \"/\"\nexpect = { status = \"ok\" }\n", "line 3",
                        "status must be an integer", ""),
    "unknown key in a mix": ("[scenarios.mix]\nrequests = [\n  { path = \"/\" },\n  { path = \"/b\", wieght = 2 },"
                             "\n]\n", "line 4", "unknown key 'wieght'", "valid keys:"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_scenario_file_is_refused_before_anything_starts_naming_the_line(tmp_path: Path, case: str) -> None:
    text, line, problem, valid = BAD_FILES[case]
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ScenarioFileError) as caught:
        load_scenario_file(path)
    assert str(caught.value).startswith(f"{path}, {line}: ") and problem in str(caught.value) and valid in str(
        caught.value)
    out = tmp_path / "run"
    result = _bench_cli(*FLASK, "--scenario-file", str(path), "--out", str(out))
    assert result.returncode == 2 and f"{path}, {line}" in result.stderr, result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_bad_app_options_are_refused_with_what_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for args, message in (
        (["--app", "flaskapp"], "expected MODULE:CALLABLE"),
        (["--app", "examples.flaskapp:app"], "--scenario-file FILE.toml and/or --paths"),
        (["--paths", "/"], "go with --app MODULE:CALLABLE"),
        (["--app", "examples.flaskapp:app", "--paths", "/", "--env", "NOEQUALS"], "expected KEY=VALUE"),
        (["--app", "examples.flaskapp:app", "--paths", "/", "--modes", "asgi"], "no mode asked for can serve"),
        (["--app", "examples.flaskapp:app", "--paths", "/", "--scenarios", "plaintext"], "valid: root"),
        (["--app", "examples.flaskapp:app", "--paths", "/", "--app-dir", str(tmp_path / "nowhere")], "no such folder"),
        # Checked once before the run, not by every cell's server exiting with code 5 or 3.
        (["--app", "nosuchmodule:app", "--paths", "/"], "--app nosuchmodule:app: no module 'nosuchmodule' (looked up "
         "in the project root only; --app-dir DIR adds the folder it lives in"),
        (["--app", "examples.flaskapp:nope", "--paths", "/"],
         "AttributeError: module 'examples.flaskapp' has no attribute 'nope'"),
        (["--asgi-app", "nosuchpkg.sub:app", "--paths", "/", "--app-dir", str(tmp_path)],
         f"no module 'nosuchpkg.sub' (looked up in --app-dir {tmp_path}, then the project root"),
    ):
        with pytest.raises(SystemExit) as stopped:
            plan_from_args([*args, "--out", str(tmp_path / "run")])
        assert stopped.value.code == 2 and message in capsys.readouterr().err, args
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_list_names_the_user_scenarios(capsys: pytest.CaptureFixture[str]) -> None:
    assert plan_from_args([*FLASK, "--scenario-file", TOML, "--list"]) is None
    listed = capsys.readouterr().out
    assert "scenario  browse" in listed and "scenario  plaintext" not in listed
