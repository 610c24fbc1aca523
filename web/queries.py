"""Read-only database queries behind the admin, operations and metrics routes: an order with its
logs and ledger jobs, job and batch status, shipments needing attention, API usage history, and
the live figures the alert rules and /metrics report. Writes go through `pipeline.service`."""
from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import peewee

import models
from models import (
    ApiUsageDaily,
    AuditLog,
    CourierApiCall,
    Order,
    TrackingCache,
    TrackingJob,
    TrackingUpdateLog,
    WebhookInbox,
)
from pipeline import status as statuses
from pipeline import store
from pipeline.service import ledger_counts, percentile, usage_for_day

ORDER_LOG_LIMIT = 100
ORDER_JOB_LIMIT = 100
RECENT_FAILURES = 20
DATA_AGE_BANDS = (("1h", 3600), ("6h", 6 * 3600), ("24h", 24 * 3600), ("72h", 72 * 3600))


def _row(instance: peewee.Model) -> dict[str, Any]:
    """A model row as a plain dict; foreign keys by column name (`order_id`), never loaded."""
    return {(field.column_name if isinstance(field, peewee.ForeignKeyField) else field.name):
            instance.__data__.get(field.name) for field in instance._meta.sorted_fields}


# --- admin: one order ----------------------------------------------------------------------------

def order_details(order_id: str) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]],
                                          list[dict[str, Any]]] | None:
    """An order, its shipment rows, their newest update logs and ledger jobs (None if unknown)."""
    order = Order.get_or_none(Order.id == order_id)
    if order is None:
        return None
    shipments = [_row(row) for row in TrackingCache.select().where(TrackingCache.order == order_id)
                 .order_by(TrackingCache.id)]
    ids = [row["id"] for row in shipments]
    logs = [_row(row) for row in TrackingUpdateLog.select().where(TrackingUpdateLog.tracking_cache.in_(ids))
            .order_by(TrackingUpdateLog.id.desc()).limit(ORDER_LOG_LIMIT)] if ids else []
    jobs = [_row(row) for row in TrackingJob.select().where(TrackingJob.tracking_cache.in_(ids))
            .order_by(TrackingJob.id.desc()).limit(ORDER_JOB_LIMIT)] if ids else []
    order_row = {"id": order.id, "customer_id": order.customer_id, "created_at": order.created_at}
    return order_row, shipments, logs, jobs


# --- ledger --------------------------------------------------------------------------------------

def oldest_due_pending_age(now: datetime) -> float | None:
    """Seconds the oldest pending job has waited since it was due (None when nothing waits);
    retries scheduled for later are not late."""
    oldest = (TrackingJob.select(peewee.fn.MIN(TrackingJob.scheduled_for))
              .where((TrackingJob.status == models.JOB_PENDING) & (TrackingJob.scheduled_for <= now)).scalar())
    if oldest is None:
        return None
    moment = models.UTCDateTimeField().python_value(oldest)
    assert isinstance(moment, datetime)
    return max(0.0, (now - moment).total_seconds())


def _job_view(job: TrackingJob, number: str | None = None) -> dict[str, Any]:
    return {"id": job.id, "shipment_id": job.tracking_cache_id, "tracking_number": number, "job_type": job.job_type,
            "priority": job.priority, "status": job.status, "attempts": job.attempts,
            "scheduled_for": job.scheduled_for, "last_attempt_at": job.last_attempt_at, "last_error": job.last_error,
            "batch_id": job.batch_id, "created_at": job.created_at, "updated_at": job.updated_at,
            "completed_at": job.completed_at}


def job_overview(now: datetime) -> dict[str, Any]:
    """Ledger counts by status, the oldest due pending job's age and the newest failures."""
    failures = (TrackingJob.select(TrackingJob, TrackingCache.courier_tracking_number.alias("number"))
                .join(TrackingCache, peewee.JOIN.LEFT_OUTER)
                .where(TrackingJob.status == models.JOB_FAILED)
                .order_by(TrackingJob.updated_at.desc(), TrackingJob.id.desc()).limit(RECENT_FAILURES).objects())
    return {
        "counts": ledger_counts(),
        "oldest_pending_age_seconds": oldest_due_pending_age(now),
        "recent_failures": [_job_view(job, getattr(job, "number", None)) for job in failures],
    }


