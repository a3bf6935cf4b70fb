"""A server the bench does not start (``--target http://HOST:PORT --label NAME``), and its status source.

The target stands in the plan as one mode named by ``--label``, outside the registry's families. What needs
the server in the bench's hands is left out, and the plan says so: the fork references (they measure this
host, not the server's), more than one database strategy and ``--postgres`` (the server's database and strategy
are chosen where it runs: ``scripts.serve --db-strategy``). The open-loop ladder climbs against the target as
against a started mode (:mod:`scripts.run.ladder`). Server CPU and memory come from ``--target-status`` (the status
endpoint or file that ``python -m scripts.serve`` keeps) as differences over the measured interval, and are "not
measured" without it.
"""

from __future__ import annotations

import argparse
import json
import re
import urllib.error
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from apps import db
from scripts.common.cpus import default_cpus
from scripts.modes import Mode, Placement, Process

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

# scripts.plan.plan's Plan, which this module cannot import: plan imports it, and so do the generators plan imports.
P = TypeVar("P", bound="DataclassInstance")

LABEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
STATUS_KEYS = ("cpu_seconds", "memory_mb", "memory_kind", "processes")
STATUS_TIMEOUT_S = 3.0


class StatusError(RuntimeError):
    """The status source did not answer, or answered something that is not a serve status."""


def parse_target(value: str) -> tuple[str, int]:
    """``http://HOST:PORT`` (IPv6 in brackets) as (host, port)."""
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "http" or not parts.hostname or port is None or parts.path not in ("", "/"):
        raise argparse.ArgumentTypeError(f"expected http://HOST:PORT (plain HTTP/1.1, no path), got {value!r}")
    return parts.hostname, port


def _label(value: str) -> str:
    if not LABEL.fullmatch(value):
        raise argparse.ArgumentTypeError(f"a label is 1-64 letters, digits, '.', '_' or '-' (it names files), "
                                         f"got {value!r}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("a server the bench does not start (see the README's \"Two machines\")")
    g.add_argument("--target", help="measure the server at http://HOST:PORT instead of starting the modes")
    g.add_argument("--label", type=_label, help="the name the target's figures go by (with --target)")
    g.add_argument("--target-status", help="the target's status: the URL that python -m scripts.serve printed (on "
                   "loopback unless it was started with --expose-status), or its --status-file; without it server "
                   "CPU and memory are not measured")


def check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse what a remote target cannot do, before anything starts."""
    if args.target is None:
        for option in ("label", "target_status"):
            if getattr(args, option) is not None:
                parser.error(f"--{option.replace('_', '-')} needs --target")
        return
    try:
        parse_target(args.target)
    except argparse.ArgumentTypeError as exc:
        parser.error(f"--target: {exc}")
    if args.label is None:
        parser.error("--target needs --label NAME: the name its figures go by")
    for option, given in (("--modes", args.modes), ("--postgres", args.postgres), ("--db-url", args.db_url),
                          ("--server-cpus", args.server_cpus)):
        if given:
            parser.error(f"{option} does not apply to --target: the server runs elsewhere, as it was started "
                         "(python -m scripts.serve chooses its mode, database and CPUs)")
    if args.db_strategies and len(args.db_strategies) > 1:
        parser.error("--target measures one database strategy, the one the server was started with "
                     "(python -m scripts.serve --db-strategy); give at most one")


def remote_mode(label: str, url: str) -> Mode:
    def command(launch: object) -> list[str]:
        raise RuntimeError(f"{label} is a remote target ({url}); the bench does not start it")

    return Mode(name=label, interface="wsgi", summary=f"a server the bench does not start, at {url}",
                command=command, process=Process(start_s=0.0), placement=Placement(in_default_set=False))


def remote_plan(plan: P, args: argparse.Namespace) -> P:
    """``plan`` turned toward the target: one mode (the label), its host, no references. The generator
    keeps the CPUs it has locally (the second half by default), so its headroom flag reads the same."""
    host, _ = parse_target(args.target)
    return replace(plan, modes=(args.label,), registry={args.label: remote_mode(args.label, args.target)},
                   host=host, target=args.target, target_status=args.target_status,
                   db_strategies=args.db_strategies or (db.REUSE,),
                   server_cpus=frozenset(), client_cpus=args.client_cpus or default_cpus()[1])


def read_status(source: str) -> dict[str, Any]:
    """One reading of a serve status (an http:// URL or a file); :class:`StatusError` says what went wrong."""
    try:
        if source.startswith(("http://", "https://")):
            with urllib.request.urlopen(source, timeout=STATUS_TIMEOUT_S) as resp:
                data = json.loads(resp.read())
        else:
            data = json.loads(Path(source).read_text())
    except (OSError, urllib.error.URLError, ValueError) as exc:
        raise StatusError(f"status {source}: no reading ({exc})") from None
    if not isinstance(data, dict) or any(key not in data for key in STATUS_KEYS):
        raise StatusError(f"status {source}: not a scripts.serve status (needs {', '.join(STATUS_KEYS)})")
    return data
