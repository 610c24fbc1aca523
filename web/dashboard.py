"""What the admin dashboard reads and does, as blocking functions for the threadpool: the overview
(ledger, courier usage against the budget, shipments by status, the attention list), order search
by order id or tracking number, the refreshes (one shipment, one order, all of a status; audited
like the admin API's, through `web.admin`), and the progress of the refreshes a session asked for."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

import peewee

import models
from models import TrackingCache, TrackingJob
from pipeline import lanes, runtime
from web import admin, queries
from web.auth import Staff

ATTENTION_LIMIT = 50
SEARCH_LIMIT = 20
MAX_WATCHED_JOBS = 50
UNFINISHED_JOBS = (models.JOB_PENDING, models.JOB_RUNNING)


def overview() -> dict[str, Any]:
    """Everything the dashboard's front page shows, read in one go."""
    rt = runtime.current()
    now = rt.now()
    return {
        "now": now,
        "jobs": queries.job_overview(now),
        "usage": admin.usage_report(),
        "shipments": queries.shipment_figures(now, stale_after=timedelta(hours=rt.config.cache_ttl_hours)),
        "attention": queries.attention_list(ATTENTION_LIMIT),
        "estimates": queries.estimate_figures(now, zone=rt.config.shop_timezone),  # delivery estimates (issue 16)
    }


def find_orders(text: str) -> list[str]:
    """Order ids matching a search: the order id itself, else the orders holding that tracking number."""
    text = text.strip()
    if not text:
        return []
    if models.Order.get_or_none(models.Order.id == text) is not None:
        return [text]
    numbers = sorted({text, text.upper()})
    rows = (TrackingCache.select(TrackingCache.order)
            .where(TrackingCache.courier_tracking_number.in_(numbers))
            .order_by(TrackingCache.id.desc()).limit(SEARCH_LIMIT).tuples())
    return list(dict.fromkeys(str(order_id) for (order_id,) in rows))


def search(staff: Staff, request: Any, text: str) -> list[dict[str, Any]]:
    """The full, unfiltered records of the orders a search finds (each read is audited)."""
    records = []
    for order_id in find_orders(text):
        record = admin.order_record(staff, request, order_id)
        if record is not None:
            records.append(record)
    return records


def refresh_shipment(staff: Staff, request: Any, shipment_id: int) -> dict[str, Any] | None:
    """A manual refresh of one shipment (None when there is no such shipment)."""
    from pipeline import service

    row = TrackingCache.get_or_none(TrackingCache.id == shipment_id)
    if row is None:
        return None
    job_ids = service.request_refresh([shipment_id], lane=lanes.MANUAL, triggered_by=staff.actor)
    admin.audit(staff, request, "shipment.refresh", row.order_id, {
        "shipment_id": shipment_id, "tracking_number": row.courier_tracking_number, "job_ids": job_ids})
    return {"order_id": row.order_id, "tracking_number": row.courier_tracking_number, "job_ids": job_ids}


def refresh_order(staff: Staff, request: Any, order_id: str) -> dict[str, Any] | None:
    """A manual refresh of an order's shipments that are not final (None for an unknown order)."""
    return admin.refresh_one(staff, request, order_id)


def bulk_refresh(staff: Staff, request: Any, status: str) -> dict[str, Any]:
    """A bulk refresh of every active shipment in a status, within the scheduled budget.

    Raises:
        ApiError: 422 for a status that does not exist.
    """
    return admin.refresh_many(staff, request, admin.parse_bulk_selection({"status": status}))


def action_reports(actions: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """The progress of a session's recent refreshes: their jobs (one query for all) or batch counts."""
    wanted = sorted({int(job_id) for action in actions for job_id in action.get("job_ids") or ()})
    wanted = wanted[-MAX_WATCHED_JOBS:]
    jobs: dict[int, dict[str, Any]] = {}
    if wanted:
        query = (TrackingJob.select(TrackingJob, TrackingCache.courier_tracking_number.alias("number"))
                 .join(TrackingCache, peewee.JOIN.LEFT_OUTER).where(TrackingJob.id.in_(wanted)).objects())
        for job in query:
            jobs[job.id] = {"id": job.id, "status": job.status, "attempts": job.attempts,
                            "last_error": job.last_error, "tracking_number": getattr(job, "number", None),
                            "completed_at": job.completed_at}
    reports = []
    for action in actions:
        report = dict(action)
        if action.get("batch_id"):
            batch = queries.batch_details(str(action["batch_id"]))
            report["batch"] = batch
            report["is_finished"] = batch is None or bool(batch["is_finished"])
        else:
            report["jobs"] = [jobs[int(j)] for j in action.get("job_ids") or () if int(j) in jobs]
            report["is_finished"] = all(job["status"] not in UNFINISHED_JOBS for job in report["jobs"])
        reports.append(report)
    return reports
