"""Notification routes: the admin API of the shop's webhook endpoints (create, list, update,
disable, delete, rotate the secret, send a test event, list deliveries with their attempts,
replay one), and the customer's links from emails (open the tracking page, unsubscribe).
Endpoints validate, call one function of `pipeline.outbox` and shape the answer."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from pipeline import emails, outbox, runtime
from pipeline import webhook_events as events
from web import sessions
from web.admin import NO_STORE, admin_json, audit, read_json_object
from web.auth import Staff, require_staff
from web.database import call
from web.errors import ApiError
from web.webhooks import read_body

MAX_DESCRIPTION = 255
DELIVERIES_LIMIT_MAX = 200


def enqueue(outbox_ids: list[int]) -> None:
    from pipeline import actors

    actors.enqueue_deliveries(outbox_ids)


def endpoint_id_of(request: Request) -> int:
    raw = request.path_params["endpoint_id"]
    if not raw.isdigit() or len(raw) > 9:
        raise ApiError(422, "validation_failed", "the endpoint id is not valid",
                       fields={"endpoint_id": "must be an endpoint id (a positive integer)"})
    return int(raw)


def parse_endpoint(data: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """The endpoint fields of a create (all but description required) or update (any) body.

    Raises:
        ApiError: 422 with per-field errors.
    """
    config = runtime.current().config
    fields: dict[str, str] = {}
    values: dict[str, Any] = {}
    unknown = sorted(set(data) - {"url", "events", "description", "enabled"})
    if unknown:
        fields[unknown[0]] = "is not a field of an endpoint (url, events, description, enabled)"
    if "url" in data or not partial:
        problem = events.url_problem(data.get("url"), allow_http=config.notify_allow_http)
        if problem:
            fields["url"] = problem
        else:
            values["url"] = data["url"].strip()
    if "events" in data or not partial:
        problem = events.events_problem(data.get("events"))
        if problem:
            fields["events"] = problem
        else:
            values["events"] = sorted(set(data["events"]))
    if "description" in data:
        description = data["description"]
        if description is not None and (not isinstance(description, str) or len(description) > MAX_DESCRIPTION):
            fields["description"] = f"must be a string of at most {MAX_DESCRIPTION} characters"
        else:
            values["description"] = (description or "").strip()
    if "enabled" in data:
        if not isinstance(data["enabled"], bool) or not partial:
            fields["enabled"] = "must be true or false (and only in an update)"
        else:
            values["enabled"] = data["enabled"]
    if partial and not values and not fields:
        fields["url"] = "give at least one of url, events, description, enabled"
    if fields:
        raise ApiError(422, "validation_failed", "the endpoint is not valid", fields=fields)
    return values


# --- admin: endpoints ------------------------------------------------------------------------------

def create(staff: Staff, request: Request, values: Mapping[str, Any]) -> dict[str, Any]:
    now = runtime.current().now()
    endpoint_id, secret = outbox.create_endpoint(values["url"], values["events"], values.get("description", ""),
                                                 now=now)
    audit(staff, request, "notification.endpoint.create", str(endpoint_id),
          {"url": values["url"], "events": values["events"]})
    endpoint = outbox.endpoint_row(endpoint_id)
    assert endpoint is not None
    return {**outbox.endpoint_view(endpoint), "secret": secret}


async def create_endpoint(request: Request) -> Response:
    staff = require_staff(request)
    values = parse_endpoint(await read_json_object(request), partial=False)
    body = await call(create, staff, request, values)
    return admin_json(request, body, status=201)


def summaries() -> dict[str, Any]:
    endpoints = outbox.endpoint_summaries(now=runtime.current().now())
    return {"count": len(endpoints), "endpoints": endpoints, "event_types": list(events.EVENT_TYPES)}


async def list_endpoints(request: Request) -> Response:
    require_staff(request)
    return admin_json(request, await call(summaries))


def one(endpoint_id: int) -> dict[str, Any] | None:
    endpoint = outbox.endpoint_row(endpoint_id)
    return outbox.endpoint_view(endpoint) if endpoint is not None else None


def not_found(endpoint_id: int) -> ApiError:
    return ApiError(404, "not_found", f"no notification endpoint {endpoint_id}")


async def get_endpoint(request: Request) -> Response:
    require_staff(request)
    endpoint_id = endpoint_id_of(request)
    view = await call(one, endpoint_id)
    if view is None:
        raise not_found(endpoint_id)
    return admin_json(request, view)


def change(staff: Staff, request: Request, endpoint_id: int, values: Mapping[str, Any]) -> dict[str, Any] | None:
    if not outbox.update_endpoint(endpoint_id, values, now=runtime.current().now()):
        return None
    audit(staff, request, "notification.endpoint.update", str(endpoint_id), dict(values))
    return one(endpoint_id)


async def update_endpoint(request: Request) -> Response:
    staff = require_staff(request)
    endpoint_id = endpoint_id_of(request)
    values = parse_endpoint(await read_json_object(request), partial=True)
    view = await call(change, staff, request, endpoint_id, values)
    if view is None:
        raise not_found(endpoint_id)
    return admin_json(request, view)


def remove(staff: Staff, request: Request, endpoint_id: int) -> bool:
    removed = outbox.delete_endpoint(endpoint_id, now=runtime.current().now())
    if removed:
        audit(staff, request, "notification.endpoint.delete", str(endpoint_id), None)
    return removed


async def delete_endpoint(request: Request) -> Response:
    staff = require_staff(request)
    endpoint_id = endpoint_id_of(request)
    if not await call(remove, staff, request, endpoint_id):
        raise not_found(endpoint_id)
    return Response(status_code=204, headers=NO_STORE)


def rotate(staff: Staff, request: Request, endpoint_id: int) -> dict[str, Any] | None:
    secret = outbox.rotate_secret(endpoint_id, now=runtime.current().now())
    if secret is None:
        return None
    audit(staff, request, "notification.endpoint.rotate_secret", str(endpoint_id), None)
    view = one(endpoint_id)
    return {**(view or {}), "secret": secret}


async def rotate_secret(request: Request) -> Response:
    staff = require_staff(request)
    endpoint_id = endpoint_id_of(request)
    body = await call(rotate, staff, request, endpoint_id)
    if body is None:
        raise not_found(endpoint_id)
    return admin_json(request, body)


def send_test(staff: Staff, request: Request, endpoint_id: int) -> int | None:
    outbox_id = outbox.queue_test_event(endpoint_id, now=runtime.current().now())
    if outbox_id is None:
        return None
    enqueue([outbox_id])
    audit(staff, request, "notification.endpoint.test", str(endpoint_id), {"delivery_id": outbox_id})
    return outbox_id


async def test_endpoint(request: Request) -> Response:
    staff = require_staff(request)
    endpoint_id = endpoint_id_of(request)
    outbox_id = await call(send_test, staff, request, endpoint_id)
    if outbox_id is None:
        raise not_found(endpoint_id)
    return JSONResponse({"delivery_id": outbox_id, "event_type": events.TEST}, status_code=202, headers=NO_STORE)


def delivery_list(endpoint_id: int, limit: int, failed_only: bool) -> dict[str, Any] | None:
    if outbox.endpoint_row(endpoint_id) is None:
        return None
    found = outbox.deliveries(endpoint_id, limit=limit, failed_only=failed_only)
    return {"endpoint_id": endpoint_id, "count": len(found), "deliveries": found}


async def list_deliveries(request: Request) -> Response:
    require_staff(request)
    endpoint_id = endpoint_id_of(request)
    raw_limit = request.query_params.get("limit", "50")
    status = request.query_params.get("status")
    fields = {}
    if not raw_limit.isdigit() or not 0 < int(raw_limit) <= DELIVERIES_LIMIT_MAX:
        fields["limit"] = f"must be 1-{DELIVERIES_LIMIT_MAX}"
    if status not in (None, "failed"):
        fields["status"] = "must be failed (or left out for every delivery)"
    if fields:
        raise ApiError(422, "validation_failed", "the deliveries query is not valid", fields=fields)
    body = await call(delivery_list, endpoint_id, int(raw_limit), status == "failed")
    if body is None:
        raise not_found(endpoint_id)
    return admin_json(request, body)


def replay_one(staff: Staff, request: Request, delivery_id: int) -> int | None:
    outbox_id = outbox.replay(delivery_id, now=runtime.current().now())
    if outbox_id is None:
        return None
    enqueue([outbox_id])
    audit(staff, request, "notification.delivery.replay", str(delivery_id), {"delivery_id": outbox_id})
    return outbox_id


async def replay_delivery(request: Request) -> Response:
    staff = require_staff(request)
    raw = request.path_params["delivery_id"]
    if not raw.isdigit() or len(raw) > 18:
        raise ApiError(422, "validation_failed", "the delivery id is not valid",
                       fields={"delivery_id": "must be a delivery id (a positive integer)"})
    outbox_id = await call(replay_one, staff, request, int(raw))
    if outbox_id is None:
        raise ApiError(404, "not_found", f"no webhook delivery {raw}")
    return JSONResponse({"delivery_id": outbox_id, "replay_of": int(raw)}, status_code=202, headers=NO_STORE)


# --- customers: links from emails ----------------------------------------------------------------

def link_key() -> str:
    return sessions.key_from_config(runtime.current().config)


async def open_tracking_page(request: Request) -> Response:
    """The email's tracking link: opens the tracking page under a fresh page link (the email's own
    link lasts TRACK_LINK_DAYS, longer than a page link)."""
    from web import pages

    order_id = emails.read_link_token(link_key(), request.query_params.get("t", ""), emails.TRACK_SALT,
                                      max_age_seconds=emails.TRACK_LINK_DAYS * 86400)
    if order_id is None:
        return pages.track_form_page(message=pages.LINK_EXPIRED, status=410)
    link = sessions.make_track_link(link_key(), order_id)
    return RedirectResponse(f"/track/view?{urlencode({'t': link})}", status_code=303,
                            headers={**NO_STORE, "Referrer-Policy": "no-referrer"})


async def unsubscribe_page(request: Request) -> Response:
    """GET shows a confirmation button (mail scanners that follow links must not unsubscribe);
    POST (the button, or a mail client's one-click List-Unsubscribe-Post) stops the emails."""
    from web import pages

    token = request.query_params.get("t", "")
    order_id = emails.read_link_token(link_key(), token, emails.UNSUBSCRIBE_SALT)
    if order_id is None:
        return pages.render("unsubscribe.html", {"state": "invalid", "token": ""}, status=400)
    if request.method == "GET":
        return pages.render("unsubscribe.html", {"state": "confirm", "token": token, "order_id": order_id})
    await read_body(request, 4096)
    await call(outbox.unsubscribe, order_id, now=runtime.current().now())
    return pages.render("unsubscribe.html", {"state": "done", "token": "", "order_id": order_id})


def page(path: str, endpoint: Any, methods: list[str]) -> Route:
    return Route(path, endpoint, methods=methods, name=endpoint.__name__, include_in_schema=False)


BASE = "/api/admin/notifications"
routes = [
    Route(f"{BASE}/endpoints", create_endpoint, methods=["POST"], name="create_notification_endpoint"),
    Route(f"{BASE}/endpoints", list_endpoints, methods=["GET"], name="list_notification_endpoints"),
    Route(f"{BASE}/endpoints/{{endpoint_id}}", get_endpoint, methods=["GET"], name="get_notification_endpoint"),
    Route(f"{BASE}/endpoints/{{endpoint_id}}", update_endpoint, methods=["PATCH"],
          name="update_notification_endpoint"),
    Route(f"{BASE}/endpoints/{{endpoint_id}}", delete_endpoint, methods=["DELETE"],
          name="delete_notification_endpoint"),
    Route(f"{BASE}/endpoints/{{endpoint_id}}/rotate-secret", rotate_secret, methods=["POST"],
          name="rotate_notification_secret"),
    Route(f"{BASE}/endpoints/{{endpoint_id}}/test", test_endpoint, methods=["POST"], name="test_notification_endpoint"),
    Route(f"{BASE}/endpoints/{{endpoint_id}}/deliveries", list_deliveries, methods=["GET"],
          name="list_notification_deliveries"),
    Route(f"{BASE}/deliveries/{{delivery_id}}/replay", replay_delivery, methods=["POST"],
          name="replay_notification_delivery"),
    page("/track/email", open_tracking_page, ["GET"]),
    page("/notifications/unsubscribe", unsubscribe_page, ["GET", "POST"]),
]
