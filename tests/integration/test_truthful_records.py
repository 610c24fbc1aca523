"""What the records say happened is what happened: every courier attempt has its update-log row
with the courier's HTTP status, the job ledger knows how many attempts a job may take and what the
last one did, and `last_api_response` holds what the courier really said."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta

import models
from models import TrackingCache, TrackingJob, TrackingUpdateLog
from pipeline import service
from pipeline import status as S
from pipeline.canonical import TrackingEvent
from pipeline.registration import ShipmentRegistration

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=1)
JOURNEY = [
    TrackingEvent(time=T0, raw_text="Shipment information received", status=S.INFO_RECEIVED),
    TrackingEvent(time=T0 + timedelta(hours=3), raw_text="Parcel has been collected at Penang",
                  status=S.IN_TRANSIT, location="Penang"),
]


def register(order_id: str, number: str) -> int:
    result = service.register_shipment(ShipmentRegistration(order_id=order_id, customer_email="buyer@example.com",
                                                            tracking_number=number, courier="fake"))
    assert result.outcome == service.CREATED
    return result.shipment_id


def logs_of(shipment_id: int) -> list[TrackingUpdateLog]:
    return list(TrackingUpdateLog.select().where(TrackingUpdateLog.tracking_cache == shipment_id)
                .order_by(TrackingUpdateLog.id))


def job_of(shipment_id: int) -> TrackingJob:
    return TrackingJob.get(TrackingJob.tracking_cache == shipment_id)


def test_a_failed_attempt_that_is_retried_leaves_its_log_row_and_the_ledger_ends_clean(stack):
    # given a courier that answers 503 once, then the journey
    sid = register("ORD-R1", "FKR001")
    stack.courier.script_journey("FKR001", JOURNEY)
    stack.courier.script_error("unavailable", times=1)
    # when an admin refreshes the shipment
    service.request_refresh([sid])
    stack.wait_for(lambda: job_of(sid).status == models.JOB_COMPLETED, what="the retry completed")
    stack.settle()
    # then both attempts are in the update log, the failed one with the courier's status code
    failed, succeeded = logs_of(sid)
    assert (failed.api_call_success, failed.api_status_code, failed.update_type) == (False, 503, "manual")
    assert "CourierUnavailable" in failed.api_error_message
    assert (succeeded.api_call_success, succeeded.api_status_code, succeeded.events_added) == (True, 200, 2)
    # and the ledger says two attempts of the four allowed (first + TRACKING_RETRY_DELAYS), none failing now
    job = job_of(sid)
    assert (job.attempts, job.max_attempts, job.last_error) == (2, len(stack.config.retry_delays) + 1, None)


def test_attempts_never_exceed_max_attempts_and_each_failure_is_logged_with_its_status(stack):
    # given a courier that always answers 503
    sid = register("ORD-R2", "FKR002")
    stack.courier.script_error("unavailable", times=100)
    # when a poll runs and every retry fails
    service.request_refresh([sid])
    stack.wait_for(lambda: job_of(sid).status == models.JOB_FAILED, timeout=60, what="the job failed for good")
    stack.settle()
    # then each of the attempts has its failed row with HTTP 503
    job = job_of(sid)
    assert job.attempts == job.max_attempts == len(stack.config.retry_delays) + 1 == stack.courier.calls
    rows = logs_of(sid)
    assert [(r.api_call_success, r.api_status_code) for r in rows] == [(False, 503)] * job.max_attempts
    assert "after 3 retries" in rows[-1].api_error_message and "after 3 retries" in job.last_error


def test_last_api_response_is_the_couriers_own_item_for_the_shipment(stack):
    # given two shipments polled in one bulk call
    first, second = register("ORD-R3", "FKR003"), register("ORD-R4", "FKR004")
    stack.courier.script_journey("FKR003", JOURNEY)
    stack.courier.script_journey("FKR004", JOURNEY[:1])
    service.request_refresh([first, second])
    stack.wait_for(lambda: all(TrackingCache.get_by_id(s).api_response_hash for s in (first, second)),
                   what="both polled")
    stack.settle()
    # then each row keeps the courier's raw item for its own number, exactly as the courier sent it
    stored = TrackingCache.get_by_id(first).last_api_response
    assert set(stored) == {"tracking_number", "status", "update"}
    assert (stored["tracking_number"], stored["status"]) == ("FKR003", "found")
    assert TrackingCache.get_by_id(second).last_api_response["tracking_number"] == "FKR004"


def webhook(number: str, events: list[TrackingEvent], event_id: str) -> None:
    import json as json_module

    from models import WebhookInbox
    from pipeline.canonical import TrackingUpdate
    from pipeline.couriers.fake import webhook_body

    body = webhook_body([TrackingUpdate(courier="fake", tracking_number=number, events=tuple(events))],
                        event_id=event_id)
    row = WebhookInbox.create(courier="fake", external_event_id=event_id, raw_body=body.decode())
    service.enqueue_inbox("fake", [row.id])
    assert json_module.loads(body)["event_id"] == event_id


def test_a_shipment_whose_webhooks_stop_is_polled_within_its_status_interval(stack):
    # given a shipment in transit (polled every 2 h) whose earlier polls failed twice
    sid = register("ORD-R5", "FKR005")
    stack.courier.script_journey("FKR005", JOURNEY)
    service.request_refresh([sid])
    stack.wait_for(lambda: TrackingCache.get_by_id(sid).api_response_hash, what="the first poll")
    stack.settle()
    TrackingCache.update(consecutive_failures=2).where(TrackingCache.id == sid).execute()
    # when a webhook brings a new scan, and then the courier's webhooks stop
    later = TrackingEvent(time=T0 + timedelta(hours=6), raw_text="Arrived at Kuala Lumpur hub",
                          status=S.IN_TRANSIT)
    webhook("FKR005", [later], "evt-r5")
    stack.wait_for(lambda: len(TrackingCache.get_by_id(sid).tracking_events) == 3, what="the webhook's scan")
    stack.settle()
    received = datetime.now(UTC)
    row = TrackingCache.get_by_id(sid)
    # then the webhook pushed the next poll out, but no further than the in-transit interval
    interval = timedelta(minutes=stack.config.in_transit_freq)
    assert received + interval - timedelta(minutes=5) < row.next_update_due <= received + interval
    # and a sweep one interval later polls it
    assert service.run_poll_sweep(now=received + interval + timedelta(seconds=1)) == 1
