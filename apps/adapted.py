"""A user's app served by the servers of the other interface, through a2wsgi (``bench --adapt``).

The bench serves ``apps.adapted:asgi`` (a WSGI app wrapped for ASGI servers) or ``apps.adapted:wsgi`` (an ASGI
app wrapped for WSGI servers) and names the user's own app in :data:`ENV`. The user's app is imported with this
module, so an import error stops the server at start as it would unwrapped; the wrapper is built in each serving
process at its first request, since a2wsgi's ASGIMiddleware starts an event-loop thread, which a fork would lose.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable
from typing import Any

from servers.wsgi import load_app

ENV = "WORKERBENCH_ADAPTED_APP"  # MODULE:CALLABLE of the app to adapt


def _user_app(spec: str) -> Any:
    try:
        return load_app(spec)
    except ValueError as exc:
        raise RuntimeError(f"{ENV}: {exc}") from None


_APP: Any = _user_app(os.environ[ENV]) if os.environ.get(ENV) else None


@functools.cache
def _wrapped(kind: str) -> Any:
    if _APP is None:
        raise RuntimeError(f"{ENV} names no app to adapt")
    # a2wsgi runs a WSGI app in a thread pool under the event loop (WSGIMiddleware), or an ASGI app on an event
    # loop in a thread of its own (ASGIMiddleware): both are part of what the adapted figures measure.
    from a2wsgi import ASGIMiddleware, WSGIMiddleware

    return WSGIMiddleware(_APP) if kind == "asgi" else ASGIMiddleware(_APP)


async def asgi(scope: dict[str, Any], receive: Callable[[], Any], send: Callable[[Any], Any]) -> None:
    """The WSGI app named in ENV, as an ASGI 3 app (a coroutine function, as ASGI servers detect one)."""
    await _wrapped("asgi")(scope, receive, send)


def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """The ASGI app named in ENV, as a WSGI app."""
    result: Iterable[bytes] = _wrapped("wsgi")(environ, start_response)
    return result
