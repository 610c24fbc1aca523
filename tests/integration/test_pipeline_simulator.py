"""The pipeline against the courier simulator over HTTP, with the real EasyParcel adapter and
client (OAuth included), PostgreSQL, Redis and a real worker: the simulator's 5xx and 429 answers
end in retries and backoff, never beyond the daily budget."""
from __future__ import annotations

import dataclasses

import pytest
import requests

import models
import settings
from models import CourierApiCall, TrackingCache, TrackingJob
from pipeline import lanes, service
from pipeline import status as S
from pipeline.registration import ShipmentRegistration
from sim.server import SimulatorConfig, SimulatorServer

from stacks import build_stack


@pytest.fixture
def simulated(postgres_url, redis_url):
    sim = SimulatorServer(SimulatorConfig(speed=0)).start()
    made, stop = build_stack(
        "redis", postgres_url, redis_url, real_courier=True, easyparcel_base_url=sim.url,
        easyparcel_client_id="demo-client", easyparcel_client_secret=settings.Secret("demo-secret"),
        job_batch_size=5)
    yield made, sim
    stop()
    sim.stop()


def faults(sim: SimulatorServer, **values) -> None:
    requests.post(f"{sim.url}/_sim/faults", json=values, timeout=5).raise_for_status()


def sim_calls(sim: SimulatorServer) -> int:
    return requests.get(f"{sim.url}/_sim/stats", timeout=5).json()["calls"].get("open_api_tracking", 0)


def register(order_id: str, number: str) -> int:
    result = service.register_shipment(ShipmentRegistration(order_id, "sim@example.com", number, "easyparcel"))
    return result.shipment_id


def test_a_batch_is_fetched_through_the_real_adapter_and_stored(simulated):
    stack, sim = simulated
    ids = [register(f"SIM-{i}", number) for i, number in enumerate(["EPDEL00001", "EPTRN00002", "EPNOF00003"])]
    assert service.run_poll_sweep() == 3
    stack.wait_for(lambda: TrackingJob.select().where(TrackingJob.status == models.JOB_COMPLETED).count() == 3,
                   what="the batch to complete")
    by_number = {row.courier_tracking_number: row for row in TrackingCache.select()}
    assert by_number["EPDEL00001"].current_status == S.DELIVERED
    assert by_number["EPTRN00002"].current_status == S.IN_TRANSIT
    assert by_number["EPNOF00003"].current_status == S.PENDING and by_number["EPNOF00003"].consecutive_failures == 0
    calls = list(CourierApiCall.select().order_by(CourierApiCall.id))
    assert [c.endpoint for c in calls] == ["/oauth/token", "/open_api/2026-06/shipment/tracking_status"]
    assert sim_calls(sim) == 1 and len(ids) == 3


def test_5xx_answers_are_retried_then_the_poll_succeeds(simulated):
    stack, sim = simulated
    sid = register("SIM-5XX", "EPDEL00010")
    faults(sim, fail_next=2)
    service.request_refresh([sid])
    stack.wait_for(lambda: TrackingCache.get_by_id(sid).current_status == S.DELIVERED, timeout=30,
                   what="the third attempt to succeed")
    assert sim_calls(sim) == 3
    statuses = [c.http_status for c in CourierApiCall.select().where(CourierApiCall.endpoint != "/oauth/token")
                .order_by(CourierApiCall.id)]
    assert statuses == [500, 500, 200] or statuses == [503, 503, 200]
    assert TrackingCache.get_by_id(sid).consecutive_failures == 0


def test_a_429_waits_for_retry_after_and_backs_off_when_it_persists(simulated):
    stack, sim = simulated
    sid = register("SIM-429", "EPDEL00020")
    faults(sim, rate_limit_next=10, retry_after_seconds=1)
    service.request_refresh([sid])
    stack.wait_for(lambda: TrackingJob.get(TrackingJob.tracking_cache == sid).status == models.JOB_FAILED,
                   timeout=60, what="retries to run out")
    assert sim_calls(sim) == 4, "the first call and three retries, no more"
    row = TrackingCache.get_by_id(sid)
    assert row.consecutive_failures == 1
    assert "CourierRateLimited" in TrackingJob.get(TrackingJob.tracking_cache == sid).last_error
    assert all(c.http_status == 429 for c in CourierApiCall.select().where(CourierApiCall.endpoint != "/oauth/token"))


def test_failures_never_spend_beyond_the_budget(simulated):
    stack, sim = simulated
    # a budget of three calls, all for scheduled polls, and a courier failing every call
    stack.runtime.config = dataclasses.replace(stack.runtime.config, daily_budget=3, rate_buffer_percent=0)
    ids = [register(f"SIM-B{i}", f"EPDEL0010{i}") for i in range(2)]
    faults(sim, error_rate=1.0)
    service.request_refresh(ids[:1], lane=lanes.SCHEDULED)
    stack.wait_for(lambda: TrackingJob.select().where(TrackingJob.status == models.JOB_FAILED).count() == 1,
                   timeout=60, what="the budget to stop the retries")
    assert sim_calls(sim) == 3
    assert "budget" in TrackingJob.get(TrackingJob.status == models.JOB_FAILED).last_error
    assert CourierApiCall.select().where(CourierApiCall.endpoint != "/oauth/token").count() == 3


def test_token_calls_are_recorded_but_never_spend_the_budget(simulated):
    from datetime import datetime, timezone

    from pipeline import store

    stack, sim = simulated
    sid = register("SIM-TOKEN", "EPDEL00030")
    service.request_refresh([sid])
    stack.wait_for(lambda: TrackingCache.get_by_id(sid).current_status == S.DELIVERED, what="the poll")
    endpoints = [c.endpoint for c in CourierApiCall.select()]
    assert "/oauth/token" in endpoints and len(endpoints) == 2
    today = datetime.now(timezone.utc).date()
    assert store.count_tracking_calls_on(today) == 1
    assert service.usage_for_day(today)[0]["calls"] == 1
    assert stack.runtime.budget().used(today) == 1


def test_http_500s_then_success_leave_every_attempt_and_the_couriers_own_item_on_record(simulated):
    from models import TrackingUpdateLog

    stack, sim = simulated
    # given a courier that answers HTTP 500 twice
    sid = register("SIM-REC", "EPDEL00020")
    faults(sim, fail_next=2, error_status=500)
    # when the shipment is refreshed and the third attempt succeeds
    service.request_refresh([sid])
    stack.wait_for(lambda: TrackingJob.get(TrackingJob.tracking_cache == sid).status == models.JOB_COMPLETED,
                   timeout=30, what="the third attempt to complete the job")
    # then each attempt has its update-log row with the courier's status code
    logs = list(TrackingUpdateLog.select().where(TrackingUpdateLog.tracking_cache == sid).order_by(TrackingUpdateLog.id))
    assert [(log.api_call_success, log.api_status_code) for log in logs] == [(False, 500), (False, 500), (True, 200)]
    # and the ledger says 3 attempts of 4, the last one fine
    job = TrackingJob.get(TrackingJob.tracking_cache == sid)
    assert (job.attempts, job.max_attempts, job.last_error) == (3, 4, None)
    # and last_api_response is the simulator's own item for the number, as EasyParcel shapes it
    stored = TrackingCache.get_by_id(sid).last_api_response
    assert stored["awb_number"] == "EPDEL00020" and stored["status"] == "success"
    assert {"shipment_number", "latest_tracking_status", "status_log"} <= set(stored)
    assert "fingerprint" not in str(stored)
