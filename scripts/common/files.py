"""Writing result files so that a reader never sees half of one: the run's single atomic writer.

Every record, summary and chart goes to a temporary file in the same folder and is renamed over its
target, which is atomic on POSIX; a run killed mid-write leaves the old file or the new one, never a torn
one. mkstemp creates files private to their owner, and results are meant to be read by others, hence 0o644.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def write_atomic(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Create ``path`` (and its folder) through ``write(handle)`` on a temporary file renamed over it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: Path, text: str) -> None:
    def write(handle: IO[bytes]) -> None:
        handle.write(text.encode("utf-8"))

    write_atomic(path, write)


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2) + "\n")


def run_folder(value: str) -> Path:
    """An argparse type for ``--out``: a folder to write a run into, which may not exist yet but is not a file."""
    path = Path(value)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} is a file; --out names a folder for the run (new or existing)")
    for parent in path.absolute().parents:
        if parent.exists() and not parent.is_dir():
            raise argparse.ArgumentTypeError(f"{value}: {parent} is a file, so no folder can be made under it")
    return path
