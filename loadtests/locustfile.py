"""One locust ``FastHttpUser`` per scenario in :mod:`loadtests.scenarios`.

Usable on its own, with the web UI::

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 PlaintextUser

The harness runs it headless as a subprocess and reads the JSON file it writes; it
never imports locust itself (locust monkey-patches the standard library
through gevent). With ``WB_SCENARIO_SOURCE`` set (a user's scenario file, or a
``--paths`` list: see :mod:`loadtests.scenario_file`), the classes are that
source's scenarios instead of the sample ones.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from locust import FastHttpUser, between, events, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from loadtests import locust_cpu
from loadtests.scenario_file import from_source
from loadtests.scenarios import SCENARIOS, Probe, Scenario

# WB_CLOSE=1 (set by the harness for its keep-alive-off cells): a new connection per request.
HEADERS = {"Connection": "close"} if os.environ.get("WB_CLOSE") == "1" else None


def _task(probe: Probe) -> Any:
    headers = {**dict(probe.headers), **(HEADERS or {})} or None
    name = probe.name or probe.path
    if probe.method == "GET":
        def run(user: FastHttpUser) -> None:
            user.client.get(probe.path, name=name, headers=headers)
    else:
        def run(user: FastHttpUser) -> None:
            # locust annotates data as str or dict, but geventhttpclient sends bytes as they are, and the
            # upload must be byte-exact.
            user.client.request(probe.method, probe.path, data=probe.body,  # type: ignore[arg-type]
                                name=name, headers=headers)
    run.__name__ = f"{probe.method.lower()}_{probe.path.strip('/').split('?')[0] or 'root'}"
    return task(probe.weight)(run)


def _user_class(scenario: Scenario) -> type[FastHttpUser]:
    namespace: dict[str, Any] = {
        "__doc__": scenario.summary,
        "__module__": __name__,
        "wait_time": between(*scenario.think_s),
        # Each user is one closed-loop client; a timeout bounds a stuck request.
        "network_timeout": 30.0,
        "connection_timeout": 30.0,
    }
    for i, probe in enumerate(scenario.probes):
        fn = _task(probe)
        if fn.__name__ in namespace:  # two requests to one path in a user's mix: both must stay tasks
            fn.__name__ += f"_{i}"
        namespace[fn.__name__] = fn
    return type(scenario.user_class, (FastHttpUser,), namespace)


_SOURCE = os.environ.get("WB_SCENARIO_SOURCE", "")
for _scenario in (from_source(_SOURCE) if _SOURCE else SCENARIOS).values():
    globals()[_scenario.user_class] = _user_class(_scenario)

# Every worker reports its CPU to the master (loadtests.locust_cpu), where the bench reads it.
events.init.add_listener(lambda environment, **_: locust_cpu.install(environment))  # type: ignore[no-untyped-call]
