"""What the web app and the command line ask of the pipeline: register shipments, request
refreshes, hand over stored webhooks, run the sweeps, and report on queues and usage. Each
function is a short sequence of store calls and enqueues; the decisions live in the pure core."""
from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, Sequence, cast

import peewee

import models
from models import (
    ApiUsageDaily,
    CourierApiCall,
    IdempotencyKey,
    Order,
    TrackingCache,
    TrackingJob,
    TrackingUpdateLog,
    WebhookInbox,
)
from pipeline import changes_feed, inbox, lanes, notifications, read_cache, runtime, store
from pipeline import status as statuses
from pipeline.lanes import Lane
from pipeline.registration import ExistingOrder, ShipmentRegistration, registration_conflict

logger = logging.getLogger(__name__)

CREATED, UNCHANGED, CONFLICT = "created", "unchanged", "conflict"
# Inbox rows older than this, still pending and held by no drain, get a drain from the sweep.
INBOX_GRACE = timedelta(seconds=60)
# Most drain messages one sweep or replay sends at once (each full drain sends the next).
MAX_SWEEP_DRAINS = 8
# Claims, shipments and inbox rows handled per query in the sweeps.
SWEEP_CHUNK = 5000


@dataclass(frozen=True)
class RegistrationResult:
    outcome: str  # created | unchanged | conflict
    shipment_id: int | None = None
    detail: str | None = None


def enabled_couriers() -> list[str]:
    """Couriers a shipment may be registered with."""
    from pipeline.couriers import available_couriers

    return available_couriers(runtime.current().config)


# --- registration --------------------------------------------------------------------------------

def register_shipment(registration: ShipmentRegistration, *, now: datetime | None = None,
                      first_poll_at: datetime | None = None) -> RegistrationResult:
    """Register an order's shipment idempotently; its first poll is due at once (or when given)."""
    return register_many([(registration, first_poll_at)], now=now)[0]


def register_many(registrations: Sequence[tuple[ShipmentRegistration, datetime | None]], *,
                  now: datetime | None = None) -> list[RegistrationResult]:
    """Register many shipments in one transaction with a handful of queries (the CSV import's
    path; single registrations go through it too). Each result says created, unchanged or
    conflict, in the order given; a row never half-lands."""
    rt = runtime.current()
    now = now or rt.now()
    key = rt.config.email_hash_key.reveal()
    order_ids = sorted({reg.order_id for reg, _ in registrations})
    results: list[RegistrationResult] = []
    with models.write_transaction():
        orders = {row.id: ExistingOrder(row.customer_email_hash, row.customer_id)
                  for row in Order.select().where(Order.id.in_(order_ids))} if order_ids else {}
        shipments = {(row.order_id, row.courier_tracking_number): (row.id, row.courier_service)
                     for row in TrackingCache.select(TrackingCache.id, TrackingCache.order,
                                                     TrackingCache.courier_tracking_number,
                                                     TrackingCache.courier_service)
                     .where(TrackingCache.order.in_(order_ids))} if order_ids else {}
        new_orders: dict[str, dict[str, Any]] = {}
        adopted_customers: dict[str, str] = {}
        new_shipments: dict[tuple[str, str], dict[str, Any]] = {}
        for registration, first_poll in registrations:
            email_hash = models.hash_email(registration.customer_email, key)
            order = orders.get(registration.order_id)
            stored = shipments.get((registration.order_id, registration.tracking_number))
            conflict = registration_conflict(registration, email_hash, order, stored[1] if stored else None)
            if conflict:
                results.append(RegistrationResult(CONFLICT, stored[0] if stored else None, detail=conflict))
                continue
            if order is None:
                order = ExistingOrder(email_hash, registration.customer_id)
                orders[registration.order_id] = order
                new_orders[registration.order_id] = {"id": registration.order_id, "customer_id": registration.customer_id,
                                                     "customer_email_hash": email_hash, "created_at": now}
            elif registration.customer_id and not order.customer_id:
                orders[registration.order_id] = ExistingOrder(order.customer_email_hash, registration.customer_id)
                adopted_customers[registration.order_id] = registration.customer_id
            if stored is not None:
                results.append(RegistrationResult(UNCHANGED, stored[0]))
                continue
            shipments[(registration.order_id, registration.tracking_number)] = (0, registration.courier)
            new_shipments[(registration.order_id, registration.tracking_number)] = {
                "order": registration.order_id, "courier_tracking_number": registration.tracking_number,
                "courier_service": registration.courier, "current_status": statuses.PENDING,
                "last_status_update": now, "last_api_update": now, "next_update_due": first_poll or now,
                "update_frequency_minutes": rt.config.pre_shipment_freq, "created_at": now, "updated_at": now,
                "tracking_events": [],
            }
            results.append(RegistrationResult(CREATED, None))
        for chunk in batched(list(new_orders.values()), 500):
            models.insert_rows(Order, chunk)
        for order_id, customer_id in adopted_customers.items():
            Order.update(customer_id=customer_id).where(Order.id == order_id).execute()
        for chunk in batched(list(new_shipments.values()), 500):
            models.insert_rows(TrackingCache, chunk)
        contacts = _contacts_to_store(registrations, results, rt.config)
        if contacts:
            from pipeline import outbox

            outbox.store_contacts(contacts, now=now)
        if new_shipments:
            created = cast(Iterable[tuple[int, str, str]], TrackingCache.select(
                TrackingCache.id, TrackingCache.order, TrackingCache.courier_tracking_number)
                .where(TrackingCache.order.in_(sorted({k[0] for k in new_shipments}))).tuples())
            created_ids = {(order_id, number): shipment_id for shipment_id, order_id, number in created}
            results = [
                RegistrationResult(result.outcome, created_ids.get((reg.order_id, reg.tracking_number)), result.detail)
                if not result.shipment_id and result.outcome != CONFLICT else result
                for (reg, _), result in zip(registrations, results)
            ]
            changes_feed.record_shipment_changes(sorted(created_ids[key] for key in new_shipments if key in created_ids),
                                                 changes_feed.REGISTERED, now)
    # New orders, orders with a new shipment and orders that gained a customer all read differently now.
    touched = set(new_orders) | set(adopted_customers) | {order_id for order_id, _ in new_shipments}
    invalidate_after_commit(sorted(touched))
    return results


