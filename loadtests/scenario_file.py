"""A user's scenarios, from a small TOML file or a ``--paths`` list, as the same :class:`Scenario` data.

A scenario with the keys of one request is one request repeated (wrk or the native engine drive it); a
scenario with ``requests`` is a weighted mix each user draws from (locust drives it)::

    health = "/health"                      # optional: polled until it answers 200

    [scenarios.home]
    path = "/"
    expect = { status = 200, content_type = "text/html" }

    [scenarios.create]
    method = "POST"
    path = "/api/items"
    headers = { "Content-Type" = "application/json" }
    body = '{"name": "pen"}'                # or body_file = "item.json", relative to this file
    expect = { status = 201, json_keys = ["id"] }

    [scenarios.browse]
    think_ms = [0, 20]
    requests = [
        { path = "/", weight = 3 },
        { path = "/api/items/1", weight = 1, expect = { body_regex = "pen" } },
    ]

Every mistake is refused before anything starts, with the file, the line and the valid keys or values.
tomllib reports the line of a syntax error only, so the line of a semantic one is found by scanning the text
for the key inside its scenario's table.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from loadtests.scenarios import Expect, Probe, Scenario

TOP_KEYS = ("health", "scenarios")
REQUEST_KEYS = ("method", "path", "headers", "body", "body_file", "expect", "weight", "name")
SCENARIO_KEYS = (*REQUEST_KEYS, "summary", "requests", "think_ms")
EXPECT_KEYS = ("status", "content_type", "body_regex", "json_keys")
# HEAD is left out: its answers carry a Content-Length and no body, which the generators would wait for.
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
PATHS_SOURCE = "paths:"  # Scenario.source of a --paths list: the list itself follows


class ScenarioFileError(ValueError):
    pass


class _Reader:
    """Checks one file's values; ``where`` finds the line a key is written on."""

    def __init__(self, path: Path, text: str) -> None:
        self.path, self.lines = path, text.splitlines()

    def line_of(self, key: str, scenario: str | None = None) -> int | None:
        start = 0
        if scenario is not None:
            header = re.compile(rf"^\s*\[\s*scenarios\s*\.\s*[\"']?{re.escape(scenario)}[\"']?\s*\]")
            start = next((i for i, ln in enumerate(self.lines) if header.match(ln)), 0)
        pattern = re.compile(rf"(^|[\s{{,])[\"']?{re.escape(key)}[\"']?\s*=")
        for i in range(start, len(self.lines)):
            if i > start and scenario is not None and self.lines[i].lstrip().startswith("["):
                break
            if pattern.search(self.lines[i]):
                return i + 1
        return start + 1 if scenario is not None else None

    def fail(self, message: str, key: str, scenario: str | None = None) -> ScenarioFileError:
        line = self.line_of(key, scenario)
        return ScenarioFileError(f"{self.path}{f', line {line}' if line else ''}: {message}")

    def keys(self, table: Mapping[str, Any], valid: tuple[str, ...], what: str, scenario: str | None) -> None:
        for key in table:
            if key not in valid:
                raise self.fail(f"unknown key {key!r} in {what}; valid keys: {', '.join(valid)}", key, scenario)


def _typed(r: _Reader, table: Mapping[str, Any], key: str, kind: type, scenario: str, default: Any) -> Any:
    value = table.get(key, default)
    if value is not default and (not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool)):
        kinds = {int: "an integer", str: "a string", list: "a list"}
        raise r.fail(f"{key} must be {kinds.get(kind, kind.__name__)}, got {value!r}", key, scenario)
    return value


def _expect(r: _Reader, raw: Any, scenario: str) -> Expect:
    if not isinstance(raw, Mapping):
        raise r.fail(f"expect must be a table with keys {', '.join(EXPECT_KEYS)}, got {raw!r}", "expect", scenario)
    r.keys(raw, EXPECT_KEYS, "expect", scenario)
    status = _typed(r, raw, "status", int, scenario, 200)
    if not 100 <= status <= 599:
        raise r.fail(f"status must be an HTTP status from 100 to 599, got {status}", "status", scenario)
    regex = _typed(r, raw, "body_regex", str, scenario, None)
    if regex is not None:
        try:
            re.compile(regex)
        except re.error as exc:
            raise r.fail(f"body_regex {regex!r} is not a regular expression: {exc}", "body_regex", scenario) from None
    keys = _typed(r, raw, "json_keys", list, scenario, [])
    if not all(isinstance(k, str) for k in keys):
        raise r.fail(f"json_keys must be a list of strings, got {keys!r}", "json_keys", scenario)
    return Expect(status=status, content_type=_typed(r, raw, "content_type", str, scenario, None),
                  body_regex=regex, json_keys=tuple(keys))


