"""The mode registry: HOW each server mode is launched, where reports place it, the speed checks it is held to
and the faults it can take. Adding a mode is one entry in :mod:`scripts.modes.registry`."""

from scripts.modes.registry import (
    APPS,
    FAMILIES,
    FORK_LOOP,
    FORK_RATE,
    KEEPALIVE_S,
    MODE_SETS,
    MODES,
    STDLIB_FORK,
    Family,
    Interface,
    Launch,
    Mode,
    Target,
    mode_sets,
)

__all__ = ["APPS", "FAMILIES", "FORK_LOOP", "FORK_RATE", "KEEPALIVE_S", "MODES", "MODE_SETS", "STDLIB_FORK", "Family",
           "Interface", "Launch", "Mode", "Target", "mode_sets"]