def invalidate_after_commit(order_ids: Sequence[str]) -> None:
    """Drop the orders' cached views, best effort: what is committed stays committed when Redis is
    down (a Redis that comes back empty holds no stale view; otherwise the read cache's TTL ends it)."""
    try:
        read_cache.invalidate(runtime.current().coordination, order_ids)
    except Exception as error:  # redis errors, OSError
        from pipeline.coordination import brief_error

        logger.warning("read cache of order(s) %s not invalidated, coordination store unavailable: %s",
                       ", ".join(order_ids[:5]) + (" ..." if len(order_ids) > 5 else ""), brief_error(error))


def _contacts_to_store(registrations: Sequence[tuple[ShipmentRegistration, datetime | None]],
                       results: Sequence[RegistrationResult], config: Any) -> dict[str, tuple[str, str, bool]]:
    """order id -> (address, locale, notify) for the registrations whose customer is to be emailed:
    asked for (`notify_email`), or every customer by TRACKING_EMAIL_ALL_SHIPMENTS unless declined.
    Nothing when no TRACKING_CONTACT_KEYS is set (addresses are only ever stored encrypted)."""
    if not config.contact_keys:
        return {}
    contacts = {}
    for (registration, _), result in zip(registrations, results):
        wants = registration.notify_email if registration.notify_email is not None else config.email_all_shipments
        if wants and result.outcome != CONFLICT:
            contacts[registration.order_id] = (registration.customer_email,
                                               registration.locale or config.email_default_locale, True)
    return contacts


# --- refreshes -----------------------------------------------------------------------------------

def request_refresh(shipment_ids: Sequence[int], *, lane: Lane = lanes.MANUAL, triggered_by: str = "system",
                    batch_id: str | None = None) -> list[int]:
    """Poll these shipments now on a lane; returns the ledger job ids."""
    rt = runtime.current()
    now = rt.now()
    rows = list(TrackingCache.select(TrackingCache.id, TrackingCache.courier_service,
                                     TrackingCache.courier_tracking_number)
                .where(TrackingCache.id.in_(list(shipment_ids))).order_by(TrackingCache.id))
    if not rows:
        return []
    TrackingCache.update(claimed_until=now + rt.lease()).where(TrackingCache.id.in_([r.id for r in rows])).execute()
    return _enqueue_rows([(r.id, r.courier_service, r.courier_tracking_number) for r in rows], lane=lane,
                         triggered_by=triggered_by, batch_id=batch_id, now=now)


