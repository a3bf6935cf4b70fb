"""Markdown summary of a workerbench run, and loading of the per-cell JSON records it is built from.

A run folder holds one JSON record per measured cell under ``cells/``. :func:`load_records` reads them back in plan
order, :func:`summary_markdown` renders them as one table per scenario plus a list of failed cells, and
:func:`write_summary` stores that as ``summary.md`` next to the charts of :mod:`scripts.plot`.

The formatting helpers are public because the charts label their bars with the same rules, so a number reads the
same in the table and on the chart.
"""

from __future__ import annotations

import json
import math
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

Record = Mapping[str, Any]

MISSING = "\u2014"  # an em dash: visibly "no value", unlike 0 or an empty cell
COLUMNS = ("mode", "users", "req/s", "95% CI", "p50 ms", "p99 ms", "errors", "CPU ms/req", "req/CPU-s", "memory MB",
           "MB/process", "generator", "flags")
# Numbers right-aligned so that magnitudes line up when the Markdown is rendered.
_ALIGNMENT = ("---", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---:", "---", "---")
# The plan's headline settings first; whatever else it holds follows in its own order.
_PLAN_KEY_ORDER = ("modes", "scenarios", "concurrency", "duration_s", "duration", "workers")


# values ---------------------------------------------------------------------


def as_number(value: Any) -> float | None:
    """``value`` as a finite float, or None for missing, non-numeric (including bool) and NaN/inf values."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def ordered_values(records: Iterable[Record], key: str) -> list[Any]:
    """Distinct values of ``key`` in order of first appearance: records come in plan order, which is the order the
    reader chose for modes and scenarios."""
    seen: dict[Any, None] = {}
    for record in records:
        value = record.get(key)
        if value is not None:
            seen.setdefault(value, None)
    return list(seen)


def is_ok(record: Record) -> bool:
    """Anything but an explicit "ok" counts as failed, so an unexpected status is never reported as a success."""
    return record.get("status") == "ok"


def _section(record: Record, key: str) -> Mapping[str, Any]:
    value = record.get(key)
    return value if isinstance(value, Mapping) else {}


# formatting -----------------------------------------------------------------


def format_rps(value: Any) -> str:
    """Requests per second: ``1,235`` from 100 up, ``56.8`` below, where the decimal still carries information."""
    number = as_number(value)
    if number is None:
        return MISSING
    # Decide on the rounded value so that 99.96 becomes "100", not "100.0".
    if round(abs(number), 1) >= 100:
        return f"{number:,.0f}"
    return f"{number:.1f}"


def format_sig(value: Any, digits: int = 3) -> str:
    """Up to ``digits`` significant digits (``1.23``, ``12.3``, ``0.0456``); whole numbers as they are."""
    number = as_number(value)
    if number is None:
        return MISSING
    if number == int(number):
        # locust reports whole milliseconds: "3" says what was measured, "3.00" would claim more.
        return f"{int(number):,}"
    rounded = float(f"{number:.{digits}g}")
    if abs(rounded) >= 10 ** (digits - 1):
        # Dropping integer digits (1234 -> "1,230") would make a latency look rounder than it is.
        return f"{number:,.0f}"
    decimals = digits - 1 - math.floor(math.log10(abs(rounded)))
    return f"{rounded:.{decimals}f}"


def format_percent(value: float) -> str:
    """A share in percent, precise enough that a rare error does not round away to 0."""
    if value >= 10:
        return f"{value:.0f}%"
    return f"{value:.2g}%"


def format_errors(record: Record) -> str:
    """``failures/requests``, plus the error rate when there were failures."""
    failures, requests = record.get("failures"), record.get("requests")
    has_failures = isinstance(failures, int) and not isinstance(failures, bool)
    has_requests = isinstance(requests, int) and not isinstance(requests, bool)
    if not has_failures and not has_requests:
        return MISSING
    text = f"{failures:,}/" if has_failures else f"{MISSING}/"
    text += f"{requests:,}" if has_requests else MISSING
    if has_failures and has_requests and failures > 0 and requests > 0:
        text += f" ({format_percent(100 * failures / requests)})"
    return text


def format_mb(value: Any) -> str:
    number = as_number(value)
    return MISSING if number is None else f"{number:,.1f}"


def _format_plan_value(value: Any) -> str:
    if value is None:
        return MISSING
    if isinstance(value, Mapping):
        return json.dumps(value, default=str)
    if isinstance(value, list | tuple | set | frozenset):
        return ", ".join(_format_plan_value(item) for item in value) or "none"
    return " ".join(str(value).split("\n"))


def _table_cell(text: str) -> str:
    # A pipe would split the column and a newline would end the row.
    return text.replace("|", "\\|").replace("\n", " ")


def _fenced(text: str, info: str = "text") -> list[str]:
    """``text`` in a code fence longer than any backtick run inside it, so a log cannot close the fence early."""
    longest = 0
    run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    fence = "`" * max(3, longest + 1)
    return [f"{fence}{info}", text.rstrip("\n"), fence]


# sections -------------------------------------------------------------------


def _plan_section(plan: Mapping[str, Any]) -> list[str]:
    keys = [key for key in _PLAN_KEY_ORDER if key in plan]
    keys += [key for key in plan if key not in _PLAN_KEY_ORDER]
    return ["## Run", "", *(f"- {key}: {_format_plan_value(plan[key])}" for key in keys), ""]


def format_interval(record: Record) -> str:
    ci = record.get("throughput_ci95")
    if not isinstance(ci, Sequence) or len(ci) != 2:
        return MISSING
    low, high = (as_number(v) for v in ci)
    if low is None or high is None:
        return MISSING
    return f"{format_rps(max(0.0, low))} to {format_rps(high)}"


def format_flags(record: Record) -> str:
    flags = record.get("flags")
    if not is_ok(record):
        return "failed"
    return ", ".join(str(f) for f in flags) if isinstance(flags, Sequence) and flags else MISSING


def _row(record: Record) -> str:
    latency = _section(record, "latency_ms")
    resources = _section(record, "resources")
    users = record.get("concurrency")
    generator = str(record.get("generator") or MISSING)
    util = as_number(record.get("generator_cpu"))
    if util is not None:
        generator += f" ({util:.0%} CPU)"
    cells = (
        str(record.get("mode", MISSING)),
        MISSING if users is None else str(users),
        format_rps(record.get("throughput_rps")),
        format_interval(record),
        format_sig(latency.get("p50")),
        format_sig(latency.get("p99")),
        format_errors(record),
        format_sig(resources.get("cpu_ms_per_request")),
        format_rps(resources.get("requests_per_cpu_second")),
        format_mb(resources.get("rss_mean_mb")),
        format_mb(resources.get("memory_per_process_mb")),
        generator,
        format_flags(record),
    )
    return "| " + " | ".join(_table_cell(cell) for cell in cells) + " |"


def _row_sort_key(record: Record, mode_rank: Mapping[Any, int]) -> tuple[int, int, float]:
    users = as_number(record.get("concurrency"))
    # Cells without a concurrency go last rather than breaking the sort.
    return mode_rank.get(record.get("mode"), len(mode_rank)), users is None, users or 0.0


def _scenario_section(scenario: Any, records: Sequence[Record], mode_rank: Mapping[Any, int]) -> list[str]:
    rows = sorted((r for r in records if r.get("scenario") == scenario), key=lambda r: _row_sort_key(r, mode_rank))
    return [
        f"## {scenario}",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "| " + " | ".join(_ALIGNMENT) + " |",
        *(_row(record) for record in rows),
        "",
    ]


def _failure_block(record: Record) -> list[str]:
    title = f"### {record.get('mode', MISSING)} / {record.get('scenario', MISSING)} / {record.get('concurrency')} users"
    tail = str(record.get("log_tail") or "")
    log = _fenced(tail) if tail.strip() else ["_No server log captured._"]
    error = str(record.get("error") or f"no error message (status: {record.get('status')})")
    return [title, "", "Error:", "", *_fenced(error), "", "Log tail:", "", *log, ""]


def strategy_pairs(records: Sequence[Record]) -> list[dict[str, Any]]:
    """Cells measured under both database strategies, paired: the price of a connection per request.

    One dict per (scenario, mode, users) that has a ``reuse`` and a ``per-request`` cell, in plan order, with both
    throughputs and their ratio (None where a cell failed).
    """
    by_key: dict[tuple[Any, Any, Any], dict[str, Record]] = {}
    for record in records:
        strategy = record.get("db_strategy")
        if strategy:
            key = (record.get("base_scenario", record.get("scenario")), record.get("mode"), record.get("concurrency"))
            by_key.setdefault(key, {})[strategy] = record
    pairs = []
    for (scenario, mode, users), cells in by_key.items():
        if "reuse" not in cells or "per-request" not in cells:
            continue
        reuse = as_number(cells["reuse"].get("throughput_rps")) if is_ok(cells["reuse"]) else None
        per_request = as_number(cells["per-request"].get("throughput_rps")) if is_ok(cells["per-request"]) else None
        ratio = reuse / per_request if reuse and per_request else None
        pairs.append({"scenario": scenario, "mode": mode, "users": users, "backend": cells["reuse"].get("db_backend"),
                      "reuse": reuse, "per_request": per_request, "ratio": ratio})
    return pairs


def _strategy_section(records: Sequence[Record]) -> list[str]:
    pairs = strategy_pairs(records)
    if not pairs:
        return []
    lines = [
        "## Connection reuse",
        "",
        "The database scenarios measured twice: `reuse` keeps one connection per worker process, `per-request`"
        " connects, queries and closes for every request.",
        "",
        "| scenario | backend | mode | users | reuse req/s | per-request req/s | reuse / per-request |",
        "| --- | --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for p in pairs:
        ratio = MISSING if p["ratio"] is None else f"{p['ratio']:.1f}x"
        lines.append(f"| {p['scenario']} | {p['backend'] or MISSING} | {p['mode']} | {p['users']} | "
                     f"{format_rps(p['reuse'])} | {format_rps(p['per_request'])} | {ratio} |")
    return [*lines, ""]


def load_reference(run_dir: Path) -> dict[str, Any]:
    try:
        data = json.loads((run_dir / "reference.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _rate(records: Sequence[Record], mode: str, scenario: str) -> tuple[float | None, int | None]:
    """The mode's figure for ``scenario`` at the run's main level (the most common concurrency)."""
    cells = [r for r in records if r.get("mode") == mode and r.get("scenario") == scenario and is_ok(r)]
    if not cells:
        return None, None
    levels = [r.get("concurrency") for r in records if r.get("scenario") == scenario]
    main = max(set(levels), key=lambda level: (levels.count(level), level or 0))
    at = [r for r in cells if r.get("concurrency") == main] or cells
    return as_number(at[0].get("throughput_rps")), at[0].get("concurrency")


def _verdict(ratio: float, target: float, a_bound: bool, b_bound: bool) -> bool | None:
    """Met (True), not met (False) or cannot tell (None).

    A generator-bound figure is a floor of the server's capacity (the server could have
    done more), so a bound numerator makes the ratio a floor and a bound denominator makes
    it a ceiling. A floor at or over the target still meets it; a ceiling under it still
    misses it; anything else cannot be told from this run.
    """
    if a_bound and b_bound:
        return None
    if a_bound:
        return True if ratio >= target else None
    if b_bound:
        return False if ratio < target else None
    return ratio >= target


def speed_checks(records: Sequence[Record], reference: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The ratios the hand-written servers are held to, each measured within this run.

    One dict per check that this run has the cells for: what is compared, the two rates, the ratio, the target
    and whether it was met (None when a generator-bound figure leaves it open, see :func:`_verdict`).
    """
    checks: list[dict[str, Any]] = []

    def bound(key: tuple[str, str] | None, users: int | None) -> bool:
        return key is not None and any(
            "generator-bound" in (r.get("flags") or []) for r in records
            if (r.get("mode"), r.get("scenario")) == key and r.get("concurrency") == users)

    def add(name: str, a: tuple[str, str], b: tuple[str, str] | None, target: float,
            b_rate: float | None = None) -> None:
        rate_a, users = _rate(records, *a)
        rate_b = b_rate if b is None else _rate(records, *b)[0]
        if rate_a is None or rate_b is None or rate_b <= 0:
            return
        a_bound, b_bound = bound(a, users), bound(b, users)
        ratio = rate_a / rate_b
        checks.append({"check": name, "a": rate_a, "b": rate_b, "ratio": ratio, "target": target,
                       "met": _verdict(ratio, target, a_bound, b_bound), "generator_bound": a_bound or b_bound,
                       "bound": "floor" if a_bound and not b_bound else "ceiling" if b_bound and not a_bound
                       else "open" if a_bound else None,
                       "users": users})

    add("prefork / gunicorn-sync, new connection per request", ("prefork", "plaintext/close"),
        ("gunicorn-sync", "plaintext/close"), 3.0)
    add("prefork / uvicorn, keep-alive", ("prefork", "plaintext"), ("uvicorn", "plaintext"), 1.0)
    fork_ref = as_number((reference or {}).get("fork", {}).get("rate")) if reference else None
    loop_ref = as_number((reference or {}).get("fork_loop", {}).get("rate")) if reference else None
    if fork_ref:
        add("fork (new connection per request) / fork()+_exit+waitpid of a bare process", ("fork", "plaintext/close"),
            None, 0.8, b_rate=fork_ref)
        if loop_ref:
            # Not a check of ours: how close the least any Python fork server can do comes to that target.
            checks.append({"check": "minimal Python fork loop (canned reply) / fork()+_exit+waitpid", "a": loop_ref,
                           "b": fork_ref, "ratio": loop_ref / fork_ref, "target": 0.0, "met": None,
                           "generator_bound": False, "bound": None,
                           "users": (reference or {}).get("fork_loop", {}).get("connections")})
        add("cgi / fork()+_exit+waitpid of a bare process", ("cgi", "plaintext/close"), None, 0.0, b_rate=fork_ref)
    if loop_ref:
        add("fork / minimal Python fork loop (canned reply)", ("fork", "plaintext/close"), None, 0.0, b_rate=loop_ref)
    for pair in strategy_pairs(records):
        if pair["ratio"] is not None and pair["mode"] == "prefork":
            target = 10.0 if pair["backend"] == "postgresql" else 0.0
            checks.append({"check": f"{pair['scenario']} ({pair['backend']}) reuse / per-request, prefork",
                           "a": pair["reuse"], "b": pair["per_request"], "ratio": pair["ratio"], "target": target,
                           "met": pair["ratio"] >= target, "generator_bound": False, "users": pair["users"]})
    return checks


