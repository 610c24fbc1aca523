"""The pipeline end to end through real actors and a real worker: sweeps poll what is due,
webhooks flow through parse -> diff -> persist, failures retry and back off, the budget holds,
and manual refreshes overtake a scheduled backlog."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import models
from models import CourierApiCall, TrackingCache, TrackingJob, TrackingUpdateLog, WebhookInbox
from pipeline import lanes, service
from pipeline import status as S
from pipeline.canonical import TrackingEvent, TrackingUpdate
from pipeline.couriers.fake import webhook_body
from pipeline.registration import ShipmentRegistration

T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)


def scan(hours: float, status: str | None, text: str, location: str | None = "Kuala Lumpur") -> TrackingEvent:
    return TrackingEvent(time=T0 + timedelta(hours=hours), raw_text=text, status=status, location=location)


JOURNEY = [
    scan(0, S.INFO_RECEIVED, "Shipment information received"),
    scan(3, S.IN_TRANSIT, "Parcel has been collected at Penang", "Penang"),
    scan(9, S.IN_TRANSIT, "Arrived at Kuala Lumpur hub"),
    scan(14, S.OUT_FOR_DELIVERY, "Out for delivery"),
]


def register(order_id: str, number: str, email: str = "buyer@example.com") -> int:
    result = service.register_shipment(ShipmentRegistration(order_id=order_id, customer_email=email,
                                                             tracking_number=number, courier="fake"))
    assert result.outcome == service.CREATED
    return result.shipment_id


def shipment(shipment_id: int) -> TrackingCache:
    return TrackingCache.get_by_id(shipment_id)


def test_a_registered_shipment_is_polled_by_the_sweep_and_its_events_appear(stack):
    # given a registered shipment whose courier knows four scans
    sid = register("ORD-1", "FK0001")
    stack.courier.script_journey("FK0001", JOURNEY)
    # when the polling sweep runs
    assert service.run_poll_sweep() == 1
    row = stack.wait_for(lambda: shipment(sid).tracking_events and shipment(sid), what="events")
    # then the events are stored newest first and the status follows them
    stack.settle()
    row = shipment(sid)
    assert row.current_status == S.OUT_FOR_DELIVERY
    assert [e["raw_text"] for e in row.tracking_events][0] == "Out for delivery"
    assert len(row.tracking_events) == 4
    assert row.claimed_until is None
    assert row.next_update_due > datetime.now(timezone.utc) + timedelta(minutes=25)
    job = TrackingJob.get(TrackingJob.tracking_cache == sid)
    assert job.status == models.JOB_COMPLETED and job.job_type == "update"
    log = TrackingUpdateLog.get(TrackingUpdateLog.tracking_cache == sid)
    assert (log.update_type, log.api_call_success, log.events_added, log.new_status) == (
        "scheduled", True, 4, S.OUT_FOR_DELIVERY)
    assert CourierApiCall.select().count() == 1
    # and a second sweep finds nothing due
    assert service.run_poll_sweep() == 0
    assert stack.courier.calls == 1


def test_a_poll_with_an_unchanged_response_only_does_bookkeeping(stack):
    sid = register("ORD-2", "FK0002")
    stack.courier.script_journey("FK0002", JOURNEY[:2])
    service.request_refresh([sid])
    stack.wait_for(lambda: shipment(sid).api_response_hash, what="first poll")
    stack.settle()
    first = shipment(sid)
    service.request_refresh([sid])
    stack.wait_for(lambda: TrackingUpdateLog.select().where(TrackingUpdateLog.tracking_cache == sid).count() == 2,
                   what="second poll")
    stack.settle()
    second = shipment(sid)
    assert second.tracking_events == first.tracking_events
    assert second.last_api_update > first.last_api_update
    last_log = TrackingUpdateLog.select().where(TrackingUpdateLog.tracking_cache == sid).order_by(
        TrackingUpdateLog.id.desc()).get()
    assert last_log.events_added == 0 and not last_log.status_changed


def test_a_webhook_row_flows_through_parse_diff_persist(stack):
    sid = register("ORD-3", "FK0003")
    update = TrackingUpdate(courier="fake", tracking_number="FK0003", events=tuple(JOURNEY[:3]))
    row = WebhookInbox.create(courier="fake", external_event_id="evt-1", raw_body=webhook_body([update]).decode())
    service.enqueue_inbox("fake", [row.id])
    stack.wait_for(lambda: WebhookInbox.get_by_id(row.id).status == models.INBOX_PROCESSED, what="inbox processed")
    stack.settle()
    stored = shipment(sid)
    assert stored.current_status == S.IN_TRANSIT
    assert len(stored.tracking_events) == 3
    assert stack.courier.calls == 0, "a webhook never calls the courier"
    log = TrackingUpdateLog.get(TrackingUpdateLog.tracking_cache == sid)
    assert log.update_type == "webhook" and log.triggered_by == "webhook"


def test_duplicate_and_shuffled_webhooks_leave_the_same_row(stack):
    sid = register("ORD-4", "FK0004")
    bodies = [webhook_body([TrackingUpdate(courier="fake", tracking_number="FK0004", events=(event,))]).decode()
              for event in JOURNEY]
    order = [3, 0, 2, 3, 1, 0, 2]  # out of order, with duplicates
    ids = [WebhookInbox.create(courier="fake", external_event_id=f"e{i}", raw_body=bodies[n]).id
           for i, n in enumerate(order)]
    for inbox_id in ids:
        service.enqueue_inbox("fake", [inbox_id])
    stack.wait_for(lambda: WebhookInbox.select().where(WebhookInbox.status == models.INBOX_PROCESSED).count() == len(ids),
                   what="all webhooks processed")
    stack.settle()
    stored = shipment(sid)
    assert stored.current_status == S.OUT_FOR_DELIVERY
    assert [e["raw_text"] for e in stored.tracking_events] == [e.raw_text for e in reversed(JOURNEY)]


def test_an_unreadable_webhook_is_marked_failed_with_its_reason(stack):
    row = WebhookInbox.create(courier="fake", external_event_id="bad", raw_body="{not json")
    service.enqueue_inbox("fake", [row.id])
    stack.wait_for(lambda: WebhookInbox.get_by_id(row.id).status == models.INBOX_FAILED, what="inbox failed")
    assert "unreadable webhook" in WebhookInbox.get_by_id(row.id).error


def test_courier_failures_retry_then_back_off_and_flag_attention(stack):
    # given a courier that answers 503 to everything, and no retries left after three
    sid = register("ORD-5", "FK0005")
    stack.courier.script_error("unavailable", times=100)
    TrackingCache.update(consecutive_failures=4).where(TrackingCache.id == sid).execute()
    # when a poll runs
    service.request_refresh([sid], lane=lanes.SCHEDULED)
    # then it is tried four times (first call and three retries) and then recorded as failed
    stack.wait_for(lambda: TrackingJob.get(TrackingJob.tracking_cache == sid).status == models.JOB_FAILED,
                   timeout=60, what="job failed after retries")
    stack.settle()
    assert stack.courier.calls == 4
    row = shipment(sid)
    assert row.consecutive_failures == 5
    assert row.requires_attention
    # 2^min(5, 4) x 24 h for a pending shipment
    assert row.next_update_due > datetime.now(timezone.utc) + timedelta(hours=24 * 16 - 1)
    job = TrackingJob.get(TrackingJob.tracking_cache == sid)
    assert "after 3 retries" in job.last_error
    assert CourierApiCall.select().where(CourierApiCall.is_success == False).count() == 4  # noqa: E712


def test_a_429_honours_retry_after_and_the_retry_succeeds(stack):
    sid = register("ORD-6", "FK0006")
    stack.courier.script_journey("FK0006", JOURNEY)
    stack.courier.script_error("rate_limited", times=1, retry_after=2)
    service.request_refresh([sid])
    stack.wait_for(lambda: shipment(sid).current_status == S.OUT_FOR_DELIVERY, timeout=30, what="retry succeeded")
    stack.settle()
    assert stack.courier.calls == 2
    row = shipment(sid)
    assert row.consecutive_failures == 0 and not row.requires_attention
    job = TrackingJob.get(TrackingJob.tracking_cache == sid)
    assert job.status == models.JOB_COMPLETED and job.job_type == "retry"


def test_scheduled_polls_stop_at_the_budget_minus_the_manual_reserve(stack, monkeypatch):
    import dataclasses

    # given a budget of 4 calls a day with 25% reserved for manual refreshes: 3 scheduled calls
    stack.runtime.config = dataclasses.replace(stack.config, daily_budget=4, rate_buffer_percent=25, job_batch_size=1)
    ids = [register(f"ORD-B{i}", f"FKB{i:03d}") for i in range(5)]
    for i in range(5):
        stack.courier.script_journey(f"FKB{i:03d}", JOURNEY[:1])
    # when the sweep runs, only three polls fit
    assert service.run_poll_sweep() == 3
    stack.wait_for(lambda: TrackingJob.select().where(TrackingJob.status == models.JOB_COMPLETED).count() == 3,
                   what="three polls")
    stack.settle()
    assert service.run_poll_sweep() == 0
    assert stack.courier.calls == 3
    # then a manual refresh may still use the reserve, once
    service.request_refresh([ids[4]])
    stack.wait_for(lambda: shipment(ids[4]).tracking_events, what="manual refresh")
    service.request_refresh([ids[3]])
    stack.wait_for(lambda: TrackingJob.select().where(TrackingJob.status == models.JOB_FAILED).count() == 1,
                   what="refresh over budget refused")
    stack.settle()
    assert stack.courier.calls == 4
    refused = TrackingJob.get(TrackingJob.status == models.JOB_FAILED)
    assert "budget" in refused.last_error
    assert CourierApiCall.select().count() == 4


def test_stale_inbox_rows_are_requeued_by_maintenance(stack):
    sid = register("ORD-7", "FK0007")
    update = TrackingUpdate(courier="fake", tracking_number="FK0007", events=tuple(JOURNEY))
    # a webhook stored long ago whose message the broker lost
    WebhookInbox.create(courier="fake", external_event_id="lost", raw_body=webhook_body([update]).decode(),
                        received_at=datetime.now(timezone.utc) - timedelta(minutes=5))
    report = service.run_maintenance()
    assert report["inbox_requeued"] == 1
    stack.wait_for(lambda: shipment(sid).current_status == S.OUT_FOR_DELIVERY, what="requeued webhook processed")


def test_maintenance_expires_shipments_without_news(stack):
    sid = register("ORD-8", "FK0008")
    TrackingCache.update(created_at=datetime.now(timezone.utc) - timedelta(days=40)).where(
        TrackingCache.id == sid).execute()
    assert service.run_maintenance()["expired"] == 1
    row = shipment(sid)
    assert row.current_status == S.EXPIRED and row.requires_attention
    assert row.next_update_due == models.NEVER
    assert service.run_poll_sweep() == 0


def test_daily_usage_summary_is_stored(stack):
    sid = register("ORD-9", "FK0009")
    stack.courier.script_journey("FK0009", JOURNEY)
    service.request_refresh([sid])
    stack.wait_for(lambda: shipment(sid).tracking_events, what="poll")
    stack.settle()
    summaries = service.store_usage_summaries()
    today = [s for s in summaries if s["day"] == datetime.now(timezone.utc).date()]
    assert today and today[0]["calls"] == 1 and today[0]["successes"] == 1
    assert models.ApiUsageDaily.select().count() >= 1


def test_a_manual_refresh_overtakes_a_scheduled_backlog(broker_stack):
    """Lanes and priorities hold on both brokers: on RabbitMQ as on Redis, the manual lane's queue
    is consumed beside the scheduled one and its message runs first."""
    import dataclasses
    import time

    from pipeline.registration import ShipmentRegistration as Reg

    # given a courier that takes 0.2 s a call and two thousand shipments due for a scheduled poll
    slow = broker_stack.courier
    original = slow.fetch_tracking

    def slow_fetch(numbers):
        time.sleep(0.2)
        return original(numbers)

    slow.fetch_tracking = slow_fetch
    broker_stack.runtime.config = dataclasses.replace(broker_stack.config, job_batch_size=10, daily_budget=100_000)
    service.register_many([(Reg(f"BACK-{i}", "b@example.com", f"FKS{i:05d}", "fake"), None) for i in range(2000)])
    vip = register("VIP-1", "FKVIP01")
    slow.script_journey("FKVIP01", JOURNEY)
    assert service.run_poll_sweep() >= 2000
    # when an admin refreshes one order while the backlog is being worked off
    time.sleep(1)
    started = time.monotonic()
    service.refresh_order("VIP-1", triggered_by="admin:test")
    broker_stack.wait_for(lambda: shipment(vip).current_status == S.OUT_FOR_DELIVERY, timeout=30,
                         what="manual refresh")
    took = time.monotonic() - started
    # then it finished within seconds, long before the scheduled backlog
    left = TrackingJob.select().where((TrackingJob.job_type == "update")
                                      & (TrackingJob.status != models.JOB_COMPLETED)).count()
    assert left > 1000, f"the backlog was nearly done ({left} left) before the manual refresh finished"
    assert took < 10, f"manual refresh took {took:.1f}s"


def test_cleanup_deactivates_old_finished_shipments_and_deletes_old_records(stack):
    old = datetime.now(timezone.utc) - timedelta(days=stack.config.retention_days + 1)
    finished = register("ORD-C1", "FKC001")
    active = register("ORD-C2", "FKC002")
    TrackingCache.update(current_status=S.DELIVERED, is_delivered=True, last_status_update=old).where(
        TrackingCache.id == finished).execute()
    TrackingUpdateLog.create(tracking_cache=finished, update_type="scheduled", api_call_success=True, started_at=old)
    TrackingUpdateLog.create(tracking_cache=active, update_type="scheduled", api_call_success=True,
                             started_at=datetime.now(timezone.utc))
    TrackingJob.create(tracking_cache=finished, job_type="update", status=models.JOB_COMPLETED, updated_at=old)
    TrackingJob.create(tracking_cache=active, job_type="update", status=models.JOB_PENDING, updated_at=old)
    WebhookInbox.create(courier="fake", raw_body="{}", status=models.INBOX_PROCESSED, received_at=old)
    WebhookInbox.create(courier="fake", raw_body="{}", status=models.INBOX_PENDING, received_at=old)
    CourierApiCall.create(courier="fake", endpoint="x", called_at=old - timedelta(days=40))
    for status in (models.NOTIFY_DELIVERED, models.NOTIFY_PENDING):
        models.NotificationOutbox.create(channel="webhook", event_type="shipment.delivered", message_id=status,
                                         dedupe_key=status, payload={}, status=status, created_at=old)
    report = service.run_cleanup()
    assert report == {"deactivated": 1, "logs_deleted": 1, "jobs_deleted": 1, "inbox_deleted": 1, "calls_deleted": 1,
                      "idempotency_keys_deleted": 0, "changes_deleted": 0, "notifications_deleted": 1}
    assert not shipment(finished).is_active and shipment(active).is_active
    assert TrackingJob.select().where(TrackingJob.status == models.JOB_PENDING).count() == 1, "unfinished work stays"
    assert WebhookInbox.select().where(WebhookInbox.status == models.INBOX_PENDING).count() == 1
