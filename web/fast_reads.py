"""The customer read path, asynchronous from the socket to Redis and back:
`GET /api/customer/track-order` (and `/healthz`) answered by `ReadFastPath`, a pure ASGI handler
first in the app's middleware, past the other middleware and the router.

A read whose document is hot in the process or in the read cache, and needs no refresh
decision, costs one Redis round trip for a guest (the rate-limit charge and the cached document
in one Lua script), none for a signed-in customer whose document is hot, and no JSON work (the
cached body is joined around the data ages). Everything else, a cache miss, stale data or a
premium refresh, is decided by `web.reads.read_order` on a thread, as before (refreshes enqueued
before the answer, which says what happened); the answer is the same either way: 404 parity,
guest privacy view, rate limits, ETag/304, Cache-Control, the `refresh` object. A cached document
that is owner-only (a miss whose ownership check failed cached just the order row's owner fields)
answers a 404 at once, and goes to the thread for its owner. `POST /api/customer/track-order`
(the same read with a JSON body) takes the Starlette route into the same function."""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from urllib.parse import parse_qsl

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline import read_cache, runtime
from web import customer, ratelimit, read_bodies, read_store, reads, views
from web.auth import Customer, customer_of_authorization
from web.database import call
from web.errors import ApiError, error_answer, exception_handlers, nul_character_problem
from web.metrics import record_read, record_request, record_tracking_read

logger = logging.getLogger(__name__)

TRACK_PATH = "/api/customer/track-order"
HEALTHZ_PATH = "/healthz"
# The `refresh` object of a hit: nothing stale (a stale or refresh-asking read goes to the thread).
REFRESH_FRESH = read_bodies.refresh_json(reads.refresh_answer(reads.NOT_NEEDED, "fresh"))
REFRESH_FINAL = read_bodies.refresh_json(reads.refresh_answer(reads.NOT_NEEDED, "final"))
_JSON = b"application/json"
# The answers' header names as uvicorn wants them (lowercased bytes), made once.
_RAW_NAMES = {name: name.lower().encode("latin-1") for name in (
    "ETag", "Cache-Control", "Vary", "RateLimit-Limit", "RateLimit-Remaining", "Retry-After")}
_HEALTHZ_BODY = b'{"status":"ok"}'
_HEALTHZ_HEADERS = [(b"content-length", str(len(_HEALTHZ_BODY)).encode()), (b"content-type", _JSON),
                    (b"cache-control", b"no-store")]


