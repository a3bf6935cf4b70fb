"""scripts.faults.slowclients, small against real servers: the slowloris and fairness cells and their ratios."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apps import db
from scripts.faults import slowclients
from scripts.load.wrk_process import WrkResult


def test_a_wrk_cell_keeps_the_pipelines_figures() -> None:
    result = WrkResult(requests=592, duration_s=6.01, throughput_rps=98.58,
                       errors={"connect": 0, "read": 1, "write": 0, "status": 3, "timeout": 4}, non_2xx=3,
                       socket_errors=5, latency_ms={"p50": 323.69, "p99": 1320.0, "max": 1820.0})
    cell = slowclients.wrk_cell(result, path="/io?ms=20", connections=32)
    assert (cell.rps, cell.p99_ms, cell.max_ms, cell.socket_errors, cell.non_2xx) == (98.58, 1320.0, 1820.0, 5, 3)
    assert (cell.path, cell.connections, cell.duration_s) == ("/io?ms=20", 32, 6.01)


def test_unknown_mode_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        slowclients.main(["--modes", "prefork,nonsense"])
    assert "nonsense" in capsys.readouterr().err


def test_small_run_writes_the_cells_and_prefork_ratios(wrk_exe: str, tmp_path: Path,
                                                      world_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(db.ENV_PATH, str(world_db))
    code = slowclients.main(["--modes", "prefork,gunicorn-sync", "--half-sent", "8", "--duration", "2",
                             "--request-timeout", "2", "--out", str(tmp_path)])
    assert code == 0
    [out] = tmp_path.glob("slowclients-*.json")
    doc = json.loads(out.read_text())
    prefork, gunicorn = doc["results"]["prefork"], doc["results"]["gunicorn-sync"]
    assert prefork["slowloris"]["8"]["failed"] == 0  # parked, not holding a worker
    assert gunicorn["slowloris"]["8"]["failed"] == 20  # a sync worker per half-sent request: both are held
    for mode in (prefork, gunicorn):
        assert mode["fairness"]["rps"] > 0 and mode["fairness"]["p99_ms"] > 0
        assert mode["plaintext"]["rps"] > 0
    ratio = doc["ratios"]["prefork/gunicorn-sync fairness p99_ms"]
    assert ratio == pytest.approx(prefork["fairness"]["p99_ms"] / gunicorn["fairness"]["p99_ms"], rel=1e-2)
    assert doc["ratios"]["prefork/uvicorn plaintext rps"] is None  # uvicorn was not in this run
