"""The benchmark scenarios, as plain data the harness can read without importing locust.

A scenario is a weighted set of requests that each user repeats (a closed loop:
one request in flight per user), with an optional think time between them.
``locustfile.py`` turns each scenario into a locust ``FastHttpUser`` class named
``user_class``, so every scenario also runs under locust and its web UI.

Each scenario names the generator that suits it: ``wrk`` (native, ~100,000
requests/s on one core) for single-request throughput and latency sweeps, where
locust's ~4,400/s would be the bottleneck; ``locust`` for user behaviour (a mix
of tasks, think times), which wrk cannot express.
"""

from __future__ import annotations

from dataclasses import dataclass

UPLOAD_BODY = bytes(range(256)) * 64  # 16 KiB, the same bytes on every run


@dataclass(frozen=True, kw_only=True, slots=True)
class Expect:
    """What a correct answer to a user's request is (the sample apps' answers are computed, not declared)."""

    status: int = 200
    # Compared by media type ("text/html" matches "text/html; charset=utf-8") unless it names parameters too.
    content_type: str | None = None
    body_regex: str | None = None  # searched in the body, decoded as UTF-8
    json_keys: tuple[str, ...] = ()  # the body is a JSON object holding at least these keys


@dataclass(frozen=True, kw_only=True, slots=True)
class Probe:
    method: str
    path: str  # path and query string
    body: bytes = b""
    weight: int = 1
    headers: tuple[tuple[str, str], ...] = ()  # sent with every request, after the generator's own
    expect: Expect | None = None  # None: a sample-app request, checked against apps.workloads
    name: str = ""  # how reports name the request (a user's scenario file names each one)


@dataclass(frozen=True, kw_only=True, slots=True)
class Scenario:
    name: str
    summary: str
    probes: tuple[Probe, ...]
    db_strategies: bool = False  # measured once per database connection strategy (reuse, per-request)
    generator: str = "wrk"  # "wrk" needs exactly one probe; "locust" runs anything
    think_s: tuple[float, float] = (0.0, 0.0)  # a user's pause between requests, uniform in this range
    # Where a user's scenario came from (loadtests.scenario_file.from_source rebuilds it in another process);
    # empty for the sample scenarios.
    source: str = ""

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
                 probes=(Probe(method="GET", path="/db"),), db_strategies=True),
        Scenario(name="queries", summary="GET /queries?n=20: twenty row look-ups per request",
                 probes=(Probe(method="GET", path="/queries?n=20"),)),
        Scenario(name="io", summary="GET /io?ms=20: a 20 ms wait for a slow upstream",
                 probes=(Probe(method="GET", path="/io?ms=20"),)),
        Scenario(name="cpu", summary="GET /cpu?n=1000: a thousand chained SHA-256 rounds",
                 probes=(Probe(method="GET", path="/cpu?n=1000"),)),
        Scenario(name="upload", summary="POST /upload with a 16 KiB body: read and hash it",
                 probes=(Probe(method="POST", path="/upload", body=UPLOAD_BODY),)),
        Scenario(name="mixed", summary="users mixing every endpoint, 0-20 ms think time (locust)",
                 probes=(Probe(method="GET", path="/plaintext", weight=4), Probe(method="GET", path="/json", weight=3),
                         Probe(method="GET", path="/db", weight=2), Probe(method="GET", path="/queries?n=5"),
                         Probe(method="GET", path="/io?ms=20"), Probe(method="GET", path="/cpu?n=200"),
                         Probe(method="POST", path="/upload", body=UPLOAD_BODY[:2048])),
                 generator="locust", think_s=(0.0, 0.02)),
    )
}
