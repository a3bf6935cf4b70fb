"""The mode registry: HOW each server mode is launched, where reports place it, the speed checks it is held to
and the faults it can take. Adding a mode is one entry in :mod:`scripts.modes.registry`."""
