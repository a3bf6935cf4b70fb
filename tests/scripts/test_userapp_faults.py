"""The faults suite on a user's own app (``python -m scripts.faults --app ...``) and a user-app bench run's
report.html, against real servers on loopback ports, the pages opened in a real headless Chromium."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from scripts import bench
from scripts.faults import suite
from scripts.plan import userapp
from scripts.plan.plan import plan_from_args
from scripts.records import records
from scripts.render.web import runs_index
from tests.conftest import ROOT
from tests.scripts.browser import screenshot

FLASK = ["--app", "examples.flaskapp:app", "--scenario-file", str(ROOT / "examples" / "flaskapp.toml")]
ANY_APP = ["recycle", "reload", "shutdown", "slow"]


def _faults(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "scripts.faults", "--quick", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=240, check=False)


def test_the_faults_that_run_on_any_app_run_on_a_flask_app(tmp_path: Path, visit: Any) -> None:
    runs_index.write_index(tmp_path)  # an index of ours beside the run: the run rebuilds it
    out = tmp_path / "faults"
    done = _faults(*FLASK, "--modes", "prefork,gunicorn-sync,uvicorn", "--faults", "crash,reload,shutdown,slow",
                   "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "uvicorn: not applicable: serves ASGI apps" in done.stdout
    assert "crash: needs the sample app (/fault/crash" in done.stdout
    run = records.load(out)
    by = {(r.fault, r.mode): r for r in run.faults}
    # Only what can run does: no crash (it needs /fault/crash), no uvicorn (an ASGI server, a WSGI app).
    assert set(by) == {(f, m) for f in ("reload", "shutdown", "slow") for m in ("prefork", "gunicorn-sync")}
    for record in by.values():
        assert record.status == "ok", (record.error, record.log_tail)
        assert "examples.flaskapp:app" in record.command
    # The load was the app's first request (GET /, a rendered page), answered 2xx until the fault.
    assert by[("reload", "prefork")].details["workers_replaced"] == 2 and by[("reload", "prefork")].requests_lost == 0
    assert all(by[("shutdown", m)].details["completed_after_sigterm"] > 0 for m in ("prefork", "gunicorn-sync"))
    slow = by[("slow", "prefork")].details
    assert list(slow["levels"]) == ["slowloris"] and "nonreader" in slow["needs_sample_app"]
    assert run.faults_meta["request"] == "GET /" and run.faults_meta["app"]["wsgi"] == "examples.flaskapp:app"
    assert set(run.faults_meta["not_applicable"]) == {"uvicorn"}
    assert set(run.faults_meta["needs_sample_app"]) == {"crash", "slow: nonreader"}

    md = (out / "faults.md").read_text()
    assert "## Your app" in md and "- crash: /fault/crash" in md and "- uvicorn: serves ASGI apps" in md
    assert "The cautions they measure (state, errors, leaks, blocking calls, cleanup) have no row below." in md
    assert "SIGTERM under steady load of your request (GET /)" in md
    assert not (out / "faults.html").exists()
    seen = visit(out / "report.html")
    screenshot(seen, tmp_path, "faults-flask-app")
    assert seen.errors == [] and seen.remote_requests() == []
    section = seen.page.inner_text("#your-app")
    assert "examples.flaskapp:app" in section and "GET /" in section
    assert seen.page.inner_text("#needs-sample-app").count("/fault/") == 2
    # A reader missing the state, errors, leaks and cleanup rows of the table below is told why.
    assert "(state, errors, leaks, blocking calls, cleanup) have no row in the table below" in section
    assert "uvicorn" in seen.page.inner_text("#not-applicable")
    header = seen.page.eval_on_selector_all("#matrix-table thead th", "ths => ths.map(t => t.textContent)")
    assert header == ["caution", "fault", "prefork", "gunicorn-sync"]
    listed = visit(tmp_path / "index.html")
    assert "3 faults x 2 modes, quick, your app examples.flaskapp:app" in listed.page.inner_text("table tbody tr")
    assert listed.page.get_attribute("table a", "href") == "faults/report.html"


NEEDS_ENV = """
import os

