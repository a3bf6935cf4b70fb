"""An app module that fails on import, as a broken deploy does."""

raise ImportError("this app cannot be imported (on purpose, for the tests)")
