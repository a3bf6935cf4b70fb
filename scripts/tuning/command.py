"""The production command line of a setting: the server's own command, as one would type it outside the harness.

The harness runs every server as ``python -m SERVER``; a production server's own console script takes the same
options, so the line starts with it (``gunicorn``, ``uvicorn``, ``granian``, ``hypercorn``, ``waitress-serve``).
This project's own servers have no console script and stay ``python -m servers.X``.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping

from scripts.modes import Mode

HOST = "0.0.0.0"
PORT = 8000
# Where a module's console script has another name than the module.
SCRIPTS = {"waitress": "waitress-serve"}


def production_argv(mode: Mode, setting: Mapping[str, int], *, app: str | None = None, workers: int = 1,
                    host: str = HOST, port: int = PORT) -> list[str]:
    argv = mode.argv(host=host, port=port, workers=workers, python="python", app=app, setting=setting)
    if argv[:2] == ["python", "-m"] and not mode.placement.hand_written:
        return [SCRIPTS.get(argv[2], argv[2]), *argv[3:]]
    return argv


def production_command(mode: Mode, setting: Mapping[str, int], *, app: str | None = None, workers: int = 1,
                       host: str = HOST, port: int = PORT) -> str:
    return shlex.join(production_argv(mode, setting, app=app, workers=workers, host=host, port=port))


def to_local(line: str, host: str, port: int) -> list[str]:
    """A printed line, bound to ``host:port`` instead of the production address (what a test starts by hand)."""
    here = f"{host}:{port}"
    out = []
    for word in shlex.split(line):
        word = word.replace(f"{HOST}:{PORT}", here)
        out.append(host if word == HOST else str(port) if word == str(PORT) else word)
    return out