# What a refresh did for one order id (or one order): queued, unknown, final (not polled) or
# over budget.
QUEUED, UNKNOWN, FINAL, OVER_BUDGET = "queued", "unknown", "final", "over_budget"


@dataclass(frozen=True)
class OrderRefresh:
    order_id: str
    outcome: str  # queued | unknown | final | over_budget
    queued: int = 0
    final: int = 0
    over_budget: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"order_id": self.order_id, "outcome": self.outcome, "queued": self.queued, "final": self.final,
                "over_budget": self.over_budget}


def order_outcome(*, is_known: bool, queued: int, final: int, over_budget: int) -> str:
    """One word for what a refresh did to an order: queued when any of its shipments was, else
    over budget when any did not fit, else final (nothing to poll); unknown when no such order."""
    if not is_known:
        return UNKNOWN
    if queued:
        return QUEUED
    if over_budget:
        return OVER_BUDGET
    return FINAL


@dataclass(frozen=True)
class OrderRefreshResult:
    job_ids: list[int]
    skipped_final: int

    @property
    def outcome(self) -> str:
        return order_outcome(is_known=True, queued=len(self.job_ids), final=self.skipped_final, over_budget=0)


def refresh_order(order_id: str, *, triggered_by: str, force: bool = False) -> OrderRefreshResult | None:
    """Manual refresh of an order's tracked shipments; final ones (delivered, returned, ...) are
    not polled unless `force`, stopped ones (DELETE, an erasure) never. None if the order is unknown."""
    if Order.get_or_none(Order.id == order_id) is None:
        return None
    rows = list(TrackingCache.select(TrackingCache.id, TrackingCache.current_status)
                .where((TrackingCache.order == order_id) & (TrackingCache.is_active == True)))  # noqa: E712
    chosen = [row.id for row in rows if force or not statuses.is_final(row.current_status)]
    job_ids = request_refresh(chosen, lane=lanes.MANUAL, triggered_by=triggered_by) if chosen else []
    return OrderRefreshResult(job_ids=job_ids, skipped_final=len(rows) - len(chosen))


@dataclass(frozen=True)
class BulkRefresh:
    batch_id: str
    count: int
    skipped_over_budget: int
    skipped_final: int = 0
    orders: tuple[OrderRefresh, ...] | None = None  # per order id, when the selection named ids


def bulk_refresh(*, order_ids: Sequence[str] | None = None, status: str | None = None, all_active: bool = False,
                 triggered_by: str, force: bool = False) -> BulkRefresh:
    """Refresh many shipments behind manual refreshes and within the scheduled share of today's
    budget (the reserve for single manual refreshes is never used); what does not fit is skipped
    and reported, final shipments are skipped unless `force`, and named order ids each get their
    outcome."""
    rt = runtime.current()
    query = TrackingCache.select(TrackingCache.id, TrackingCache.order, TrackingCache.current_status).where(
        TrackingCache.is_active == True)  # noqa: E712
    if order_ids is not None:
        query = query.where(TrackingCache.order.in_(list(order_ids)))
    if status is not None:
        query = query.where(TrackingCache.current_status == status)
    if order_ids is None and status is None and not all_active:
        raise ValueError("say which shipments: order ids, a status, or all active")
    rows = list(query.order_by(TrackingCache.next_update_due))
    pollable = [row for row in rows if force or not statuses.is_final(row.current_status)]
    calls_left = rt.budget().remaining(rt.today(), is_manual=False)
    fits = calls_left * rt.config.job_batch_size
    batch_id = uuid.uuid4().hex
    chosen, over = pollable[:fits], pollable[fits:]
    request_refresh([row.id for row in chosen], lane=lanes.BULK, triggered_by=triggered_by, batch_id=batch_id)
    orders = None
    if order_ids is not None:
        known = {row.id for row in Order.select(Order.id).where(Order.id.in_(list(order_ids)))}
        tally: dict[str, dict[str, int]] = {}
        for label, group in ((QUEUED, chosen), (OVER_BUDGET, over)):
            for row in group:
                tally.setdefault(row.order_id, {}).setdefault(label, 0)
                tally[row.order_id][label] += 1
        for row in rows:
            if not (force or not statuses.is_final(row.current_status)):
                tally.setdefault(row.order_id, {}).setdefault(FINAL, 0)
                tally[row.order_id][FINAL] += 1
        orders = tuple(
            OrderRefresh(order_id, order_outcome(is_known=order_id in known, **_counts(tally.get(order_id, {}))),
                         **_counts(tally.get(order_id, {})))
            for order_id in dict.fromkeys(order_ids))
    return BulkRefresh(batch_id=batch_id, count=len(chosen), skipped_over_budget=len(over),
                       skipped_final=len(rows) - len(pollable), orders=orders)


