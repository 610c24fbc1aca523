"""Admin routes of the shop's integration API: bulk registration with a result per item, finding
and listing shipments (filters, cursor pagination), corrections and stopping a shipment's
tracking, erasing an order's personal data, and the changes feed. Writes go to the audit log;
every admin POST also takes an Idempotency-Key (web/idempotency.py)."""
from __future__ import annotations

from collections import Counter
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline import changes_feed, runtime, shipment_admin
from pipeline.corrections import validate_correction
from pipeline.registration import TRACKING_NUMBER_PATTERN, notification_problems, validate_registration
from web import listing, shipment_queries
from web.admin import NO_STORE, admin_json, audit, checked_order_id, read_json_object
from web.auth import Staff, require_staff
from web.database import call
from web.errors import ApiError

MAX_BULK_REGISTRATIONS = 1000
# Registrations committed per transaction: a failure loses at most one chunk's work, and the
# locks a chunk holds stay short.
BULK_CHUNK = 250
MAX_CHANGES_LIMIT = 1000
DEFAULT_CHANGES_LIMIT = 100
INVALID = "invalid"


def checked_tracking_number(value: str) -> str:
    number = value.replace(" ", "").upper()
    if not TRACKING_NUMBER_PATTERN.match(number):
        raise ApiError(422, "validation_failed", "the tracking number is not valid",
                       fields={"tracking_number": "must be 4-64 characters: letters, digits and -"})
    return number


# --- bulk registration ---------------------------------------------------------------------------

def bulk_items(data: dict[str, Any]) -> list[Any]:
    """The list of registrations of a bulk body.

    Raises:
        ApiError: 422 when `shipments` is missing, empty, too long or not a list.
    """
    items = data.get("shipments")
    extra = sorted(set(data) - {"shipments"})
    if not isinstance(items, list) or not 0 < len(items) <= MAX_BULK_REGISTRATIONS or extra:
        fields = {"shipments": f"must be a list of 1-{MAX_BULK_REGISTRATIONS} registrations"}
        fields.update({name: "is not a field of a bulk registration" for name in extra})
        raise ApiError(422, "validation_failed", "the bulk registration is not valid", fields=fields)
    return items


def register_in_bulk(staff: Staff, request: Request, items: list[Any]) -> dict[str, Any]:
    """Validate every item, register the valid ones in chunks, and answer one result per item in
    the order given (sync)."""
    from pipeline import emails, service

    couriers, locales = service.enabled_couriers(), emails.available_locales()
    has_contact_keys = bool(runtime.current().config.contact_keys)
    results: list[dict[str, Any] | None] = [None] * len(items)
    valid = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            results[index] = {"index": index, "status": INVALID, "fields": {"item": "must be a JSON object"}}
            continue
        registration, errors = validate_registration(item, couriers, locales)
        if registration is not None:
            errors = notification_problems(registration, has_contact_keys=has_contact_keys)
            registration = None if errors else registration
        if registration is None:
            results[index] = {"index": index, "status": INVALID, "order_id": item.get("order_id"),
                              "tracking_number": item.get("tracking_number"), "fields": errors}
            continue
        valid.append((index, registration))
    for start in range(0, len(valid), BULK_CHUNK):
        chunk = valid[start:start + BULK_CHUNK]
        outcomes = service.register_many([(registration, None) for _, registration in chunk])
        for (index, registration), outcome in zip(chunk, outcomes):
            result = {"index": index, "status": outcome.outcome, "shipment_id": outcome.shipment_id,
                      "order_id": registration.order_id, "tracking_number": registration.tracking_number,
                      "courier": registration.courier}
            if outcome.detail:
                result["detail"] = outcome.detail
            results[index] = result
    counts = Counter(result["status"] for result in results if result is not None)
    summary = {status: counts.get(status, 0) for status in (service.CREATED, service.UNCHANGED, service.CONFLICT,
                                                             INVALID)}
    audit(staff, request, "shipment.bulk_register", None, {"count": len(items), **summary})
    return {"count": len(items), "summary": summary, "results": results}


async def bulk_register(request: Request) -> Response:
    staff = require_staff(request)
    items = bulk_items(await read_json_object(request))
    body = await call(register_in_bulk, staff, request, items)
    return JSONResponse(body, headers=NO_STORE)


# --- finding and listing -------------------------------------------------------------------------

async def list_shipments(request: Request) -> Response:
    require_staff(request)
    from pipeline import service

    query, errors = listing.parse_shipment_list_query(request.query_params, service.enabled_couriers())
    if query is None:
        raise ApiError(422, "validation_failed", "the shipment list query is not valid", fields=errors)
    items, next_cursor = await call(shipment_queries.list_shipments, query, runtime.current().now())
    return admin_json(request, {"count": len(items), "shipments": items, "next_cursor": next_cursor})


# --- corrections and stopping --------------------------------------------------------------------

def _write_answer(result: shipment_admin.ShipmentWrite, what: str) -> dict[str, Any]:
    """The answer of a shipment write, or the ApiError its outcome means."""
    if result.outcome == shipment_admin.NOT_FOUND:
        raise ApiError(404, "not_found", f"no {what}")
    if result.outcome == shipment_admin.PRECONDITION_FAILED:
        raise ApiError(412, "precondition_failed", result.detail or "If-Match does not match")
    if result.outcome == shipment_admin.CONFLICT:
        raise ApiError(409, "conflict", result.detail or "the change conflicts with what is stored")
    if result.outcome == shipment_admin.INVALID:
        raise ApiError(422, "validation_failed", result.detail or "the change is not valid", fields=result.fields)
    now = runtime.current().now()
    item = None
    if result.row is not None:
        item = shipment_queries.shipment_items_by_id([result.row.id], now).get(result.row.id)
    return {"status": result.outcome, "changed": list(result.changed_fields), "shipment": item}


