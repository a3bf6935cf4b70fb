"""The records on disk: one loader that checks the schema, migrates old versions and refuses the rest."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scripts.records.records import (
    SCHEMA_VERSION,
    CellRecord,
    OpenLoopRecord,
    RecordError,
    Resources,
    cell_from_json,
    load,
    openloop_from_json,
    to_json,
)


def cell(**overrides: Any) -> dict[str, Any]:
    return {"schema": SCHEMA_VERSION, "mode": "prefork", "scenario": "plaintext", "status": "ok", "index": 0,
            "concurrency": 32, "throughput_rps": 1000.0, "latency_ms": {"p50": 1.0, "p99": 2.5}, **overrides}


def test_a_record_survives_the_round_trip() -> None:
    record = CellRecord(mode="fork", scenario="plaintext/close", status="ok", index=3, keepalive=False,
                        command=("python", "-m", "servers.fork"), latency_ms={"p50": 1.5},
                        resources=Resources(cpu_seconds=1.0, memory_mean_mb=12.5, processes_peak=4))
    assert cell_from_json(json.loads(json.dumps(to_json(record)))) == record
    point = OpenLoopRecord(mode="uvicorn", status="ok", offered_rate=50.0, ok_count=100, errors={"timeout": 2})
    data = to_json(point)
    assert data["ok"] == 100 and "ok_count" not in data
    assert openloop_from_json(json.loads(json.dumps(data))) == point


def test_schema_1_keeps_pss_under_rss_names_and_is_migrated() -> None:
    record = cell_from_json(cell(schema=1, resources={"rss_peak_mb": 20.0, "rss_mean_mb": 15.0, "memory_kind": "pss"}))
    assert record.resources == Resources(memory_peak_mb=20.0, memory_mean_mb=15.0, memory_kind="pss")
    assert record.schema == SCHEMA_VERSION


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (cell(schema=SCHEMA_VERSION + 1), f"schema {SCHEMA_VERSION + 1} is newer than this workerbench reads"),
        ({k: v for k, v in cell().items() if k != "schema"}, "no schema version"),
        (cell(schema="2"), "no schema version"),
        (cell(mode=None), "mode must be a string"),
        (cell(concurrency="32"), "concurrency must be int"),
        (cell(throughput_rps=True), "throughput_rps must be int or float"),
        (cell(latency_ms=[1, 2]), "latency_ms must be an object"),
    ],
)
def test_a_record_that_cannot_be_read_is_refused_with_the_reason(data: dict[str, Any], message: str) -> None:
    with pytest.raises(RecordError, match=message):
        cell_from_json(data, "cells/x.json")


def test_anything_but_ok_is_a_failure() -> None:
    assert cell_from_json(cell(status="weird")).status == "failed"


def test_load_reads_the_folder_and_skips_what_it_cannot_read(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "cells").mkdir()
    (tmp_path / "cells" / "a.json").write_text(json.dumps(cell(index=1, mode="b")))
    (tmp_path / "cells" / "b.json").write_text(json.dumps(cell(index=0, mode="a")))
    (tmp_path / "cells" / "future.json").write_text(json.dumps(cell(schema=99)))
    (tmp_path / "plan.json").write_text(json.dumps({"plan": {"modes": ["a", "b"]}, "environment": {}}))
    (tmp_path / "reference.json").write_text(json.dumps({"fork": {"rate": 900.0}}))

    run = load(tmp_path)

    assert [c.mode for c in run.cells] == ["a", "b"]
    assert run.info is not None and run.info.plan["modes"] == ["a", "b"]
    assert run.references.fork_rate == 900.0 and run.references.fork_loop_rate is None
    assert run.openloop == ()
    assert "future.json: schema 99 is newer" in capsys.readouterr().err