def _speed_section(records: Sequence[Record], reference: Mapping[str, Any] | None) -> list[str]:
    checks = speed_checks(records, reference)
    if not checks:
        return []
    lines = [
        "## Speed checks",
        "",
        "Ratios measured within this run (server and generator pinned apart, plaintext unless named).",
        "",
        "| check | users | req/s | against | ratio | target | |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for c in checks:
        verdict = {True: "met", False: "**not met**", None: "cannot tell"}[c["met"]]
        if c["generator_bound"]:
            what = {"floor": "the ratio is a floor", "ceiling": "the ratio is a ceiling"}.get(c.get("bound") or "",
                                                                                            "both sides")
            verdict += f" (generator-bound: not a capacity; {what})"
        target = f">= {c['target']:g}x" if c["target"] else "reported"
        lines.append(f"| {c['check']} | {c['users']} | {format_rps(c['a'])} | {format_rps(c['b'])} | "
                     f"{c['ratio']:.2f}x | {target} | {verdict if c['target'] else ''} |")
    return [*lines, ""]


def knee(points: Sequence[Record]) -> float | None:
    """The lowest offered rate at which a mode stopped keeping up: it completed less than 95% of the offered
    rate, or its p99 exceeded ten times its p99 at the lightest load (and 10 ms). None if it kept up throughout."""
    ok = sorted((p for p in points if is_ok(p)), key=lambda p: p["offered_rate"])
    if not ok:
        return None
    base = as_number(_section(ok[0], "latency_ms").get("p99")) or 0.0
    for point in ok:
        p99 = as_number(_section(point, "latency_ms").get("p99")) or 0.0
        if point.get("achieved_rate", 0) < 0.95 * point["offered_rate"] or p99 > max(10 * base, 10.0):
            return float(point["offered_rate"])
    return None


def _openloop_section(points: Sequence[Record]) -> list[str]:
    if not points:
        return []
    lines = [
        "## Latency against offered load (open loop)",
        "",
        "Requests sent at a constant rate on a fixed schedule, whatever the answers; latency counts from each"
        " request's intended send time, so time a request waited behind a stalled server is counted (the"
        " coordinated-omission correction of wrk2 and HdrHistogram). Every mode gets the same doubling ladder"
        " of rates on `/io?ms=20` and leaves it one step after it completes less than half the offered rate."
        " The knee is the first offered rate where the mode completed under 95% of it or its p99 passed ten"
        " times its light-load p99.",
        "",
        "| mode | offered req/s | achieved req/s | p50 ms | p99 ms | p99 uncorrected ms | errors | generator kept up |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    knees = []
    for mode in ordered_values(points, "mode"):
        mine = [p for p in points if p.get("mode") == mode]
        for p in mine:
            if not is_ok(p):
                lines.append(f"| {mode} | {MISSING} | {MISSING} | {MISSING} | {MISSING} | {MISSING} | {MISSING} |"
                             f" failed: {_table_cell(str(p.get('error')))} |")
                continue
            latency, raw = _section(p, "latency_ms"), _section(p, "latency_uncorrected_ms")
            errors = sum(int(v) for v in (p.get("errors") or {}).values())
            kept = {True: "yes", False: "**no**", None: MISSING}[p.get("generator_kept_up")]
            lines.append(f"| {mode} | {format_rps(p.get('offered_rate'))} | {format_rps(p.get('achieved_rate'))} | "
                         f"{format_sig(latency.get('p50'))} | {format_sig(latency.get('p99'))} | "
                         f"{format_sig(raw.get('p99'))} | {errors} | {kept} |")
        k = knee(mine)
        knees.append(f"- {mode}: " + (f"knee at {format_rps(k)} req/s offered" if k else "kept up at every rate"))
    return [*lines, "", *knees, ""]


def _failures_section(records: Sequence[Record]) -> list[str]:
    failed = [record for record in records if not is_ok(record)]
    if not failed:
        return []
    lines = ["## Failed cells", ""]
    for record in failed:
        lines += _failure_block(record)
    return lines


def _charts_section(charts: Sequence[str]) -> list[str]:
    lines = ["## Charts", ""]
    for name in charts:
        # Quote the link target so a file name with spaces still resolves; the alt text stays readable.
        lines += [f"![{name}]({quote(name)})", ""]
    return lines


FLAG_MEANINGS = {
    "generator-bound": "the load generator used more than 85% of its CPUs: the figure is the generator's limit, "
    "not the server's capacity",
    "spread": "the repeats differ by more than 10% of the median",
    "errors": "more than 0.1% of the requests failed (non-2xx answers or socket errors)",
    "failed-repeats": "some repeats failed; the figure comes from the others",
}


def _overview(records: Sequence[Record]) -> str:
    if not records:
        return "No cells were recorded."
    failed = sum(not is_ok(record) for record in records)
    text = f"{len(records)} figures: {len(records) - failed} ok, {failed} failed."
    repeats = [r.get("repeats") for r in records if isinstance(r.get("repeats"), int)]
    if repeats:
        text += (f" Each figure is the median of {max(repeats)} repeats (modes interleaved); the 95% CI is the"
                 " Student-t interval of their mean.")
    return text


def _flags_section(records: Sequence[Record]) -> list[str]:
    seen: dict[str, list[str]] = {}
    for record in records:
        flags = record.get("flags")
        if is_ok(record) and isinstance(flags, Sequence):
            for flag in flags:
                seen.setdefault(str(flag), []).append(
                    f"{record.get('mode')} {record.get('scenario')} @ {record.get('concurrency')}")
    if not seen:
        return []
    lines = ["## Flags", ""]
    for flag, where in seen.items():
        lines.append(f"- **{flag}**: {FLAG_MEANINGS.get(flag, '')} ({len(where)}: {'; '.join(where)})")
    return [*lines, ""]


# public API -----------------------------------------------------------------


def summary_markdown(
    records: Sequence[Record],
    *,
    plan: Mapping[str, Any] | None = None,
    charts: Sequence[str] | None = None,
    reference: Mapping[str, Any] | None = None,
    openloop: Sequence[Record] = (),
) -> str:
    """The whole report as Markdown; ``records`` in plan order, which decides the order of scenarios and modes."""
    lines = ["# workerbench results", "", _overview(records), ""]
    if plan:
        lines += _plan_section(plan)
    mode_rank = {mode: rank for rank, mode in enumerate(ordered_values(records, "mode"))}
    for scenario in ordered_values(records, "scenario"):
        lines += _scenario_section(scenario, records, mode_rank)
    lines += _flags_section(records)
    lines += _speed_section(records, reference)
    lines += _openloop_section(openloop)
    lines += _strategy_section(records)
    lines += _failures_section(records)
    if charts:
        lines += _charts_section(charts)
    return "\n".join(lines).rstrip("\n") + "\n"


def write_summary(
    records: Sequence[Record],
    out_dir: Path,
    *,
    plan: Mapping[str, Any] | None = None,
    charts: Sequence[str] | None = None,
    reference: Mapping[str, Any] | None = None,
    openloop: Sequence[Record] = (),
) -> Path:
    """Write ``out_dir/summary.md`` atomically, so a reader never sees half a report; returns its path."""
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / "summary.md"
    _write_text_atomic(target, summary_markdown(records, plan=plan, charts=charts, reference=reference,
                                                openloop=openloop))
    return target


def _write_text_atomic(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            handle.write(text)
        # mkstemp creates the file private to its owner; a report is meant to be read by others.
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_records(run_dir: Path, folder: str = "cells") -> list[dict[str, Any]]:
    """Every readable ``run_dir/<folder>/*.json`` record, ordered by its ``index`` (plan order), else by file name.

    A corrupt file (say, from a run killed mid-write by something other than our atomic writer) is skipped with a
    warning on stderr, so one bad cell does not cost the whole summary.
    """
    loaded: list[tuple[Path, dict[str, Any]]] = []
    for path in sorted((run_dir / folder).glob("*.json")):
        record = _read_record(path)
        if record is not None:
            loaded.append((path, record))
    loaded.sort(key=_load_order)
    return [record for _, record in loaded]


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        print(f"warning: skipping unreadable cell record {path}: {exc}", file=sys.stderr)
        return None
    if not isinstance(data, dict):
        print(f"warning: skipping cell record {path}: not a JSON object", file=sys.stderr)
        return None
    return data


def _load_order(item: tuple[Path, Mapping[str, Any]]) -> tuple[int, int, str]:
    path, record = item
    index = record.get("index")
    if isinstance(index, int) and not isinstance(index, bool):
        return 0, index, path.name
    return 1, 0, path.name


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scripts.report RUN_DIR``: redraw the charts and summary of a finished run from its cells."""
    import argparse

    from scripts import plot

    parser = argparse.ArgumentParser(prog="python -m scripts.report", description=main.__doc__)
    parser.add_argument("run_dir", type=Path, help="a run folder, e.g. results/latest")
    args = parser.parse_args(argv)
    from scripts import stats

    records = stats.fold_all(load_records(args.run_dir))
    if not records:
        parser.error(f"no cell records under {args.run_dir / 'cells'}")
    refs = load_reference(args.run_dir)
    ladder = load_records(args.run_dir, folder="openloop")
    try:
        plan = json.loads((args.run_dir / "plan.json").read_text()).get("plan")
    except (OSError, ValueError):
        plan = None
    charts = plot.write_charts(records, args.run_dir, reference=refs, openloop=ladder)
    print(write_summary(records, args.run_dir, plan=plan, charts=[c.name for c in charts], reference=refs,
                        openloop=ladder))
    return 0


if __name__ == "__main__":
    sys.exit(main())
