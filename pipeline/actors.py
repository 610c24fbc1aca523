"""The pipeline's Dramatiq actors: the stages fetch -> parse -> diff -> persist, declared once
per lane (so each lane has its own queue and priority), and the periodic sweeps. Each actor is a
thin shell: it loads by id, calls the pure core or `store`, writes, and returns a small JSON-safe
result for the next stage; returning None ends its pipeline."""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from datetime import timedelta
from typing import Any, Callable

import dramatiq
from periodiq import cron

import pipeline.broker as broker_module  # noqa: F401  (a broker must exist before actors)
import models
import settings
from pipeline import delivery, estimating, inbox, lanes, notifications, runtime, store
from pipeline import metrics
from pipeline.canonical import BulkResult, clean_update, iso_utc
from pipeline.couriers.base import (
    CourierError,
    CourierPayloadError,
    CourierRateLimited,
    CourierUnavailable,
    HttpResponse,
)
from pipeline.lanes import Lane

logger = logging.getLogger(__name__)

# How long a manual fetch waits for a courier slot before going back to the queue (seconds).
MANUAL_SLOT_WAIT = 20.0


def _declare(stage: str, fn: Callable[..., Any], lane_list: tuple[Lane, ...], **options: Any) -> dict[str, dramatiq.Actor]:
    """One actor per lane for a stage: `<stage>_<lane>` on the lane's queue, at its priority."""
    declared = {}
    for lane in lane_list:
        actor = dramatiq.actor(actor_name=f"{stage}_{lane.name}", queue_name=lane.queue_name,
                               priority=lane.priority, **options)(fn)
        declared[lane.name] = broker_module.register(actor)
    return declared


# --- fetch ---------------------------------------------------------------------------------------

def fetch_stage(courier: str, tracking_numbers: list[str], context: dict[str, Any]) -> dict[str, Any] | None:
    """One bulk courier call for a batch; passes the raw response on, or handles the failure."""
    rt = runtime.current()
    ctx = store.PollContext.from_dict(context)
    lane = lanes.LANES[ctx.lane]
    cooling = rt.cooldown_remaining(courier)
    if cooling > 0:
        logger.info("courier %s cooling down after 429; batch of %d waits %.0fs", courier, len(tracking_numbers), cooling)
        enqueue_poll(lane, courier, tracking_numbers, ctx, delay_seconds=cooling)
        return None
    limiter = rt.concurrency_limiter(courier)
    deadline = time.monotonic() + (MANUAL_SLOT_WAIT if lane is lanes.MANUAL else 0)
    while True:
        with limiter.acquire(raise_on_failure=False) as acquired:
            if acquired:
                return _fetch_with_slot(rt, lane, courier, tracking_numbers, ctx)
        if time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    # No courier slot free: back to the queue without using a retry (a miss is not a failure).
    enqueue_poll(lane, courier, tracking_numbers, ctx, delay_seconds=1 + rt_jitter())
    return None


def rt_jitter() -> float:
    import random

    return random.random() * 2


def _fetch_with_slot(rt: runtime.Runtime, lane: Lane, courier: str, numbers: list[str],
                     ctx: store.PollContext) -> dict[str, Any] | None:
    now = rt.now()
    budget = rt.budget()
    is_manual = lane is lanes.MANUAL
    if not budget.try_spend(now.date(), is_manual=is_manual):
        share = "the whole daily budget" if is_manual else "the scheduled share of the daily budget"
        store.defer_for_budget(courier, numbers, ctx, reason=f"courier API budget: {share} is spent for today",
                               now=now, policy=rt.policy)
        logger.warning("budget spent: deferred %d %s shipments of courier %s", len(numbers), ctx.trigger, courier)
        return None
    store.mark_jobs_running(ctx.job_ids, now, attempt=ctx.attempt + 1)
    outcome = rt.client(courier).fetch_tracking(numbers)
    extra_calls = sum(1 for call in outcome.calls if call.kind == "tracking") - 1
    for _ in range(max(0, extra_calls)):  # a 401 retry is a second call against the budget
        budget.try_spend(now.date(), is_manual=True)
    store.record_calls(courier, outcome.calls, trigger=ctx.trigger, now=rt.now())
    tracking_calls = [call for call in outcome.calls if call.kind == "tracking"]
    latency = tracking_calls[-1].latency_ms if tracking_calls else None
    if outcome.error is not None or outcome.response is None:
        error = outcome.error or CourierUnavailable("no response from the courier")
        failed_ctx = store.PollContext(**{**ctx.__dict__, "http_status": error.http_status, "latency_ms": latency})
        handle_courier_error(rt, courier, numbers, failed_ctx, error)
        return None
    response = outcome.response
    ctx = store.PollContext(**{**ctx.__dict__, "http_status": response.status, "latency_ms": latency})
    return {
        "courier": courier,
        "requested": numbers,
        "status": response.status,
        "headers": dict(response.headers),
        "body": response.body.decode("utf-8", errors="replace"),
        "context": ctx.to_dict(),
    }


