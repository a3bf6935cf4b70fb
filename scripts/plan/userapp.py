"""A user's own app under every mode: ``--app``/``--asgi-app``, ``--app-dir``, ``--env``, its scenarios.

The sample apps (``servers.APPS``) are what a mode serves by default. With a user's app, each mode serves
the user's callable of the mode's interface; a mode whose interface the user gave no app for is "not
applicable", with the reason, in the console, plan.json and summary.md (never silently dropped). The
scenarios come from ``--scenario-file`` and/or ``--paths`` (:mod:`loadtests.scenario_file`), each request
with what a correct answer is, checked under every mode before load (:mod:`scripts.run.verify`).

What only makes sense for the sample apps does not run for a user's app: the fork references (the rates a
fork-per-request server is held to with the sample plaintext), the database strategies, and the open-loop
ladder, which is tuned to the sample ``io`` endpoint's 20 ms wait; ``--open-loop-path`` runs it on a path
of the user's app instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from apps.adapted import ENV as ADAPTED_ENV
from loadtests.scenario_file import ScenarioFileError, load_scenario_file, paths_scenarios
from loadtests.scenarios import Expect, Probe, Scenario
from scripts.modes import Checks, Interface, Mode

_SPEC = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
OPEN_LOOP_USER_SCENARIO = "open-loop"  # the ladder's scenario for a user's app (--open-loop-path)
# --adapt: what the other interface's servers serve, and the suffix that names such a mode in every table.
ADAPTED: dict[Interface, str] = {"wsgi": "apps.adapted:wsgi", "asgi": "apps.adapted:asgi"}
ADAPTED_SUFFIX = "+a2wsgi"


@dataclass(frozen=True, kw_only=True, slots=True)
class UserApp:
    """The user's app as every server of the run gets it."""

    wsgi: str | None = None  # MODULE:CALLABLE
    asgi: str | None = None
    app_dir: Path | None = None  # put first on every server's PYTHONPATH
    env: tuple[tuple[str, str], ...] = ()  # set in every server's environment
    health_path: str | None = None  # polled until 200; None: the first request, any answer
    scenario_file: Path | None = None
    adapt: bool = False  # serve the app under the other interface's modes too, through a2wsgi

    def own(self, interface: Interface) -> str | None:
        return self.wsgi if interface == "wsgi" else self.asgi

    def adapted(self, interface: Interface) -> bool:
        return self.adapt and self.own(interface) is None

    def spec_for(self, interface: Interface) -> str | None:
        return ADAPTED[interface] if self.adapted(interface) else self.own(interface)

    def adapted_env(self) -> dict[str, str]:
        """What apps.adapted reads: the one app given, to wrap for the other interface."""
        return {ADAPTED_ENV: self.wsgi or self.asgi or ""} if self.adapt else {}

    def not_applicable(self, mode: Mode) -> str | None:
        """Why ``mode`` cannot serve this app, or None when it can."""
        if self.spec_for(mode.interface) is not None:
            return None
        given = "WSGI (--app)" if self.wsgi else "ASGI (--asgi-app)"
        option = "--asgi-app" if mode.interface == "asgi" else "--app"
        return (f"serves {mode.interface.upper()} apps; the app given is {given} only (give {option} too, or "
                f"--adapt to run it through a2wsgi)")

    def describe(self) -> dict[str, object]:
        return {"wsgi": self.wsgi, "asgi": self.asgi, "app_dir": str(self.app_dir) if self.app_dir else None,
                "env": sorted(k for k, _ in self.env),  # names only: values may be secrets
                "health_path": self.health_path,
                "scenario_file": str(self.scenario_file) if self.scenario_file else None, "adapt": self.adapt}


def adapted_modes(app: UserApp, registry: Mapping[str, Mode], modes: tuple[str, ...]) -> dict[str, Mode]:
    """The run's registry entries for ``modes``: a mode that serves the app through a2wsgi becomes an entry of its
    own, MODE+a2wsgi, so every table and chart names the adapter; the others are as registered."""
    entries = {}
    for name in modes:
        mode = registry[name]
        if app.adapted(mode.interface):
            name = name + ADAPTED_SUFFIX
            mode = replace(mode, name=name, summary=f"{mode.summary}; the app wrapped by a2wsgi",
                           checks=Checks())
        entries[name] = mode
    return entries


def server_env(app: UserApp, env: dict[str, str], root: Path) -> dict[str, str]:
    """``env`` (a server's environment) for the user's app: its folder first on the import path, so its modules win
    over ours, then the project root; then its settings, and what apps.adapted reads under --adapt."""
    env = dict(env)
    if app.app_dir:
        env["PYTHONPATH"] = os.pathsep.join((str(app.app_dir), str(root)))
    env.update(app.env)
    env.update(app.adapted_env())
    return env


