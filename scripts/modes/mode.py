"""A mode: a name, the interface it serves, a command line, and its parts (process model, placement, checks,
fault support); and the named sets of ``--modes``, derived from the entries."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from scripts.modes.checks import Checks
from scripts.modes.fault_support import FaultSupport
from scripts.modes.launch import APPS, Command, Interface, Launch, Process
from scripts.modes.placement import FAMILIES, Family, Placement
from scripts.modes.tuning import THREADS, WORKERS, Axis, Tuning


@dataclass(frozen=True, kw_only=True, slots=True)
class Mode:
    name: str
    interface: Interface
    summary: str
    command: Command
    process: Process = field(default_factory=Process)
    placement: Placement = field(default_factory=Placement)
    checks: Checks = field(default_factory=Checks)
    faults: FaultSupport = field(default_factory=FaultSupport)
    tuning: Tuning = field(default_factory=Tuning)

    @property
    def family(self) -> Family:
        if self.placement.hand_written:
            return "hand-written"
        return "green" if self.placement.green_threads else self.interface

    @property
    def tuning_axes(self) -> tuple[Axis, ...]:
        return self.tuning.axes_of(self.process)

    def argv(self, *, host: str, port: int, workers: int, python: str = sys.executable,
             app: str | None = None, setting: Mapping[str, int] | None = None) -> list[str]:
        """The command line serving ``app`` (MODULE:CALLABLE of this mode's interface; default the sample app);
        ``setting`` (axis name -> value, :mod:`~scripts.modes.tuning`) overrides workers and threads and adds
        the options of the mode's other axes."""
        setting = setting or {}
        launch = Launch(app=app or APPS[self.interface], host=host, port=port,
                        workers=setting.get(WORKERS, workers),
                        threads=setting.get(THREADS, self.process.threads or 1), python=python)
        return [*self.command(launch), *self.tuning.extra_args(self.process, setting)]


def _ordered(modes: Iterable[Mode]) -> list[str]:
    """Mode names by family, then in registry order within a family: the order every chart and table uses."""
    rank = {family: position for position, family in enumerate(FAMILIES)}
    return [m.name for m in sorted(modes, key=lambda m: rank[m.family])]


def mode_sets(registry: dict[str, Mode]) -> dict[str, tuple[str, ...]]:
    """Named sets for ``--modes``, derived from the entries, so a new mode joins them by being registered. The
    default set is the process-model comparison."""
    return {
        "default": tuple(_ordered(m for m in registry.values() if m.placement.in_default_set)),
        "all": tuple(_ordered(registry.values())),
        "wsgi": tuple(_ordered(m for m in registry.values() if m.interface == "wsgi")),
        "asgi": tuple(_ordered(m for m in registry.values() if m.interface == "asgi")),
    }
