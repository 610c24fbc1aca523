"""Admin routes (bearer tokens; `viewer` tokens may only read): register shipments, read an
order's full record, refresh one order or many, and watch the job ledger, API usage, shipments
needing attention and the alert rules. Actions and shipment reads go to the audit log."""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline import runtime
from pipeline import status as statuses
from pipeline.registration import ORDER_ID_PATTERN, notification_problems, validate_registration
from web import alerts, queries, views
from web.auth import Staff, client_address, require_staff
from web.database import call
from web.errors import ApiError
from web.stats import STATS
from web.webhooks import read_body

MAX_JSON_BYTES = 1 << 20
MAX_BULK_ORDER_IDS = 10_000
ATTENTION_LIMIT_MAX = 1000
NO_STORE = {"Cache-Control": "no-store"}


def admin_json(request: Request, data: Any, *, status: int = 200) -> Response:
    """An admin answer: no-store, with an ETag (and 304 on If-None-Match for reads)."""
    shaped = views.jsonable(data)
    etag = views.etag_for(shaped)
    headers = {**NO_STORE, "ETag": etag}
    if status == 200 and request.method == "GET" and views.matches_etag(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return JSONResponse(shaped, status_code=status, headers=headers)


async def read_json_object(request: Request, max_bytes: int = MAX_JSON_BYTES) -> dict[str, Any]:
    """The request's JSON object body.

    Raises:
        ApiError: 413 when too large, 400 when not a JSON object.
    """
    raw = await read_body(request, max_bytes)
    try:
        data = json.loads(raw) if raw.strip() else None
    except ValueError as error:
        raise ApiError(400, "malformed_body", f"the body is not valid JSON: {error}") from None
    except RecursionError:
        raise ApiError(400, "malformed_body", "the body is not valid JSON: it is nested too deeply") from None
    if not isinstance(data, dict):
        raise ApiError(400, "malformed_body", "the body must be a JSON object")
    return data


def checked_order_id(value: str) -> str:
    if not ORDER_ID_PATTERN.match(value):
        raise ApiError(422, "validation_failed", "the order id is not valid",
                       fields={"order_id": "must be 1-128 characters: letters, digits and . _ : # / -"})
    return value


def audit(staff: Staff, request: Request, action: str, target: str | None, detail: Mapping[str, Any] | None) -> None:
    """Write one audit row for this staff member's action (sync; call in the threadpool)."""
    queries.write_audit(actor=staff.fingerprint, role=staff.role, action=action, target=target,
                        detail=views.jsonable(dict(detail)) if detail is not None else None,
                        client_address=client_address(request), now=runtime.current().now())


# --- registration --------------------------------------------------------------------------------

def register(staff: Staff, request: Request, data: Mapping[str, Any]) -> tuple[int, dict[str, Any]]:
    """Validate and register one shipment; returns the status and body (sync)."""
    from pipeline import emails, service

    registration, errors = validate_registration(data, service.enabled_couriers(), emails.available_locales())
    if registration is None:
        raise ApiError(422, "validation_failed", "the registration is not valid", fields=errors)
    problems = notification_problems(registration, has_contact_keys=bool(runtime.current().config.contact_keys))
    if problems:
        raise ApiError(422, "validation_failed", "email notifications are not set up on this server", fields=problems)
    result = service.register_shipment(registration)
    if result.outcome == service.CONFLICT:
        audit(staff, request, "shipment.register.conflict", registration.order_id,
              {"tracking_number": registration.tracking_number, "courier": registration.courier})
        raise ApiError(409, "conflict", result.detail or "the registration conflicts with a stored one")
    # The audit row first, then the cache (best effort: the registration is committed either way).
    audit(staff, request, "shipment.register", registration.order_id,
          {"tracking_number": registration.tracking_number, "courier": registration.courier,
           "outcome": result.outcome, "shipment_id": result.shipment_id})
    if result.outcome == service.CREATED:
        # Registration invalidates new orders; a shipment added to a known order changes its view too.
        service.invalidate_after_commit([registration.order_id])
    body = {"status": result.outcome, "shipment_id": result.shipment_id, "order_id": registration.order_id,
            "tracking_number": registration.tracking_number, "courier": registration.courier,
            "customer_id": registration.customer_id}
    if registration.notify_email is not None or registration.locale is not None:
        body.update(notify_email=registration.notify_email, locale=registration.locale)
    return (201 if result.outcome == service.CREATED else 200), body


async def register_shipment(request: Request) -> Response:
    staff = require_staff(request)
    data = await read_json_object(request)
    status, body = await call(register, staff, request, data)
    return JSONResponse(body, status_code=status, headers=NO_STORE)


# --- one order -----------------------------------------------------------------------------------

def order_record(staff: Staff, request: Request, order_id: str) -> dict[str, Any] | None:
    details = queries.order_details(order_id)
    audit(staff, request, "shipment.read", order_id, {"found": details is not None})
    if details is None:
        return None
    order, shipments, logs, jobs = details
    return views.admin_order_view(order, shipments, logs, jobs, now=runtime.current().now())


async def get_order(request: Request) -> Response:
    staff = require_staff(request)
    order_id = checked_order_id(request.path_params["order_id"])
    record = await call(order_record, staff, request, order_id)
    if record is None:
        raise ApiError(404, "not_found", f"no order {order_id}")
    return admin_json(request, record)


# --- refreshes -----------------------------------------------------------------------------------

def refresh_one(staff: Staff, request: Request, order_id: str, *, force: bool = False) -> dict[str, Any] | None:
    """A manual refresh of an order, audited; what it did (None for an unknown order)."""
    from pipeline import service

    try:
        result = service.refresh_order(order_id, triggered_by=staff.actor, force=force)
    except Exception as error:
        # Nothing was left pending (the service failed its jobs and released its claims); the
        # attempt is audited all the same, then answered 503 by the error handlers.
        audit(staff, request, "order.refresh", order_id, {"found": True, "force": force,
                                                          "error": type(error).__name__})
        raise
    audit(staff, request, "order.refresh", order_id, {
        "job_ids": None if result is None else result.job_ids, "found": result is not None,
        "skipped_final": None if result is None else result.skipped_final, "force": force})
    if result is None:
        return None
    return {"order_id": order_id, "job_ids": result.job_ids, "count": len(result.job_ids),
            "skipped_final": result.skipped_final, "outcome": result.outcome}


def parse_force(raw: str | None) -> bool:
    """The `force` query parameter: true or false (absent: false).

    Raises:
        ApiError: 422 for any other value.
    """
    if raw is None or raw.lower() in ("false", "0"):
        return False
    if raw.lower() in ("true", "1"):
        return True
    raise ApiError(422, "validation_failed", "force must be true or false", fields={"force": "must be true or false"})


async def refresh_order(request: Request) -> Response:
    staff = require_staff(request)
    order_id = checked_order_id(request.path_params["order_id"])
    force = parse_force(request.query_params.get("force"))
    body = await call(refresh_one, staff, request, order_id, force=force)
    if body is None:
        raise ApiError(404, "not_found", f"no order {order_id}")
    # 202 when polls were queued; 200 when nothing needed one (every shipment is final).
    return JSONResponse(body, status_code=202 if body["job_ids"] else 200, headers=NO_STORE)


def parse_bulk_selection(data: Mapping[str, Any]) -> dict[str, Any]:
    """The shipments a bulk refresh names: `order_ids`, a `status`, or `all_active: true`.

    Raises:
        ApiError: 422 with per-field errors.
    """
    fields: dict[str, str] = {}
    order_ids = data.get("order_ids")
    status = data.get("status")
    all_active = data.get("all_active", False)
    force = data.get("force", False)
    if not isinstance(force, bool):
        fields["force"] = "must be true or false"
    if order_ids is not None:
        if (not isinstance(order_ids, list) or not order_ids or len(order_ids) > MAX_BULK_ORDER_IDS
                or not all(isinstance(o, str) and ORDER_ID_PATTERN.match(o) for o in order_ids)):
            fields["order_ids"] = f"must be a list of 1-{MAX_BULK_ORDER_IDS} order ids"
    if status is not None and (not isinstance(status, str) or not statuses.is_known(status)):
        fields["status"] = "must be one of: " + ", ".join(sorted(statuses.STATUSES))
    if not isinstance(all_active, bool):
        fields["all_active"] = "must be true or false"
    if not fields and order_ids is None and status is None and not all_active:
        fields["order_ids"] = "give order_ids, a status, or all_active: true"
    if fields:
        raise ApiError(422, "validation_failed", "the bulk refresh selection is not valid", fields=fields)
    return {"order_ids": order_ids, "status": status, "all_active": bool(all_active), "force": force}


def refresh_many(staff: Staff, request: Request, selection: Mapping[str, Any]) -> dict[str, Any]:
    from pipeline import service

    result = service.bulk_refresh(order_ids=selection["order_ids"], status=selection["status"],
                                  all_active=selection["all_active"], triggered_by=staff.actor,
                                  force=selection.get("force", False))
    body: dict[str, Any] = {"batch_id": result.batch_id, "count": result.count,
                            "skipped_over_budget": result.skipped_over_budget, "skipped_final": result.skipped_final}
    audit(staff, request, "tracking.bulk_refresh", result.batch_id,
          {**body, "order_ids": len(selection["order_ids"] or ()), "status": selection["status"],
           "all_active": selection["all_active"], "force": selection.get("force", False)})
    if result.orders is not None:
        body["orders"] = [order.to_dict() for order in result.orders]
    return body


async def bulk_refresh(request: Request) -> Response:
    staff = require_staff(request)
    selection = parse_bulk_selection(await read_json_object(request))
    body = await call(refresh_many, staff, request, selection)
    return JSONResponse(body, status_code=202, headers=NO_STORE)


# --- watching ------------------------------------------------------------------------------------

def job_status_report(job_id: int | None, batch_id: str | None) -> dict[str, Any] | None:
    if job_id is not None:
        return queries.job_details(job_id)
    if batch_id is not None:
        return queries.batch_details(batch_id)
    return queries.job_overview(runtime.current().now())


async def job_status(request: Request) -> Response:
    require_staff(request)
    raw_job, batch_id = request.query_params.get("job_id"), request.query_params.get("batch_id")
    fields = {}
    if raw_job is not None and (not raw_job.isdigit() or len(raw_job) > 18):
        fields["job_id"] = "must be a job id (a positive integer)"
    if batch_id is not None and not (0 < len(batch_id) <= 64):
        fields["batch_id"] = "must be a batch id"
    if raw_job is not None and batch_id is not None:
        fields["batch_id"] = "give job_id or batch_id, not both"
    if fields:
        raise ApiError(422, "validation_failed", "the job status query is not valid", fields=fields)
    report = await call(job_status_report, int(raw_job) if raw_job is not None else None, batch_id)
    if report is None:
        raise ApiError(404, "not_found", f"no job {raw_job}" if raw_job is not None else f"no batch {batch_id}")
    return admin_json(request, report)


def usage_report() -> dict[str, Any]:
    rt = runtime.current()
    today = rt.today()
    budget = rt.budget()
    used = budget.used(today)
    return {
        "today": queries.usage_today(today) | {
            "budget": budget.limits.total, "scheduled_limit": budget.limits.scheduled, "budget_used": used,
            "remaining": budget.remaining(today, is_manual=True),
            "remaining_scheduled": budget.remaining(today, is_manual=False),
        },
        "history": queries.usage_history(today, days=30),
    }


async def api_usage(request: Request) -> Response:
    require_staff(request)
    return admin_json(request, await call(usage_report))


async def attention(request: Request) -> Response:
    require_staff(request)
    raw = request.query_params.get("limit", "200")
    if not raw.isdigit() or not 0 < int(raw) <= ATTENTION_LIMIT_MAX:
        raise ApiError(422, "validation_failed", "the limit is not valid",
                       fields={"limit": f"must be 1-{ATTENTION_LIMIT_MAX}"})
    shipments = await call(queries.attention_list, int(raw))
    return admin_json(request, {"count": len(shipments), "shipments": shipments})


def alerts_report() -> dict[str, Any]:
    """The alert rules evaluated on live figures."""
    rt = runtime.current()
    now = rt.now()
    figures = queries.alert_figures(now, rt, STATS.snapshot())
    limits = alerts.thresholds_from(rt.config)
    fired = alerts.evaluate(figures, limits)
    severities = {alert.severity for alert in fired}
    overall = alerts.CRITICAL if alerts.CRITICAL in severities else alerts.WARNING if fired else "ok"
    return {"status": overall, "evaluated_at": now, "alerts": [alert.to_dict() for alert in fired],
            "figures": figures.to_dict(), "thresholds": asdict(limits)}


async def alert_report(request: Request) -> Response:
    require_staff(request)
    return admin_json(request, await call(alerts_report))


routes = [
    Route("/api/admin/shipments", register_shipment, methods=["POST"], name="register_shipment"),
    Route("/api/admin/shipments/{order_id:path}", get_order, methods=["GET"], name="get_order"),
    Route("/api/admin/tracking/refresh-order/{order_id:path}", refresh_order, methods=["POST"], name="refresh_order"),
    Route("/api/admin/tracking/bulk-refresh", bulk_refresh, methods=["POST"], name="bulk_refresh"),
    Route("/api/admin/tracking/job-status", job_status, methods=["GET"], name="job_status"),
    Route("/api/admin/tracking/api-usage", api_usage, methods=["GET"], name="api_usage"),
    Route("/api/admin/tracking/attention", attention, methods=["GET"], name="attention"),
    Route("/api/admin/tracking/alerts", alert_report, methods=["GET"], name="alerts"),
]