def load_request(scenarios: Mapping[str, Scenario]) -> Scenario:
    """The one request a steady load sends to the user's app (the faults suite): the --open-loop-path GET if given,
    else the first request of the first scenario (the scenario file's, then --paths'), as a scenario of its own so
    it can be verified alone."""
    chosen = scenarios.get(OPEN_LOOP_USER_SCENARIO) or next(iter(scenarios.values()))
    probe = chosen.probes[0]
    return Scenario(name=probe.name or chosen.name, summary=f"{probe.method} {probe.path}", probes=(probe,))


def ready_probe(app: UserApp, scenarios: Mapping[str, Scenario]) -> tuple[str, bool]:
    """The path polled until the server is up, and whether it must answer 200 (a health path must; the first
    request of the first scenario only has to answer, since verification judges its answer)."""
    if app.health_path:
        return app.health_path, True
    return next(iter(scenarios.values())).probes[0].path, False


_EXCEPTION = re.compile(r"^(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*(?:Error|Exception)(?::.*)?$")
LOG_SCAN_BYTES = 256 * 1024  # enough for the first worker's traceback; a log can be long


def failure_note(app: UserApp, log_path: Path) -> str:
    """What to add to the log's tail for a user's app that failed to start or answered an error: the first
    exception the server logged (a server's own traceback can push the app's out of the tail, as gunicorn's
    "Worker failed to boot" does) and a one-line hint."""
    try:
        with log_path.open("rb") as f:
            text = f.read(LOG_SCAN_BYTES).decode("utf-8", "replace")
    except OSError:
        return ""
    first = next((ln.strip() for ln in text.splitlines() if _EXCEPTION.match(ln.strip())), None)
    if first is None:
        return ""
    where = f"--app-dir {app.app_dir}" if app.app_dir else "no --app-dir"
    keys = ", ".join(k for k, _ in app.env) or "none"
    return (f"first error in the server log: {first}\n"
            f"hint: does the app import and start outside the bench? Its module is looked up on the project root "
            f"({where}); --app-dir DIR adds the folder it lives in; settings it reads go in with --env KEY=VALUE "
            f"(given: {keys}).")


# Run in a fresh interpreter with a server's environment: is MODULE:CALLABLE there, and does it import?
_IMPORT_CHECK = """
import importlib, importlib.util, sys
module, _, name = sys.argv[1].partition(":")
try:
    found = importlib.util.find_spec(module) is not None
except ModuleNotFoundError:
    found = False
if not found:
    sys.exit(3)
if not hasattr(importlib.import_module(module), name):
    print(f"AttributeError: module {module!r} has no attribute {name!r}", file=sys.stderr)
    sys.exit(3)
"""
IMPORT_CHECK_S = 60.0
ROOT = Path(__file__).resolve().parents[2]


def _where(app: UserApp) -> str:
    where = f"in --app-dir {app.app_dir}, then the project root" if app.app_dir else "in the project root only"
    return f"looked up {where}; --app-dir DIR adds the folder it lives in, --env KEY=VALUE a setting it reads"


def check_import(app: UserApp) -> str:
    """Import the app once, as a server would, before any cell starts. Raises ValueError (a usage error) when its
    module or callable is not there; returns a warning when the module is there but raises on import (every
    cell will fail and record it, which is worth saying once up front); "" when it imports."""
    for option, spec in (("--app", app.wsgi), ("--asgi-app", app.asgi)):
        if spec is None:
            continue
        env = server_env(app, dict(os.environ), ROOT)
        try:
            done = subprocess.run([sys.executable, "-c", _IMPORT_CHECK, spec], env=env, cwd=ROOT, capture_output=True,
                                  text=True, timeout=IMPORT_CHECK_S, check=False)
        except subprocess.TimeoutExpired:
            return f"warning: {option} {spec} took over {IMPORT_CHECK_S:.0f}s to import; the cells will tell"
        lines = [ln.strip() for ln in done.stderr.splitlines() if _EXCEPTION.match(ln.strip())]
        if done.returncode == 3:
            raise ValueError(f"{option} {spec}: " + (lines[-1] if lines else f"no module {spec.partition(':')[0]!r}")
                             + f" ({_where(app)})")
        if done.returncode != 0:
            first = lines[-1] if lines else f"exit status {done.returncode}"
            return (f"warning: {option} {spec} fails to import: {first}\n  every cell will fail with it; "
                    f"{_where(app)}")
    return ""


# command line ---------------------------------------------------------------


def app_spec(value: str) -> str:
    if not _SPEC.fullmatch(value):
        raise argparse.ArgumentTypeError(f"expected MODULE:CALLABLE (for example examples.flaskapp:app), "
                                         f"got {value!r}")
    return value


def env_pair(value: str) -> tuple[str, str]:
    key, sep, val = value.partition("=")
    if not sep or not _ENV_KEY.fullmatch(key):
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY a variable name, got {value!r}")
    return key, val


def _path(value: str) -> str:
    if not value.startswith("/") or any(c.isspace() for c in value):
        raise argparse.ArgumentTypeError(f"expected a path starting with / and holding no spaces, got {value!r}")
    return value


