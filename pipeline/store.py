"""The pipeline's database side: load stored shipments, persist a batch of changes in one
transaction under row locks, keep the job ledger, the inbox and the courier call record.
Decisions (merge, status, next poll) are delegated to the pure modules."""
from __future__ import annotations

import hashlib
import json
import logging
import random
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta, timezone
from typing import Any, Iterable, Mapping, Sequence

import peewee

import models
from models import CourierApiCall, TrackingCache, TrackingJob, TrackingUpdateLog
from pipeline import changes_feed, outbox, schedule
from pipeline import status as statuses
from pipeline.canonical import BulkResult, TrackingUpdate, iso_utc, parse_iso
from pipeline.merge import ShipmentState, StoredEvents, combine_updates, merge_updates
from pipeline.schedule import SchedulePolicy

logger = logging.getLogger(__name__)

# Item kinds a change set carries for one tracking number.
UPDATE, UNCHANGED, NOT_FOUND, FAILED = "update", "unchanged", "not_found", "failed"
FAILED_STATUSES = frozenset({statuses.RETURNED, statuses.CANCELLED})


# --- value objects passed between diff and persist ---------------------------------------------

@dataclass(frozen=True)
class ItemChange:
    """What to do to the shipments of one tracking number."""

    tracking_number: str
    kind: str
    update: TrackingUpdate | None = None
    response_hash: str | None = None
    error: str | None = None
    # The courier's own item for this number in a polled response (kept as last_api_response).
    raw_response: Any = None

    def to_dict(self) -> dict[str, Any]:
        return {"tracking_number": self.tracking_number, "kind": self.kind,
                "update": self.update.to_dict() if self.update else None,
                "response_hash": self.response_hash, "error": self.error, "raw_response": self.raw_response}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ItemChange:
        update = data.get("update")
        return cls(tracking_number=data["tracking_number"], kind=data["kind"],
                   update=TrackingUpdate.from_dict(update) if update else None,
                   response_hash=data.get("response_hash"), error=data.get("error"),
                   raw_response=data.get("raw_response"))


@dataclass(frozen=True)
class PollContext:
    """Where a batch of work came from, carried through every stage."""

    lane: str
    trigger: str  # scheduled | manual | retry | webhook
    triggered_by: str = "system"
    job_ids: tuple[int, ...] = ()
    attempt: int = 0
    started_at: str | None = None
    http_status: int | None = None
    latency_ms: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"lane": self.lane, "trigger": self.trigger, "triggered_by": self.triggered_by,
                "job_ids": list(self.job_ids), "attempt": self.attempt, "started_at": self.started_at,
                "http_status": self.http_status, "latency_ms": self.latency_ms}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PollContext:
        return cls(lane=data["lane"], trigger=data["trigger"], triggered_by=data.get("triggered_by", "system"),
                   job_ids=tuple(data.get("job_ids") or ()), attempt=int(data.get("attempt") or 0),
                   started_at=data.get("started_at"), http_status=data.get("http_status"),
                   latency_ms=data.get("latency_ms"))

    @property
    def is_poll(self) -> bool:
        return self.trigger != "webhook"


@dataclass(frozen=True)
class PersistReport:
    shipments_written: int = 0
    events_added: int = 0
    status_changes: tuple[dict[str, str], ...] = ()
    order_ids: tuple[str, ...] = ()
    unmapped_codes: tuple[str, ...] = ()
    notification_ids: tuple[int, ...] = ()  # outbox rows written with this batch, to deliver


@dataclass
class _RowWrite:
    row: TrackingCache
    log: dict[str, Any] = field(default_factory=dict)
    is_failure: bool = False


# --- reading -----------------------------------------------------------------------------------

