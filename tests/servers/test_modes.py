"""Every registered mode, started for real, serves byte-identical responses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from scripts.common.procs import free_port, get, running, wait_ready
from scripts.modes import MODES
from tests.conftest import HOST, ROOT, server_env

pytestmark = pytest.mark.slow  # every test reads the answers of real servers, one per mode

# (method, path, body) for every endpoint, including the error answers.
REQUESTS = [
    ("GET", "/plaintext", None),
    ("GET", "/json", None),
    ("GET", "/io?ms=1", None),
    ("GET", "/cpu?n=50", None),
    ("GET", "/cpu?n=nope", None),
    ("POST", "/upload", b"0123456789" * 5000),
    ("POST", "/upload?empty=1", None),
    ("GET", "/health", None),
    ("GET", "/nowhere", None),
    ("POST", "/plaintext", b"x"),
    ("GET", "/upload", None),
]
RANDOM = [("GET", "/db"), ("GET", "/queries?n=7"), ("GET", "/queries?n=999"), ("GET", "/queries?n=x")]


@pytest.fixture(scope="module")
def answers(world_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, dict]]:
    """Start each mode once and record its answers to every request."""
    logs = tmp_path_factory.mktemp("modes")
    out: dict[str, dict] = {}
    for name, mode in MODES.items():
        port = free_port(HOST)
        log = logs / f"{name}.log"
        with running(mode.argv(host=HOST, port=port, workers=2), log_path=log, env=server_env(world_db),
                     cwd=ROOT) as proc:
            wait_ready(proc, HOST, port, log_path=log)
            fixed = {(m, p): get(HOST, port, p, method=m, body=b) for m, p, b in REQUESTS}
            rand = {(m, p): get(HOST, port, p, method=m) for m, p in RANDOM}
            out[name] = {"fixed": fixed, "random": rand, "log": log}
    yield out


@pytest.mark.parametrize("mode", list(MODES))
def test_mode_answers_every_endpoint(answers: dict[str, dict], mode: str) -> None:
    fixed = answers[mode]["fixed"]
    status, headers, body = fixed[("GET", "/plaintext")]
    assert (status, headers["content-type"], body) == (200, "text/plain; charset=utf-8", b"Hello, World!")
    assert fixed[("GET", "/json")][2] == b'{"message":"Hello, World!"}'
    assert fixed[("GET", "/io?ms=1")][2] == b'{"waited_ms":1}'
    assert json.loads(fixed[("POST", "/upload")][2])["length"] == 50_000
    assert fixed[("GET", "/nowhere")][0] == 404
    assert fixed[("POST", "/plaintext")][0] == 405
    assert fixed[("POST", "/plaintext")][1]["allow"] == "GET, HEAD"
    assert fixed[("GET", "/upload")][1]["allow"] == "POST"
    rand = answers[mode]["random"]
    assert set(json.loads(rand[("GET", "/db")][2])) == {"id", "randomNumber"}
    assert len(json.loads(rand[("GET", "/queries?n=7")][2])) == 7
    assert len(json.loads(rand[("GET", "/queries?n=999")][2])) == 500
    assert len(json.loads(rand[("GET", "/queries?n=x")][2])) == 1
    for _, path in RANDOM:
        assert rand[("GET", path)][0] == 200
        assert rand[("GET", path)][1]["content-type"] == "application/json"


@pytest.mark.parametrize("mode", [m for m in MODES if m != "fork"])
def test_responses_identical_to_fork_mode(answers: dict[str, dict], mode: str) -> None:
    reference = answers["fork"]["fixed"]
    for key, (status, headers, body) in answers[mode]["fixed"].items():
        ref_status, ref_headers, ref_body = reference[key]
        assert status == ref_status, key
        assert body == ref_body, key
        for name in ("content-type", "content-length", "allow"):
            assert headers.get(name) == ref_headers.get(name), (key, name)


@pytest.mark.parametrize("mode", list(MODES))
def test_no_access_log_during_measurement(answers: dict[str, dict], mode: str) -> None:
    text = Path(answers[mode]["log"]).read_text()
    assert "/plaintext" not in text and "GET /" not in text, text[-2000:]
