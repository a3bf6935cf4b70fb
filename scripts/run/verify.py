"""Check that a running server answers a scenario correctly before any load is sent.

Deterministic endpoints must return exactly what :mod:`apps.workloads`
computes in-process (status, content type, length and bytes); the database
endpoints return random rows, so their shape and ranges are checked instead.
"""

from __future__ import annotations

import http.client
import json
import re
from urllib.parse import urlsplit

from apps import db, workloads
from loadtests.scenarios import Expect, Probe, Scenario
from scripts.common.procs import get


class VerifyError(Exception):
    pass


def expected(probe: Probe) -> workloads.Response | None:
    """The exact response for a deterministic probe, or None when it is random by design."""
    parts = urlsplit(probe.path)
    endpoint, error = workloads.route(probe.method, parts.path)
    if error is not None:
        return error
    assert endpoint is not None
    if not endpoint.deterministic:
        return None
    result = endpoint.handler(workloads.Request(probe.method, parts.path, parts.query, probe.body))
    return result.then if isinstance(result, workloads.Wait) else result


def _check_rows(body: bytes, many: bool) -> None:
    data = json.loads(body)
    rows = data if many else [data]
    if many and not isinstance(data, list):
        raise VerifyError(f"expected a JSON list of rows, got {body[:80]!r}")
    for row in rows:
        if not (isinstance(row, dict) and set(row) == {"id", "randomNumber"}):
            raise VerifyError(f"bad row {row!r}")
        if not (1 <= row["id"] <= db.ROWS and 1 <= row["randomNumber"] <= db.MAX_RANDOM_NUMBER):
            raise VerifyError(f"row out of range {row!r}")


def check(host: str, port: int, probe: Probe) -> None:
    try:
        status, headers, body = get(host, port, probe.path, method=probe.method, body=probe.body or None,
                                    timeout=15.0)
    except (OSError, http.client.HTTPException) as exc:
        raise VerifyError(f"{probe.method} {probe.path}: no answer ({exc})") from exc
    want = expected(probe)
    where = f"{probe.method} {probe.path}"
    if want is None:
        if status != 200 or headers.get("content-type") != workloads.JSON:
            raise VerifyError(f"{where}: got {status} {headers.get('content-type')!r}")
        try:
            _check_rows(body, many=urlsplit(probe.path).path == "/queries")
        except ValueError as exc:
            raise VerifyError(f"{where}: body is not JSON: {body[:80]!r}") from exc
        return
    if status != want.status:
        raise VerifyError(f"{where}: status {status}, expected {want.status}")
    if headers.get("content-type") != want.content_type:
        raise VerifyError(f"{where}: content type {headers.get('content-type')!r}, expected {want.content_type!r}")
    if headers.get("content-length") != str(len(want.body)):
        raise VerifyError(f"{where}: content length {headers.get('content-length')}, expected {len(want.body)}")
    if body != want.body:
        raise VerifyError(f"{where}: body {body[:80]!r}, expected {want.body[:80]!r}")


def _media(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def _judge(where: str, want: Expect, status: int, content_type: str, body: bytes) -> None:
    """Raise VerifyError unless the answer is what ``want`` declares."""
    if status != want.status:
        never = " (a path answering 404 or 5xx is never measured)" if status == 404 or status >= 500 else ""
        raise VerifyError(f"{where}: status {status}, expected {want.status}{never}")
    if want.content_type is not None:
        match = (content_type.lower() == want.content_type.lower() if ";" in want.content_type
                 else _media(content_type) == _media(want.content_type))
        if not match:
            raise VerifyError(f"{where}: content type {content_type!r}, expected {want.content_type!r}")
    if want.body_regex is not None and not re.search(want.body_regex, body.decode("utf-8", "replace")):
        raise VerifyError(f"{where}: body does not match {want.body_regex!r}: {body[:80]!r}")
    if want.json_keys:
        try:
            data = json.loads(body)
        except ValueError:
            raise VerifyError(f"{where}: body is not JSON: {body[:80]!r}") from None
        missing = [k for k in want.json_keys if not isinstance(data, dict) or k not in data]
        if missing:
            raise VerifyError(f"{where}: JSON body lacks {', '.join(missing)}: {body[:80]!r}")


def check_declared(host: str, port: int, probe: Probe, answers: dict[str, str]) -> None:
    """Check a user's request against its declared expectations. Its answer ("STATUS CONTENT-TYPE", what the
    modes are compared on) goes into ``answers`` first, so a mode that answers wrongly still shows what it said."""
    assert probe.expect is not None
    name = probe.name or probe.path
    where = f"{name} ({probe.method} {probe.path})"
    try:
        status, headers, body = get(host, port, probe.path, method=probe.method, body=probe.body or None,
                                    headers=dict(probe.headers), timeout=15.0)
    except (OSError, http.client.HTTPException) as exc:
        answers[name] = "no answer"
        raise VerifyError(f"{where}: no answer ({exc})") from exc
    answers[name] = f"{status} {headers.get('content-type', '-')}"
    _judge(where, probe.expect, status, headers.get("content-type", ""), body)


def verify(host: str, port: int, scenario: Scenario, answers: dict[str, str] | None = None) -> None:
    """Check every request of ``scenario``: the sample app's against what it computes, a user's against what
    the scenario declares (their answers go into ``answers``, name -> "STATUS CONTENT-TYPE")."""
    for probe in scenario.probes:
        if probe.expect is None:
            check(host, port, probe)
        else:
            check_declared(host, port, probe, {} if answers is None else answers)