def correct(staff: Staff, request: Request, order_id: str, number: str, data: dict[str, Any]) -> dict[str, Any]:
    from pipeline import emails, service

    correction, errors = validate_correction(data, service.enabled_couriers(), emails.available_locales())
    if correction is None:
        raise ApiError(422, "validation_failed", "the correction is not valid", fields=errors)
    result = shipment_admin.correct_shipment(order_id, number, correction, if_match=request.headers.get("if-match"),
                                             now=runtime.current().now())
    # The audit names the corrected fields, never their values (an email is personal data).
    audit(staff, request, "shipment.correct", order_id,
          {"tracking_number": number, "outcome": result.outcome, "fields": list(result.changed_fields),
           "asked": correction.field_names()})
    return _write_answer(result, f"shipment {number} in order {order_id}")


async def correct_shipment(request: Request) -> Response:
    staff = require_staff(request)
    order_id = checked_order_id(request.path_params["order_id"])
    number = checked_tracking_number(request.path_params["tracking_number"])
    data = await read_json_object(request)
    body = await call(correct, staff, request, order_id, number, data)
    return JSONResponse(body, headers=NO_STORE)


def stop(staff: Staff, request: Request, order_id: str, number: str) -> dict[str, Any]:
    result = shipment_admin.stop_tracking(order_id, number, if_match=request.headers.get("if-match"),
                                          now=runtime.current().now())
    audit(staff, request, "shipment.stop", order_id, {"tracking_number": number, "outcome": result.outcome})
    return _write_answer(result, f"shipment {number} in order {order_id}")


async def stop_tracking(request: Request) -> Response:
    staff = require_staff(request)
    order_id = checked_order_id(request.path_params["order_id"])
    number = checked_tracking_number(request.path_params["tracking_number"])
    body = await call(stop, staff, request, order_id, number)
    return JSONResponse(body, headers=NO_STORE)


def erase(staff: Staff, request: Request, order_id: str) -> dict[str, Any]:
    result = shipment_admin.erase_order(order_id, now=runtime.current().now())
    audit(staff, request, "order.erase", order_id, {"outcome": result.outcome, "shipments": len(result.shipment_ids)})
    if result.outcome == shipment_admin.NOT_FOUND:
        raise ApiError(404, "not_found", f"no order {order_id}")
    return {"status": result.outcome, "order_id": order_id, "erased": list(shipment_admin.ERASED_ORDER_VALUES),
            "shipments": len(result.shipment_ids)}


async def erase_order(request: Request) -> Response:
    staff = require_staff(request)
    order_id = checked_order_id(request.path_params["order_id"])
    body = await call(erase, staff, request, order_id)
    return JSONResponse(body, headers=NO_STORE)


# --- the changes feed ----------------------------------------------------------------------------

def parse_changes_query(params: Any) -> tuple[str | changes_feed.FeedCursor, int]:
    """(cursor or "latest", limit) of a changes read.

    Raises:
        ApiError: 422 with per-field errors.
    """
    fields: dict[str, str] = {}
    for name in params:
        if name not in ("after", "limit"):
            fields[name] = "is not a parameter of the changes feed (after, limit)"
    raw_after = params.get("after")
    after: str | changes_feed.FeedCursor = changes_feed.START
    if raw_after == "latest":
        after = "latest"
    elif raw_after is not None:
        try:
            after = changes_feed.decode_cursor(raw_after)
        except ValueError:
            fields["after"] = "must be a cursor this feed handed out, or 'latest'"
    raw_limit = params.get("limit")
    limit = DEFAULT_CHANGES_LIMIT
    if raw_limit is not None:
        if not raw_limit.isdigit() or not 0 < int(raw_limit) <= MAX_CHANGES_LIMIT:
            fields["limit"] = f"must be 1-{MAX_CHANGES_LIMIT}"
        else:
            limit = int(raw_limit)
    if fields:
        raise ApiError(422, "validation_failed", "the changes query is not valid", fields=fields)
    return after, limit


def changes_answer(after: str | changes_feed.FeedCursor, limit: int) -> dict[str, Any]:
    cursor = changes_feed.head_cursor() if after == "latest" else after
    assert isinstance(cursor, changes_feed.FeedCursor)
    page, next_cursor = shipment_queries.changes_page(cursor, limit, runtime.current().now())
    return {"count": len(page), "changes": page, "next_cursor": next_cursor, "has_more": len(page) == limit}


async def changes(request: Request) -> Response:
    require_staff(request)
    after, limit = parse_changes_query(request.query_params)
    return admin_json(request, await call(changes_answer, after, limit))


routes = [
    Route("/api/admin/shipments", list_shipments, methods=["GET"], name="list_shipments"),
    Route("/api/admin/shipments/bulk", bulk_register, methods=["POST"], name="bulk_register"),
    Route("/api/admin/shipments/{order_id:path}/{tracking_number}", correct_shipment, methods=["PATCH"],
          name="correct_shipment"),
    Route("/api/admin/shipments/{order_id:path}/{tracking_number}", stop_tracking, methods=["DELETE"],
          name="stop_tracking"),
    Route("/api/admin/orders/{order_id:path}", erase_order, methods=["DELETE"], name="erase_order"),
    Route("/api/admin/changes", changes, methods=["GET"], name="changes"),
]