def handle_courier_error(rt: runtime.Runtime, courier: str, numbers: list[str], ctx: store.PollContext,
                         error: CourierError) -> None:
    """Retry a retryable failure after the configured delay (or the courier's Retry-After); after
    the last retry, or for errors that waiting cannot fix, record the failure on every shipment."""
    now = rt.now()
    delays = rt.config.retry_delays
    is_retryable = isinstance(error, (CourierUnavailable, CourierRateLimited))
    if isinstance(error, CourierRateLimited):
        rt.start_cooldown(courier, error.retry_after or delays[0])
    if is_retryable and ctx.attempt < len(delays):
        delay = float(delays[ctx.attempt])
        if isinstance(error, CourierRateLimited) and error.retry_after:
            delay = max(delay, error.retry_after) if ctx.attempt else error.retry_after
        retry_ctx = store.PollContext(**{**ctx.__dict__, "lane": lanes.RETRY.name, "trigger": "retry",
                                         "attempt": ctx.attempt + 1})
        retry_at = now + _seconds(delay)
        store.schedule_retry(ctx.job_ids, store.shipment_ids_for(courier, numbers), retry_at=retry_at,
                             error=f"{type(error).__name__}: {error}", lease=rt.lease(), now=now, context=ctx)
        enqueue_poll(lanes.RETRY, courier, numbers, retry_ctx, delay_seconds=delay)
        logger.info("courier %s %s; retry %d of %d for %d shipments in %.0fs", courier, error, ctx.attempt + 1,
                    len(delays), len(numbers), delay)
        return
    message = f"{type(error).__name__}: {error}"
    if is_retryable:
        message += f" (after {len(delays)} retries)"
    store.record_batch_failure(courier, numbers, ctx, message, now=now, policy=rt.policy,
                               max_events=rt.config.max_events)
    logger.warning("courier %s batch of %d failed for good: %s", courier, len(numbers), message)


def _seconds(value: float) -> Any:
    return timedelta(seconds=value)


# --- parse ---------------------------------------------------------------------------------------

def parse_stage(payload: dict[str, Any]) -> dict[str, Any] | None:
    """Courier format -> canonical updates (text cleaned) for a fetched bulk response."""
    if "inbox_ids" in payload:  # a message of the per-webhook path, still queued across an upgrade
        enqueue_drain()
        return None
    rt = runtime.current()
    ctx = store.PollContext.from_dict(payload["context"])
    courier = payload["courier"]
    adapter = rt.client(courier).courier
    response = HttpResponse(status=payload["status"], headers=payload.get("headers") or {},
                            body=payload["body"].encode("utf-8"))
    try:
        result = adapter.parse_tracking_response(response, payload["requested"])
    except CourierPayloadError as error:
        # A response we cannot read will not read better later: a permanent failure, on the ledger.
        store.record_batch_failure(courier, payload["requested"], ctx, f"unreadable courier response: {error}",
                                   now=rt.now(), policy=rt.policy, max_events=rt.config.max_events)
        logger.error("courier %s response unreadable: %s", courier, error)
        return None
    except CourierError as error:  # e.g. the legacy API's errors inside an HTTP 200
        handle_courier_error(rt, courier, list(payload["requested"]), ctx, error)
        return None
    result = replace(result, updates=tuple(clean_update(u) for u in result.updates))
    return {"courier": courier, "result": result.to_dict(), "context": ctx.to_dict(), "inbox_ids": []}


