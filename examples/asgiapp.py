"""A plain ASGI app (no framework) to benchmark as "your own app": ``--asgi-app examples.asgiapp:app``.

It answers ``/`` with JSON, ``/health`` with text and anything else with 404; the tests use it for the ASGI
side of ``--app``/``--asgi-app``.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]


async def app(scope: Scope, receive: Callable[[], Awaitable[Message]],
              send: Callable[[Message], Awaitable[None]]) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    path = scope["path"]
    if path == "/":
        status, kind, body = 200, b"application/json", json.dumps({"hello": "asgi", "path": path}).encode()
    elif path == "/health":
        status, kind, body = 200, b"text/plain; charset=utf-8", b"ok"
    else:
        status, kind, body = 404, b"text/plain; charset=utf-8", b"not found"
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", kind), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
