"""What the records say happened is what happened: every courier attempt has its update-log row
with the courier's HTTP status, the job ledger knows how many attempts a job may take and what the
last one did, and `last_api_response` holds what the courier really said."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import models
from models import TrackingCache, TrackingJob, TrackingUpdateLog
from pipeline import service
from pipeline import status as S
from pipeline.canonical import TrackingEvent
from pipeline.registration import ShipmentRegistration

T0 = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=1)
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
