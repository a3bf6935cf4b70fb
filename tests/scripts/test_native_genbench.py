"""scripts.genbench: the ratios it prints come from medians of alternated rounds, and a real (tiny) run works.

No speed is asserted: on a shared machine the ratio is what genbench measures and reports, not
something a test can hold it to.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts import genbench


def run(server: str, conn_mode: str, generator: str, i: int, rps: float) -> genbench.Run:
    return genbench.Run(server=server, conn_mode=conn_mode, generator=generator, round=i, requests=int(rps),
                        throughput_rps=rps, errors={}, latency_ms={}, generator_cpu=None)


def test_summary_is_median_ratio_with_paired_rounds() -> None:
    runs = [run("nginx", "close", "wrk", 1, 100.0), run("nginx", "close", "native", 1, 90.0),
            run("nginx", "close", "native", 2, 70.0), run("nginx", "close", "wrk", 2, 100.0),
            run("nginx", "close", "wrk", 3, 200.0), run("nginx", "close", "native", 3, 300.0),
            run("nginx", "keep-alive", "wrk", 1, 1000.0), run("nginx", "keep-alive", "native", 1, 500.0)]
    close, keep = genbench.summarize(runs)
    assert (close["conn_mode"], close["wrk_median_rps"], close["native_median_rps"]) == ("close", 100.0, 90.0)
    assert close["ratio"] == 0.9 and close["meets_target"] is True
    assert close["paired_ratios"] == [0.9, 0.7, 1.5]  # round by round, in round order
    assert keep["ratio"] == 0.5 and keep["meets_target"] is False


def test_refuses_unknown_names() -> None:
    with pytest.raises(SystemExit):
        genbench.parse_args(["--servers", "apache"])
    with pytest.raises(SystemExit):
        genbench.parse_args(["--conn-modes", "pipelined"])


def test_one_round_against_prefork(wrk_exe: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "genbench.json"
    code = genbench.main(["--servers", "prefork", "--rounds", "1", "--duration", "1", "--connections", "4",
                          "--out", str(out)])
    doc = json.loads(out.read_text())
    assert code in (0, 1)  # 1 only says a ratio fell below the target on this (shared) machine
    assert [(s["server"], s["conn_mode"]) for s in doc["summary"]] == [("prefork", "keep-alive"),
                                                                       ("prefork", "close")]
    assert len(doc["runs"]) == 4
    for r in doc["runs"]:
        assert r["requests"] > 0 and r["throughput_rps"] > 0 and sum(r["errors"].values()) == 0
        assert r["latency_ms"]["p50"] <= r["latency_ms"]["p99"] <= r["latency_ms"]["max"]
    assert {r["generator"] for r in doc["runs"]} == {"wrk", "native"}
    assert "ratio" in capsys.readouterr().out
