"""What ``python -m scripts.tune`` may search of a mode: its axes, each a setting the server takes on its command
line. By default they follow from the process model, so a new mode declares nothing: ``workers`` where there is a
pool to size (:attr:`Process.uses_workers`, not a process per request), ``threads`` where the mode has a thread
pool (:attr:`Process.threads`). A mode whose threads are set by an option of its own rather than through
:class:`~scripts.modes.launch.Launch` names that option (``threads_flag``); a mode with a setting of another kind
declares it as an :class:`Axis` with its flag.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from scripts.modes.launch import Process

WORKERS = "workers"
THREADS = "threads"


@dataclass(frozen=True, kw_only=True, slots=True)
class Axis:
    name: str
    # count: 1, 2, 3 ... up to a ceiling from the server CPUs; power: 1, 2, 4 ... up to a fixed ceiling.
    kind: Literal["count", "power"] = "power"
    flag: str | None = None  # appended as `flag value`; None: passed in the Launch (workers, threads)

    def __post_init__(self) -> None:
        if self.flag is None and self.name not in (WORKERS, THREADS):
            raise ValueError(f"axis {self.name!r}: only workers and threads reach the command without a flag")


@dataclass(frozen=True, kw_only=True, slots=True)
class Tuning:
    workers: bool | None = None  # None: a pool to size (uses_workers and not fork_per_request)
    threads: bool | None = None  # None: the mode has a thread pool (Process.threads) or a threads_flag
    threads_flag: str | None = None  # the option setting its threads when the command takes none from the Launch
    axes: tuple[Axis, ...] = ()  # a mode's own settings, searched after threads and workers

    def axes_of(self, process: Process) -> tuple[Axis, ...]:
        """The axes to search, threads first (they cost less memory than workers), then workers, then the rest."""
        workers = self.workers if self.workers is not None else process.uses_workers and not process.fork_per_request
        threads = self.threads if self.threads is not None else (process.threads is not None
                                                                 or self.threads_flag is not None)
        found: list[Axis] = []
        if threads:
            found.append(Axis(name=THREADS, kind="power", flag=self.threads_flag))
        if workers:
            found.append(Axis(name=WORKERS, kind="count"))
        return (*found, *self.axes)

    def extra_args(self, process: Process, setting: Mapping[str, int]) -> list[str]:
        """The options ``setting`` adds to the command line: those of the axes with a flag."""
        args: list[str] = []
        for axis in self.axes_of(process):
            if axis.flag is not None and axis.name in setting:
                args += [axis.flag, str(setting[axis.name])]
        return args
