"""A small closed-loop load for tests: threads sending requests on new connections, counting outcomes.

Bounded in time and in count, and loopback only, like every load the project makes.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Load:
    host: str
    port: int
    path: str = "/plaintext"
    threads: int = 4
    max_seconds: float = 60.0
    max_requests: int = 100_000
    timeout: float = 10.0
    ok: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _one(self) -> None:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("GET", self.path)
            resp = conn.getresponse()
            resp.read()
            outcome = "ok" if resp.status == 200 else f"status {resp.status}"
        except (OSError, http.client.HTTPException) as exc:
            outcome = type(exc).__name__
        finally:
            conn.close()
        with self._lock:
            if outcome == "ok":
                self.ok += 1
            else:
                self.failures[outcome] += 1

    def _loop(self) -> None:
        deadline = time.monotonic() + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline and self.total < self.max_requests:
            self._one()

    @property
    def total(self) -> int:
        return self.ok + sum(self.failures.values())

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(self.threads)]
        for t in self._threads:
            t.start()
        return self

    def wait_for(self, requests: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while self.total < requests and time.monotonic() < deadline:
            time.sleep(0.01)

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
