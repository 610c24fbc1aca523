"""HTTP validators on every answer: `ETags` gives each 200 that does not carry an ETag yet a weak
one over its body, and answers a GET whose If-None-Match names it with 304. Routes that
know better (the tracking read, whose body holds a data age that changes every second) set their
own ETag and are left alone."""
from __future__ import annotations

import hashlib

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from web.views import matches_etag

# Bodies larger than this are streamed on without an ETag rather than held in memory.
MAX_BUFFERED_BYTES = 1 << 20


def weak_etag(body: bytes) -> str:
    return 'W/"' + hashlib.sha256(body).hexdigest()[:32] + '"'


class ETags:
    """ASGI middleware: a weak ETag on every 200 lacking one; 304 when a GET's If-None-Match
    names it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # HEAD answers carry no body to hash (and one of GET's length): left as they are.
        if scope["type"] != "http" or scope["method"] == "HEAD":
            await self.app(scope, receive, send)
            return
        if_none_match = Headers(scope=scope).get("if-none-match")
        is_read = scope["method"] == "GET"
        start: Message | None = None
        chunks: list[bytes] = []
        size = 0
        passing_through = False

        async def send_with_etag(message: Message) -> None:
            nonlocal start, size, passing_through
            if passing_through:
                await send(message)
                return
            if message["type"] == "http.response.start":
                headers = Headers(raw=message["headers"])
                if message["status"] != 200 or "etag" in headers:
                    passing_through = True
                    await send(message)
                    return
                start = message
                return
            if message["type"] != "http.response.body" or start is None:
                await send(message)
                return
            body = message.get("body", b"")
            chunks.append(body)
            size += len(body)
            if size > MAX_BUFFERED_BYTES:
                passing_through = True
                await send(start)
                await send({"type": "http.response.body", "body": b"".join(chunks),
                            "more_body": message.get("more_body", False)})
                return
            if message.get("more_body", False):
                return
            whole = b"".join(chunks)
            etag = weak_etag(whole)
            headers = MutableHeaders(raw=list(start["headers"]))
            headers["ETag"] = etag
            if is_read and matches_etag(if_none_match, etag):
                for name in ("content-length", "content-type"):
                    if name in headers:
                        del headers[name]
                await send({"type": "http.response.start", "status": 304, "headers": headers.raw})
                await send({"type": "http.response.body", "body": b""})
                return
            await send({**start, "headers": headers.raw})
            await send({"type": "http.response.body", "body": whole})

        await self.app(scope, receive, send_with_etag)