GREETING = os.environ["MYAPP_GREETING"]  # a setting the app cannot start without


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [GREETING.encode()]
"""


@pytest.mark.slow
def test_an_app_that_fails_to_import_fails_its_cases_with_a_hint_and_the_run_goes_on(tmp_path: Path) -> None:
    app_dir = tmp_path / "src"
    app_dir.mkdir()
    (app_dir / "myapp.py").write_text(NEEDS_ENV)
    out = tmp_path / "faults"
    done = _faults("--app", "myapp:app", "--app-dir", str(app_dir), "--paths", "/", "--modes", "prefork,gunicorn-sync",
                   "--faults", "reload,shutdown", "--out", str(out))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = records.load(out)
    assert len(run.faults) == 4  # every case ran, each failing on its own
    for r in run.faults:
        assert r.status == "failed" and r.error and r.error.startswith("StartError"), r
        assert "KeyError: 'MYAPP_GREETING'" in r.log_tail and "hint:" in r.log_tail and "--env" in r.log_tail
    assert "harness failed" in (out / "faults.md").read_text()


@pytest.mark.slow
def test_a_path_that_answers_404_is_reported_not_loaded(tmp_path: Path) -> None:
    out = tmp_path / "faults"
    assert suite.main(["--quick", "--app", "examples.flaskapp:app", "--paths", "/no/such/page", "--modes",
                        "prefork", "--faults", "reload", "--out", str(out)]) == 0
    (record,) = records.load(out).faults
    assert record.status == "failed" and "status 404, expected 200" in (record.error or "")
    assert not (out / "logs" / "reload-prefork" / "openloop.json").exists()  # never loaded


@pytest.mark.parametrize(("args", "message"), [
    ([*FLASK, "--faults", "crash,hang"], "need the sample app's fault endpoints; the faults that run on your app: "
                                         + ", ".join(ANY_APP)),
    ([*FLASK, "--modes", "uvicorn,hypercorn"], "no mode asked for can serve your app"),
    (["--app", "examples.flaskapp:app"], "--scenario-file FILE.toml and/or --paths"),
    (["--paths", "/"], "go with --app MODULE:CALLABLE"),
    (["--app", "examples.flaskapp", "--paths", "/"], "expected MODULE:CALLABLE"),
])
@pytest.mark.slow
def test_what_cannot_run_on_a_user_app_is_refused_before_anything_starts(
        args: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        suite.main([*args, "--out", str(tmp_path / "run")])
    assert stopped.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_a_user_app_bench_run_shows_your_app_in_report_html(tmp_path: Path, visit: Any) -> None:
    plan = plan_from_args(["--app", "examples.flaskapp:app", "--paths", "/,/api/items/1", "--modes",
                           "prefork,gunicorn-sync,uvicorn", "--generator", "native", "--concurrency", "4",
                           "--no-sweep", "--no-close", "--repeats", "1", "--duration", "1", "--warmup", "0.2",
                           "--no-open-loop", "--out", str(tmp_path / "run")])
    runs_index.write_index(tmp_path)
    assert plan is not None and bench.run(plan) == 0
    assert "your app examples.flaskapp:app" in (tmp_path / "index.html").read_text()
    seen = visit(plan.out / "report.html")
    screenshot(seen, tmp_path, "report-flask-app")
    assert seen.errors == [] and seen.remote_requests() == []
    assert "Your app" in seen.page.inner_text("nav.toc")
    section = seen.page.inner_text("#your-app")
    assert "WSGI examples.flaskapp:app" in section and "Every mode answered all 2 requests alike." in section
    assert "uvicorn" in seen.page.inner_text("#not-applicable")
    rows = seen.page.eval_on_selector_all("#answers tbody tr", "rs => rs.map(r => Array.from(r.cells).map(c => "
                                          "c.textContent))")
    assert rows == [["root (GET /)", "200 text/html; charset=utf-8", "200 text/html; charset=utf-8", "yes"],
                    ["api-items-1 (GET /api/items/1)", "200 application/json", "200 application/json", "yes"]]
    # The section sits right under the verdict, where a reader of their own app's run looks first.
    order = seen.page.eval_on_selector_all("section[id]", "ss => ss.map(s => s.id)")
    assert order[:2] == ["verdict", "your-app"]
    info = json.loads((plan.out / "plan.json").read_text())["plan"]
    assert "uvicorn" in info["not_applicable"]


@pytest.mark.slow
def test_the_load_is_the_first_request_or_the_open_loop_path() -> None:
    def chosen(*args: str) -> str:
        user = userapp.from_args(userapp.early(list(args)))
        assert user is not None
        return userapp.load_request(user[1]).summary

    assert chosen(*FLASK) == "GET /"  # the file's first request, before --paths
    assert chosen(*FLASK, "--paths", "/api/items") == "GET /"
    assert chosen("--app", "examples.flaskapp:app", "--paths", "/api/items/2,/") == "GET /api/items/2"
    assert chosen(*FLASK, "--open-loop-path", "/api/items/1") == "GET /api/items/1"
