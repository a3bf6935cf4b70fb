"""Fixtures shared by the harness tests."""

from __future__ import annotations

import os

import pytest

from scripts import wrk

# The browser fixtures, registered once for every test module here: a session-scoped fixture imported into two
# modules would be two fixtures, and a second playwright would start inside the first one's event loop.
from tests.scripts.browser import browser, visit

__all__ = ["browser", "visit"]


@pytest.fixture(scope="session")
def wrk_exe() -> str:
    """The wrk binary. Without it the test fails with the install hint, unless ``WORKERBENCH_NO_WRK=1``
    says the machine has no wrk on purpose (then it is skipped)."""
    exe = wrk.find_wrk()
    if exe is None:
        if os.environ.get("WORKERBENCH_NO_WRK") == "1":
            pytest.skip("wrk is not installed and WORKERBENCH_NO_WRK=1")
        pytest.fail(f"{wrk.MISSING}, or set WORKERBENCH_NO_WRK=1 to skip the wrk tests")
    return exe