def state_of(row: TrackingCache) -> ShipmentState:
    """The mergeable state of a stored shipment row."""
    return ShipmentState(
        status=row.current_status,
        events=StoredEvents(row.tracking_events or ()),  # made into events only if the merge needs them
        # The courier's own estimate (ours, from history, is kept in estimated_delivery beside it).
        estimated_delivery=row.courier_estimated_delivery,
        estimated_delivery_as_of=row.last_event_at,
        delivered_at=row.actual_delivery,
        delivery_location=row.delivery_location,
        last_event_at=row.last_event_at,
        has_unmapped_events=bool(row.has_unmapped_events),
    )


def load_shipments(courier: str, tracking_numbers: Iterable[str]) -> dict[str, list[TrackingCache]]:
    """Stored shipments by tracking number (a number may belong to several orders)."""
    numbers = sorted(set(tracking_numbers))
    found: dict[str, list[TrackingCache]] = {}
    if not numbers:
        return found
    query = TrackingCache.select().where(
        (TrackingCache.courier_service == courier) & (TrackingCache.courier_tracking_number.in_(numbers)))
    for row in query:
        found.setdefault(row.courier_tracking_number, []).append(row)
    return found


def response_hash(update: TrackingUpdate) -> str:
    """Hash of what the courier said about one tracking number, to skip unchanged responses."""
    payload = json.dumps(update.to_dict(), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def shipment_ids_for(courier: str, tracking_numbers: Sequence[str]) -> list[int]:
    if not tracking_numbers:
        return []
    return [row.id for row in TrackingCache.select(TrackingCache.id).where(
        (TrackingCache.courier_service == courier)
        & (TrackingCache.courier_tracking_number.in_(list(tracking_numbers))))]


def changes_against(stored: Mapping[str, Sequence[TrackingCache]], result: BulkResult, *,
                    is_poll: bool) -> list[ItemChange]:
    """What persist has to do for each tracking number of a parsed result, given the stored rows:
    responses identical to the last one become bookkeeping only, events every row already holds
    are dropped, and numbers nobody registered are ignored."""
    items: list[ItemChange] = []
    by_number: dict[str, list[TrackingUpdate]] = {}
    for update in result.updates:
        by_number.setdefault(update.tracking_number, []).append(update)
    for number, updates in by_number.items():
        rows = stored.get(number)
        if not rows:
            logger.debug("no shipment registered for tracking number %s; update ignored", number)
            continue
        combined = combine_updates(updates)
        digest = response_hash(combined) if is_poll else None  # only polls keep the courier's answer
        raw = result.raw_items.get(number) if is_poll else None
        if is_poll and all(row.api_response_hash == digest for row in rows):
            items.append(ItemChange(tracking_number=number, kind=UNCHANGED, response_hash=digest, raw_response=raw))
            continue
        held = [{e["fingerprint"]: e for e in (row.tracking_events or ())} for row in rows]
        fresh = tuple(e for e in combined.events if any(h.get(e.fingerprint) != e.to_dict() for h in held))
        has_news = bool(fresh) or combined.reported_status is not None or combined.estimated_delivery is not None
        if not has_news and not is_poll:
            items.append(ItemChange(tracking_number=number, kind=UNCHANGED))
            continue
        items.append(ItemChange(tracking_number=number, kind=UPDATE, update=replace(combined, events=fresh),
                                response_hash=digest if is_poll else None, raw_response=raw))
    for failure in result.failures:
        if failure.tracking_number not in stored:
            continue
        kind = NOT_FOUND if failure.kind == "not_found" else FAILED
        items.append(ItemChange(tracking_number=failure.tracking_number, kind=kind,
                                error=f"{failure.kind}: {failure.reason}",
                                raw_response=result.raw_items.get(failure.tracking_number) if is_poll else None))
    return items


def defer_for_budget(courier: str, tracking_numbers: Sequence[str], context: PollContext, *, reason: str,
                     now: datetime, policy: SchedulePolicy) -> None:
    """The day's budget is spent: fail the ledger rows with the reason and move these shipments'
    next poll to the start of the next budget day (spread over its first hour); no failure counts."""
    ids = shipment_ids_for(courier, tracking_numbers)
    tomorrow = datetime(now.year, now.month, now.day, tzinfo=timezone.utc) + timedelta(days=1)
    with models.database.atomic():
        fail_jobs(context.job_ids, reason, now)
        for index, spread in enumerate(schedule.spread_first_polls(len(ids), now=tomorrow, window=timedelta(hours=1))):
            TrackingCache.update(next_update_due=spread, claimed_until=None, updated_at=now).where(
                TrackingCache.id == ids[index]).execute()


def is_tracking_call() -> Any:
    """Query condition: a courier call that tracked parcels, not an OAuth token call (token calls
    are recorded too, as "/oauth/token", but never count against the budget)."""
    return ~CourierApiCall.endpoint.endswith("oauth/token")


def count_tracking_calls_on(day: date) -> int:
    """Tracking calls recorded on a UTC day (token calls do not count against the budget)."""
    start = datetime(day.year, day.month, day.day, tzinfo=timezone.utc)
    return (CourierApiCall.select()
            .where((CourierApiCall.called_at >= start) & (CourierApiCall.called_at < start + timedelta(days=1))
                   & is_tracking_call())
            .count())


# --- ledger, calls, inbox -----------------------------------------------------------------------

def create_jobs(shipment_ids: Sequence[int], *, job_type: str, priority: int, now: datetime, max_attempts: int,
                batch_id: str | None = None, scheduled_for: datetime | None = None) -> list[int]:
    """One ledger row per shipment, allowed `max_attempts` courier attempts (the first and its
    retries); returns their ids in the order given."""
    if not shipment_ids:
        return []
    rows = [{"tracking_cache": sid, "job_type": job_type, "priority": priority, "scheduled_for": scheduled_for or now,
             "status": models.JOB_PENDING, "created_at": now, "updated_at": now, "batch_id": batch_id,
             "max_attempts": max_attempts}
            for sid in shipment_ids]
    ids: list[int] = []
    with models.database.atomic():
        if models.is_postgres():
            for chunk in _chunks(rows, 1000):
                ids.extend(row[0] for row in TrackingJob.insert_many(chunk).returning(TrackingJob.id).tuples())
        else:
            for chunk in _chunks(rows, 200):
                for row in chunk:
                    ids.append(TrackingJob.insert(row).execute())
    return ids


def mark_jobs_running(job_ids: Sequence[int], now: datetime, *, attempt: int) -> None:
    """The batch's courier attempt number `attempt` (1 = the first call) is under way; a message
    delivered twice records the same attempt, never one more."""
    if job_ids:
        TrackingJob.update(status=models.JOB_RUNNING, attempts=attempt, last_attempt_at=now,
                           updated_at=now).where(TrackingJob.id.in_(list(job_ids))).execute()


def record_calls(courier: str, calls: Sequence[Any], *, trigger: str, now: datetime) -> None:
    """One courier_api_calls row per HTTP call a fetch made (token calls included)."""
    if not calls:
        return
    CourierApiCall.insert_many([
        {"courier": courier, "called_at": now, "endpoint": call.endpoint, "trigger": trigger,
         "tracking_numbers_count": call.tracking_numbers_count, "http_status": call.http_status,
         "latency_ms": call.latency_ms, "is_success": call.is_success, "error": _clip(call.error)}
        for call in calls
    ]).execute()


def schedule_retry(job_ids: Sequence[int], shipment_ids: Sequence[int], *, retry_at: datetime, error: str,
                   lease: timedelta, now: datetime, context: PollContext) -> None:
    """Ledger, claims and update logs for a batch whose attempt failed and that will be fetched
    again at `retry_at`: each shipment gets the failed attempt's log row (with the courier's HTTP
    status), its failure count is left for the last attempt to decide."""
    with models.database.atomic():
        _log_failed_attempt(shipment_ids, context, error, now)
        if job_ids:
            TrackingJob.update(job_type="retry", priority=75, status=models.JOB_PENDING, scheduled_for=retry_at,
                               last_error=_clip(error), updated_at=now).where(
                TrackingJob.id.in_(list(job_ids))).execute()
        if shipment_ids:
            # Hold the claim through the wait, so sweeps do not poll these meanwhile.
            TrackingCache.update(claimed_until=retry_at + lease).where(
                TrackingCache.id.in_(list(shipment_ids))).execute()


def _log_failed_attempt(shipment_ids: Sequence[int], context: PollContext, error: str, now: datetime) -> None:
    if not shipment_ids:
        return
    statuses_now: dict[int, str] = {row.id: row.current_status for row in TrackingCache.select(
        TrackingCache.id, TrackingCache.current_status).where(TrackingCache.id.in_(list(shipment_ids)))}
    started_at = parse_iso(context.started_at) or now
    TrackingUpdateLog.insert_many([
        {"tracking_cache": sid, "update_type": context.trigger, "triggered_by": context.triggered_by,
         "api_call_success": False, "api_response_time_ms": context.latency_ms,
         "api_status_code": context.http_status, "api_error_message": _clip(error), "status_changed": False,
         "previous_status": statuses_now.get(sid), "new_status": statuses_now.get(sid), "events_added": 0,
         "started_at": started_at, "completed_at": now}
        for sid in shipment_ids if sid in statuses_now
    ]).execute()


def fail_jobs(job_ids: Sequence[int], error: str, now: datetime) -> None:
    if job_ids:
        TrackingJob.update(status=models.JOB_FAILED, last_error=_clip(error), updated_at=now, completed_at=now).where(
            TrackingJob.id.in_(list(job_ids))).execute()


def shipment_ids_of_jobs(job_ids: Sequence[int]) -> list[int]:
    if not job_ids:
        return []
    return [row.tracking_cache_id for row in
            TrackingJob.select(TrackingJob.tracking_cache).where(TrackingJob.id.in_(list(job_ids)))
            if row.tracking_cache_id is not None]


def mark_inbox(ids: Sequence[int], status: str, now: datetime, error: str | None = None) -> None:
    models.mark_inbox_rows(ids, status, now, error=_clip(error))


# --- persisting ---------------------------------------------------------------------------------

def persist_changes(courier: str, items: Sequence[ItemChange] | None, context: PollContext, *, now: datetime,
                    policy: SchedulePolicy, max_events: int, inbox_ids: Sequence[int] = (),
                    rng: random.Random | None = None, result: BulkResult | None = None) -> PersistReport:
    """Apply one batch of changes in a single transaction, in a constant number of statements.

    Rows are locked (in id order) and re-merged under the lock, so concurrent batches for the same
    shipment serialise and the result does not depend on their order. Given a parsed `result`
    instead of `items`, the diff runs against the locked rows (the inbox drain's path: no separate
    read). Polls release their claim and complete their ledger rows; webhooks mark their inbox
    rows processed.
    """
    rng = rng or random.Random()
    started_at = parse_iso(context.started_at) or now
    if items is None:
        assert result is not None
        numbers = sorted({u.tracking_number for u in result.updates} | {f.tracking_number for f in result.failures})
    else:
        numbers = sorted({item.tracking_number for item in items})
    writes: list[_RowWrite] = []
    status_changes: list[dict[str, str]] = []
    notices: list[dict[str, Any]] = []
    unmapped: set[str] = set()
    events_added = 0
    with models.write_transaction():
        rows = _lock_by_number(courier, numbers)
        if items is None:
            assert result is not None
            items = changes_against(rows, result, is_poll=context.is_poll)
        for item in items:
            for row in rows.get(item.tracking_number, ()):
                had_attention = bool(row.requires_attention)
                write = _apply(row, item, context, now=now, policy=policy, max_events=max_events, rng=rng)
                write.log.update(started_at=started_at, completed_at=now)
                writes.append(write)
                events_added += write.log["events_added"]
                if write.log["status_changed"]:
                    status_changes.append({"order_id": row.order_id, "tracking_number": row.courier_tracking_number,
                                           "previous": write.log["previous_status"], "status": row.current_status})
                if write.log["status_changed"] or (row.requires_attention and not had_attention):
                    notices.append(notice_of(row, write.log["previous_status"], now=now,
                                             is_attention=bool(row.requires_attention and not had_attention)))
                if item.update is not None:
                    unmapped.update(item.update.unmapped_codes)
        models.bulk_update_shipments([w.row for w in writes])
        models.insert_rows(TrackingUpdateLog, [w.log for w in writes])
        if context.job_ids:
            _finish_jobs(context.job_ids, writes, now)
        mark_inbox(inbox_ids, models.INBOX_PROCESSED, now)
        changes_feed.record_shipment_changes(shipment_ids_with_news(items, writes), changes_feed.TRACKING, now)
        notification_ids = outbox.record_status_changes(notices, now=now)
    return PersistReport(
        shipments_written=len(writes), events_added=events_added, status_changes=tuple(status_changes),
        order_ids=tuple(sorted({w.row.order_id for w in writes})), unmapped_codes=tuple(sorted(unmapped)),
        notification_ids=tuple(notification_ids),
    )


def shipment_ids_with_news(items: Sequence[ItemChange], writes: Sequence[_RowWrite]) -> list[int]:
    """The written shipments a changes-feed reader must hear about: those the courier told
    something new (an update item), whose status changed, or that were newly flagged for attention."""
    news = {item.tracking_number for item in items if item.kind == UPDATE}
    return [w.row.id for w in writes if w.row.courier_tracking_number in news or w.log.get("status_changed")
            or (w.is_failure and w.row.requires_attention)]


def persist_inbox_batch(courier: str, parsed: Sequence[tuple[int, Sequence[TrackingUpdate]]], *, now: datetime,
                        policy: SchedulePolicy, max_events: int) -> tuple[PersistReport, dict[int, str]]:
    """Persist the updates of parsed inbox rows (inbox id, updates) as one batch and mark the rows
    processed. If that transaction fails for any reason but the database being unreachable, the
    rows are persisted one by one, so only a row that fails by itself is marked failed (with its
    error). Returns the combined report and {inbox id: error} of the failed rows.

    Raises:
        peewee.OperationalError, peewee.InterfaceError: the database is unreachable (nothing is marked)."""
    context = PollContext(lane="webhook", trigger="webhook", triggered_by="webhook", started_at=iso(now))

    def persist(rows: Sequence[tuple[int, Sequence[TrackingUpdate]]]) -> PersistReport:
        updates = tuple(update for _, row_updates in rows for update in row_updates)
        return persist_changes(courier, None, context, now=now, policy=policy, max_events=max_events,
                               inbox_ids=[inbox_id for inbox_id, _ in rows], result=BulkResult(updates=updates))

    try:
        return persist(parsed), {}
    except (peewee.OperationalError, peewee.InterfaceError):
        raise
    except Exception as error:
        logger.warning("inbox batch of %d %s webhooks failed (%s: %s); persisting them one by one", len(parsed),
                       courier, type(error).__name__, error)
    reports: list[PersistReport] = []
    failed: dict[int, str] = {}
    for row in parsed:
        try:
            reports.append(persist([row]))
        except (peewee.OperationalError, peewee.InterfaceError):
            raise
        except Exception as error:
            failed[row[0]] = f"could not be stored: {type(error).__name__}: {error}"
            mark_inbox([row[0]], models.INBOX_FAILED, now, error=failed[row[0]])
            logger.error("inbox %s (%s) failed: %s", row[0], courier, failed[row[0]])
    return combine_reports(reports), failed


def combine_reports(reports: Sequence[PersistReport]) -> PersistReport:
    """One report for several persisted batches."""
    return PersistReport(
        shipments_written=sum(r.shipments_written for r in reports), events_added=sum(r.events_added for r in reports),
        status_changes=tuple(change for r in reports for change in r.status_changes),
        order_ids=tuple(sorted({order_id for r in reports for order_id in r.order_ids})),
        unmapped_codes=tuple(sorted({code for r in reports for code in r.unmapped_codes})),
        notification_ids=tuple(outbox_id for r in reports for outbox_id in r.notification_ids),
    )


def notice_of(row: TrackingCache, previous: str, *, now: datetime, is_attention: bool = False) -> dict[str, Any]:
    """What the outbox needs to know about one shipment's change (status and/or attention flag):
    the parcel, both statuses, the newest event (the cause), the delivery dates, and when."""
    newest = (row.tracking_events or [None])[0]
    event = None
    if newest:
        event = {"time": newest.get("time"), "status": newest.get("status"),
                 "description": newest.get("raw_text"), "location": newest.get("location"),
                 "fingerprint": newest.get("fingerprint")}
    return {"shipment_id": row.id, "order_id": row.order_id, "tracking_number": row.courier_tracking_number,
            "courier": row.courier_service, "previous": previous, "status": row.current_status, "event": event,
            "estimated_delivery": iso_utc(row.estimated_delivery), "delivered_at": iso_utc(row.actual_delivery),
            "requires_attention": bool(row.requires_attention), "attention_reason": row.attention_reason,
            "is_attention": is_attention, "occurred_at": iso_utc(now)}


def _finish_jobs(job_ids: Sequence[int], writes: Sequence[_RowWrite], now: datetime) -> None:
    """Complete the batch's ledger rows; rows of shipments whose item failed fail with its error."""
    failed_ids = [w.row.id for w in writes if w.is_failure]
    jobs = TrackingJob.id.in_(list(job_ids))
    completed = jobs if not failed_ids else jobs & TrackingJob.tracking_cache.not_in(failed_ids)
    TrackingJob.update(status=models.JOB_COMPLETED, last_error=None, updated_at=now,
                       completed_at=now).where(completed).execute()
    if failed_ids:
        errors = "; ".join(sorted({w.log["api_error_message"] or "failed" for w in writes if w.is_failure}))
        TrackingJob.update(status=models.JOB_FAILED, last_error=_clip(errors), updated_at=now,
                           completed_at=now).where(jobs & TrackingJob.tracking_cache.in_(failed_ids)).execute()


def _lock_by_number(courier: str, numbers: Sequence[str]) -> dict[str, list[TrackingCache]]:
    found: dict[str, list[TrackingCache]] = {}
    for row in models.lock_shipments_by_number(courier, numbers):
        found.setdefault(row.courier_tracking_number, []).append(row)
    return found


def _apply(row: TrackingCache, item: ItemChange, context: PollContext, *, now: datetime, policy: SchedulePolicy,
           max_events: int, rng: random.Random) -> _RowWrite:
    """Change one locked row for one item; returns it with its update-log values."""
    previous = row.current_status
    log = {"tracking_cache": row.id, "update_type": context.trigger, "triggered_by": context.triggered_by,
           "api_call_success": True, "api_response_time_ms": context.latency_ms,
           "api_status_code": context.http_status, "api_error_message": None, "status_changed": False,
           "previous_status": previous, "new_status": previous, "events_added": 0}
    is_failure = False
    if item.kind == UPDATE and item.update is not None:
        outcome = merge_updates(state_of(row), [item.update], max_events=max_events, now=now)
        _write_state(row, outcome.state, now=now)
        log.update(events_added=outcome.events_added, status_changed=outcome.status_changed,
                   new_status=outcome.state.status)
        row.consecutive_failures = 0 if context.is_poll else row.consecutive_failures
    elif item.kind == FAILED:
        is_failure = True
        row.consecutive_failures = (row.consecutive_failures or 0) + 1
        log.update(api_call_success=False, api_error_message=_clip(item.error))
    else:  # UNCHANGED or NOT_FOUND: the courier answered; nothing new
        if item.kind == NOT_FOUND:
            log.update(api_error_message=_clip(item.error or "not found at the courier"))
        if context.is_poll:
            row.consecutive_failures = 0
    if context.is_poll and item.raw_response is not None:
        row.last_api_response = item.raw_response  # what the courier said, as it said it
    if context.is_poll and item.update is not None:
        row.api_response_hash = item.response_hash
    if not is_failure:
        row.last_api_update = now
    _reschedule(row, now=now, policy=policy, rng=rng, is_webhook=not context.is_poll)
    if context.is_poll:
        row.claimed_until = None
    row.updated_at = now
    return _RowWrite(row=row, log=log, is_failure=is_failure)


def _write_state(row: TrackingCache, state: ShipmentState, *, now: datetime) -> None:
    if state.status != row.current_status:
        row.last_status_update = now
    row.current_status = state.status
    row.tracking_events = (state.events.dicts if isinstance(state.events, StoredEvents)
                           else [e.to_dict() for e in state.events])
    row.courier_estimated_delivery = state.estimated_delivery
    row.actual_delivery = state.delivered_at
    row.delivery_location = state.delivery_location
    row.last_event_at = state.last_event_at
    row.has_unmapped_events = state.has_unmapped_events
    row.is_delivered = state.status == statuses.DELIVERED
    row.is_failed = state.status in FAILED_STATUSES


def _reschedule(row: TrackingCache, *, now: datetime, policy: SchedulePolicy, rng: random.Random,
                is_webhook: bool = False) -> None:
    """Next poll time, polling frequency and the attention flag from the row's new state.

    A webhook pushes the next poll out by the status's own interval, never by the failure
    backoff of earlier polls: if the courier's webhooks then stop, the shipment is polled again
    within its status's interval (the failure count stays for the next poll's result)."""
    minutes = schedule.poll_interval_minutes(status=row.current_status, now=now,
                                             consecutive_failures=0 if is_webhook else row.consecutive_failures or 0,
                                             estimated_delivery=row.estimated_delivery or row.courier_estimated_delivery,
                                             policy=policy, jitter=rng.random(), is_delayed=bool(row.is_delayed))
    if minutes is None:
        row.next_update_due = models.NEVER
        row.update_frequency_minutes = 0
    else:
        row.next_update_due = now + timedelta(minutes=minutes)
        row.update_frequency_minutes = int(round(minutes))
    if schedule.needs_attention(row.consecutive_failures or 0, policy):
        row.requires_attention = True
        row.attention_reason = f"{row.consecutive_failures} consecutive failed polls"
    elif row.requires_attention and (row.consecutive_failures or 0) == 0 and row.attention_reason \
            and row.attention_reason.endswith("consecutive failed polls"):
        row.requires_attention = False
        row.attention_reason = None


def record_batch_failure(courier: str, tracking_numbers: Sequence[str], context: PollContext, error: str, *,
                         now: datetime, policy: SchedulePolicy, max_events: int) -> PersistReport:
    """A whole batch failed for good (retries exhausted, auth refused, unreadable response): every
    shipment's failure count grows, its next poll backs off, its ledger rows fail."""
    items = [ItemChange(tracking_number=number, kind=FAILED, error=error) for number in tracking_numbers]
    return persist_changes(courier, items, context, now=now, policy=policy, max_events=max_events)


# --- helpers -------------------------------------------------------------------------------------

def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _clip(text: str | None, limit: int = 2000) -> str | None:
    if text is None:
        return None
    return text if len(text) <= limit else text[: limit - 1] + "…"


def iso(moment: datetime | None) -> str | None:
    return iso_utc(moment)