@dataclass
class Answer:
    """A tracking read's answer before it is sent."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    audience: str = views.GUEST
    is_cache_hit: bool = False

    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(_RAW_NAMES.get(name) or name.lower().encode("latin-1"), value.encode("latin-1"))
                   for name, value in self.headers.items()]
        if self.status != 304:
            headers.append((b"content-length", str(len(self.body)).encode("ascii")))
            headers.append((b"content-type", _JSON))
        return headers


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def query_of(scope: Scope) -> customer.TrackQuery:
    """The tracking query in a GET's query string.

    Raises:
        ApiError: 400 for a NUL character, 422 for a query that is not valid.
    """
    query_string = scope.get("query_string", b"")
    if b"%00" in query_string or b"\x00" in query_string:
        problem = nul_character_problem(scope.get("path", ""), query_string)
        if problem:
            raise ApiError(400, "malformed_request", problem)
    return customer.parse_track_query(query_parameters(query_string))


def query_parameters(query_string: bytes) -> dict[str, str]:
    """The query string's parameters (the last of a repeated name), as `parse_qsl` gives them;
    a plain string (no escapes, no `+`) is split directly, which costs a fifth as much."""
    text = query_string.decode("latin-1")
    if "%" in text or "+" in text:
        return dict(parse_qsl(text, keep_blank_values=True))
    parameters = {}
    for pair in text.split("&"):
        if pair:
            name, _, value = pair.partition("=")
            parameters[name] = value
    return parameters


async def answer_tracking_query(scope: Scope, query: customer.TrackQuery) -> Answer:
    """The answer to a tracking read (raises ApiError for refusals, like the route always did)."""
    signed_in = customer_of_authorization(_header(scope, b"authorization"))
    customer.check_track_query(query, signed_in)
    rt = runtime.current()
    config = rt.config
    path = read_store.current(rt)
    part = path.part()
    audience = views.GUEST if signed_in is None else views.CUSTOMER
    generation = path.hot.generation
    document = path.hot_document(part, audience, query.order_id)
    is_hit = document is not None
    cache_key = None if document is not None else read_cache.key_for(query.order_id, audience)
    raw: bytes | None = None
    if signed_in is None:
        client = scope.get("client")
        key, limit = ratelimit.guest_key(client[0] if client else None), config.guest_rate_limit
        try:
            charged = await part.store.charge_and_get(key, cost=1, limit=limit, cache_key=cache_key)
        except Exception as error:  # Redis down: let the read through, from the database
            read_store.STORE_OUTAGE.failed(error, query.order_id)
            verdict = ratelimit.open_verdict(limit)
        else:
            read_store.STORE_OUTAGE.recovered()
            verdict = ratelimit.verdict_of(charged.used, limit, charged.ttl_seconds)
            raw = charged.document
    else:
        key, limit = ratelimit.customer_key(signed_in.customer_id), config.customer_rate_limit
        verdict = path.charge_later(part, key, limit=limit)
        if verdict.is_allowed and cache_key is not None:
            try:
                raw = await part.store.get(cache_key)
            except Exception as error:
                read_store.STORE_OUTAGE.failed(error, query.order_id)
            else:
                read_store.STORE_OUTAGE.recovered()
    if not verdict.is_allowed:
        raise ApiError(429, "rate_limited", f"too many tracking lookups; try again in {verdict.retry_after} s",
                       headers=verdict.headers())
    if document is None and raw is not None:
        document = read_bodies.ReadyDocument.from_bytes(raw)
        if document is not None:
            is_hit = True
            path.keep(part, audience, query.order_id, document, generation)
    if document is None:
        return await _decided_on_a_thread(scope, query, signed_in, verdict, key, limit)
    if signed_in is None:
        is_owner = reads.is_guest_owner(document, query.email or "", config.email_hash_key.reveal())
    else:
        is_owner = reads.is_customer_owner(document, signed_in)
    if not is_owner:
        return await _not_found(signed_in, verdict, key, limit, part, path, is_hit)
    # Unix seconds without making a datetime when the runtime's clock is the real one.
    now = time.time() if rt.clock is runtime.utcnow else rt.now().timestamp()
    if not document.is_complete or query.wants_refresh or document.has_stale(now, config.cache_ttl_hours * 3600):
        return await _decided_on_a_thread(scope, query, signed_in, verdict, key, limit)
    headers = customer.found_headers(document.etag, verdict, config.customer_max_age)
    if views.matches_etag(_header(scope, b"if-none-match"), document.etag):
        return Answer(304, headers, audience=audience, is_cache_hit=is_hit)
    refresh = REFRESH_FRESH if document.pollable_ids() else REFRESH_FINAL
    return Answer(200, headers, document.body(now, refresh), audience=audience, is_cache_hit=is_hit)


async def _not_found(signed_in: Customer | None, verdict: ratelimit.Verdict, key: str, limit: int,
                     part: read_store.LoopPart, path: read_store.ReadPath, is_hit: bool) -> Answer:
    extra = runtime.current().config.failed_lookup_cost - 1
    if extra > 0:
        if signed_in is None:
            try:
                charged = await part.store.charge_and_get(key, cost=extra, limit=limit, cache_key=None)
                verdict = ratelimit.verdict_of(charged.used, limit, charged.ttl_seconds)
            except Exception as error:
                read_store.STORE_OUTAGE.failed(error, key)
        else:
            verdict = path.charge_later(part, key, limit=limit, cost=extra)
    raise customer.not_found_error(signed_in, verdict)


async def _decided_on_a_thread(scope: Scope, query: customer.TrackQuery, signed_in: Customer | None,
                               verdict: ratelimit.Verdict, key: str, limit: int) -> Answer:
    """A read the cache cannot answer alone (a miss, stale data, a refresh request): the
    database and the refresh decisions run on a thread, as in `web.reads`."""
    rt = runtime.current()
    outcome = await call(reads.read_order, query.order_id, email=query.email, customer=signed_in,
                         wants_refresh=query.wants_refresh)
    audience = views.GUEST if signed_in is None else views.CUSTOMER
    if not outcome.is_found:
        if rt.config.failed_lookup_cost > 1:
            verdict = await call(ratelimit.charge, rt.coordination, key, limit=limit,
                                 cost=rt.config.failed_lookup_cost - 1)
        raise customer.not_found_error(signed_in, verdict)
    etag = views.etag_for(outcome.view)
    headers = customer.found_headers(etag, verdict, rt.config.customer_max_age)
    if not query.wants_refresh and views.matches_etag(_header(scope, b"if-none-match"), etag):
        return Answer(304, headers, audience=audience, is_cache_hit=outcome.is_cache_hit)
    body = views.with_data_age(outcome.view, rt.now()) | {"refresh": outcome.refresh}
    return Answer(200, headers, orjson.dumps(body), audience=audience, is_cache_hit=outcome.is_cache_hit)


def _response(answer: Answer) -> Response:
    return Response(answer.body, status_code=answer.status, headers=answer.headers,
                    media_type=None if answer.status == 304 else "application/json")


async def track_order(request: Request) -> Response:
    """The GET route's endpoint (HEAD, and apps without `ReadFastPath`): the same answer."""
    started = time.perf_counter()
    answer = await answer_tracking_query(request.scope, query_of(request.scope))
    record_read(answer.audience, time.perf_counter() - started, is_cache_hit=answer.is_cache_hit)
    return _response(answer)


