"""The baseline of `bench.reads`: bare Starlette answering a constant JSON on every path, served by
the same server setup as `trackcache serve` (web.server)."""
from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

BODY = {"order_id": "BR-1", "status": "in_transit"}


async def constant(request: Request) -> Response:
    return JSONResponse(BODY)


app = Starlette(routes=[Route("/{path:path}", constant, methods=["GET"])])
