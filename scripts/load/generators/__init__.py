"""Load generators behind one interface (:class:`~scripts.load.generators.base.Generator`) and one registry.

=========== ====================================================== ===================================
name        what                                                    default for
=========== ====================================================== ===================================
``wrk``     wrk, C, ~100,000 req/s from one core (system package)   single-request scenarios, if found
``native``  the project's uvloop engine, closed loop                single-request scenarios, no wrk
``locust``  locust as a subprocess, any user behaviour               user scenarios (``mixed``)
``openloop`` the same uvloop engine on a fixed schedule              the open-loop ladder
=========== ====================================================== ===================================

Adding a generator is one module with a class that has the fields and methods of ``Generator`` and one
entry in :data:`GENERATORS`; ``--generator NAME`` then offers it, and "auto" weighs it by ``rank``.
"""

from __future__ import annotations

from collections.abc import Mapping

from loadtests.scenarios import Scenario
from scripts.load.generators.base import Generator, Load, LoadError, LoadResult, ScheduleKept
from scripts.load.generators.locust import LOCUST
from scripts.load.generators.native import NATIVE
from scripts.load.generators.open_loop import OPEN_LOOP
from scripts.load.generators.wrk import WRK

__all__ = ["GENERATORS", "Generator", "Load", "LoadError", "LoadResult", "ScheduleKept", "choose"]

GENERATORS: dict[str, Generator] = {g.name: g for g in (WRK, NATIVE, LOCUST, OPEN_LOOP)}
AUTO = "auto"
OPEN_LOOP_NAME = OPEN_LOOP.name


def choose(scenario: Scenario, wanted: str = AUTO, registry: Mapping[str, Generator] | None = None) -> str:
    """The generator that drives ``scenario``: ``wanted`` where it can, else the best available one.

    "Best" is the highest ``rank`` among available closed-loop generators that can drive the scenario, so
    wrk wins where it is installed, then the native engine; locust keeps what only it can express.
    """
    registry = GENERATORS if registry is None else registry
    chosen = registry.get(wanted)
    if chosen is not None and chosen.closed_loop and chosen.can_drive(scenario) and chosen.available():
        return chosen.name
    able = [g for g in registry.values() if g.closed_loop and g.can_drive(scenario) and g.available()]
    if not able:
        raise LoadError(f"no available generator can drive {scenario.name!r}")
    return max(able, key=lambda g: g.rank).name