def job_details(job_id: int) -> dict[str, Any] | None:
    job = TrackingJob.get_or_none(TrackingJob.id == job_id)
    if job is None:
        return None
    shipment = TrackingCache.get_or_none(TrackingCache.id == job.tracking_cache_id) if job.tracking_cache_id else None
    return _job_view(job, shipment.courier_tracking_number if shipment else None) | {
        "order_id": shipment.order_id if shipment else None}


def batch_details(batch_id: str) -> dict[str, Any] | None:
    """Counts by status of a bulk refresh's jobs (None when no job carries the batch id)."""
    rows = list(TrackingJob.select(TrackingJob.status, peewee.fn.COUNT(TrackingJob.id).alias("n"))
                .where(TrackingJob.batch_id == batch_id).group_by(TrackingJob.status).tuples())
    if not rows:
        return None
    counts = {state: 0 for state in (models.JOB_PENDING, models.JOB_RUNNING, models.JOB_COMPLETED, models.JOB_FAILED)}
    for state, count in rows:
        counts[str(state)] = int(count)
    total = sum(counts.values())
    return {"batch_id": batch_id, "total": total, "counts": counts,
            "is_finished": counts[models.JOB_PENDING] + counts[models.JOB_RUNNING] == 0}


# --- attention -------------------------------------------------------------------------------------

def attention_list(limit: int) -> list[dict[str, Any]]:
    """Shipments flagged requires_attention, expired, delayed, or carrying courier codes we cannot map."""
    query = (TrackingCache.select()
             .where((TrackingCache.requires_attention == True)  # noqa: E712
                    | (TrackingCache.current_status == statuses.EXPIRED)
                    | (TrackingCache.has_unmapped_events == True)  # noqa: E712
                    | ((TrackingCache.is_delayed == True) & TrackingCache.is_active))  # noqa: E712
             .order_by(TrackingCache.updated_at.desc(), TrackingCache.id.desc()).limit(limit))
    shaped = []
    for row in query:
        reasons = []
        if row.requires_attention:
            reasons.append("requires_attention")
        if row.current_status == statuses.EXPIRED:
            reasons.append("expired")
        if row.has_unmapped_events:
            reasons.append("unmapped_codes")
        if row.is_delayed:
            reasons.append("delayed")
        unmapped = sorted({(e.get("raw_code") or e.get("raw_text") or "") for e in (row.tracking_events or ())
                           if e.get("status") is None})
        shaped.append({
            "shipment_id": row.id, "order_id": row.order_id, "tracking_number": row.courier_tracking_number,
            "courier": row.courier_service, "status": row.current_status, "reasons": reasons,
            "attention_reason": row.attention_reason, "consecutive_failures": row.consecutive_failures,
            "unmapped_codes": unmapped, "last_api_update": row.last_api_update, "updated_at": row.updated_at,
            "delayed": bool(row.is_delayed), "delay_reason": row.delay_reason,
            "estimated_delivery": row.estimated_delivery,
        })
    return shaped


# --- courier API usage -------------------------------------------------------------------------------

