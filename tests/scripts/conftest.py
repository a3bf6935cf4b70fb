"""Fixtures shared by the harness tests."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from scripts.load import wrk_process

# The browser fixtures, registered once for every test module here: a session-scoped fixture imported into two
# modules would be two fixtures, and a second playwright would start inside the first one's event loop.
from tests.scripts.browser import browser, visit
from tests.scripts.netns import NetnsPair, netns_pair, unavailable_reason

__all__ = ["browser", "visit"]


@pytest.fixture(scope="session")
def wrk_exe() -> str:
    """The wrk binary. Without it the test fails with the install hint, unless ``WORKERBENCH_NO_WRK=1``
    says the machine has no wrk on purpose (then it is skipped)."""
    exe = wrk_process.find_wrk()
    if exe is None:
        if os.environ.get("WORKERBENCH_NO_WRK") == "1":
            pytest.skip("wrk is not installed and WORKERBENCH_NO_WRK=1")
        pytest.fail(f"{wrk_process.MISSING}, or set WORKERBENCH_NO_WRK=1 to skip the wrk tests")
    return exe


@pytest.fixture
def netns() -> Iterator[NetnsPair]:
    """A server host and a client host: two network namespaces joined by a veth pair (tests/scripts/netns.py).
    Skipped with the reason where they cannot be made (not root, no iproute2), except under CI, which runs as
    root with iproute2 installed (.ci/run) and so must run these tests."""
    reason = unavailable_reason()
    if reason:
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI must run the network-namespace tests)")
        pytest.skip(reason)
    with netns_pair() as pair:
        yield pair