# --- diff ----------------------------------------------------------------------------------------

def diff_stage(payload: dict[str, Any]) -> dict[str, Any] | None:
    """Drop what is already stored; what is left goes to persist."""
    courier = payload["courier"]
    result = BulkResult.from_dict(payload["result"])
    ctx = store.PollContext.from_dict(payload["context"])
    stored = store.load_shipments(courier, [u.tracking_number for u in result.updates]
                                  + [f.tracking_number for f in result.failures])
    items = store.changes_against(stored, result, is_poll=ctx.is_poll)
    if not items and not payload["inbox_ids"] and not ctx.job_ids:
        return None
    return {"courier": courier, "items": [item.to_dict() for item in items], "context": ctx.to_dict(),
            "inbox_ids": payload["inbox_ids"]}


# --- persist -------------------------------------------------------------------------------------

def persist_stage(payload: dict[str, Any]) -> None:
    """Merge under row locks in one transaction; after commit, invalidate the read cache and
    publish status changes. The last stage: it passes nothing on."""
    rt = runtime.current()
    courier = payload["courier"]
    ctx = store.PollContext.from_dict(payload["context"])
    items = [store.ItemChange.from_dict(item) for item in payload["items"]]
    report = store.persist_changes(courier, items, ctx, now=rt.now(), policy=rt.policy,
                                   max_events=rt.config.max_events, inbox_ids=payload["inbox_ids"])
    _after_persist(rt, courier, ctx.trigger, report)


def _after_persist(rt: runtime.Runtime, courier: str, trigger: str, report: store.PersistReport) -> None:
    """After a batch's commit: read-cache invalidation and status-change publishes in one round
    trip, then the metrics. Delivery estimates are refreshed first, so no reader caches a view
    without them."""
    refresh_estimates_after_persist(rt, report.status_changes)
    notifications.announce_persisted(rt.coordination, report.order_ids, report.status_changes)
    enqueue_deliveries(report.notification_ids)
    metrics.UPDATES_PERSISTED.labels(trigger).inc(report.shipments_written)
    for change in report.status_changes:
        metrics.STATUS_CHANGES.labels(change["status"]).inc()
    for code in report.unmapped_codes:
        metrics.UNMAPPED_CODES.labels(courier, code[:64]).inc()
    logger.debug("persisted %s batch of %s: %d rows, %d events added, %d status changes", trigger, courier,
                 report.shipments_written, report.events_added, len(report.status_changes))


# --- the webhook inbox drain ---------------------------------------------------------------------

# How long one drain message keeps claiming while its claims come back full (a backlog).
DRAIN_RUN_SECONDS = 5.0


def drain_stage() -> None:
    """Claim a batch of pending inbox rows (oldest first) and take it through parse -> diff ->
    persist in this one message: one claim, then per courier one locked read, the pure merge and
    one bulk write. While the claims come back full (a backlog) it claims again, for up to
    DRAIN_RUN_SECONDS; its first full claim sends the next drain message, so another process joins
    in. An empty or partial claim ends the chain. A worker process takes at most
    TRACKING_INBOX_DRAINS_PER_PROCESS drain messages at once (the webhook queue's prefetch,
    pipeline.broker.cap_prefetch)."""
    rt = runtime.current()
    config = rt.config
    started = time.monotonic()
    sent_next = False
    while True:
        rows, given_up = inbox.claim_batch(rt.now(), limit=config.inbox_batch_size,
                                           lease=timedelta(seconds=config.inbox_lease_seconds),
                                           max_claims=config.inbox_max_claims)
        is_full = len(rows) + len(given_up) >= config.inbox_batch_size
        if is_full and not sent_next:
            enqueue_drain()
            sent_next = True
        _persist_claimed(rt, rows)
        if not is_full or time.monotonic() - started >= DRAIN_RUN_SECONDS:
            return


def _persist_claimed(rt: runtime.Runtime, rows: list[Any]) -> None:
    by_courier: dict[str, list[Any]] = {}
    for row in rows:
        by_courier.setdefault(row.courier, []).append(row)
    for courier, courier_rows in by_courier.items():
        try:
            _drain_courier(rt, courier, courier_rows)
        except Exception:
            # e.g. the database went away: give the rows back now; Dramatiq retries this message
            _release_quietly([row for rows_ in list(by_courier.values()) for row in rows_])
            raise


