"""The mode registry: HOW each server mode is launched, where reports place it, the speed checks it is held to
and the faults it can take. :mod:`~scripts.modes.registry` holds the entries (adding a mode is one entry there);
:mod:`~scripts.modes.mode` the :class:`Mode` and its named sets; :mod:`~scripts.modes.launch`,
:mod:`~scripts.modes.placement`, :mod:`~scripts.modes.checks`, :mod:`~scripts.modes.fault_support` and
:mod:`~scripts.modes.tuning` its parts.
"""

from scripts.modes.checks import FORK_LOOP, FORK_RATE, STDLIB_FORK, Checks, SpeedRatio
from scripts.modes.fault_support import FaultSupport
from scripts.modes.launch import APPS, Command, Interface, Launch, Process
from scripts.modes.mode import Mode, mode_sets
from scripts.modes.placement import FAMILIES, Family, Placement
from scripts.modes.registry import KEEPALIVE_S, MODE_SETS, MODES
from scripts.modes.tuning import Axis, Tuning

__all__ = ["APPS", "FAMILIES", "FORK_LOOP", "FORK_RATE", "KEEPALIVE_S", "MODES", "MODE_SETS", "STDLIB_FORK", "Axis",
           "Checks", "Command", "Family", "FaultSupport", "Interface", "Launch", "Mode", "Placement", "Process",
           "SpeedRatio", "Tuning", "mode_sets"]