def _headers(r: _Reader, raw: Any, scenario: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(raw, Mapping) or not all(isinstance(v, str) for v in raw.values()):
        raise r.fail(f"headers must be a table of strings, got {raw!r}", "headers", scenario)
    for name, value in raw.items():
        if not _TOKEN.fullmatch(name) or any(c in value for c in "\r\n\0"):
            raise r.fail(f"header {name!r}: {value!r} is not a valid header field", "headers", scenario)
    return tuple(raw.items())


def _body(r: _Reader, raw: Mapping[str, Any], scenario: str) -> bytes:
    if "body" in raw and "body_file" in raw:
        raise r.fail("give body or body_file, not both", "body_file", scenario)
    if "body_file" in raw:
        name = _typed(r, raw, "body_file", str, scenario, "")
        path = (r.path.parent / name).resolve()
        if not path.is_file():
            raise r.fail(f"body_file {name!r}: no such file ({path})", "body_file", scenario)
        return bytes(path.read_bytes())
    return str(_typed(r, raw, "body", str, scenario, "")).encode()


def _request(r: _Reader, raw: Any, scenario: str, index: int | None) -> Probe:
    if not isinstance(raw, Mapping):
        raise r.fail(f"a request must be a table, got {raw!r}", "requests", scenario)
    r.keys(raw, REQUEST_KEYS if index is not None else SCENARIO_KEYS, "a request", scenario)
    method = _typed(r, raw, "method", str, scenario, "GET")
    if method not in METHODS:
        raise r.fail(f"method {method!r}; valid methods: {', '.join(METHODS)}", "method", scenario)
    if "path" not in raw:
        raise r.fail("every request needs a path (for example path = \"/\")", "path", scenario)
    path = _typed(r, raw, "path", str, scenario, "/")
    if not path.startswith("/") or any(c.isspace() for c in path):
        raise r.fail(f"path must start with / and hold no spaces, got {path!r}", "path", scenario)
    weight = _typed(r, raw, "weight", int, scenario, 1)
    if weight < 1:
        raise r.fail(f"weight must be at least 1, got {weight}", "weight", scenario)
    name = _typed(r, raw, "name", str, scenario, "") or (scenario if index is None else f"{scenario}[{index}]")
    return Probe(method=method, path=path, body=_body(r, raw, scenario), weight=weight,
                 headers=_headers(r, raw.get("headers", {}), scenario),
                 expect=_expect(r, raw.get("expect", {}), scenario), name=name)


def _think(r: _Reader, raw: Any, scenario: str) -> tuple[float, float]:
    ok = (isinstance(raw, list) and len(raw) == 2 and all(isinstance(v, int | float) for v in raw)
          and 0 <= raw[0] <= raw[1])
    if not ok:
        raise r.fail(f"think_ms must be [least, most] milliseconds, 0 <= least <= most, got {raw!r}", "think_ms",
                     scenario)
    return raw[0] / 1000.0, raw[1] / 1000.0


def _scenario(r: _Reader, name: str, raw: Any) -> Scenario:
    if not _NAME.fullmatch(name):
        raise r.fail(f"scenario name {name!r}: a letter, then letters, digits, _ or - (at most 40)", name)
    if not isinstance(raw, Mapping):
        raise r.fail(f"scenario {name!r} must be a table", name)
    r.keys(raw, SCENARIO_KEYS, f"scenario {name!r}", name)
    if "requests" in raw:
        single = [k for k in raw if k in REQUEST_KEYS]
        if single:
            raise r.fail(f"scenario {name!r} has requests, so {single[0]} belongs inside one of them", single[0],
                         name)
        requests = raw["requests"]
        if not isinstance(requests, list) or not requests:
            raise r.fail("requests must be a non-empty list of request tables", "requests", name)
        probes = tuple(_request(r, one, name, i) for i, one in enumerate(requests))
    else:
        probes = (_request(r, raw, name, None),)
    think = _think(r, raw["think_ms"], name) if "think_ms" in raw else (0.0, 0.0)
    summary = _typed(r, raw, "summary", str, name, "") or ", ".join(f"{p.method} {p.path}" for p in probes)
    return Scenario(name=name, summary=summary, probes=probes, think_s=think, source=str(r.path),
                    generator="wrk" if len(probes) == 1 and think == (0.0, 0.0) else "locust")


def load_scenario_file(path: Path) -> tuple[dict[str, Scenario], str | None]:
    """The file's scenarios, in file order, and its health path (None when it names none)."""
    path = path.resolve()
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise ScenarioFileError(f"{path}: cannot read it ({exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ScenarioFileError(f"{path}: not valid TOML: {exc}") from None
    r = _Reader(path, text)
    r.keys(data, TOP_KEYS, "the file", None)
    health = data.get("health")
    if health is not None and (not isinstance(health, str) or not health.startswith("/")):
        raise r.fail(f"health must be a path starting with /, got {health!r}", "health")
    tables = data.get("scenarios")
    if not isinstance(tables, Mapping) or not tables:
        raise ScenarioFileError(f"{path}: no scenarios; add at least one [scenarios.NAME] table with a path")
    return {name: _scenario(r, name, raw) for name, raw in tables.items()}, health


def _slug(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "-", path).strip("-")[:36] or "root"


def paths_scenarios(value: str) -> dict[str, Scenario]:
    """``--paths /,/api/items?id=1``: one scenario per path, a GET that must answer 200."""
    paths = [p.strip() for p in value.split(",") if p.strip()]
    if not paths:
        raise ScenarioFileError("--paths: no path given (for example --paths /,/api/items?id=1)")
    scenarios: dict[str, Scenario] = {}
    for path in paths:
        if not path.startswith("/") or any(c.isspace() for c in path):
            raise ScenarioFileError(f"--paths: {path!r} must start with / and hold no spaces")
        slug = _slug(path)
        name = base = slug if slug[0].isalpha() else "p-" + slug
        n = 2
        while name in scenarios:
            name, n = f"{base}-{n}", n + 1
        probe = Probe(method="GET", path=path, expect=Expect(), name=name)
        scenarios[name] = Scenario(name=name, summary=f"GET {path}", probes=(probe,), source=PATHS_SOURCE + value)
    return scenarios


def from_source(source: str) -> dict[str, Scenario]:
    """The scenarios a :attr:`Scenario.source` names: how the locustfile, a separate process, rebuilds them."""
    if source.startswith(PATHS_SOURCE):
        return paths_scenarios(source[len(PATHS_SOURCE):])
    return load_scenario_file(Path(source))[0]