async def track_order_by_body(request: Request) -> Response:
    """POST: the same read with a JSON body, so the email never appears in a URL."""
    started = time.perf_counter()
    query = customer.parse_track_query(await customer.track_query_body(request))
    answer = await answer_tracking_query(request.scope, query)
    record_read(answer.audience, time.perf_counter() - started, is_cache_hit=answer.is_cache_hit)
    return _response(answer)


class ReadFastPath:
    """ASGI wrapper around the Starlette app (web.app.create_app): GET tracking reads and
    `/healthz` are answered here; what Starlette's layers would give them is done here too (the
    request metric by route template, the error shape, the exception handlers, a 500 for a bug,
    which is then raised to the server to be logged). Anything else passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._handlers = exception_handlers()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            if scope["path"] == TRACK_PATH:
                await self._track(scope, receive, send)
                return
            if scope["path"] == HEALTHZ_PATH:
                started = time.perf_counter()
                await send({"type": "http.response.start", "status": 200, "headers": _HEALTHZ_HEADERS})
                await send({"type": "http.response.body", "body": _HEALTHZ_BODY})
                record_request("GET", HEALTHZ_PATH, 200, time.perf_counter() - started)
                return
        await self.app(scope, receive, send)

    async def _track(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            answer = await answer_tracking_query(scope, query_of(scope))
        except Exception as error:
            status = 500
            try:
                response, is_bug = await error_answer(self._handlers, scope, receive, error)
                status = response.status_code
                await response(scope, receive, send)
            finally:
                record_request("GET", TRACK_PATH, status, time.perf_counter() - started)
            if is_bug:  # as Starlette does: the answer is sent, the traceback goes to the server's log
                raise
            return
        try:
            await send({"type": "http.response.start", "status": answer.status, "headers": answer.raw_headers()})
            await send({"type": "http.response.body", "body": answer.body})
        finally:
            record_tracking_read(TRACK_PATH, answer.audience, answer.status, time.perf_counter() - started,
                                 is_cache_hit=answer.is_cache_hit)


routes = [Route(TRACK_PATH, track_order, methods=["GET"], name="track_order"),
          Route(TRACK_PATH, track_order_by_body, methods=["POST"], name="track_order_by_body")]
