"""Issue 19, item 11 (the status file): prefork's master writes ``--status-file`` through a temporary file it
creates exclusively, so a symlink planted where its temporary file used to go (``PATH.<pid>.tmp``) or at the
path itself is never written through."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tests.conftest import StartServer


def test_the_status_file_never_follows_a_planted_symlink(start_server: StartServer, tmp_path: Path) -> None:
    folder = tmp_path / "status"
    folder.mkdir()
    status = folder / "prefork.json"
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    with start_server(lambda host, port: [sys.executable, "-m", "servers.prefork", "apps.wsgi:app", "--bind",
                                          f"{host}:{port}", "--workers", "1", "--status-file", str(status)]) as srv:
        deadline = time.monotonic() + 10
        while not status.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        (folder / f"prefork.json.{srv.proc.pid}.tmp").symlink_to(victim)  # the old fixed temporary name
        first = json.loads(status.read_text())
        while json.loads(status.read_text())["uptime_s"] == first["uptime_s"] and time.monotonic() < deadline + 5:
            time.sleep(0.1)  # rewritten every second
        rewritten = json.loads(status.read_text())
        status.unlink()
        status.symlink_to(victim)  # the path itself: replaced, not written through
        while status.is_symlink() and time.monotonic() < deadline + 10:
            time.sleep(0.1)
        assert not status.is_symlink()
        assert json.loads(status.read_text())["master"] == srv.proc.pid
    assert rewritten["uptime_s"] > first["uptime_s"] and rewritten["master"] == srv.proc.pid
    assert victim.read_text() == "precious\n"
    assert status.stat().st_mode & 0o777 == 0o644
    leftovers = sorted(p.name for p in folder.iterdir() if p.name != status.name)
    assert leftovers == [f"prefork.json.{srv.proc.pid}.tmp"]  # only the planted link; no temporary file left