def _counts(tally: dict[str, int]) -> dict[str, int]:
    return {"queued": tally.get(QUEUED, 0), "final": tally.get(FINAL, 0), "over_budget": tally.get(OVER_BUDGET, 0)}


def _enqueue_rows(rows: Sequence[tuple[int, str, str]], *, lane: Lane, triggered_by: str, batch_id: str | None,
                  now: datetime) -> list[int]:
    """Ledger rows and one fetch pipeline per batch of distinct tracking numbers per courier."""
    from pipeline import actors

    rt = runtime.current()
    job_ids: list[int] = []
    by_courier: dict[str, dict[str, list[int]]] = {}
    for shipment_id, courier, number in rows:
        by_courier.setdefault(courier, {}).setdefault(number, []).append(shipment_id)
    enqueued: set[int] = set()
    for courier, numbers in by_courier.items():
        size = max(1, min(rt.config.job_batch_size, rt.client(courier).courier.batch_limit))
        ordered = list(numbers)
        for start in range(0, len(ordered), size):
            chunk = ordered[start:start + size]
            shipment_ids = [sid for number in chunk for sid in numbers[number]]
            ids = store.create_jobs(shipment_ids, job_type=lane.job_type or "update", priority=lane.priority,
                                    now=now, batch_id=batch_id, max_attempts=len(rt.config.retry_delays) + 1)
            trigger = "manual" if lane in (lanes.MANUAL, lanes.BULK) else "scheduled"
            ctx = store.PollContext(lane=lane.name, trigger=trigger, triggered_by=triggered_by,
                                    job_ids=tuple(ids), started_at=store.iso(now))
            try:
                actors.enqueue_poll(lane, courier, chunk, ctx)
            except Exception as error:
                _abandon_enqueue(ids, [row[0] for row in rows if row[0] not in enqueued], error, now=now)
                raise
            job_ids.extend(ids)
            enqueued.update(shipment_ids)
    return job_ids


def _abandon_enqueue(job_ids: Sequence[int], shipment_ids: Sequence[int], error: BaseException, *,
                     now: datetime) -> None:
    """The broker refused a poll: its ledger rows fail now (instead of waiting as pending until the
    maintenance sweep calls them lost) and the shipments not yet enqueued lose their claim, so the
    next sweep or a retried refresh can take them at once."""
    from pipeline.coordination import brief_error

    store.fail_jobs(job_ids, f"could not enqueue the poll (broker unreachable: {brief_error(error)})", now)
    if shipment_ids:
        TrackingCache.update(claimed_until=None).where(TrackingCache.id.in_(list(shipment_ids))).execute()
    logger.warning("poll of %d shipment(s) not enqueued, broker unreachable: %s; jobs %s failed, claims released",
                   len(shipment_ids), brief_error(error), list(job_ids))


# --- webhooks ------------------------------------------------------------------------------------

def enqueue_drain() -> None:
    """Ask the pipeline to drain the inbox: a worker claims the pending rows in batches."""
    from pipeline import actors

    actors.enqueue_drain()


def enqueue_inbox(courier: str, inbox_ids: Sequence[int]) -> None:
    """Hand stored webhooks to the pipeline: they are pending in the inbox, so one drain takes them
    (with every other pending row, in batches)."""
    if inbox_ids:
        enqueue_drain()


