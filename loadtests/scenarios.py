"""The benchmark scenarios, as plain data the harness can read without importing locust.

A scenario is a weighted set of requests that a user repeats with no think
time (a closed loop: each user has one request in flight). ``locustfile.py``
turns each scenario into a locust ``FastHttpUser`` class named ``user_class``.
"""

from __future__ import annotations

from dataclasses import dataclass

UPLOAD_BODY = bytes(range(256)) * 64  # 16 KiB, the same bytes on every run


@dataclass(frozen=True, kw_only=True, slots=True)
class Probe:
    method: str
    path: str  # path and query string
    body: bytes = b""
    weight: int = 1


@dataclass(frozen=True, kw_only=True, slots=True)
class Scenario:
    name: str
    summary: str
    probes: tuple[Probe, ...]
    uses_db: bool = False  # measured once per database connection strategy

    @property
    def user_class(self) -> str:
        return "".join(part.capitalize() for part in self.name.split("-")) + "User"


SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(name="plaintext", summary="GET /plaintext: the cost of the server itself",
                 probes=(Probe(method="GET", path="/plaintext"),)),
        Scenario(name="json", summary="GET /json: serialise a small object",
                 probes=(Probe(method="GET", path="/json"),)),
        Scenario(name="db", summary="GET /db: one random row from SQLite on the worker's connection",
                 probes=(Probe(method="GET", path="/db"),), uses_db=True),
        Scenario(name="queries", summary="GET /queries?n=20: twenty row look-ups per request",
                 probes=(Probe(method="GET", path="/queries?n=20"),), uses_db=True),
        Scenario(name="io", summary="GET /io?ms=20: a 20 ms wait for a slow upstream",
                 probes=(Probe(method="GET", path="/io?ms=20"),)),
        Scenario(name="cpu", summary="GET /cpu?n=1000: a thousand chained SHA-256 rounds",
                 probes=(Probe(method="GET", path="/cpu?n=1000"),)),
        Scenario(name="upload", summary="POST /upload with a 16 KiB body: read and hash it",
                 probes=(Probe(method="POST", path="/upload", body=UPLOAD_BODY),)),
    )
}
