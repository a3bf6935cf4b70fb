"""A Starlette ASGI app over :mod:`apps.workloads`: ``apps.asgi:app``.

Routes come from the same endpoint table as the WSGI app; 404 and 405 go
through the same workload responses, so every status, header that matters and
body is byte-identical to :mod:`apps.wsgi`.
"""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from apps import workloads


def _send(result: workloads.Response) -> Response:
    # Headers are passed raw: Starlette would otherwise add "; charset=utf-8" to a
    # text media type on its own and the bytes would differ from the WSGI app's.
    return Response(content=result.body, status_code=result.status, headers=dict(result.header_list()))


def _handler(endpoint: workloads.Endpoint):  # type: ignore[no-untyped-def]
    async def handle(request: Request) -> Response:
        body = await request.body() if endpoint.reads_body else b""
        result = endpoint.handler(
            workloads.Request(request.method, request.url.path, request.url.query, body)
        )
        if isinstance(result, workloads.Wait):
            await asyncio.sleep(result.seconds)
            result = result.then
        return _send(result)

    return handle


async def _not_found(request: Request, exc: Exception) -> Response:
    return _send(workloads.not_found())


async def _method_not_allowed(request: Request, exc: Exception) -> Response:
    endpoint = workloads.ENDPOINTS.get(request.url.path)
    if endpoint is None:  # pragma: no cover - Starlette only raises 405 for a known route
        return _send(workloads.not_found())
    return _send(workloads.method_not_allowed(endpoint))


async def _http_exception(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return await _not_found(request, exc)
    if exc.status_code == 405:
        return await _method_not_allowed(request, exc)
    return Response(exc.detail.encode(), exc.status_code, media_type=workloads.TEXT)


app = Starlette(
    routes=[
        Route(e.path, _handler(e), methods=sorted(e.methods), name=e.path.strip("/"))
        for e in workloads.ENDPOINTS.values()
    ],
    exception_handlers={HTTPException: _http_exception},
)