def replay_inbox(*, ids: Sequence[int] = (), statuses: Sequence[str] = (models.INBOX_FAILED,),
                 since: datetime | None = None, courier: str | None = None) -> int:
    """Make failed (or other) inbox rows pending again and drain them; returns how many."""
    count = inbox.replay(ids=ids, statuses=statuses, since=since, courier=courier)
    if count:
        for _ in range(min(MAX_SWEEP_DRAINS, -(-count // runtime.current().config.inbox_batch_size))):
            enqueue_drain()
    logger.info("inbox replay: %d rows pending again", count)
    return count


# --- sweeps --------------------------------------------------------------------------------------

def run_poll_sweep(*, now: datetime | None = None) -> int:
    """Claim due shipments (within today's scheduled budget) and enqueue their polls; returns how
    many shipments were enqueued."""
    rt = runtime.current()
    now = now or rt.now()
    calls_left = rt.budget().remaining(now.date(), is_manual=False)
    limit = calls_left * rt.config.job_batch_size
    total = 0
    while total < limit:
        claimed = models.claim_due_shipments(now, limit=min(SWEEP_CHUNK, limit - total), lease=rt.lease())
        if not claimed:
            break
        total += len(claimed)
        _enqueue_rows(claimed, lane=lanes.SCHEDULED, triggered_by="system", batch_id=None, now=now)
    if total:
        logger.info("poll sweep enqueued %d due shipments", total)
    return total


def run_maintenance(*, now: datetime | None = None) -> dict[str, int]:
    """Re-enqueue webhooks the broker lost, fail ledger rows nobody will finish, release expired
    claims, and expire shipments with no new event for too long."""
    rt = runtime.current()
    now = now or rt.now()
    report = {"inbox_requeued": 0, "jobs_lost": 0, "claims_released": 0, "expired": 0}
    # Inbox rows pending past the grace period that no drain holds: their drain message was lost
    # (or never sent). Send drains; waiting rows are never counted as attempts, whatever the backlog.
    stranded = inbox.unclaimed_pending(now, older_than=INBOX_GRACE)
    if stranded:
        for _ in range(min(MAX_SWEEP_DRAINS, -(-stranded // rt.config.inbox_batch_size))):
            enqueue_drain()
        report["inbox_requeued"] = stranded
    lost_before = now - 2 * rt.lease() - timedelta(seconds=sum(rt.config.retry_delays))
    report["jobs_lost"] = TrackingJob.update(
        status=models.JOB_FAILED, updated_at=now, completed_at=now,
        last_error="lost: no worker finished this job (worker stopped or broker lost the message); "
                   "the shipment is polled again once its claim expires",
    ).where((TrackingJob.status.in_([models.JOB_PENDING, models.JOB_RUNNING]))
            & (TrackingJob.updated_at < lost_before) & (TrackingJob.scheduled_for < lost_before)).execute()
    report["claims_released"] = TrackingCache.update(claimed_until=None).where(
        TrackingCache.claimed_until < now).execute()
    report["expired"] = expire_stale_shipments(now=now)
    return report


def expire_stale_shipments(*, now: datetime) -> int:
    """Shipments with no new event for `TRACKING_EXPIRE_AFTER_DAYS` become expired (and stop polling)."""
    from pipeline import actors, outbox

    rt = runtime.current()
    cutoff = now - timedelta(days=rt.config.expire_after_days)
    reference = peewee.fn.COALESCE(TrackingCache.last_event_at, TrackingCache.created_at)
    rows = list(TrackingCache.select(TrackingCache.id, TrackingCache.order, TrackingCache.courier_tracking_number,
                                     TrackingCache.current_status, TrackingCache.courier_service,
                                     TrackingCache.tracking_events, TrackingCache.estimated_delivery,
                                     TrackingCache.requires_attention)
                .where((TrackingCache.is_active == True)  # noqa: E712
                       & (TrackingCache.current_status.not_in(sorted(statuses.FINAL_STATUSES)))
                       & (reference < cutoff))
                .limit(SWEEP_CHUNK))
    if not rows:
        return 0
    ids = [row.id for row in rows]
    with models.database.atomic():
        TrackingCache.update(current_status=statuses.EXPIRED, last_status_update=now, next_update_due=models.NEVER,
                             update_frequency_minutes=0, requires_attention=True,
                             attention_reason=f"no new event for {rt.config.expire_after_days} days",
                             claimed_until=None, updated_at=now).where(TrackingCache.id.in_(ids)).execute()
        TrackingUpdateLog.insert_many([
            {"tracking_cache": row.id, "update_type": "expiry", "triggered_by": "system", "api_call_success": True,
             "status_changed": True, "previous_status": row.current_status, "new_status": statuses.EXPIRED,
             "events_added": 0, "started_at": now, "completed_at": now}
            for row in rows
        ]).execute()
        changes_feed.record_shipment_changes(ids, changes_feed.TRACKING, now)
        notification_ids = outbox.record_status_changes([_expired_notice(row, now=now) for row in rows], now=now)
    actors.enqueue_deliveries(notification_ids)
    read_cache.invalidate(rt.coordination, sorted({row.order_id for row in rows}))
    notifications.publish_status_changes(rt.coordination, [
        {"order_id": row.order_id, "tracking_number": row.courier_tracking_number, "previous": row.current_status,
         "status": statuses.EXPIRED} for row in rows])
    return len(rows)


# A pending notification due this long ago and held by no worker lost its message.
NOTIFICATION_GRACE = timedelta(seconds=90)


def requeue_lost_notifications(*, now: datetime | None = None) -> int:
    """Enqueue again the outbox rows whose delivery message was lost (a worker killed after the
    status change's commit, a broker that lost its queue); returns how many."""
    from pipeline import actors, outbox

    rt = runtime.current()
    ids = outbox.lost_deliveries(now=now or rt.now(), grace=NOTIFICATION_GRACE)
    actors.enqueue_deliveries(ids)
    if ids:
        logger.info("notification sweep re-enqueued %d deliveries", len(ids))
    return len(ids)


def _expired_notice(row: TrackingCache, *, now: datetime) -> dict[str, Any]:
    """The outbox's view of a shipment the expiry sweep just expired (and flagged)."""
    notice = store.notice_of(row, row.current_status, now=now, is_attention=not row.requires_attention)
    return {**notice, "status": statuses.EXPIRED, "requires_attention": True,
            "attention_reason": f"no new event for {runtime.current().config.expire_after_days} days"}


def run_cleanup(*, now: datetime | None = None) -> dict[str, int]:
    """Deactivate finished shipments after the retention period and delete old logs, ledger rows,
    processed inbox rows and per-call records (daily summaries keep the usage history)."""
    rt = runtime.current()
    now = now or rt.now()
    cutoff = now - timedelta(days=rt.config.retention_days)
    calls_cutoff = now - timedelta(days=max(rt.config.retention_days, 35))
    report = {
        "deactivated": TrackingCache.update(is_active=False, updated_at=now).where(
            (TrackingCache.is_active == True)  # noqa: E712
            & TrackingCache.current_status.in_(sorted(statuses.FINAL_STATUSES))
            & (TrackingCache.last_status_update < cutoff)).execute(),
        "logs_deleted": TrackingUpdateLog.delete().where(TrackingUpdateLog.started_at < cutoff).execute(),
        "jobs_deleted": TrackingJob.delete().where(
            TrackingJob.status.in_([models.JOB_COMPLETED, models.JOB_FAILED]) & (TrackingJob.updated_at < cutoff)
        ).execute(),
        "inbox_deleted": WebhookInbox.delete().where(
            (WebhookInbox.status != models.INBOX_PENDING) & (WebhookInbox.received_at < cutoff)).execute(),
        "calls_deleted": CourierApiCall.delete().where(CourierApiCall.called_at < calls_cutoff).execute(),
        # Integration API: idempotency keys past their hours, feed rows past the retention.
        "idempotency_keys_deleted": IdempotencyKey.delete().where(
            IdempotencyKey.created_at < now - timedelta(hours=rt.config.idempotency_hours)).execute(),
        "changes_deleted": changes_feed.delete_changes_before(cutoff),
        # Finished notifications (their attempts go with them); pending ones stay whatever their age.
        "notifications_deleted": models.NotificationOutbox.delete().where(
            (models.NotificationOutbox.status != models.NOTIFY_PENDING)
            & (models.NotificationOutbox.created_at < cutoff)).execute(),
    }
    logger.info("cleanup: %s", report)
    return report


def store_usage_summaries(*, now: datetime | None = None) -> list[dict[str, Any]]:
    """Compute and store the API usage summary of yesterday and today (UTC)."""
    rt = runtime.current()
    now = now or rt.now()
    stored = []
    for day in (now.date() - timedelta(days=1), now.date()):
        for summary in usage_for_day(day):
            ApiUsageDaily.insert(**summary, computed_at=now).on_conflict(
                conflict_target=[ApiUsageDaily.day, ApiUsageDaily.courier],
                update={k: v for k, v in summary.items() if k not in ("day", "courier")} | {"computed_at": now},
            ).execute()
            stored.append(summary)
    return stored


def usage_for_day(day: date) -> list[dict[str, Any]]:
    """Per-courier tracking-call figures of one UTC day, from the call record."""
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    rows = (CourierApiCall.select(CourierApiCall.courier, CourierApiCall.is_success, CourierApiCall.latency_ms,
                                  CourierApiCall.tracking_numbers_count)
            .where((CourierApiCall.called_at >= start) & (CourierApiCall.called_at < start + timedelta(days=1))
                   & store.is_tracking_call()))
    per_courier: dict[str, list[CourierApiCall]] = {}
    for row in rows:
        per_courier.setdefault(row.courier, []).append(row)
    summaries = []
    for courier, calls in sorted(per_courier.items()):
        latencies = sorted(call.latency_ms for call in calls if call.latency_ms is not None)
        summaries.append({
            "day": day, "courier": courier, "calls": len(calls),
            "successes": sum(1 for call in calls if call.is_success),
            "failures": sum(1 for call in calls if not call.is_success),
            "tracking_numbers": sum(call.tracking_numbers_count for call in calls),
            "p50_latency_ms": percentile(latencies, 50), "p95_latency_ms": percentile(latencies, 95),
        })
    return summaries


def percentile(sorted_values: Sequence[int], pct: float) -> int | None:
    """Nearest-rank percentile of already sorted values (None for none)."""
    if not sorted_values:
        return None
    if len(sorted_values) == 1:
        return int(sorted_values[0])
    rank = max(0, min(len(sorted_values) - 1, int(round(pct / 100 * (len(sorted_values) - 1)))))
    return int(sorted_values[rank])


# --- reporting -----------------------------------------------------------------------------------

def queue_depths() -> dict[str, int]:
    """Messages waiting per broker queue (delayed ones included)."""
    from pipeline import broker as broker_module

    current = broker_module.current()
    return {lane.name: broker_module.queue_depth(current, lane.queue_name) for lane in lanes.LANES.values()}


def ledger_counts() -> dict[str, int]:
    counts = {state: 0 for state in (models.JOB_PENDING, models.JOB_RUNNING, models.JOB_COMPLETED, models.JOB_FAILED)}
    query = TrackingJob.select(TrackingJob.status, peewee.fn.COUNT(TrackingJob.id)).group_by(TrackingJob.status)
    rows: list[tuple[Any, Any]] = list(query.tuples())  # type: ignore[arg-type]
    for state, count in rows:
        counts[str(state)] = int(count)
    return counts


def batched(items: Iterable[Any], size: int) -> Iterable[list[Any]]:
    chunk: list[Any] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


# --- delivery estimates (issue 16) ---------------------------------------------------------------

def run_estimates_job(*, now: datetime | None = None) -> dict[str, int]:
    """Rebuild the estimate statistics, refresh every active shipment's estimate and delay flag,
    invalidate the changed orders' cached views and announce new delays."""
    from pipeline import estimating, read_cache

    rt = runtime.current()
    now = now or rt.now()
    report = estimating.refresh_all_active(estimating.config_from(rt.config), now=now, schedule_policy=rt.policy)
    read_cache.invalidate(rt.coordination, report.order_ids)
    estimating.publish_delays(rt.coordination, report.newly_delayed)
    summary = {"refreshed": report.refreshed, "changed_orders": len(report.order_ids),
               "newly_delayed": len(report.newly_delayed), "facts_recorded": report.facts_recorded}
    logger.info("estimates job: %s", summary)
    return summary
