"""Customer routes: the rules of `GET /api/customer/track-order` for guests (order id + email)
and signed-in customers (a shop-signed bearer token), whose answers `web.fast_reads` serves from
our store with ETags, rate limits, and background refreshes when the data is stale or a premium
customer asks; `GET /api/customer/orders` lists a signed-in customer's own orders with their
latest statuses."""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline import runtime
from pipeline.registration import ORDER_ID_PATTERN
from web import listing, ratelimit, shipment_queries, views
from web.admin import read_json_object
from web.auth import Customer, require_customer
from web.database import call
from web.errors import ApiError

GUEST_NOT_FOUND = "no order matches this order id and email"
CUSTOMER_NOT_FOUND = "no order of this customer has this order id"
MAX_EMAIL_LENGTH = 254
MAX_TRACK_BODY_BYTES = 4096
_TRUE, _FALSE = ("1", "true", "yes"), ("", "0", "false", "no")


@dataclass(frozen=True)
class TrackQuery:
    order_id: str
    email: str | None
    wants_refresh: bool


def parse_track_query(params: Mapping[str, str]) -> TrackQuery:
    """The query of a tracking read.

    Raises:
        ApiError: 422 with per-field errors.
    """
    fields: dict[str, str] = {}
    order_id = (params.get("order_id") or "").strip()
    if not order_id:
        fields["order_id"] = "is required"
    elif not ORDER_ID_PATTERN.match(order_id):
        fields["order_id"] = "must be 1-128 characters: letters, digits and . _ : # / -"
    email = params.get("email")
    if email is not None:
        email = email.strip()
        if not email or len(email) > MAX_EMAIL_LENGTH:
            fields["email"] = f"must be 1-{MAX_EMAIL_LENGTH} characters"
    refresh = (params.get("refresh") or "").strip().lower()
    if refresh not in _TRUE + _FALSE:
        fields["refresh"] = "must be 1 or 0"
    if fields:
        raise ApiError(422, "validation_failed", "the tracking query is not valid", fields=fields)
    return TrackQuery(order_id=order_id, email=email or None, wants_refresh=refresh in _TRUE)


async def track_query_body(request: Request) -> dict[str, str]:
    """The JSON body of `POST /api/customer/track-order` as query-like strings.

    Raises:
        ApiError: 413 too large, 400 not a JSON object, 422 an unknown field or one of the wrong type.
    """
    data = await read_json_object(request, MAX_TRACK_BODY_BYTES)
    fields: dict[str, str] = {}
    unknown = sorted(set(data) - {"order_id", "email", "refresh"})
    for name in unknown:
        fields[name] = "is not a known field (order_id, email, refresh)"
    params: dict[str, str] = {}
    for name in ("order_id", "email"):
        value = data.get(name)
        if value is None:
            continue
        if not isinstance(value, str):
            fields[name] = "must be a string"
        else:
            params[name] = value
    refresh = data.get("refresh", False)
    if isinstance(refresh, bool):
        params["refresh"] = "1" if refresh else "0"
    else:
        fields["refresh"] = "must be true or false"
    if fields:
        raise ApiError(422, "validation_failed", "the tracking request is not valid", fields=fields)
    return params


def check_track_query(query: TrackQuery, customer: Customer | None) -> None:
    """Who may ask what: guests give the order's email, only premium customers ask for refreshes.

    Raises:
        ApiError: 422 for a guest without email, 403 for a refresh asked by anyone else.
    """
    if customer is None and query.email is None:
        raise ApiError(422, "validation_failed", "guests must give the order's email (or sign in)",
                       fields={"email": "is required for guests"})
    if query.wants_refresh and (customer is None or not customer.is_premium):
        raise ApiError(403, "premium_required", "refresh=1 is for signed-in premium customers")


def found_headers(etag: str, verdict: ratelimit.Verdict, max_age: int) -> dict[str, str]:
    """The headers of a found order's answer (200 or 304)."""
    return {"ETag": etag, "Cache-Control": f"private, max-age={max_age}", "Vary": "Authorization",
            **verdict.headers()}


def not_found_error(customer: Customer | None, verdict: ratelimit.Verdict) -> ApiError:
    """The one answer for an unknown order and an order that is not the asker's."""
    return ApiError(404, "not_found", GUEST_NOT_FOUND if customer is None else CUSTOMER_NOT_FOUND,
                    headers={k: v for k, v in verdict.headers().items() if k != "Retry-After"})


async def customer_orders(request: Request) -> Response:
    """The signed-in customer's orders, newest first, with each shipment's latest status."""
    customer = require_customer(request)
    if customer is None:
        raise ApiError(401, "unauthorized", "a customer bearer token is required",
                       headers={"WWW-Authenticate": 'Bearer realm="trackcache-customer"'})
    parsed, errors = listing.parse_order_list_query(request.query_params)
    if parsed is None:
        raise ApiError(422, "validation_failed", "the order list query is not valid", fields=errors)
    limit, after = parsed
    rt = runtime.current()
    key = ratelimit.customer_key(customer.customer_id)
    verdict = await call(ratelimit.charge, rt.coordination, key, limit=rt.config.customer_rate_limit)
    if not verdict.is_allowed:
        raise ApiError(429, "rate_limited", f"too many lookups; try again in {verdict.retry_after} s",
                       headers=verdict.headers())
    orders, next_cursor = await call(shipment_queries.customer_orders, customer.customer_id, limit, after)
    body = views.jsonable({"customer_id": customer.customer_id, "count": len(orders), "orders": orders,
                           "next_cursor": next_cursor})
    headers = {"ETag": views.etag_for(body), "Cache-Control": "private, no-cache", "Vary": "Authorization",
               **verdict.headers()}
    if views.matches_etag(request.headers.get("if-none-match"), headers["ETag"]):
        return Response(status_code=304, headers=headers)
    return JSONResponse(body, headers=headers)


routes = [
    Route("/api/customer/orders", customer_orders, methods=["GET"], name="customer_orders"),
]