def _drain_courier(rt: runtime.Runtime, courier: str, rows: list[Any]) -> None:
    adapter = rt.client(courier).courier
    now = rt.now()
    parsed: list[tuple[int, list[Any]]] = []
    for row in rows:
        try:
            message = adapter.parse_webhook(row.raw_body)
        except CourierPayloadError as error:
            store.mark_inbox([row.id], models.INBOX_FAILED, now, error=f"unreadable webhook: {error}")
            logger.warning("inbox %s (%s) unreadable: %s", row.id, courier, error)
            continue
        if message.ignored_reason is not None:  # a topic without tracking data (e.g. Shipment Created)
            store.mark_inbox([row.id], models.INBOX_IGNORED, now, error=message.ignored_reason)
            logger.info("inbox %s (%s) ignored: %s", row.id, courier, message.ignored_reason)
            continue
        parsed.append((row.id, [clean_update(update) for update in message.updates]))
    if not parsed:
        return
    report, failed = store.persist_inbox_batch(courier, parsed, now=now, policy=rt.policy,
                                               max_events=rt.config.max_events)
    _after_persist(rt, courier, "webhook", report)
    metrics.INBOX_BATCH_SIZE.observe(len(parsed))


def _release_quietly(rows: list[Any]) -> None:
    try:
        inbox.release(rows)
    except Exception as error:  # their lease ends on its own
        logger.warning("could not release %d claimed inbox rows: %s", len(rows), error)


def refresh_estimates_after_persist(rt: runtime.Runtime, status_changes: Any) -> None:
    """Delivery estimates: shipments that changed milestone are re-estimated and finished ones
    recorded as journey facts (after persist's commit; the read cache is invalidated next)."""
    if not status_changes:
        return
    try:
        report = estimating.refresh_after_persist(status_changes, estimating.config_from(rt.config), now=rt.now(),
                                                  schedule_policy=rt.policy)
        estimating.publish_delays(rt.coordination, report.newly_delayed)
    except Exception:  # noqa: BLE001 - the update is committed; the estimates job catches up
        logger.exception("estimates not refreshed after persist for %d status changes", len(status_changes))


# Unexpected exceptions (database down, bugs) are retried by Dramatiq with backoff; courier
# failures never reach it: the stages handle them with the ledger's retry plan above.
_STAGE_OPTIONS: dict[str, Any] = {"max_retries": 8, "min_backoff": 2_000, "max_backoff": 120_000, "time_limit": 10 * 60_000}

fetch = _declare("fetch", fetch_stage, lanes.POLL_LANES, **_STAGE_OPTIONS)
parse = _declare("parse", parse_stage, lanes.UPDATE_LANES, **_STAGE_OPTIONS)
diff = _declare("diff", diff_stage, lanes.UPDATE_LANES, **_STAGE_OPTIONS)
persist = _declare("persist", persist_stage, lanes.UPDATE_LANES, **_STAGE_OPTIONS)


# --- notifications (their own lane) ---------------------------------------------------------------

def deliver_notification(outbox_id: int) -> None:
    """One delivery attempt of an outbox row (webhook or email); schedules its next try."""
    retry_in = delivery.deliver(outbox_id)
    if retry_in is not None:
        enqueue_deliveries([outbox_id], delay_seconds=retry_in)


# Delivery failures are the outbox's retries (recorded, on the configured schedule); Dramatiq's
# retries are left for unexpected exceptions such as a database outage.
deliver = broker_module.register(dramatiq.actor(
    actor_name="deliver_notification", queue_name=lanes.NOTIFY.queue_name, priority=lanes.NOTIFY.priority,
    max_retries=8, min_backoff=2_000, max_backoff=120_000, time_limit=10 * 60_000)(deliver_notification))


def enqueue_deliveries(outbox_ids: Any, *, delay_seconds: float = 0) -> None:
    """One delivery message per outbox row."""
    delay = int(delay_seconds * 1000) if delay_seconds > 0 else None
    for outbox_id in outbox_ids:
        deliver.send_with_options(args=(int(outbox_id),), delay=delay)