OPEN_LOOP_HELP = "run the open-loop ladder on GET PATH of your app (off for your app without it)"


def add_arguments(p: argparse.ArgumentParser, open_loop_help: str = OPEN_LOOP_HELP) -> None:
    """The options of a user's app, in one group (also parsed before the full command line: see :func:`early`);
    ``open_loop_help``: what --open-loop-path does for the command (the faults load it)."""
    g = p.add_argument_group("your own app (see README: Benchmark your own app)")
    g.add_argument("--app", type=app_spec, metavar="MODULE:CALLABLE", help="a WSGI app to serve instead of the "
                   "sample app, under every WSGI mode")
    g.add_argument("--asgi-app", type=app_spec, metavar="MODULE:CALLABLE", help="an ASGI app, under every ASGI mode")
    g.add_argument("--app-dir", type=Path, help="folder put first on every server's import path (default: the "
                   "project root only)")
    g.add_argument("--env", type=env_pair, action="append", default=[], metavar="KEY=VALUE",
                   help="set in every server's environment; repeatable")
    g.add_argument("--scenario-file", type=Path, metavar="FILE.toml", help="the app's requests and what a correct "
                   "answer is (see examples/flaskapp.toml)")
    g.add_argument("--paths", metavar="/A,/B?X=1", help="GET these paths, each must answer 200: a scenario each")
    g.add_argument("--health-path", type=_path, help="polled until it answers 200 before a cell starts (default: "
                   "the file's health, else the first request, any answer)")
    g.add_argument("--adapt", action="store_true", help="also run the app under the modes of the other interface, "
                   f"wrapped by a2wsgi; those modes are named MODE{ADAPTED_SUFFIX} in every table")
    g.add_argument("--open-loop-path", type=_path, help=open_loop_help)


def early(argv: list[str] | None) -> argparse.Namespace:
    """The user-app options alone, read before the full parser is built (its scenario names depend on them)."""
    p = argparse.ArgumentParser(prog="python -m scripts.bench", add_help=False)  # its errors read as the bench's
    add_arguments(p)
    args, _ = p.parse_known_args(argv)
    return args


def scenarios_of(args: argparse.Namespace) -> tuple[dict[str, Scenario], str | None]:
    """The user's scenarios (file first, then --paths) and the file's health path; raises ScenarioFileError."""
    scenarios: dict[str, Scenario] = {}
    health = None
    if args.scenario_file is not None:
        scenarios, health = load_scenario_file(args.scenario_file)
    if args.paths is not None:
        for name, scenario in paths_scenarios(args.paths).items():
            if name in scenarios:
                raise ScenarioFileError(f"--paths: scenario {name!r} is also in {args.scenario_file}")
            scenarios[name] = scenario
    return scenarios, health


def from_args(args: argparse.Namespace) -> tuple[UserApp, dict[str, Scenario]] | None:
    """The user's app and scenarios, or None for the sample apps; raises ValueError for what cannot run."""
    wants = (args.scenario_file or args.paths or args.app_dir or args.env or args.open_loop_path
             or args.health_path or args.adapt)
    if not (args.app or args.asgi_app):
        if wants:
            raise ValueError("--scenario-file, --paths, --app-dir, --env, --health-path, --open-loop-path and "
                             "--adapt go with --app MODULE:CALLABLE or --asgi-app MODULE:CALLABLE")
        return None
    if args.adapt and args.app and args.asgi_app:
        raise ValueError("--adapt: every mode has an app of its interface already (--app and --asgi-app)")
    if args.adapt and importlib.util.find_spec("a2wsgi") is None:
        raise ValueError("--adapt needs a2wsgi: pip install a2wsgi (or the project's adapters extra)")
    if not (args.scenario_file or args.paths):
        raise ValueError("your app needs requests to send: --scenario-file FILE.toml and/or --paths /a,/b")
    if args.app_dir is not None and not args.app_dir.is_dir():
        raise ValueError(f"--app-dir {args.app_dir}: no such folder")
    scenarios, health = scenarios_of(args)
    if args.open_loop_path:
        probe = Probe(method="GET", path=args.open_loop_path, expect=Expect(), name=OPEN_LOOP_USER_SCENARIO)
        scenarios[OPEN_LOOP_USER_SCENARIO] = Scenario(name=OPEN_LOOP_USER_SCENARIO, summary=f"GET "
                                                      f"{args.open_loop_path} (open-loop ladder)", probes=(probe,))
    app = UserApp(wsgi=args.app, asgi=args.asgi_app,
                  app_dir=args.app_dir.resolve() if args.app_dir else None, env=tuple(args.env),
                  health_path=args.health_path or health,
                  scenario_file=args.scenario_file.resolve() if args.scenario_file else None, adapt=args.adapt)
    warning = check_import(app)
    if warning:
        print(warning, file=sys.stderr)
    return app, scenarios
