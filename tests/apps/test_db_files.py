"""Issue 19, item 11: the sample app's SQLite file is the user's own (a private default folder; a file
another user owns is refused), shown on the module and on a real server."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from apps import db
from scripts.common.procs import free_port, get, running, wait_ready
from tests.conftest import HOST, ROOT, server_env
from tests.unprivileged import require_root, unused_uid


@pytest.fixture
def private_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """tempfile.gettempdir() is ``tmp_path/tmp`` (world-writable, sticky, as /tmp) for the test."""
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    tmp.chmod(0o1777)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp))
    monkeypatch.delenv(db.ENV_PATH, raising=False)
    monkeypatch.delenv(db.ENV_URL, raising=False)
    db.reset()
    yield tmp
    db.reset()


def test_the_default_database_is_in_a_folder_private_to_the_user(private_tmp: Path) -> None:
    path = db.default_path()
    folder = path.parent
    assert folder == private_tmp / f"workerbench-{os.geteuid()}"
    st = os.lstat(folder)
    assert stat.S_ISDIR(st.st_mode) and st.st_uid == os.geteuid() and stat.S_IMODE(st.st_mode) == 0o700
    assert len(db.random_rows(3)) == 3  # the app builds its table there on first use
    assert path.exists() and db.default_path() == path


def test_a_default_folder_open_to_others_is_refused(private_tmp: Path) -> None:
    folder = private_tmp / f"workerbench-{os.geteuid()}"
    folder.mkdir(mode=0o755)
    folder.chmod(0o755)  # whatever the umask
    with pytest.raises(db.UnsafeDatabase, match=r"refusing the default database folder .*mode 0700"):
        db.random_rows(1)


def test_a_default_folder_that_is_a_symlink_is_refused(private_tmp: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir(mode=0o700)
    (private_tmp / f"workerbench-{os.geteuid()}").symlink_to(elsewhere)
    with pytest.raises(db.UnsafeDatabase, match="refusing the default database folder"):
        db.default_path()


def foreign(path: Path, uid: int) -> Path:
    os.chown(path, uid, uid)
    return path


def test_a_default_folder_of_another_user_is_refused(private_tmp: Path) -> None:
    require_root("a folder another user owns")
    folder = private_tmp / f"workerbench-{os.geteuid()}"
    folder.mkdir(mode=0o700)
    foreign(folder, unused_uid())
    with pytest.raises(db.UnsafeDatabase, match="refusing the default database folder"):
        db.default_path()


def test_a_complete_database_another_user_owns_is_refused(tmp_path: Path, world_db: Path) -> None:
    require_root("a file another user owns")
    planted = tmp_path / "planted.sqlite"
    shutil.copy(world_db, planted)  # a complete world table: it used to be taken as it was
    foreign(planted, unused_uid())
    with pytest.raises(db.UnsafeDatabase, match=rf"refusing the SQLite database {planted}: it belongs to uid"):
        db.create(planted)


@pytest.mark.slow
def test_a_server_refuses_a_database_another_user_owns(tmp_path: Path, world_db: Path) -> None:
    require_root("a file another user owns")
    planted = tmp_path / "planted.sqlite"
    shutil.copy(world_db, planted)
    foreign(planted, unused_uid())
    port, log = free_port(HOST), tmp_path / "server.log"
    argv = [sys.executable, "-m", "servers.fork", "apps.wsgi:app", "--bind", f"{HOST}:{port}"]
    with running(argv, log_path=log, env={**server_env(world_db), db.ENV_PATH: str(planted)}, cwd=ROOT) as proc:
        wait_ready(proc, HOST, port, log_path=log)
        assert get(HOST, port, "/db")[0] == 500
        assert get(HOST, port, "/plaintext")[0] == 200
    assert f"refusing the SQLite database {planted}: it belongs to uid" in log.read_text()