def enqueue_poll(lane: Lane, courier: str, numbers: list[str], ctx: store.PollContext, *,
                 delay_seconds: float = 0) -> None:
    """Send one fetch -> parse -> diff -> persist pipeline on a lane."""
    if ctx.started_at is None:
        ctx = store.PollContext(**{**ctx.__dict__, "started_at": iso_utc(runtime.current().now())})
    dramatiq.pipeline([
        fetch[lane.name].message(courier, list(numbers), ctx.to_dict()),
        parse[lane.name].message(),
        diff[lane.name].message(),
        persist[lane.name].message(),
    ]).run(delay=int(delay_seconds * 1000) if delay_seconds > 0 else None)


drain = broker_module.register(dramatiq.actor(
    actor_name="drain_inbox", queue_name=lanes.WEBHOOK.queue_name, priority=lanes.WEBHOOK.priority,
    **_STAGE_OPTIONS)(drain_stage))


def enqueue_drain(*, delay_seconds: float = 0) -> None:
    """Ask a worker to drain the inbox (claims whatever is pending when it runs)."""
    drain.send_with_options(delay=int(delay_seconds * 1000) if delay_seconds > 0 else None)


# --- sweeps (periodiq) ---------------------------------------------------------------------------

def _sweep_options() -> dict[str, Any]:
    return {"queue_name": lanes.CLEANUP.queue_name, "max_retries": 0, "time_limit": 30 * 60_000}


def poll_sweep() -> None:
    """Claim what is due and enqueue its polls."""
    import pipeline.service as service

    service.run_poll_sweep()


def maintenance_sweep() -> None:
    """Re-enqueue unprocessed inbox rows, release abandoned claims and jobs, expire stale shipments."""
    import pipeline.service as service

    service.run_maintenance()


def cleanup_sweep() -> None:
    """Deactivate finished shipments and delete old logs, ledger and inbox rows."""
    import pipeline.service as service

    service.run_cleanup()


def notification_sweep() -> None:
    """Re-enqueue notification deliveries whose message was lost."""
    from pipeline import service

    service.requeue_lost_notifications()
def estimates_job() -> None:
    """Rebuild the estimate statistics, refresh every active shipment's estimate, flag delays."""
    import pipeline.service as service

    service.run_estimates_job()


def usage_report() -> None:
    """Store the daily API usage summary for yesterday and today."""
    import pipeline.service as service

    service.store_usage_summaries()


_config = settings.get()
sweep_poll = broker_module.register(dramatiq.actor(
    actor_name="sweep_poll", priority=lanes.SCHEDULED.priority,
    periodic=cron(_config.poll_sweep_cron), **_sweep_options())(poll_sweep))
sweep_maintenance = broker_module.register(dramatiq.actor(
    actor_name="sweep_maintenance", priority=lanes.CLEANUP.priority,
    periodic=cron(_config.maintenance_cron), **_sweep_options())(maintenance_sweep))
sweep_cleanup = broker_module.register(dramatiq.actor(
    actor_name="sweep_cleanup", priority=lanes.CLEANUP.priority,
    periodic=cron(_config.cleanup_cron), **_sweep_options())(cleanup_sweep))
sweep_usage = broker_module.register(dramatiq.actor(
    actor_name="sweep_usage_report", priority=lanes.CLEANUP.priority,
    periodic=cron(_config.usage_report_cron), **_sweep_options())(usage_report))

sweep_notifications = broker_module.register(dramatiq.actor(
    actor_name="sweep_notifications", priority=lanes.NOTIFY.priority,
    periodic=cron(_config.notify_sweep_cron), **_sweep_options())(notification_sweep))
# Delivery estimates: the periodic job has its own lane, so it never delays polls or cleanup.
sweep_estimates = broker_module.register(dramatiq.actor(
    actor_name="sweep_estimates", queue_name=lanes.ESTIMATES.queue_name, priority=lanes.ESTIMATES.priority,
    periodic=cron(_config.estimates_cron), max_retries=0, time_limit=30 * 60_000)(estimates_job))

PERIODIC_ACTORS = (sweep_poll, sweep_maintenance, sweep_cleanup, sweep_usage, sweep_notifications, sweep_estimates)
