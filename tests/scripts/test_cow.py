"""scripts.cow against real servers: the Django example under gunicorn with and without --preload and gc.freeze()."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scripts import cow


@pytest.mark.slow
def test_preloading_with_a_freeze_shares_what_each_worker_would_import(tmp_path: Path) -> None:
    out = tmp_path / "cow"
    assert cow.main(["--modes", "gunicorn-sync", "--workers", "2", "--seconds", "1.5", "--out", str(out)]) == 0
    results = {r["variant"]: r for r in json.loads((out / "cow.json").read_text())["results"]}
    assert list(results) == ["no preload", "preload", "preload + gc.freeze"]
    for r in results.values():
        assert r["requests"] > 0 and [p["role"] for p in r["processes"]].count("worker") == 2

    def own(variant: str) -> float:  # a worker's own memory (USS), the larger of the two
        return max(p["uss_mb"] for p in results[variant]["processes"] if p["role"] == "worker")

    # Importing Django per worker costs each worker its own copy; preloading and freezing leaves it far less.
    assert own("preload + gc.freeze") < 0.7 * own("no preload")
    assert results["preload + gc.freeze"]["total_pss_mb"] < results["no preload"]["total_pss_mb"]
    assert "--preload" in results["preload"]["command"] and "--config" in results["preload + gc.freeze"]["command"]
    page = (out / "report.html").read_text()
    assert "chart-cow" in page and "preload + gc.freeze" in page
    assert "| gunicorn-sync | no preload |" in (out / "cow.md").read_text()


@pytest.mark.slow
def test_prefork_measures_a_preload_without_the_freeze_too(tmp_path: Path) -> None:
    out = tmp_path / "cow"
    assert cow.main(["--modes", "prefork", "--workers", "2", "--seconds", "1.5", "--out", str(out)]) == 0
    results = {r["variant"]: r for r in json.loads((out / "cow.json").read_text())["results"]}
    assert list(results) == ["no preload", "preload", "preload + gc.freeze"]
    assert "--no-gc-freeze" in results["preload"]["command"]
    assert "--no-gc-freeze" not in results["preload + gc.freeze"]["command"]

    def own(variant: str) -> float:
        return max(p["uss_mb"] for p in results[variant]["processes"] if p["role"] == "worker")

    assert own("preload + gc.freeze") < 0.7 * own("no preload")
