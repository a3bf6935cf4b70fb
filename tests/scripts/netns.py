"""Two network namespaces joined by a veth pair: a server host and a client host on one machine.

Addresses come from 198.18.0.0/15, RFC 2544's range for benchmarking, and exist only inside the two namespaces,
so nothing the tests send can leave the machine. Names carry the pid and a random part, so parallel runs do not
collide. :func:`netns_pair` removes both namespaces on the way out (the veth pair goes with them) after killing
every process still inside them: the test created the namespaces, so whatever runs there is the test's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

SUBNET_PREFIX = 24
SERVER_ADDRESS = "198.18.0.1"
CLIENT_ADDRESS = "198.18.0.2"


class NetnsUnavailable(Exception):
    """Network namespaces cannot be made here; the message says why."""


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30, check=False)
    if result.returncode != 0:
        raise NetnsUnavailable(f"ip {' '.join(args)}: {result.stderr.strip() or result.returncode}")


@dataclass(frozen=True, slots=True)
class NetnsPair:
    server: str
    client: str
    server_address: str = SERVER_ADDRESS
    client_address: str = CLIENT_ADDRESS

    @property
    def exec_server(self) -> tuple[str, ...]:
        """A command prefix that runs a command on the server host."""
        return ("ip", "netns", "exec", self.server)

    @property
    def exec_client(self) -> tuple[str, ...]:
        return ("ip", "netns", "exec", self.client)

    def client_cannot_reach(self, address: str) -> bool:
        """True when a TCP connect from the client namespace to ``address`` (HOST:PORT) is refused."""
        host, port = address.rsplit(":", 1)
        code = ("import socket,sys\ntry:\n socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n"
                "except OSError:\n sys.exit(7)\n")
        result = subprocess.run([*self.exec_client, "python3", "-c", code, host, port], capture_output=True,
                                timeout=30, check=False)
        return result.returncode == 7


def unavailable_reason() -> str | None:
    if os.geteuid() != 0:
        return "network namespaces need root"
    if shutil.which("ip") is None:
        return "ip (iproute2) is not installed: apt-get install iproute2"
    return None


def _pids(name: str) -> list[int]:
    result = subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True, timeout=30, check=False)
    return [int(p) for p in result.stdout.split()]


def _kill_inside(name: str) -> None:
    """SIGTERM, a grace, then SIGKILL to every process in namespace ``name`` (all the test's own)."""
    for sig, grace in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
        for pid in _pids(name):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + grace
        while _pids(name) and time.monotonic() < deadline:
            time.sleep(0.05)


def _wire(pair: NetnsPair, tag: str) -> None:
    veth_s, veth_c = f"wbs{tag}", f"wbc{tag}"  # interface names: at most 15 characters
    _ip("link", "add", veth_s, "type", "veth", "peer", "name", veth_c)
    _ip("link", "set", veth_s, "netns", pair.server)
    _ip("link", "set", veth_c, "netns", pair.client)
    for ns, dev, address in ((pair.server, veth_s, pair.server_address), (pair.client, veth_c, pair.client_address)):
        _ip("-n", ns, "addr", "add", f"{address}/{SUBNET_PREFIX}", "dev", dev)
        _ip("-n", ns, "link", "set", dev, "up")
        _ip("-n", ns, "link", "set", "lo", "up")


@contextmanager
def netns_pair() -> Iterator[NetnsPair]:
    """Two fresh namespaces, wired and up; removed with everything in them on exit."""
    reason = unavailable_reason()
    if reason:
        raise NetnsUnavailable(reason)
    tag = f"{os.getpid() % 100000}{secrets.token_hex(2)}"
    pair = NetnsPair(server=f"wb-srv-{tag}", client=f"wb-cli-{tag}")
    made: list[str] = []
    try:
        for name in (pair.server, pair.client):
            _ip("netns", "add", name)
            made.append(name)
        _wire(pair, tag)
        _wait_reachable(pair)
        yield pair
    finally:
        for name in made:
            _kill_inside(name)
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30, check=False)


def _wait_reachable(pair: NetnsPair, deadline_s: float = 10.0) -> None:
    """Until the server's address can be bound inside its namespace, i.e. is configured there."""
    code = f"import socket; s = socket.socket(); s.bind(({pair.server_address!r}, 0))"
    deadline = time.monotonic() + deadline_s
    while True:
        result = subprocess.run([*pair.exec_server, "python3", "-c", code], capture_output=True, timeout=30,
                                check=False)
        if result.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise NetnsUnavailable(f"{pair.server_address} never came up in {pair.server}")
        time.sleep(0.1)