def _day_start(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def usage_history(today: date, days: int = 30) -> list[dict[str, Any]]:
    """Per-day totals (all couriers) of the stored daily summaries of the last `days` days, with
    today computed live from the call record."""
    first = today - timedelta(days=days - 1)
    by_day: dict[date, list[dict[str, Any]]] = {}
    for row in ApiUsageDaily.select().where((ApiUsageDaily.day >= first) & (ApiUsageDaily.day < today)):
        day = row.day if isinstance(row.day, date) else date.fromisoformat(str(row.day))
        by_day.setdefault(day, []).append({"courier": row.courier, "calls": row.calls, "successes": row.successes,
                                           "failures": row.failures, "tracking_numbers": row.tracking_numbers,
                                           "p50_latency_ms": row.p50_latency_ms, "p95_latency_ms": row.p95_latency_ms})
    by_day[today] = usage_for_day(today)
    history = []
    for day in sorted(by_day):
        rows = by_day[day]
        calls = sum(r["calls"] for r in rows)
        successes = sum(r["successes"] for r in rows)
        history.append({
            "day": day.isoformat(), "calls": calls, "successes": successes,
            "failures": sum(r["failures"] for r in rows), "tracking_numbers": sum(r["tracking_numbers"] for r in rows),
            "success_rate": round(successes / calls, 4) if calls else None,
            "p95_latency_ms": max((r["p95_latency_ms"] for r in rows if r["p95_latency_ms"] is not None), default=None),
            "by_courier": [{k: v for k, v in r.items() if k != "day"} for r in rows],
        })
    return history


def usage_today(today: date) -> dict[str, Any]:
    """Today's tracking calls across couriers: count, success rate, p50/p95 latency."""
    start = _day_start(today)
    latencies = sorted(row[0] for row in CourierApiCall.select(CourierApiCall.latency_ms).where(
        (CourierApiCall.called_at >= start) & (CourierApiCall.called_at < start + timedelta(days=1))
        & store.is_tracking_call() & CourierApiCall.latency_ms.is_null(False)).tuples())
    per_courier = usage_for_day(today)
    calls = sum(r["calls"] for r in per_courier)
    successes = sum(r["successes"] for r in per_courier)
    return {"day": today.isoformat(), "calls": calls, "successes": successes, "failures": calls - successes,
            "success_rate": round(successes / calls, 4) if calls else None,
            "p50_latency_ms": percentile(latencies, 50), "p95_latency_ms": percentile(latencies, 95),
            "by_courier": [{k: v for k, v in r.items() if k != "day"} for r in per_courier]}


def courier_calls_since(since: datetime) -> dict[tuple[str, bool], int]:
    """Tracking calls per (courier, is_success) since a moment."""
    rows = (CourierApiCall.select(CourierApiCall.courier, CourierApiCall.is_success,
                                  peewee.fn.COUNT(CourierApiCall.id))
            .where((CourierApiCall.called_at >= since) & store.is_tracking_call())
            .group_by(CourierApiCall.courier, CourierApiCall.is_success).tuples())
    return {(str(courier), bool(ok)): int(n) for courier, ok, n in rows}


def courier_latencies_since(since: datetime) -> dict[str, list[int]]:
    rows = (CourierApiCall.select(CourierApiCall.courier, CourierApiCall.latency_ms)
            .where((CourierApiCall.called_at >= since) & store.is_tracking_call()
                   & CourierApiCall.latency_ms.is_null(False)).tuples())
    found: dict[str, list[int]] = {}
    for courier, latency in rows:
        found.setdefault(str(courier), []).append(int(latency))
    return {courier: sorted(values) for courier, values in found.items()}


# --- shipments and inbox ---------------------------------------------------------------------------

def shipment_figures(now: datetime, *, stale_after: timedelta) -> dict[str, Any]:
    """Active shipments by status, data-age bands of the pollable ones, stale, unmapped and flagged counts."""
    active = TrackingCache.is_active == True  # noqa: E712
    by_status = {str(status): int(n) for status, n in
                 TrackingCache.select(TrackingCache.current_status, peewee.fn.COUNT(TrackingCache.id))
                 .where(active).group_by(TrackingCache.current_status).tuples()}
    pollable = active & TrackingCache.current_status.not_in(sorted(statuses.FINAL_STATUSES))
    field = TrackingCache.last_api_update
    bands = [peewee.fn.SUM(peewee.Case(None, [(field < now - timedelta(seconds=seconds), 1)], 0)).alias(name)
             for name, seconds in DATA_AGE_BANDS]
    stale = peewee.fn.SUM(peewee.Case(None, [(field < now - stale_after, 1)], 0))
    row = TrackingCache.select(peewee.fn.MIN(field), stale, *bands).where(pollable).tuples().first() or ()
    oldest = models.UTCDateTimeField().python_value(row[0]) if row and row[0] is not None else None
    flags = (TrackingCache.select(
        peewee.fn.SUM(peewee.Case(None, [(TrackingCache.has_unmapped_events == True, 1)], 0)),  # noqa: E712
        peewee.fn.SUM(peewee.Case(None, [(TrackingCache.requires_attention == True, 1)], 0)),  # noqa: E712
        peewee.fn.SUM(peewee.Case(None, [(TrackingCache.is_delayed == True, 1)], 0)))  # noqa: E712
        .where(active).tuples().first()) or (0, 0, 0)
    return {
        "active_by_status": by_status,
        "data_age_max_seconds": max(0.0, (now - oldest).total_seconds()) if isinstance(oldest, datetime) else None,
        "stale": int(row[1] or 0) if row else 0,
        "older_than": {name: int(row[2 + i] or 0) if row else 0 for i, (name, _) in enumerate(DATA_AGE_BANDS)},
        "with_unmapped_codes": int(flags[0] or 0),
        "requiring_attention": int(flags[1] or 0),
        "delayed": int(flags[2] or 0),
    }


def inbox_failures_since(since: datetime) -> int:
    """Webhooks rejected or failed since a moment."""
    return (WebhookInbox.select()
            .where((WebhookInbox.received_at >= since)
                   & WebhookInbox.status.in_([models.INBOX_REJECTED, models.INBOX_FAILED]))
            .count())


def is_database_reachable() -> bool:
    """One trivial query; False on any database error."""
    try:
        models.database.execute_sql("SELECT 1").fetchone()
        return True
    except Exception:
        return False


# --- audit ---------------------------------------------------------------------------------------

def write_audit(*, actor: str, role: str, action: str, target: str | None, detail: dict[str, Any] | None,
                client_address: str | None, now: datetime) -> None:
    """One audit log row (the actor is a token fingerprint, never the token)."""
    AuditLog.create(at=now, actor=actor[:12], role=role, action=action[:64],
                    target=target[:255] if target else None, detail=detail,
                    client_address=client_address[:64] if client_address else None)


# --- alert figures -------------------------------------------------------------------------------

def alert_figures(now: datetime, rt: Any, snapshot: Any) -> Any:
    """The live figures of the alert rules: the store's (ledger, courier calls, budget, inbox)
    and this process's rolling ones (`web.stats.Snapshot`: read p95, errors, cache lookups)."""
    from web.alerts import Figures

    local = {"read_p95_seconds": snapshot.read_p95_seconds, "server_errors_5m": snapshot.server_errors,
             "rate_limited_5m": snapshot.rate_limited, "cache_hits": snapshot.cache_hits,
             "cache_misses": snapshot.cache_misses}
    if not is_database_reachable():
        return Figures(database_ok=False, pending_jobs=None, oldest_pending_age_seconds=None,
                       courier_calls_last_hour=None, courier_failures_last_hour=None, budget_used=None,
                       budget_total=None, failed_inbox_last_hour=None, delayed_shipments=None, **local)
    hour_ago = now - timedelta(hours=1)
    calls = courier_calls_since(hour_ago)
    budget = rt.budget()
    return Figures(
        database_ok=True,
        pending_jobs=ledger_counts()[models.JOB_PENDING],
        oldest_pending_age_seconds=oldest_due_pending_age(now),
        courier_calls_last_hour=sum(calls.values()),
        courier_failures_last_hour=sum(n for (_, ok), n in calls.items() if not ok),
        budget_used=budget.used(now.date()),
        budget_total=budget.limits.total,
        failed_inbox_last_hour=inbox_failures_since(hour_ago),
        delayed_shipments=delayed_count(),
        **local,
    )


def delayed_count() -> int:
    """Active shipments flagged delayed (delivery estimates, issue 16)."""
    return TrackingCache.select().where((TrackingCache.is_delayed == True) & TrackingCache.is_active).count()  # noqa: E712


def estimate_figures(now: datetime, *, zone: str) -> dict[str, int]:
    """Active, unfinished shipments with an estimate (ours or the courier's), without one, due
    today in the shop's zone, and delayed (delivery estimates, issue 16)."""
    from zoneinfo import ZoneInfo

    local = now.astimezone(ZoneInfo(zone))
    day_start = local.replace(hour=0, minute=0, second=0, microsecond=0)
    open_rows = (TrackingCache.is_active == True) & TrackingCache.current_status.not_in(  # noqa: E712
        sorted(statuses.FINAL_STATUSES))
    counts = (TrackingCache.select(
        peewee.fn.COUNT(TrackingCache.id),
        peewee.fn.SUM(peewee.Case(None, [(TrackingCache.estimated_delivery.is_null(False), 1)], 0)),
        peewee.fn.SUM(peewee.Case(None, [((TrackingCache.estimated_delivery >= day_start)
                                          & (TrackingCache.estimated_delivery < day_start + timedelta(days=1)), 1)], 0)),
        peewee.fn.SUM(peewee.Case(None, [(TrackingCache.is_delayed == True, 1)], 0)))  # noqa: E712
        .where(open_rows).tuples().first()) or (0, 0, 0, 0)
    total, estimated, today, delayed = (int(value or 0) for value in counts)
    return {"open": total, "with_estimate": estimated, "without_estimate": total - estimated,
            "due_today": today, "delayed": delayed}
