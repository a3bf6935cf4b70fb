"""The Django example (examples/djangoapp) benchmarked under WSGI and ASGI modes at once, natively: Django's own
WSGI handler under the WSGI modes, its ASGI handler under the ASGI ones, no adapter."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from scripts import bench
from scripts.common.procs import free_port, get, running, wait_ready
from scripts.modes import MODES
from scripts.plan.plan import plan_from_args
from tests.conftest import HOST, ROOT

DJANGO = ["--app", "examples.djangoapp.wsgi:application", "--asgi-app", "examples.djangoapp.asgi:application"]
TOML = str(ROOT / "examples" / "djangoapp.toml")
SHORT = ["--concurrency", "4", "--no-sweep", "--no-close", "--repeats", "1", "--duration", "1", "--warmup", "0.2",
         "--no-open-loop"]
# The four the issue names, and the three new modes: processes, green threads and Twisted.
MODES_UNDER_TEST = ("prefork", "gunicorn-sync", "uwsgi", "gunicorn-gevent", "uvicorn", "daphne")


def _cells(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    records = [json.loads(p.read_text()) for p in (out / "cells").glob("*.json")]
    return {(r["mode"], r["scenario"]): r for r in records}


@pytest.mark.slow
def test_the_django_example_runs_natively_under_wsgi_and_asgi_modes_and_every_mode_answers_alike(
        tmp_path: Path) -> None:
    plan = plan_from_args([*DJANGO, "--scenario-file", TOML, "--modes", ",".join(MODES_UNDER_TEST),
                           "--scenarios", "fortunes,update", "--env", f"DJANGOAPP_DB={tmp_path / 'django.sqlite3'}",
                           *SHORT, "--out", str(tmp_path / "run")])
    assert plan is not None
    assert plan.modes == MODES_UNDER_TEST and plan.not_applicable == ()
    assert plan.app_for("daphne") == "examples.djangoapp.asgi:application"
    assert plan.app_for("uwsgi") == "examples.djangoapp.wsgi:application"
    assert bench.run(plan) == 0
    cells = _cells(plan.out)
    assert set(cells) == {(m, s) for m in MODES_UNDER_TEST for s in ("fortunes", "update")}
    for r in cells.values():
        assert r["status"] == "ok", r
        # The write goes out with its JSON body from wrk: a 400 would be a failure here.
        assert r["requests"] > 0 and r["failures"] == 0, r
    assert cells[("daphne", "update")]["answers"] == {"update": "200 application/json"}
    assert cells[("uwsgi", "fortunes")]["answers"] == {"fortunes": "200 text/html; charset=utf-8"}
    summary = (plan.out / "summary.md").read_text()
    assert "Every mode answered all 2 requests alike." in summary


@pytest.mark.slow
@pytest.mark.parametrize("interface", ["wsgi", "asgi"])
def test_the_pages_are_the_same_under_both_interfaces(interface: str, tmp_path: Path) -> None:
    """Byte for byte on the deterministic requests (a fresh database each, so the rows are the seeded ones)."""
    mode = {"wsgi": "gunicorn-sync", "asgi": "uvicorn"}[interface]
    app = f"examples.djangoapp.{interface}:application"
    port = free_port(HOST)
    env = {**os.environ, "DJANGOAPP_DB": str(tmp_path / "django.sqlite3")}
    log = tmp_path / "server.log"
    with running(MODES[mode].argv(host=HOST, port=port, workers=2, app=app), log_path=log, env=env,
                 cwd=ROOT) as proc:
        wait_ready(proc, HOST, port, log_path=log)
        status, headers, page = get(HOST, port, "/fortunes")
        assert (status, headers["content-type"]) == (200, "text/html; charset=utf-8")
        # TechEmpower's rules: the added row, sorted by message, markup escaped, UTF-8 kept.
        text = page.decode()
        assert text.index("A bad random number") < text.index("Additional fortune") < text.index("フレームワーク")
        assert "&lt;script&gt;" in text and "<script>" not in text
        assert json.loads(get(HOST, port, "/api/worlds/42")[2]) == {"id": 42, "randomNumber": 7077}
        rows = json.loads(get(HOST, port, "/api/queries?n=20")[2])
        assert len(rows) == 20 and all(set(r) == {"id", "randomNumber"} for r in rows)
        status, _, body = get(HOST, port, "/api/worlds/7", method="POST", body=b'{"randomNumber": 4242}',
                              headers={"Content-Type": "application/json"})
        assert (status, json.loads(body)) == (200, {"id": 7, "randomNumber": 4242})
        assert json.loads(get(HOST, port, "/api/worlds/7")[2])["randomNumber"] == 4242  # written, read back
        assert get(HOST, port, "/api/worlds/7", method="POST", body=b"{}",
                   headers={"Content-Type": "application/json"})[0] == 400
        assert get(HOST, port, "/api/worlds/99999")[0] == 404
