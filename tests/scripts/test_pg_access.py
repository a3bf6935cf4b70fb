"""Issue 19, item 5: the throwaway PostgreSQL (scripts/run/pg.py) lets in the user that started it, and no
other local account: no TCP listener, a unix socket inside its 0700 folder."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg

from tests.conftest import ROOT
from tests.unprivileged import python_for, require_root, unused_uid

CONNECT = "import sys, psycopg; print(psycopg.connect(sys.argv[1]).execute('SELECT current_user').fetchone()[0])"


def socket_dir(url: str) -> Path:
    host = urlsplit(url).hostname
    assert host is not None
    return Path(unquote(host))


def test_the_cluster_listens_on_its_private_socket_only(pg_url: str) -> None:
    folder = socket_dir(pg_url)
    assert folder.is_absolute(), pg_url  # a socket's folder, not an address
    st = os.stat(folder)
    assert stat.S_IMODE(st.st_mode) == 0o700
    with psycopg.connect(pg_url) as conn:
        assert conn.execute("SHOW listen_addresses").fetchone() == ("",)
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)  # its starter gets in


def test_another_local_user_cannot_connect(pg_url: str) -> None:
    require_root("connecting as another local user")
    uid = unused_uid()
    python, env = python_for(uid)
    attempt = subprocess.run([python, "-c", CONNECT, pg_url], user=uid, group=uid, extra_groups=[], env=env,
                             cwd=ROOT, capture_output=True, text=True, timeout=30, check=False)
    print(f"uid {uid} connecting to {pg_url}: exit {attempt.returncode}, {attempt.stderr.strip().splitlines()[-1:]}")
    assert attempt.returncode != 0 and "postgres" not in attempt.stdout
    assert "Permission denied" in attempt.stderr, attempt.stderr
